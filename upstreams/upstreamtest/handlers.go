package upstreamtest

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBodyBytes bounds a request body; the gateway's own limit is far lower.
const maxBodyBytes = 64 << 20

// requestFields are the only body fields the fake reads.
type requestFields struct {
	Model    string          `json:"model"`
	Stream   bool            `json:"stream"`
	Input    json.RawMessage `json:"input"`
	Messages json.RawMessage `json:"messages"`
}

// call is one completion-like call being answered.
type call struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	b       Behavior
	model   string
	n       int64 // per-server sequence number, for unique ids
	created int64
	input   json.RawMessage
}

// ServeHTTP answers the OpenAI-compatible endpoints under /v1.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		panic(http.ErrAbortHandler)
	}
	defer s.handlers.Done()

	if isAnthropicPath(r.URL.Path) {
		s.serveAnthropic(w, r)
		return
	}
	if r.URL.Path == "/v1/models" && r.Method == http.MethodGet {
		s.serveModels(w)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		writeError(w, http.StatusNotFound, fmt.Sprintf("fake upstream has no endpoint %q", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("fake upstream answers only POST on %q", r.URL.Path))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("cannot read request body: %s", err))
		return
	}
	var f requestFields
	parseErr := json.Unmarshal(body, &f)
	// Count at arrival, before any scripted delay, so that a test sees the
	// call even when the gateway gives up on it.
	s.record(r, body, f)
	c := &call{
		s:       s,
		w:       w,
		r:       r,
		model:   f.Model,
		n:       s.seq.Add(1),
		created: time.Now().Unix(),
		input:   f.Input,
	}
	if parseErr != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("cannot parse request body: %s", parseErr))
		return
	}
	c.b = s.behaviorFor(f.Model)
	if c.b.Continue {
		content, err := continuation(c.b, f.Messages)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		c.b.Content = content
	}
	if c.b.RetryAfter != "" {
		w.Header().Set("Retry-After", c.b.RetryAfter)
	}
	if c.b.RetryAfterMs != "" {
		w.Header().Set("retry-after-ms", c.b.RetryAfterMs)
	}

	var answer func(stream bool)
	switch r.URL.Path {
	case "/v1/chat/completions":
		answer = c.chat
	case "/v1/completions":
		answer = c.completion
	case "/v1/embeddings":
		answer = c.embeddings
	case "/v1/responses":
		answer = c.response
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("fake upstream has no endpoint %q", r.URL.Path))
		return
	}

	if !s.wait(r, c.b.FirstByteDelay) {
		panic(http.ErrAbortHandler)
	}
	if c.b.Hang {
		s.hang(r)
		panic(http.ErrAbortHandler)
	}
	if st := c.b.status(); st < 200 || st > 299 {
		msg := fmt.Sprintf("fake upstream scripted status %d for model %q (call %d)", st, c.model, c.n)
		if c.b.EchoAuthorization {
			msg += fmt.Sprintf(" with Authorization %q", r.Header.Get("Authorization"))
		}
		writeError(w, st, msg)
		return
	}
	answer(f.Stream)
}

