package upstreamtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Anthropic Messages API of the fake: POST /v1/messages (JSON and
// SSE) and POST /v1/messages/count_tokens, scripted by the same Behavior
// as the OpenAI endpoints and counted by the same counters. Requests
// must carry x-api-key and anthropic-version, as Anthropic's do, and
// errors come in Anthropic's shape, so that a gateway speaking the wrong
// dialect to it fails loudly.

// Anthropic paths of the fake.
const (
	anthropicMessagesPath    = "/v1/messages"
	anthropicCountTokensPath = "/v1/messages/count_tokens"
)

func isAnthropicPath(path string) bool {
	return path == anthropicMessagesPath || path == anthropicCountTokensPath
}

// AnthropicURL returns the base URL to configure as a kind: anthropic
// provider's base_url, e.g. "http://127.0.0.1:PORT": the gateway calls
// {base_url}/v1/messages.
func (s *Server) AnthropicURL() string {
	return "http://" + s.Addr()
}

// anthropicFields are the only body fields the Anthropic fake reads.
type anthropicFields struct {
	Model     string          `json:"model"`
	Stream    bool            `json:"stream"`
	MaxTokens *int            `json:"max_tokens"`
	Messages  json.RawMessage `json:"messages"`
}

// serveAnthropic answers the Anthropic endpoints.
func (s *Server) serveAnthropic(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeAnthropicError(w, http.StatusMethodNotAllowed, fmt.Sprintf("fake upstream answers only POST on %q", r.URL.Path))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		status := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status = http.StatusRequestEntityTooLarge
		}
		writeAnthropicError(w, status, fmt.Sprintf("cannot read request body: %s", err))
		return
	}
	var f anthropicFields
	parseErr := json.Unmarshal(body, &f)
	// Counted at arrival, like the OpenAI calls, whatever follows.
	s.record(r, body, requestFields{Model: f.Model, Stream: f.Stream})
	c := &call{s: s, w: w, r: r, model: f.Model, n: s.seq.Add(1), created: time.Now().Unix()}
	w.Header().Set("request-id", "req_fake_"+strconv.FormatInt(c.n, 10))
	switch {
	case r.Header.Get("x-api-key") == "":
		writeAnthropicError(w, http.StatusUnauthorized, "x-api-key header is required")
		return
	case r.Header.Get("anthropic-version") == "":
		writeAnthropicError(w, http.StatusBadRequest, "anthropic-version: header is required")
		return
	case parseErr != nil:
		writeAnthropicError(w, http.StatusBadRequest, fmt.Sprintf("cannot parse request body: %s", parseErr))
		return
	}
	if msg := f.invalid(r.URL.Path); msg != "" {
		writeAnthropicError(w, http.StatusBadRequest, msg)
		return
	}
	c.b = s.behaviorFor(f.Model)
	if c.b.Continue {
		content, err := continuation(c.b, f.Messages)
		if err != nil {
			writeAnthropicError(w, http.StatusBadRequest, err.Error())
			return
		}
		c.b.Content = content
	}
	if !s.wait(r, c.b.FirstByteDelay) {
		panic(http.ErrAbortHandler)
	}
	if c.b.Hang {
		s.hang(r)
		panic(http.ErrAbortHandler)
	}
	if st := c.b.status(); st < 200 || st > 299 {
		writeAnthropicError(w, st, fmt.Sprintf("fake upstream scripted status %d for model %q (call %d)", st, c.model, c.n))
		return
	}
	switch {
	case r.URL.Path == anthropicCountTokensPath:
		c.writeJSON([]byte(`{"input_tokens":` + strconv.Itoa(c.b.promptTokens()) + `}`))
	case f.Stream:
		c.anthropicStream()
	default:
		c.anthropicMessage()
	}
}

// invalid checks what Anthropic itself requires of a request, returning
// its complaint or "".
func (f anthropicFields) invalid(path string) string {
	if f.Model == "" {
		return "model: Field required"
	}
	if m := strings.TrimSpace(string(f.Messages)); m == "" || m == "null" {
		return "messages: Field required"
	} else if m[0] != '[' || m == "[]" {
		return "messages: at least one message is required"
	}
	if path == anthropicMessagesPath && (f.MaxTokens == nil || *f.MaxTokens < 1) {
		return "max_tokens: Field required"
	}
	return ""
}

