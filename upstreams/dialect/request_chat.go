package dialect

import (
	"encoding/json"
	"fmt"
	"strings"
)

// chatMessage is a message of an OpenAI chat request.
type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []toolCall      `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

// chatPart is a part of an OpenAI message's content array.
type chatPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Refusal  string `json:"refusal"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

// chatTool is a tool of an OpenAI chat request.
type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters,omitempty"`
	} `json:"function"`
}

// messagesRequest is the Anthropic Messages request ChatToMessages builds.
type messagesRequest struct {
	Model         string               `json:"model"`
	MaxTokens     int64                `json:"max_tokens"`
	System        []block              `json:"system,omitempty"`
	Messages      []message            `json:"messages"`
	StopSequences []string             `json:"stop_sequences,omitempty"`
	Temperature   *float64             `json:"temperature,omitempty"`
	TopP          *float64             `json:"top_p,omitempty"`
	Stream        bool                 `json:"stream,omitempty"`
	Tools         []anthropicTool      `json:"tools,omitempty"`
	ToolChoice    *anthropicToolChoice `json:"tool_choice,omitempty"`
	Metadata      *struct {
		UserID string `json:"user_id"`
	} `json:"metadata,omitempty"`
}

// emptySchema is the input_schema of a function declared without parameters.
var emptySchema = json.RawMessage(`{"type":"object","properties":{}}`)

// ChatToMessages translates an OpenAI chat completions request into an
// Anthropic Messages request for the upstream model (model "" keeps the
// body's). System and developer messages become the system blocks; user
// and assistant content, images, tool calls and tool results become
// content blocks, consecutive messages of one role merged as Anthropic
// requires; tools, tool_choice, parallel_tool_calls, stop, temperature,
// top_p, stream and user are mapped. max_completion_tokens or max_tokens
// gives max_tokens, else defaultMaxTokens, else DefaultMaxTokens.
// Sampling hints Anthropic lacks (seed, penalties, reasoning_effort) and
// OpenAI-only bookkeeping (store, metadata, service_tier) are dropped; n
// > 1, logprobs, logit_bias, audio and a JSON response_format change the
// answer and get a *RequestError.
func ChatToMessages(body []byte, model string, defaultMaxTokens int) ([]byte, error) {
	m, err := fields(body)
	if err != nil {
		return nil, &RequestError{Message: err.Error()}
	}
	if err := refuseChatFeatures(m); err != nil {
		return nil, err
	}
	out := messagesRequest{Model: model}
	if out.Model == "" {
		if err := field(m, "model", &out.Model); err != nil {
			return nil, err
		}
	}
	var (
		msgs                []chatMessage
		maxTokens, maxCompl *int64
		stop                json.RawMessage
		tools               []chatTool
		choice              json.RawMessage
		parallel            *bool
		user                string
		stream              bool
	)
	for _, f := range []struct {
		name string
		v    any
	}{
		{"messages", &msgs}, {"max_tokens", &maxTokens}, {"max_completion_tokens", &maxCompl},
		{"temperature", &out.Temperature}, {"top_p", &out.TopP}, {"stop", &stop},
		{"tools", &tools}, {"tool_choice", &choice}, {"parallel_tool_calls", &parallel},
		{"user", &user}, {"stream", &stream},
	} {
		if err := field(m, f.name, f.v); err != nil {
			return nil, err
		}
	}
	out.Stream = stream
	switch {
	case maxCompl != nil:
		out.MaxTokens = *maxCompl
	case maxTokens != nil:
		out.MaxTokens = *maxTokens
	case defaultMaxTokens > 0:
		out.MaxTokens = int64(defaultMaxTokens)
	default:
		out.MaxTokens = DefaultMaxTokens
	}
	if user != "" {
		out.Metadata = &struct {
			UserID string `json:"user_id"`
		}{user}
	}
	if out.StopSequences, err = stopList(stop, "stop"); err != nil {
		return nil, err
	}
	if out.System, out.Messages, err = chatMessages(msgs); err != nil {
		return nil, err
	}
	if out.Tools, err = anthropicTools(tools); err != nil {
		return nil, err
	}
	if out.ToolChoice, err = anthropicChoice(choice, parallel); err != nil {
		return nil, err
	}
	if len(out.Tools) == 0 {
		// A tool_choice without tools means nothing, and Anthropic refuses it.
		out.ToolChoice = nil
	}
	return marshal(out)
}