// chat answers POST /v1/chat/completions.
func (c *call) chat(stream bool) {
	if c.b.ToolName != "" {
		c.chatTool(stream)
		return
	}
	if stream {
		c.stream(chatChunks{})
		return
	}
	content := ContentFor(c.b, c.model)
	buf := make([]byte, 0, 320+len(content)+len(c.model))
	buf = append(buf, `{"id":"chatcmpl-fake-`...)
	buf = strconv.AppendInt(buf, c.n, 10)
	buf = append(buf, `","object":"chat.completion","created":`...)
	buf = strconv.AppendInt(buf, c.created, 10)
	buf = append(buf, `,"model":`...)
	buf = appendJSONString(buf, c.model)
	buf = append(buf, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	buf = appendJSONString(buf, content)
	buf = append(buf, `},"finish_reason":"stop"}],"usage":`...)
	buf = appendUsage(buf, c.b.promptTokens(), c.b.nonStreamCompletionTokens(content))
	buf = append(buf, '}')
	c.writeJSON(buf)
}

// completion answers POST /v1/completions (the legacy text_completion shape).
func (c *call) completion(stream bool) {
	if stream {
		c.stream(textChunks{})
		return
	}
	content := ContentFor(c.b, c.model)
	buf := make([]byte, 0, 320+len(content)+len(c.model))
	buf = append(buf, `{"id":"cmpl-fake-`...)
	buf = strconv.AppendInt(buf, c.n, 10)
	buf = append(buf, `","object":"text_completion","created":`...)
	buf = strconv.AppendInt(buf, c.created, 10)
	buf = append(buf, `,"model":`...)
	buf = appendJSONString(buf, c.model)
	buf = append(buf, `,"choices":[{"text":`...)
	buf = appendJSONString(buf, content)
	buf = append(buf, `,"index":0,"logprobs":null,"finish_reason":"stop"}],"usage":`...)
	buf = appendUsage(buf, c.b.promptTokens(), c.b.nonStreamCompletionTokens(content))
	buf = append(buf, '}')
	c.writeJSON(buf)
}

// EmbeddingDims is the length of the vectors the fake returns.
const EmbeddingDims = 8

// embeddingResponse is the /v1/embeddings answer. ID is not part of
// OpenAI's shape; it keeps two calls' bodies distinct, like the other endpoints.
type embeddingResponse struct {
	ID     string          `json:"id"`
	Object string          `json:"object"`
	Data   []embeddingData `json:"data"`
	Model  string          `json:"model"`
	Usage  struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

type embeddingData struct {
	Object    string    `json:"object"`
	Index     int       `json:"index"`
	Embedding []float64 `json:"embedding"`
}

// embeddings answers POST /v1/embeddings with one deterministic vector per input.
func (c *call) embeddings(stream bool) {
	if stream {
		writeError(c.w, http.StatusBadRequest, "fake upstream cannot stream embeddings")
		return
	}
	inputs, err := splitInputs(c.input)
	if err != nil {
		writeError(c.w, http.StatusBadRequest, err.Error())
		return
	}
	resp := embeddingResponse{
		ID:     "emb-fake-" + strconv.FormatInt(c.n, 10),
		Object: "list",
		Data:   make([]embeddingData, len(inputs)),
		Model:  c.model,
	}
	for i, in := range inputs {
		resp.Data[i] = embeddingData{Object: "embedding", Index: i, Embedding: EmbeddingFor(in)}
	}
	resp.Usage.PromptTokens = c.b.promptTokens()
	resp.Usage.TotalTokens = resp.Usage.PromptTokens
	buf, err := json.Marshal(resp)
	if err != nil {
		panic(fmt.Sprintf("BUG: cannot marshal embeddings: %s", err))
	}
	c.writeJSON(buf)
}

// EmbeddingFor returns the vector the fake answers for one input, given as
// its raw JSON (e.g. `"hello"` with the quotes, or `[1,2,3]` for tokens).
func EmbeddingFor(rawInput []byte) []float64 {
	sum := sha256.Sum256(rawInput)
	v := make([]float64, EmbeddingDims)
	for i := range v {
		v[i] = float64(sum[i]) / 255
	}
	return v
}

// splitInputs splits the "input" of an embeddings request into its inputs:
// a string, an array of strings, an array of tokens, or an array of token arrays.
func splitInputs(raw json.RawMessage) ([]json.RawMessage, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return nil, fmt.Errorf("missing input")
	}
	if s[0] != '[' {
		return []json.RawMessage{json.RawMessage(s)}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("cannot parse input: %w", err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("empty input")
	}
	if first := strings.TrimSpace(string(items[0])); first != "" && first[0] != '"' && first[0] != '[' {
		// An array of token ids is a single input.
		return []json.RawMessage{json.RawMessage(s)}, nil
	}
	return items, nil
}

// response answers POST /v1/responses with a minimal completed response.
func (c *call) response(stream bool) {
	if stream {
		writeError(c.w, http.StatusBadRequest, "fake upstream cannot stream responses")
		return
	}
	content := ContentFor(c.b, c.model)
	prompt := c.b.promptTokens()
	completion := c.b.nonStreamCompletionTokens(content)
	buf := make([]byte, 0, 400+len(content)+len(c.model))
	buf = append(buf, `{"id":"resp_fake_`...)
	buf = strconv.AppendInt(buf, c.n, 10)
	buf = append(buf, `","object":"response","created_at":`...)
	buf = strconv.AppendInt(buf, c.created, 10)
	buf = append(buf, `,"status":"completed","model":`...)
	buf = appendJSONString(buf, c.model)
	buf = append(buf, `,"output":[{"type":"message","id":"msg_fake_`...)
	buf = strconv.AppendInt(buf, c.n, 10)
	buf = append(buf, `","status":"completed","role":"assistant","content":[{"type":"output_text","text":`...)
	buf = appendJSONString(buf, content)
	buf = append(buf, `,"annotations":[]}]}],"usage":{"input_tokens":`...)
	buf = strconv.AppendInt(buf, int64(prompt), 10)
	buf = append(buf, `,"output_tokens":`...)
	buf = strconv.AppendInt(buf, int64(completion), 10)
	buf = append(buf, `,"total_tokens":`...)
	buf = strconv.AppendInt(buf, int64(prompt+completion), 10)
	buf = append(buf, "}}"...)
	c.writeJSON(buf)
}

// writeJSON sends a non-stream 2xx answer, or half of it and a dropped
// connection when the behavior says DropAfter.
func (c *call) writeJSON(body []byte) {
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.w.WriteHeader(c.b.status())
	if c.b.DropAfter > 0 {
		_, _ = c.w.Write(body[:len(body)/2])
		c.w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	// A write error means the client went away; there is no one left to tell.
	_, _ = c.w.Write(body)
}

type modelList struct {
	Object string      `json:"object"`
	Data   []modelInfo `json:"data"`
}

type modelInfo struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// serveModels answers GET /v1/models with the configured and seen models.
func (s *Server) serveModels(w http.ResponseWriter) {
	names := s.models()
	list := modelList{Object: "list", Data: make([]modelInfo, len(names))}
	for i, name := range names {
		list.Data[i] = modelInfo{ID: name, Object: "model", OwnedBy: "upstreamtest"}
	}
	buf, err := json.Marshal(list)
	if err != nil {
		panic(fmt.Sprintf("BUG: cannot marshal models: %s", err))
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf)
}

// writeError answers status with an OpenAI error JSON.
func writeError(w http.ResponseWriter, status int, message string) {
	typ, code := errorKind(status)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(appendError(nil, message, typ, code))
}

// errorKind returns the OpenAI error type and code for a status.
func errorKind(status int) (typ, code string) {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error", "invalid_api_key"
	case status == http.StatusForbidden:
		return "permission_error", "permission_denied"
	case status == http.StatusNotFound:
		return "invalid_request_error", "not_found"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error", "rate_limit_exceeded"
	case status >= 500:
		return "server_error", "server_error"
	default:
		return "invalid_request_error", "invalid_request"
	}
}
