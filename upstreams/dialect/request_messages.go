package dialect

import (
	"encoding/json"
	"fmt"
	"strings"
)

// inMessage is a message of an Anthropic request, content still raw: a
// string or an array of blocks.
type inMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// chatRequest is the OpenAI chat request MessagesToChat builds.
type chatRequest struct {
	Model             string          `json:"model"`
	Messages          []chatOut       `json:"messages"`
	MaxTokens         *int64          `json:"max_tokens,omitempty"`
	Temperature       *float64        `json:"temperature,omitempty"`
	TopP              *float64        `json:"top_p,omitempty"`
	Stop              []string        `json:"stop,omitempty"`
	Stream            bool            `json:"stream,omitempty"`
	StreamOptions     *streamOptions  `json:"stream_options,omitempty"`
	Tools             []chatToolOut   `json:"tools,omitempty"`
	ToolChoice        json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls,omitempty"`
	User              string          `json:"user,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// chatOut is a message of an OpenAI chat request. Content is a string, an
// array of parts, or null (an assistant turn of tool calls only).
type chatOut struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []toolCall      `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

type chatToolOut struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// functionChoice is OpenAI's tool_choice naming one function.
type functionChoice struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

// partOut is a part of an OpenAI content array.
type partOut struct {
	Type     string    `json:"type"`
	Text     *string   `json:"text,omitempty"`
	ImageURL *imageURL `json:"image_url,omitempty"`
}

type imageURL struct {
	URL string `json:"url"`
}

var jsonNull = json.RawMessage(`null`)

// MessagesToChat translates an Anthropic Messages request into an OpenAI
// chat completions request for the upstream model (model "" keeps the
// body's). The system prompt becomes a system message (its text blocks
// joined by blank lines); text and image blocks become content parts;
// tool_use blocks become tool_calls and tool_result blocks tool messages
// (images of a tool result follow in a user message, since OpenAI tool
// messages hold text only); tools, tool_choice and
// disable_parallel_tool_use, stop_sequences, temperature, top_p,
// max_tokens and metadata.user_id are mapped, and a stream asks for its
// usage chunk. Thinking blocks of earlier turns, thinking, top_k and
// cache_control are dropped; server tools and documents get a
// *RequestError.
func MessagesToChat(body []byte, model string) ([]byte, error) {
	m, err := fields(body)
	if err != nil {
		return nil, &RequestError{Message: err.Error()}
	}
	out := chatRequest{Model: model}
	if out.Model == "" {
		if err := field(m, "model", &out.Model); err != nil {
			return nil, err
		}
	}
	var (
		system   json.RawMessage
		msgs     []inMessage
		tools    []anthropicTool
		choice   *anthropicToolChoice
		metadata struct {
			UserID string `json:"user_id"`
		}
	)
	for _, f := range []struct {
		name string
		v    any
	}{
		{"system", &system}, {"messages", &msgs}, {"max_tokens", &out.MaxTokens},
		{"temperature", &out.Temperature}, {"top_p", &out.TopP}, {"stop_sequences", &out.Stop},
		{"stream", &out.Stream}, {"tools", &tools}, {"tool_choice", &choice}, {"metadata", &metadata},
	} {
		if err := field(m, f.name, f.v); err != nil {
			return nil, err
		}
	}
	if out.Stream {
		out.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	out.User = metadata.UserID
	if err := systemMessage(&out, system); err != nil {
		return nil, err
	}
	for i, msg := range msgs {
		if err := appendAnthropicMessage(&out, msg, fmt.Sprintf("messages[%d]", i)); err != nil {
			return nil, err
		}
	}
	if len(out.Messages) == 0 {
		return nil, requestErrorf("messages", "needs at least one message")
	}
	if err := chatTools(&out, tools, choice); err != nil {
		return nil, err
	}
	return marshal(out)
}

// systemMessage adds the system prompt, a string or text blocks.
func systemMessage(out *chatRequest, raw json.RawMessage) error {
	blocks, err := anthropicBlocks(raw, "system")
	if err != nil {
		return err
	}
	var texts []string
	for i, b := range blocks {
		if b.Type != "text" {
			return requestErrorf(fmt.Sprintf("system[%d].type", i), "the system prompt may hold only text blocks, not %q", b.Type)
		}
		if b.Text != "" {
			texts = append(texts, b.Text)
		}
	}
	if len(texts) > 0 {
		out.Messages = append(out.Messages, chatOut{Role: "system", Content: jsonString(strings.Join(texts, "\n\n"))})
	}
	return nil
}

// anthropicBlocks reads a content field: a string (one text block) or an
// array of blocks; absent or null is none.
func anthropicBlocks(raw json.RawMessage, param string) ([]block, error) {
	return stringOrArray(raw, param, "content blocks", func(s string) block { return block{Type: "text", Text: s} })
}

// appendAnthropicMessage translates one Anthropic message, which may
// become several OpenAI messages (tool results are messages of their own).
func appendAnthropicMessage(out *chatRequest, msg inMessage, param string) error {
	blocks, err := anthropicBlocks(msg.Content, param+".content")
	if err != nil {
		return err
	}
	switch msg.Role {
	case "user":
		return appendUser(out, blocks, param+".content")
	case "assistant":
		return appendAssistant(out, blocks, param+".content")
	}
	return requestErrorf(param+".role", "role must be user or assistant, not %q", msg.Role)
}

// appendUser emits a user turn: its tool results first, as the tool
// messages OpenAI wants right after the assistant's tool calls, then the
// rest of its content (and the images of the tool results) as one user message.
func appendUser(out *chatRequest, blocks []block, param string) error {
	var parts []partOut
	for i, b := range blocks {
		bp := fmt.Sprintf("%s[%d]", param, i)
		switch b.Type {
		case "text":
			if b.Text != "" {
				parts = append(parts, textPart(b.Text))
			}
		case "image":
			p, err := imagePart(b.Source, bp+".source")
			if err != nil {
				return err
			}
			parts = append(parts, p)
		case "tool_result":
			images, err := appendToolResult(out, b, bp)
			if err != nil {
				return err
			}
			parts = append(parts, images...)
		default:
			return requestErrorf(bp+".type", "content block %q is not supported by this route's OpenAI-compatible target", b.Type)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	out.Messages = append(out.Messages, chatOut{Role: "user", Content: partsContent(parts)})
	return nil
}

// partsContent encodes parts as a plain string when they are one text,
// the form every OpenAI-compatible server accepts, else as an array.
func partsContent(parts []partOut) json.RawMessage {
	if len(parts) == 1 && parts[0].Text != nil {
		return jsonString(*parts[0].Text)
	}
	return mustMarshal(parts)
}

func textPart(s string) partOut {
	return partOut{Type: "text", Text: &s}
}

// imagePart turns an Anthropic image source into an image_url part.
func imagePart(src *imageSource, param string) (partOut, error) {
	if src == nil {
		return partOut{}, requestErrorf(param, "an image block needs its source")
	}
	switch src.Type {
	case "base64":
		if src.MediaType == "" {
			return partOut{}, requestErrorf(param+".media_type", "a base64 image needs its media_type")
		}
		return partOut{Type: "image_url", ImageURL: &imageURL{URL: "data:" + src.MediaType + ";base64," + src.Data}}, nil
	case "url":
		if src.URL == "" {
			return partOut{}, requestErrorf(param+".url", "a url image needs its url")
		}
		return partOut{Type: "image_url", ImageURL: &imageURL{URL: src.URL}}, nil
	}
	return partOut{}, requestErrorf(param+".type", "image source %q is not supported by this route's OpenAI-compatible target", src.Type)
}

// appendToolResult emits a tool message for a tool_result block and
// returns its images, which OpenAI tool messages cannot hold. is_error
// has no OpenAI counterpart; the result's text is all the model sees.
func appendToolResult(out *chatRequest, b block, param string) ([]partOut, error) {
	if b.ToolUseID == "" {
		return nil, requestErrorf(param+".tool_use_id", "a tool_result needs its tool_use_id")
	}
	inner, err := anthropicBlocks(b.Content, param+".content")
	if err != nil {
		return nil, err
	}
	var texts []string
	var images []partOut
	for i, ib := range inner {
		ip := fmt.Sprintf("%s.content[%d]", param, i)
		switch ib.Type {
		case "text":
			texts = append(texts, ib.Text)
		case "image":
			p, err := imagePart(ib.Source, ip+".source")
			if err != nil {
				return nil, err
			}
			images = append(images, p)
		default:
			return nil, requestErrorf(ip+".type", "tool_result content %q is not supported by this route's OpenAI-compatible target", ib.Type)
		}
	}
	out.Messages = append(out.Messages, chatOut{Role: "tool", ToolCallID: b.ToolUseID, Content: jsonString(strings.Join(texts, "\n\n"))})
	return images, nil
}

// appendAssistant emits an assistant turn: its text blocks joined (as a
// stream of them would be) and its tool_use blocks as tool_calls.
// Thinking blocks are the model's earlier reasoning, which an
// OpenAI-compatible target can neither verify nor use: they are dropped.
func appendAssistant(out *chatRequest, blocks []block, param string) error {
	var text strings.Builder
	var calls []toolCall
	for i, b := range blocks {
		bp := fmt.Sprintf("%s[%d]", param, i)
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			if b.ID == "" || b.Name == "" {
				return requestErrorf(bp, "a tool_use block needs an id and a name")
			}
			args, ok := compactObject(b.Input)
			if !ok {
				return requestErrorf(bp+".input", "must be a JSON object")
			}
			calls = append(calls, toolCall{ID: b.ID, Type: "function", Function: toolFunction{Name: b.Name, Arguments: string(args)}})
		case "thinking", "redacted_thinking":
		default:
			return requestErrorf(bp+".type", "content block %q is not supported by this route's OpenAI-compatible target", b.Type)
		}
	}
	if text.Len() == 0 && len(calls) == 0 {
		return nil
	}
	msg := chatOut{Role: "assistant", Content: jsonNull, ToolCalls: calls}
	if text.Len() > 0 {
		msg.Content = jsonString(text.String())
	}
	out.Messages = append(out.Messages, msg)
	return nil
}

// chatTools translates client tools and tool_choice.
func chatTools(out *chatRequest, tools []anthropicTool, choice *anthropicToolChoice) error {
	for i, t := range tools {
		param := fmt.Sprintf("tools[%d]", i)
		if t.Type != "" && t.Type != "custom" {
			return requestErrorf(param+".type", "tool %q is an Anthropic server tool, which this route's OpenAI-compatible target cannot run", t.Type)
		}
		if t.Name == "" {
			return requestErrorf(param+".name", "a tool needs a name")
		}
		schema, ok := compactObject(t.InputSchema)
		if !ok {
			return requestErrorf(param+".input_schema", "must be a JSON Schema object")
		}
		var ct chatToolOut
		ct.Type = "function"
		ct.Function.Name = t.Name
		ct.Function.Description = t.Description
		ct.Function.Parameters = schema
		out.Tools = append(out.Tools, ct)
	}
	if choice == nil {
		return nil
	}
	switch choice.Type {
	case "auto":
		out.ToolChoice = jsonString("auto")
	case "any":
		out.ToolChoice = jsonString("required")
	case "none":
		out.ToolChoice = jsonString("none")
	case "tool":
		if choice.Name == "" {
			return requestErrorf("tool_choice.name", "a tool choice of type tool needs the tool's name")
		}
		var fc functionChoice
		fc.Type = "function"
		fc.Function.Name = choice.Name
		out.ToolChoice = mustMarshal(fc)
	default:
		return requestErrorf("tool_choice.type", "unknown tool_choice type %q", choice.Type)
	}
	if choice.DisableParallelToolUse {
		f := false
		out.ParallelToolCalls = &f
	}
	if len(out.Tools) == 0 {
		// A tool_choice without tools means nothing, and OpenAI refuses it.
		out.ToolChoice, out.ParallelToolCalls = nil, nil
	}
	return nil
}