// refuseChatFeatures rejects the OpenAI fields whose loss would change
// what the client gets back.
func refuseChatFeatures(m map[string]json.RawMessage) error {
	var n int64
	if err := field(m, "n", &n); err != nil {
		return err
	}
	if n > 1 {
		return requestErrorf("n", "n > 1 is not supported by this route's Anthropic target")
	}
	var logprobs bool
	if err := field(m, "logprobs", &logprobs); err != nil {
		return err
	}
	if logprobs {
		return requestErrorf("logprobs", "logprobs are not supported by this route's Anthropic target")
	}
	if raw, ok := m["top_logprobs"]; ok && !isNull(raw) {
		return requestErrorf("top_logprobs", "logprobs are not supported by this route's Anthropic target")
	}
	var bias map[string]json.RawMessage
	if err := field(m, "logit_bias", &bias); err != nil {
		return err
	}
	if len(bias) > 0 {
		return requestErrorf("logit_bias", "logit_bias is not supported by this route's Anthropic target")
	}
	var format struct {
		Type string `json:"type"`
	}
	if err := field(m, "response_format", &format); err != nil {
		return err
	}
	if format.Type != "" && format.Type != "text" {
		return requestErrorf("response_format", "response_format %q is not supported by this route's Anthropic target", format.Type)
	}
	var modalities []string
	if err := field(m, "modalities", &modalities); err != nil {
		return err
	}
	for _, mod := range modalities {
		if mod != "text" {
			return requestErrorf("modalities", "output modality %q is not supported by this route's Anthropic target", mod)
		}
	}
	for _, name := range []string{"audio", "functions", "function_call", "prediction", "web_search_options"} {
		if raw, ok := m[name]; ok && !isNull(raw) {
			if name == "functions" || name == "function_call" {
				return requestErrorf(name, "the legacy %s field is not supported by this route's Anthropic target; use tools", name)
			}
			return requestErrorf(name, "%s is not supported by this route's Anthropic target", name)
		}
	}
	return nil
}

// stopList reads a stop field: a string or an array of strings.
func stopList(raw json.RawMessage, param string) ([]string, error) {
	return stringOrArray(raw, param, "strings", func(s string) string { return s })
}

// chatBuilder appends Anthropic messages, merging consecutive messages of
// one role, since Anthropic wants user and assistant turns to alternate.
type chatBuilder struct {
	system []block
	msgs   []message
}

func (b *chatBuilder) add(role string, blocks ...block) {
	if len(blocks) == 0 {
		return
	}
	if n := len(b.msgs); n > 0 && b.msgs[n-1].Role == role {
		b.msgs[n-1].Content = append(b.msgs[n-1].Content, blocks...)
		return
	}
	b.msgs = append(b.msgs, message{Role: role, Content: blocks})
}

// chatMessages translates the messages of a chat request.
func chatMessages(msgs []chatMessage) ([]block, []message, error) {
	var b chatBuilder
	for i, msg := range msgs {
		param := fmt.Sprintf("messages[%d]", i)
		switch msg.Role {
		case "system", "developer":
			blocks, err := textBlocks(msg.Content, param+".content")
			if err != nil {
				return nil, nil, err
			}
			b.system = append(b.system, blocks...)
		case "user":
			blocks, err := userBlocks(msg.Content, param+".content")
			if err != nil {
				return nil, nil, err
			}
			b.add("user", blocks...)
		case "assistant":
			blocks, err := assistantBlocks(msg, param)
			if err != nil {
				return nil, nil, err
			}
			b.add("assistant", blocks...)
		case "tool":
			if msg.ToolCallID == "" {
				return nil, nil, requestErrorf(param+".tool_call_id", "a tool message needs the tool_call_id it answers")
			}
			res := block{Type: "tool_result", ToolUseID: toolID(msg.ToolCallID)}
			content, err := toolResultContent(msg.Content, param+".content")
			if err != nil {
				return nil, nil, err
			}
			res.Content = content
			b.add("user", res)
		case "function":
			return nil, nil, requestErrorf(param+".role", "the legacy function role is not supported by this route's Anthropic target; use tool")
		default:
			return nil, nil, requestErrorf(param+".role", "unknown role %q", msg.Role)
		}
	}
	if len(b.msgs) == 0 {
		return nil, nil, requestErrorf("messages", "needs at least one user or assistant message with content")
	}
	return b.system, b.msgs, nil
}

