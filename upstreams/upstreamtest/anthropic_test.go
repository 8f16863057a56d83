package upstreamtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// anthropicHeaders are what an Anthropic SDK sends.
var anthropicHeaders = []string{"x-api-key", "sk-ant-test", "anthropic-version", "2023-06-01"}

func anthropicBody(model string, stream bool) string {
	return `{"model":"` + model + `","max_tokens":64,"stream":` + strconv.FormatBool(stream) + `,"messages":[{"role":"user","content":"Hello"}]}`
}

type anthropicMessage struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Role    string `json:"role"`
	Model   string `json:"model"`
	Content []struct {
		Type  string          `json:"type"`
		Text  string          `json:"text"`
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	} `json:"content"`
	StopReason   string  `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
	Usage        struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

func TestAnthropicMessage(t *testing.T) {
	s := startServer(t)
	if want := "http://" + s.Addr(); s.AnthropicURL() != want {
		t.Fatalf("want AnthropicURL %s, got %s", want, s.AnthropicURL())
	}
	resp, err := doPost(nil, s.AnthropicURL()+"/v1/messages", anthropicBody("claude-test", false), anthropicHeaders...)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var m anthropicMessage
	if err := json.Unmarshal(data, &m); err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("unexpected answer %d %s (%v)", resp.StatusCode, data, err)
	}
	want := ContentFor(Behavior{}, "claude-test")
	if !strings.HasPrefix(m.ID, "msg_fake_") || m.Type != "message" || m.Role != "assistant" || m.Model != "claude-test" ||
		len(m.Content) != 1 || m.Content[0].Type != "text" || m.Content[0].Text != want || m.StopReason != "end_turn" || m.StopSequence != nil ||
		m.Usage.InputTokens != DefaultPromptTokens || m.Usage.OutputTokens != len(strings.Fields(want)) {
		t.Fatalf("unexpected message %s", data)
	}
	if !strings.HasPrefix(resp.Header.Get("request-id"), "req_fake_") {
		t.Fatalf("want a request-id header, got %q", resp.Header.Get("request-id"))
	}
	_, data2 := post(t, nil, s.AnthropicURL()+"/v1/messages", anthropicBody("claude-test", false), anthropicHeaders...)
	if bytes.Equal(data, data2) {
		t.Fatalf("two calls produced the same body %s", data)
	}
	reqs := s.Requests()
	if s.Calls() != 2 || s.CallsForModel("claude-test") != 2 || len(reqs) != 2 || reqs[0].Path != "/v1/messages" ||
		reqs[0].Header.Get("x-api-key") != "sk-ant-test" || reqs[0].Header.Get("anthropic-version") != "2023-06-01" {
		t.Fatalf("unexpected counters %d or requests %+v", s.Calls(), reqs)
	}
}

func TestAnthropicToolUse(t *testing.T) {
	s := startServer(t)
	s.SetBehavior("claude-tool", Behavior{ToolName: "get_weather", ToolInput: `{"location":"Paris"}`, PromptTokens: 30, CompletionTokens: 7})
	status, data := post(t, nil, s.AnthropicURL()+"/v1/messages", anthropicBody("claude-tool", false), anthropicHeaders...)
	var m anthropicMessage
	if err := json.Unmarshal(data, &m); err != nil || status != 200 {
		t.Fatalf("unexpected answer %d %s (%v)", status, data, err)
	}
	if len(m.Content) != 1 || m.Content[0].Type != "tool_use" || !strings.HasPrefix(m.Content[0].ID, "toolu_fake_") ||
		m.Content[0].Name != "get_weather" || string(m.Content[0].Input) != `{"location":"Paris"}` || m.StopReason != "tool_use" ||
		m.Usage.InputTokens != 30 || m.Usage.OutputTokens != 7 {
		t.Fatalf("unexpected tool answer %s", data)
	}
	n, _ := strconv.ParseInt(strings.TrimPrefix(m.ID, "msg_fake_"), 10, 64)
	if m.Content[0].ID != ToolCallID(true, n) {
		t.Fatalf("want tool id %s, got %s", ToolCallID(true, n), m.Content[0].ID)
	}
}

func TestAnthropicRefusals(t *testing.T) {
	s := startServer(t)
	f := func(body string, headers []string, wantStatus int, wantType, wantMessage string) {
		t.Helper()
		s.ResetCounters()
		status, data := post(t, nil, s.AnthropicURL()+"/v1/messages", body, headers...)
		var e struct {
			Type  string `json:"type"`
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(data, &e); err != nil || status != wantStatus || e.Type != "error" || e.Error.Type != wantType || !strings.Contains(e.Error.Message, wantMessage) {
			t.Fatalf("%s: want %d %s %q, got %d %s", body, wantStatus, wantType, wantMessage, status, data)
		}
		if s.Calls() != 1 {
			t.Fatalf("a refused call is still counted at arrival, got %d", s.Calls())
		}
	}
	ok := anthropicBody("m", false)
	f(ok, []string{"anthropic-version", "2023-06-01"}, 401, "authentication_error", "x-api-key")
	f(ok, []string{"Authorization", "Bearer sk", "anthropic-version", "2023-06-01"}, 401, "authentication_error", "x-api-key")
	f(ok, []string{"x-api-key", "k"}, 400, "invalid_request_error", "anthropic-version")
	f(`{"model":`, anthropicHeaders, 400, "invalid_request_error", "cannot parse")
	f(`{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, anthropicHeaders, 400, "invalid_request_error", "model")
	f(`{"model":"m","messages":[{"role":"user","content":"x"}]}`, anthropicHeaders, 400, "invalid_request_error", "max_tokens")
	f(`{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, anthropicHeaders, 400, "invalid_request_error", "max_tokens")
	f(`{"model":"m","max_tokens":5}`, anthropicHeaders, 400, "invalid_request_error", "messages")
	f(`{"model":"m","max_tokens":5,"messages":[]}`, anthropicHeaders, 400, "invalid_request_error", "messages")
	for status, typ := range map[int]string{400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
		404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 503: "api_error", 529: "overloaded_error"} {
		s.SetBehavior("m", Behavior{Status: status})
		f(anthropicBody("m", true), anthropicHeaders, status, typ, "scripted status")
	}

	// GET is not a call; the OpenAI endpoints keep OpenAI's error shape.
	s.ResetCounters()
	req, _ := http.NewRequest(http.MethodGet, s.AnthropicURL()+"/v1/messages", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 405 || !bytes.HasPrefix(data, []byte(`{"type":"error"`)) || s.Calls() != 0 {
		t.Fatalf("GET: want a 405 in Anthropic's shape and no call, got %d %s (%d calls)", resp.StatusCode, data, s.Calls())
	}
	s.SetBehavior("m", Behavior{Status: 429})
	_, data = post(t, nil, s.URL+"/chat/completions", `{"model":"m"}`)
	if !bytes.HasPrefix(data, []byte(`{"error":{"message":`)) {
		t.Fatalf("the OpenAI endpoints must keep OpenAI's errors, got %s", data)
	}
}

func TestAnthropicCountTokens(t *testing.T) {
	s := startServer(t)
	s.SetBehavior("m", Behavior{PromptTokens: 42})
	body := `{"model":"m","messages":[{"role":"user","content":"Hello, world"}]}`
	status, data := post(t, nil, s.AnthropicURL()+"/v1/messages/count_tokens", body, anthropicHeaders...)
	if status != 200 || string(data) != `{"input_tokens":42}` || s.CallsForModel("m") != 1 {
		t.Fatalf("unexpected count_tokens answer %d %s", status, data)
	}
}

// anthropicEvent is one event of an Anthropic stream as a client reads it.
type anthropicEvent struct {
	name string
	data map[string]any
}

// readAnthropicEvents parses an SSE body, checking that each event's line
// names the type its data repeats.
func readAnthropicEvents(t *testing.T, body []byte) []anthropicEvent {
	t.Helper()
	var out []anthropicEvent
	for _, raw := range strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n") {
		if raw == "" {
			continue
		}
		name, data, ok := strings.Cut(raw, "\n")
		name, ok1 := strings.CutPrefix(name, "event: ")
		data, ok2 := strings.CutPrefix(data, "data: ")
		var v map[string]any
		if !ok || !ok1 || !ok2 || json.Unmarshal([]byte(data), &v) != nil || v["type"] != name {
			t.Fatalf("malformed event %q", raw)
		}
		out = append(out, anthropicEvent{name, v})
	}
	return out
}

func eventNames(evs []anthropicEvent) string {
	names := make([]string, len(evs))
	for i, ev := range evs {
		names[i] = ev.name
	}
	return strings.Join(names, ",")
}

func TestAnthropicStream(t *testing.T) {
	s := startServer(t)
	b := Behavior{Chunks: 3, Content: "Hello wide world", PromptTokens: 12, CompletionTokens: 9}
	s.SetBehavior("m", b)
	resp, err := doPost(nil, s.AnthropicURL()+"/v1/messages", anthropicBody("m", true), anthropicHeaders...)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("unexpected stream %d (%v): %s", resp.StatusCode, err, data)
	}
	evs := readAnthropicEvents(t, data)
	want := "message_start,content_block_start,ping,content_block_delta,content_block_delta,content_block_delta,content_block_stop,message_delta,message_stop"
	if got := eventNames(evs); got != want {
		t.Fatalf("want events %s, got %s", want, got)
	}
	msg := evs[0].data["message"].(map[string]any)
	if !strings.HasPrefix(msg["id"].(string), "msg_fake_") || msg["model"] != "m" || msg["usage"].(map[string]any)["input_tokens"] != float64(12) {
		t.Fatalf("unexpected message_start %v", evs[0].data)
	}
	if cb := evs[1].data["content_block"].(map[string]any); cb["type"] != "text" || cb["text"] != "" {
		t.Fatalf("unexpected content_block_start %v", evs[1].data)
	}
	var text strings.Builder
	for _, ev := range evs[3:6] {
		d := ev.data["delta"].(map[string]any)
		if d["type"] != "text_delta" || ev.data["index"] != float64(0) {
			t.Fatalf("unexpected delta %v", ev.data)
		}
		text.WriteString(d["text"].(string))
	}
	if text.String() != StreamText(b) {
		t.Fatalf("want text %q, got %q", StreamText(b), text.String())
	}
	md := evs[7].data
	if md["delta"].(map[string]any)["stop_reason"] != "end_turn" || md["usage"].(map[string]any)["output_tokens"] != float64(9) {
		t.Fatalf("unexpected message_delta %v", md)
	}
}

func TestAnthropicStreamToolUse(t *testing.T) {
	s := startServer(t)
	input := `{"location":"San Francisco, CA"}`
	s.SetBehavior("m", Behavior{Chunks: 4, ToolName: "get_weather", ToolInput: input})
	_, data := post(t, nil, s.AnthropicURL()+"/v1/messages", anthropicBody("m", true), anthropicHeaders...)
	evs := readAnthropicEvents(t, data)
	cb := evs[1].data["content_block"].(map[string]any)
	if cb["type"] != "tool_use" || cb["name"] != "get_weather" || !strings.HasPrefix(cb["id"].(string), "toolu_fake_") || len(cb["input"].(map[string]any)) != 0 {
		t.Fatalf("unexpected tool block start %v", evs[1].data)
	}
	var args strings.Builder
	for _, ev := range evs[3:7] {
		d := ev.data["delta"].(map[string]any)
		if d["type"] != "input_json_delta" {
			t.Fatalf("unexpected delta %v", ev.data)
		}
		args.WriteString(d["partial_json"].(string))
	}
	if args.String() != input || evs[8].data["delta"].(map[string]any)["stop_reason"] != "tool_use" {
		t.Fatalf("want input %s and stop_reason tool_use, got %s and %v", input, args.String(), evs[8].data)
	}
}

func TestAnthropicStreamCut(t *testing.T) {
	s := startServer(t)
	s.SetBehavior("m", Behavior{Chunks: 5, DropAfter: 2})
	resp, err := doPost(nil, s.AnthropicURL()+"/v1/messages", anthropicBody("m", true), anthropicHeaders...)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("want a broken stream, got a complete one: %s", data)
	}
	if got := eventNames(readAnthropicEvents(t, data)); got != "message_start,content_block_start,ping,content_block_delta,content_block_delta" {
		t.Fatalf("want two deltas before the cut, got %s", got)
	}
	// A non-stream answer is cut after half its body.
	resp, err = doPost(nil, s.AnthropicURL()+"/v1/messages", anthropicBody("m", false), anthropicHeaders...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("want a cut non-stream answer")
	}
}

func TestAnthropicDelayAndHang(t *testing.T) {
	s := startServer(t)
	const delay = 100 * time.Millisecond
	s.SetBehavior("slow", Behavior{FirstByteDelay: delay})
	start := time.Now()
	status, _ := post(t, nil, s.AnthropicURL()+"/v1/messages", anthropicBody("slow", false), anthropicHeaders...)
	// A lower bound only: a timer never fires early, so this cannot flake.
	if elapsed := time.Since(start); status != 200 || elapsed < delay {
		t.Fatalf("want 200 after at least %s, got %d after %s", delay, status, elapsed)
	}
	// "hang" is a model-name convention, as on the OpenAI side.
	client := &http.Client{Timeout: 100 * time.Millisecond}
	if _, err := doPost(client, s.AnthropicURL()+"/v1/messages", anthropicBody("hang", true), anthropicHeaders...); err == nil {
		t.Fatalf("want a timeout from a hung upstream")
	}
	if s.CallsForModel("hang") != 1 {
		t.Fatalf("the hung call must be counted at arrival")
	}
}

func TestChatToolCall(t *testing.T) {
	s := startServer(t)
	input := `{"location":"Paris"}`
	s.SetBehavior("m", Behavior{Chunks: 3, ToolName: "get_weather", ToolInput: input, PromptTokens: 5, CompletionTokens: 4})
	_, data := post(t, nil, s.URL+"/chat/completions", `{"model":"m"}`)
	var got struct {
		ID      string `json:"id"`
		Choices []struct {
			Message struct {
				Content   *string `json:"content"`
				ToolCalls []struct {
					ID       string `json:"id"`
					Type     string `json:"type"`
					Function struct {
						Name      string `json:"name"`
						Arguments string `json:"arguments"`
					} `json:"function"`
				} `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage usage `json:"usage"`
	}
	if err := json.Unmarshal(data, &got); err != nil || len(got.Choices) != 1 {
		t.Fatalf("cannot parse %s: %v", data, err)
	}
	n, _ := strconv.ParseInt(strings.TrimPrefix(got.ID, "chatcmpl-fake-"), 10, 64)
	m := got.Choices[0].Message
	if m.Content != nil || len(m.ToolCalls) != 1 || m.ToolCalls[0].ID != ToolCallID(false, n) || m.ToolCalls[0].Type != "function" ||
		m.ToolCalls[0].Function.Name != "get_weather" || m.ToolCalls[0].Function.Arguments != input ||
		got.Choices[0].FinishReason != "tool_calls" || got.Usage != (usage{5, 4, 9}) {
		t.Fatalf("unexpected tool call answer %s", data)
	}

	_, data = post(t, nil, s.URL+"/chat/completions", `{"model":"m","stream":true}`)
	events := sseData(data)
	if len(events) != 7 || events[6] != "[DONE]" {
		t.Fatalf("want a name chunk, 3 argument chunks, finish, usage and [DONE], got %q", events)
	}
	var args strings.Builder
	for i, ev := range events[:4] {
		var c struct {
			Choices []struct {
				Delta struct {
					Role      string `json:"role"`
					ToolCalls []struct {
						Index    int    `json:"index"`
						ID       string `json:"id"`
						Function struct {
							Name      string `json:"name"`
							Arguments string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(ev), &c); err != nil || len(c.Choices) != 1 || len(c.Choices[0].Delta.ToolCalls) != 1 {
			t.Fatalf("chunk %d: unexpected %s (%v)", i, ev, err)
		}
		tc := c.Choices[0].Delta.ToolCalls[0]
		if i == 0 && (c.Choices[0].Delta.Role != "assistant" || !strings.HasPrefix(tc.ID, "call_fake_") || tc.Function.Name != "get_weather" || tc.Function.Arguments != "") {
			t.Fatalf("unexpected first chunk %s", ev)
		}
		args.WriteString(tc.Function.Arguments)
	}
	if args.String() != input || !strings.Contains(events[4], `"finish_reason":"tool_calls"`) || !strings.Contains(events[5], `"usage":{"prompt_tokens":5,"completion_tokens":4`) {
		t.Fatalf("unexpected tool stream %q", events)
	}
}
