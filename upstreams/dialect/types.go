package dialect

import "encoding/json"

// The shapes below are the parts of each API this package reads or
// writes. Decoding into them drops every other field, on purpose.

// block is an Anthropic content block, read and written. Text is written
// only when non-empty: Anthropic refuses empty text blocks in requests.
type block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	Source    *imageSource    `json:"source,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	// Content is a tool_result's content: a string or an array of blocks.
	Content json.RawMessage `json:"content,omitempty"`
	IsError bool            `json:"is_error,omitempty"`
}

// imageSource is an Anthropic image block's source: base64 or url.
type imageSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

// message is an Anthropic request message.
type message struct {
	Role    string  `json:"role"`
	Content []block `json:"content"`
}

// anthropicTool is a client tool of a Messages request.
type anthropicTool struct {
	Type        string          `json:"type,omitempty"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

// anthropicToolChoice is a Messages request's tool_choice.
type anthropicToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// anthropicUsage is the usage of a Message, of message_start's message
// and of message_delta. input_tokens excludes the cached prompt tokens.
type anthropicUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens,omitempty"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens,omitempty"`
	OutputTokens             int64 `json:"output_tokens"`
}

// prompt is the whole prompt side, as the gateway counts it: OpenAI's
// prompt_tokens include cached tokens, Anthropic's input_tokens do not.
func (u anthropicUsage) prompt() int64 {
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
}

// merge takes the non-zero counts of a later event: message_start carries
// the prompt side, message_delta the final (cumulative) output count and,
// in recent API versions, the prompt side again.
func (u *anthropicUsage) merge(v anthropicUsage) {
	if v.InputTokens != 0 {
		u.InputTokens = v.InputTokens
	}
	if v.CacheCreationInputTokens != 0 {
		u.CacheCreationInputTokens = v.CacheCreationInputTokens
	}
	if v.CacheReadInputTokens != 0 {
		u.CacheReadInputTokens = v.CacheReadInputTokens
	}
	if v.OutputTokens != 0 {
		u.OutputTokens = v.OutputTokens
	}
}

// anthropicMessage is an Anthropic Message answer.
type anthropicMessage struct {
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	Role         string          `json:"role"`
	Model        string          `json:"model"`
	Content      []block         `json:"content"`
	StopReason   *string         `json:"stop_reason"`
	StopSequence *string         `json:"stop_sequence"`
	Usage        *anthropicUsage `json:"usage,omitempty"`
}

// toolCall is an OpenAI tool call of an assistant message or answer.
type toolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function toolFunction `json:"function"`
}

type toolFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// chatUsage is OpenAI's usage object.
type chatUsage struct {
	PromptTokens        int64         `json:"prompt_tokens"`
	CompletionTokens    int64         `json:"completion_tokens"`
	TotalTokens         int64         `json:"total_tokens"`
	PromptTokensDetails *promptDetail `json:"prompt_tokens_details,omitempty"`
}

type promptDetail struct {
	CachedTokens int64 `json:"cached_tokens"`
}

// chatUsageFrom converts Anthropic usage: cache reads and writes are part
// of the prompt, and reads are what OpenAI calls cached_tokens.
func chatUsageFrom(u anthropicUsage) chatUsage {
	c := chatUsage{
		PromptTokens:     u.prompt(),
		CompletionTokens: u.OutputTokens,
		TotalTokens:      u.prompt() + u.OutputTokens,
	}
	if u.CacheReadInputTokens > 0 {
		c.PromptTokensDetails = &promptDetail{CachedTokens: u.CacheReadInputTokens}
	}
	return c
}

// anthropicUsageFrom is the reverse: input_tokens exclude the cached tokens.
func anthropicUsageFrom(prompt, cached, completion int64) anthropicUsage {
	cached = min(max(cached, 0), max(prompt, 0))
	return anthropicUsage{InputTokens: prompt - cached, CacheReadInputTokens: cached, OutputTokens: completion}
}

// finishReason maps an Anthropic stop_reason to OpenAI's finish_reason.
func finishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	default: // end_turn, stop_sequence, pause_turn, or none given
		return "stop"
	}
}

// stopReason maps an OpenAI finish_reason to Anthropic's stop_reason.
// OpenAI does not say whether a stop sequence matched, so "stop" is end_turn.
func stopReason(finish string, sawTool bool) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	case "stop":
		return "end_turn"
	}
	if sawTool {
		return "tool_use"
	}
	return "end_turn"
}