// contentParts reads a content field: a string (returned as one text
// part) or an array of parts; null or absent is no part.
func contentParts(raw json.RawMessage, param string) ([]chatPart, error) {
	return stringOrArray(raw, param, "content parts", func(s string) chatPart { return chatPart{Type: "text", Text: s} })
}

// stringOrArray reads a field that both dialects let be a string (one
// text element, made by text) or an array of elements; null or absent is
// none. what names the elements in the error.
func stringOrArray[T any](raw json.RawMessage, param, what string, text func(string) T) ([]T, error) {
	switch firstByte(raw) {
	case 0, 'n':
		if isNull(raw) {
			return nil, nil
		}
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, &RequestError{Param: param, Message: describe(err)}
		}
		return []T{text(s)}, nil
	case '[':
		var elems []T
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, &RequestError{Param: param, Message: describe(err)}
		}
		return elems, nil
	}
	return nil, requestErrorf(param, "must be a string or an array of %s", what)
}

// textBlocks reads a content that may hold only text (system, developer).
func textBlocks(raw json.RawMessage, param string) ([]block, error) {
	parts, err := contentParts(raw, param)
	if err != nil {
		return nil, err
	}
	var blocks []block
	for j, p := range parts {
		if p.Type != "text" {
			return nil, requestErrorf(fmt.Sprintf("%s[%d].type", param, j), "only text parts are allowed here, not %q", p.Type)
		}
		if p.Text != "" {
			blocks = append(blocks, block{Type: "text", Text: p.Text})
		}
	}
	return blocks, nil
}

// userBlocks reads a user message's content: text and images.
func userBlocks(raw json.RawMessage, param string) ([]block, error) {
	parts, err := contentParts(raw, param)
	if err != nil {
		return nil, err
	}
	var blocks []block
	for j, p := range parts {
		pp := fmt.Sprintf("%s[%d]", param, j)
		switch p.Type {
		case "text":
			if p.Text != "" {
				blocks = append(blocks, block{Type: "text", Text: p.Text})
			}
		case "image_url":
			if p.ImageURL == nil {
				return nil, requestErrorf(pp+".image_url", "an image_url part needs its image_url")
			}
			src, err := imageFromURL(p.ImageURL.URL, pp+".image_url.url")
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, block{Type: "image", Source: src})
		default:
			return nil, requestErrorf(pp+".type", "content part %q is not supported by this route's Anthropic target", p.Type)
		}
	}
	return blocks, nil
}

// imageFromURL turns an OpenAI image URL into an Anthropic image source:
// a base64 data: URL becomes a base64 source, an http(s) URL a url source.
func imageFromURL(u, param string) (*imageSource, error) {
	if rest, ok := strings.CutPrefix(u, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isBase64 || mediaType == "" {
			return nil, requestErrorf(param, "a data: URL must be of the form data:<media type>;base64,<data>")
		}
		return &imageSource{Type: "base64", MediaType: mediaType, Data: data}, nil
	}
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return &imageSource{Type: "url", URL: u}, nil
	}
	return nil, requestErrorf(param, "an image URL must be an http(s) or a base64 data: URL")
}

// assistantBlocks reads an assistant message: its text, then its tool calls.
func assistantBlocks(msg chatMessage, param string) ([]block, error) {
	parts, err := contentParts(msg.Content, param+".content")
	if err != nil {
		return nil, err
	}
	var blocks []block
	for j, p := range parts {
		text := p.Text
		switch p.Type {
		case "text":
		case "refusal":
			text = p.Refusal
		default:
			return nil, requestErrorf(fmt.Sprintf("%s.content[%d].type", param, j), "assistant content part %q is not supported by this route's Anthropic target", p.Type)
		}
		if text != "" {
			blocks = append(blocks, block{Type: "text", Text: text})
		}
	}
	for j, tc := range msg.ToolCalls {
		pp := fmt.Sprintf("%s.tool_calls[%d]", param, j)
		if tc.Type != "" && tc.Type != "function" {
			return nil, requestErrorf(pp+".type", "tool call type %q is not supported by this route's Anthropic target", tc.Type)
		}
		if tc.ID == "" || tc.Function.Name == "" {
			return nil, requestErrorf(pp, "a tool call needs an id and a function name")
		}
		input, ok := argumentsObject(tc.Function.Arguments)
		if !ok {
			return nil, requestErrorf(pp+".function.arguments", "must be a JSON object encoded as a string")
		}
		blocks = append(blocks, block{Type: "tool_use", ID: toolID(tc.ID), Name: tc.Function.Name, Input: input})
	}
	return blocks, nil
}

