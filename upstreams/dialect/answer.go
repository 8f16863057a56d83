package dialect

import (
	"encoding/json"
	"strings"
	"time"
)

// chatCompletion is the OpenAI answer MessageToChatCompletion builds.
type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   chatUsage    `json:"usage"`
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      chatAnswer      `json:"message"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
}

type chatAnswer struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

// MessageToChatCompletion translates an Anthropic Message answer into a
// chat.completion. model names the answer's model ("" keeps the
// upstream's). Text blocks are joined into the content, tool_use blocks
// become tool_calls with their input as a JSON string, thinking blocks are
// dropped; stop_reason maps to finish_reason (end_turn and stop_sequence
// to stop, max_tokens to length, tool_use to tool_calls, refusal to
// content_filter) and the cache tokens count in prompt_tokens. An error
// body or anything but a message is ErrBadAnswer.
func MessageToChatCompletion(body []byte, model string) ([]byte, error) {
	if err := checkJSON(body, MaxBodyBytes); err != nil {
		return nil, badAnswerf("%s", err)
	}
	var msg anthropicMessage
	if err := json.Unmarshal(body, &msg); err != nil {
		return nil, badAnswerf("cannot decode the message: %s", describe(err))
	}
	if msg.Type != "message" {
		return nil, badAnswerf("the answer is of type %q, not a message", msg.Type)
	}
	if model == "" {
		model = msg.Model
	}
	var text strings.Builder
	var calls []toolCall
	sawText := false
	for _, b := range msg.Content {
		switch b.Type {
		case "text":
			sawText = true
			text.WriteString(b.Text)
		case "tool_use":
			args, ok := compactObject(b.Input)
			if !ok {
				return nil, badAnswerf("the input of tool_use %q is not a JSON object", b.ID)
			}
			calls = append(calls, toolCall{ID: b.ID, Type: "function", Function: toolFunction{Name: b.Name, Arguments: string(args)}})
		}
	}
	answer := chatAnswer{Role: "assistant", ToolCalls: calls}
	if sawText || len(calls) == 0 {
		s := text.String()
		answer.Content = &s
	}
	stop := ""
	if msg.StopReason != nil {
		stop = *msg.StopReason
	}
	var usage anthropicUsage
	if msg.Usage != nil {
		usage = *msg.Usage
	}
	return marshal(chatCompletion{
		ID:      msg.ID,
		Object:  "chat.completion",
		Created: time.Now().Unix(),
		Model:   model,
		Choices: []chatChoice{{Message: answer, Logprobs: jsonNull, FinishReason: finishReason(stop)}},
		Usage:   chatUsageFrom(usage),
	})
}

// chatCompletionIn is the part of a chat.completion ChatCompletionToMessage reads.
type chatCompletionIn struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Content   json.RawMessage `json:"content"`
			Refusal   *string         `json:"refusal"`
			ToolCalls []toolCall      `json:"tool_calls"`
		} `json:"message"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens        int64         `json:"prompt_tokens"`
		CompletionTokens    int64         `json:"completion_tokens"`
		PromptTokensDetails *promptDetail `json:"prompt_tokens_details"`
	} `json:"usage"`
}

// messageOut is the Anthropic Message ChatCompletionToMessage builds. Its
// content is always an array, empty when the model said nothing.
type messageOut struct {
	ID           string         `json:"id"`
	Type         string         `json:"type"`
	Role         string         `json:"role"`
	Model        string         `json:"model"`
	Content      []block        `json:"content"`
	StopReason   string         `json:"stop_reason"`
	StopSequence *string        `json:"stop_sequence"`
	Usage        anthropicUsage `json:"usage"`
}

// ChatCompletionToMessage translates a chat.completion into an Anthropic
// Message. model names the answer's model ("" keeps the upstream's). The
// first choice's content (or refusal) becomes a text block, its tool_calls
// tool_use blocks with their arguments parsed into input; finish_reason
// maps to stop_reason (stop to end_turn, length to max_tokens, tool_calls
// to tool_use, content_filter to refusal) and usage to input_tokens
// (without cached tokens, which become cache_read_input_tokens) and
// output_tokens. Tool arguments that are not a JSON object cannot be an
// Anthropic input: ErrBadAnswer, like a body that is not a completion.
func ChatCompletionToMessage(body []byte, model string) ([]byte, error) {
	if err := checkJSON(body, MaxBodyBytes); err != nil {
		return nil, badAnswerf("%s", err)
	}
	var in chatCompletionIn
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, badAnswerf("cannot decode the completion: %s", describe(err))
	}
	if len(in.Choices) == 0 {
		return nil, badAnswerf("the completion has no choices")
	}
	if model == "" {
		model = in.Model
	}
	choice := in.Choices[0]
	out := messageOut{ID: in.ID, Type: "message", Role: "assistant", Model: model, Content: []block{}}
	if out.ID == "" {
		out.ID = newID("msg_")
	}
	text, err := answerText(choice.Message.Content)
	if err != nil {
		return nil, err
	}
	if text == "" && choice.Message.Refusal != nil {
		text = *choice.Message.Refusal
	}
	if text != "" {
		out.Content = append(out.Content, block{Type: "text", Text: text})
	}
	for _, tc := range choice.Message.ToolCalls {
		input, ok := argumentsObject(tc.Function.Arguments)
		if !ok {
			return nil, badAnswerf("the arguments of tool call %q are not a JSON object", tc.ID)
		}
		id := tc.ID
		if id == "" {
			id = newID("toolu_")
		}
		out.Content = append(out.Content, block{Type: "tool_use", ID: toolID(id), Name: tc.Function.Name, Input: input})
	}
	finish := ""
	if choice.FinishReason != nil {
		finish = *choice.FinishReason
	}
	out.StopReason = stopReason(finish, len(choice.Message.ToolCalls) > 0)
	if u := in.Usage; u != nil {
		cached := int64(0)
		if u.PromptTokensDetails != nil {
			cached = u.PromptTokensDetails.CachedTokens
		}
		out.Usage = anthropicUsageFrom(u.PromptTokens, cached, u.CompletionTokens)
	}
	return marshal(out)
}

// answerText reads an answer's content: a string, null, or (from some
// OpenAI-compatible servers) an array of text parts.
func answerText(raw json.RawMessage) (string, error) {
	switch firstByte(raw) {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", badAnswerf("cannot decode the content: %s", describe(err))
		}
		return s, nil
	case '[':
		var parts []chatPart
		if err := json.Unmarshal(raw, &parts); err != nil {
			return "", badAnswerf("cannot decode the content: %s", describe(err))
		}
		var sb strings.Builder
		for _, p := range parts {
			if p.Type == "text" {
				sb.WriteString(p.Text)
			}
		}
		return sb.String(), nil
	}
	if !isNull(raw) {
		return "", badAnswerf("the content is neither a string nor null")
	}
	return "", nil
}