// anthropicMessage answers a non-stream Message: the scripted text, or a
// tool_use block when the behavior names a tool.
func (c *call) anthropicMessage() {
	b := c.b
	buf := make([]byte, 0, 400+len(b.Content)+len(b.ToolInput)+len(c.model))
	buf = append(buf, `{"id":"msg_fake_`...)
	buf = strconv.AppendInt(buf, c.n, 10)
	buf = append(buf, `","type":"message","role":"assistant","model":`...)
	buf = appendJSONString(buf, c.model)
	var stop string
	var completion int
	if b.ToolName != "" {
		buf = append(buf, `,"content":[{"type":"tool_use","id":"`...)
		buf = append(buf, ToolCallID(true, c.n)...)
		buf = append(buf, `","name":`...)
		buf = appendJSONString(buf, b.ToolName)
		buf = append(buf, `,"input":`...)
		buf = append(buf, b.toolInput()...)
		buf = append(buf, `}]`...)
		stop, completion = "tool_use", b.toolCompletionTokens()
	} else {
		content := ContentFor(b, c.model)
		buf = append(buf, `,"content":[{"type":"text","text":`...)
		buf = appendJSONString(buf, content)
		buf = append(buf, `}]`...)
		stop, completion = "end_turn", b.nonStreamCompletionTokens(content)
	}
	buf = append(buf, `,"stop_reason":"`...)
	buf = append(buf, stop...)
	buf = append(buf, `","stop_sequence":null,"usage":`...)
	buf = appendAnthropicUsage(buf, b.promptTokens(), completion)
	buf = append(buf, '}')
	c.writeJSON(buf)
}

// anthropicStream answers with Anthropic's event sequence: message_start,
// content_block_start, ping, one delta per chunk (text_delta, or
// input_json_delta for a tool), content_block_stop, message_delta with
// stop_reason and usage, message_stop. DropAfter aborts the connection
// after that many deltas, Interval paces them, as on the OpenAI side.
func (c *call) anthropicStream() {
	b := c.b
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	c.w.WriteHeader(b.status())
	flusher := c.w.(http.Flusher)

	buf := make([]byte, 0, 1024)
	buf = append(buf, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_fake_"...)
	buf = strconv.AppendInt(buf, c.n, 10)
	buf = append(buf, `","type":"message","role":"assistant","model":`...)
	buf = appendJSONString(buf, c.model)
	buf = append(buf, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":`...)
	buf = appendAnthropicUsage(buf, b.promptTokens(), 1)
	buf = append(buf, "}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"...)
	pieces, deltaType, deltaField := streamPieces(b), "text_delta", "text"
	stop, completion := "end_turn", b.streamCompletionTokens()
	if b.ToolName != "" {
		buf = append(buf, `{"type":"tool_use","id":"`...)
		buf = append(buf, ToolCallID(true, c.n)...)
		buf = append(buf, `","name":`...)
		buf = appendJSONString(buf, b.ToolName)
		buf = append(buf, `,"input":{}}`...)
		pieces, deltaType, deltaField = toolPieces(b), "input_json_delta", "partial_json"
		stop, completion = "tool_use", b.toolCompletionTokens()
	} else {
		buf = append(buf, `{"type":"text","text":""}`...)
	}
	buf = append(buf, "}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n"...)

	drop := b.dropPoint()
	for i, piece := range pieces {
		if i > 0 && !c.s.wait(c.r, b.Interval) {
			panic(http.ErrAbortHandler)
		}
		buf = append(buf, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\""...)
		buf = append(buf, deltaType...)
		buf = append(buf, `","`...)
		buf = append(buf, deltaField...)
		buf = append(buf, `":`...)
		buf = appendJSONString(buf, piece)
		buf = append(buf, "}}\n\n"...)
		if _, err := c.w.Write(buf); err != nil {
			panic(http.ErrAbortHandler)
		}
		flusher.Flush()
		if i+1 == drop {
			panic(http.ErrAbortHandler)
		}
		buf = buf[:0]
	}
	buf = append(buf, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"...)
	buf = append(buf, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\""...)
	buf = append(buf, stop...)
	buf = append(buf, `","stop_sequence":null},"usage":`...)
	buf = appendAnthropicUsage(buf, b.promptTokens(), completion)
	buf = append(buf, "}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...)
	if _, err := c.w.Write(buf); err != nil {
		panic(http.ErrAbortHandler)
	}
	flusher.Flush()
}

// appendAnthropicUsage appends Anthropic's usage object.
func appendAnthropicUsage(buf []byte, input, output int) []byte {
	buf = append(buf, `{"input_tokens":`...)
	buf = strconv.AppendInt(buf, int64(input), 10)
	buf = append(buf, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":`...)
	buf = strconv.AppendInt(buf, int64(output), 10)
	return append(buf, '}')
}

// writeAnthropicError answers status with Anthropic's error JSON,
// {"type":"error","error":{"type","message"}}.
func writeAnthropicError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	buf := append([]byte(nil), `{"type":"error","error":{"type":`...)
	buf = appendJSONString(buf, anthropicErrorType(status))
	buf = append(buf, `,"message":`...)
	buf = appendJSONString(buf, message)
	_, _ = w.Write(append(buf, "}}"...))
}

// anthropicErrorType maps a status to Anthropic's error type
// (https://docs.claude.com/en/api/errors).
func anthropicErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}