// argumentsObject parses a function's arguments string into the JSON
// object Anthropic wants as input; an empty string means no arguments.
func argumentsObject(args string) (json.RawMessage, bool) {
	if strings.TrimSpace(args) == "" {
		return json.RawMessage(`{}`), true
	}
	return compactObject([]byte(args))
}

// toolResultContent reads a tool message's content into a tool_result's:
// a string stays a string, text parts become text blocks.
func toolResultContent(raw json.RawMessage, param string) (json.RawMessage, error) {
	if firstByte(raw) == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, &RequestError{Param: param, Message: describe(err)}
		}
		if s == "" {
			return nil, nil
		}
		return jsonString(s), nil
	}
	blocks, err := textBlocks(raw, param)
	if err != nil || len(blocks) == 0 {
		return nil, err
	}
	return mustMarshal(blocks), nil
}

// anthropicTools translates function tools.
func anthropicTools(tools []chatTool) ([]anthropicTool, error) {
	var out []anthropicTool
	for i, t := range tools {
		param := fmt.Sprintf("tools[%d]", i)
		if t.Type != "function" {
			return nil, requestErrorf(param+".type", "tool type %q is not supported by this route's Anthropic target", t.Type)
		}
		if t.Function.Name == "" {
			return nil, requestErrorf(param+".function.name", "a function tool needs a name")
		}
		schema := emptySchema
		if !isNull(t.Function.Parameters) {
			s, ok := compactObject(t.Function.Parameters)
			if !ok {
				return nil, requestErrorf(param+".function.parameters", "must be a JSON Schema object")
			}
			schema = s
		}
		out = append(out, anthropicTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	return out, nil
}

// anthropicChoice translates tool_choice and parallel_tool_calls.
func anthropicChoice(raw json.RawMessage, parallel *bool) (*anthropicToolChoice, error) {
	var c *anthropicToolChoice
	switch firstByte(raw) {
	case 0, 'n':
		if !isNull(raw) {
			return nil, requestErrorf("tool_choice", "must be a string or an object")
		}
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, &RequestError{Param: "tool_choice", Message: describe(err)}
		}
		switch s {
		case "auto":
			c = &anthropicToolChoice{Type: "auto"}
		case "none":
			c = &anthropicToolChoice{Type: "none"}
		case "required":
			c = &anthropicToolChoice{Type: "any"}
		default:
			return nil, requestErrorf("tool_choice", "unknown tool_choice %q", s)
		}
	case '{':
		var o struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, &RequestError{Param: "tool_choice", Message: describe(err)}
		}
		if o.Type != "function" || o.Function.Name == "" {
			return nil, requestErrorf("tool_choice", "only {\"type\":\"function\",\"function\":{\"name\":...}} is supported by this route's Anthropic target")
		}
		c = &anthropicToolChoice{Type: "tool", Name: o.Function.Name}
	default:
		return nil, requestErrorf("tool_choice", "must be a string or an object")
	}
	if parallel != nil && !*parallel {
		if c == nil {
			c = &anthropicToolChoice{Type: "auto"}
		}
		// Anthropic has no parallel flag on "none": nothing to disable.
		if c.Type != "none" {
			c.DisableParallelToolUse = true
		}
	}
	return c, nil
}

// IncludeUsage reports whether an OpenAI chat request asked for the usage
// chunk of a stream (stream_options.include_usage), which
// NewMessagesToChatStream needs to know.
func IncludeUsage(body []byte) bool {
	m, err := fields(body)
	if err != nil {
		return false
	}
	var opts struct {
		IncludeUsage bool `json:"include_usage"`
	}
	if field(m, "stream_options", &opts) != nil {
		return false
	}
	return opts.IncludeUsage
}
