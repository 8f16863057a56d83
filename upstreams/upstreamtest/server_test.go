package upstreamtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func startServer(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatalf("cannot start fake upstream: %s", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("cannot close fake upstream: %s", err)
		}
	})
	return s
}

// post sends body to s.URL+path with the given header pairs and returns the
// status and the whole body; it fails the test when the body cannot be read.
func post(t *testing.T, client *http.Client, url, body string, headers ...string) (int, []byte) {
	t.Helper()
	resp, err := doPost(client, url, body, headers...)
	if err != nil {
		t.Fatalf("cannot POST %s: %s", url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("cannot read the answer of %s: %s (read so far: %q)", url, err, data)
	}
	return resp.StatusCode, data
}

func doPost(client *http.Client, url, body string, headers ...string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if client == nil {
		client = http.DefaultClient
	}
	return client.Do(req)
}

type chatCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage usage `json:"usage"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func TestChatNonStreamDefault(t *testing.T) {
	s := startServer(t)
	body := `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`
	status, data := post(t, nil, s.URL+"/chat/completions", body)
	if status != 200 {
		t.Fatalf("unexpected status %d: %s", status, data)
	}
	var got chatCompletion
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("cannot parse %s: %s", data, err)
	}
	if !strings.HasPrefix(got.ID, "chatcmpl-fake-") || got.Object != "chat.completion" || got.Model != "gpt-test" || got.Created == 0 {
		t.Fatalf("unexpected header fields: %s", data)
	}
	if len(got.Choices) != 1 {
		t.Fatalf("want 1 choice, got %s", data)
	}
	ch := got.Choices[0]
	want := ContentFor(Behavior{}, "gpt-test")
	if ch.Message.Role != "assistant" || ch.Message.Content != want || ch.FinishReason != "stop" {
		t.Fatalf("unexpected choice %+v; want content %q", ch, want)
	}
	if !strings.Contains(want, "gpt-test") {
		t.Fatalf("default content %q should name the model", want)
	}
	words := len(strings.Fields(want))
	if got.Usage != (usage{DefaultPromptTokens, words, DefaultPromptTokens + words}) {
		t.Fatalf("unexpected usage %+v", got.Usage)
	}

	// A second identical call must not produce an identical body: the
	// gateway's tests detect paying twice by comparing bodies.
	_, data2 := post(t, nil, s.URL+"/chat/completions", body)
	if bytes.Equal(data, data2) {
		t.Fatalf("two calls produced the same body %s", data)
	}
}

func TestChatNonStreamScripted(t *testing.T) {
	s := startServer(t)
	b := Behavior{Content: "Hello \"world\"\n<ok> é", PromptTokens: 7, CompletionTokens: 3}
	s.SetBehavior("m", b)
	_, data := post(t, nil, s.URL+"/chat/completions", `{"model":"m"}`)
	var got chatCompletion
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("cannot parse %s: %s", data, err)
	}
	if got.Choices[0].Message.Content != b.Content || ContentFor(b, "m") != b.Content {
		t.Fatalf("unexpected content %q", got.Choices[0].Message.Content)
	}
	if got.Usage != (usage{7, 3, 10}) {
		t.Fatalf("unexpected usage %+v", got.Usage)
	}
}

func TestStatusBehaviors(t *testing.T) {
	s := startServer(t)
	f := func(status int, wantType, wantCode string) {
		t.Helper()
		s.SetBehavior("m", Behavior{Status: status})
		code, data := post(t, nil, s.URL+"/chat/completions", `{"model":"m","stream":true}`)
		if code != status {
			t.Fatalf("want status %d, got %d: %s", status, code, data)
		}
		var e struct {
			Error struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Param   *string `json:"param"`
				Code    string  `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatalf("cannot parse error body %s: %s", data, err)
		}
		if e.Error.Message == "" || e.Error.Type != wantType || e.Error.Code != wantCode || e.Error.Param != nil {
			t.Fatalf("unexpected error body for %d: %s", status, data)
		}
		if !bytes.Contains(data, []byte(`"param":null`)) {
			t.Fatalf("error body must carry param null: %s", data)
		}
	}
	f(400, "invalid_request_error", "invalid_request")
	f(401, "authentication_error", "invalid_api_key")
	f(429, "rate_limit_error", "rate_limit_exceeded")
	f(500, "server_error", "server_error")
	f(502, "server_error", "server_error")
	f(503, "server_error", "server_error")
}

func TestModelConventions(t *testing.T) {
	s := startServer(t)
	f := func(model string, want Behavior) {
		t.Helper()
		if got := s.behaviorFor(model); got != want {
			t.Fatalf("model %q: want %+v, got %+v", model, want, got)
		}
	}
	f("fail-400", Behavior{Status: 400})
	f("fail-429", Behavior{Status: 429})
	f("fail-500", Behavior{Status: 500})
	f("fail-502", Behavior{Status: 502})
	f("fail-503", Behavior{Status: 503})
	f("fail-529", Behavior{Status: 529})
	f("hang", Behavior{Hang: true})
	f("slow", Behavior{FirstByteDelay: 2 * time.Second})
	f("stream-cut", Behavior{DropAfter: 3, Interval: 50 * time.Millisecond})
	f("story-cut", Behavior{Content: StoryText, Chunks: 12, DropAfter: 5, Interval: 80 * time.Millisecond})
	f("story-continue", Behavior{Content: StoryText, Chunks: 7, Interval: 80 * time.Millisecond, Continue: true, RepeatWords: 2})
	f("long-stream-20x500ms", Behavior{Chunks: 20, Interval: 500 * time.Millisecond})
	f("long-stream-1x0s", Behavior{Chunks: 1})
	f("gpt-4o", Behavior{})

	// The default applies to other models, not to conventions; an explicit
	// behavior beats a convention.
	s.SetBehavior("", Behavior{Chunks: 2})
	f("gpt-4o", Behavior{Chunks: 2})
	// Malformed long-stream names are plain models.
	f("long-stream-0x1s", Behavior{Chunks: 2})
	f("long-stream-20x2m", Behavior{Chunks: 2})
	f("long-stream-20", Behavior{Chunks: 2})
	f("long-stream-ax1s", Behavior{Chunks: 2})
	f("fail-429", Behavior{Status: 429})
	s.SetBehavior("fail-429", Behavior{Chunks: 3})
	f("fail-429", Behavior{Chunks: 3})

	// Over HTTP, as a demo would use them.
	for _, status := range []int{400, 429, 500, 502, 503} {
		model := "fail-" + strconv.Itoa(status)
		code, data := post(t, nil, s.URL+"/chat/completions", `{"model":"`+model+`"}`)
		if model == "fail-429" {
			status = 200 // overridden above
		}
		if code != status {
			t.Fatalf("model %q: want status %d, got %d: %s", model, status, code, data)
		}
	}
	resp, err := doPost(nil, s.URL+"/chat/completions", `{"model":"stream-cut","stream":true}`)
	if err != nil {
		t.Fatalf("cannot POST: %s", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("stream-cut: want a read error, got a complete body %s", data)
	}
	if events := sseData(data); len(events) != 3 {
		t.Fatalf("stream-cut: want 3 events before the cut, got %q", events)
	}
}

func TestFirstByteDelay(t *testing.T) {
	s := startServer(t)
	const delay = 100 * time.Millisecond
	s.SetBehavior("m", Behavior{FirstByteDelay: delay})
	start := time.Now()
	status, _ := post(t, nil, s.URL+"/chat/completions", `{"model":"m"}`)
	// A lower bound only: a timer never fires early, so this cannot flake.
	if elapsed := time.Since(start); status != 200 || elapsed < delay {
		t.Fatalf("want 200 after at least %s, got %d after %s", delay, status, elapsed)
	}
}

func TestHangReleasedByClientTimeout(t *testing.T) {
	s := startServer(t)
	s.SetBehavior("m", Behavior{Hang: true})
	client := &http.Client{Timeout: 100 * time.Millisecond}
	_, err := doPost(client, s.URL+"/chat/completions", `{"model":"m"}`)
	if err == nil {
		t.Fatalf("want a timeout from a hung upstream")
	}
	if s.Calls() != 1 {
		t.Fatalf("the hung call must be counted at arrival, got %d calls", s.Calls())
	}
	// The handler must return once the client is gone, without Close.
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the hung handler was not released by the client going away")
	}
}

func TestHangReleasedByClose(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatalf("cannot start: %s", err)
	}
	s.SetBehavior("", Behavior{Hang: true})
	errc := make(chan error, 1)
	go func() {
		resp, err := doPost(nil, s.URL+"/chat/completions", `{"model":"m"}`)
		if err == nil {
			resp.Body.Close()
			err = errors.New("unexpected answer " + resp.Status)
		}
		errc <- err
	}()
	waitFor(t, func() bool { return s.Calls() == 1 })
	if err := s.Close(); err != nil {
		t.Fatalf("cannot close: %s", err)
	}
	if err := <-errc; err == nil || strings.HasPrefix(err.Error(), "unexpected answer") {
		t.Fatalf("want a connection error after Close, got %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("a second Close must succeed: %s", err)
	}
}

// waitFor polls cond until it holds; the test's own deadline bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}

func TestCounters(t *testing.T) {
	s := startServer(t)
	bodyA := `{"model":"a","messages":[]}`
	bodyB := `{"model":"b","stream":true}`
	post(t, nil, s.URL+"/chat/completions", bodyA, "Idempotency-Key", "k1", "Authorization", "Bearer up-key")
	post(t, nil, s.URL+"/chat/completions", bodyA, "Idempotency-Key", "k1")
	post(t, nil, s.URL+"/chat/completions", bodyB, "Idempotency-Key", "k2")
	post(t, nil, s.URL+"/embeddings", `{"model":"a","input":"x"}`)

	f := func(name string, got, want int) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: want %d, got %d", name, want, got)
		}
	}
	f("Calls", s.Calls(), 4)
	f("CallsForModel(a)", s.CallsForModel("a"), 3)
	f("CallsForModel(b)", s.CallsForModel("b"), 1)
	f("CallsForModel(c)", s.CallsForModel("c"), 0)
	f("CallsForKey(k1)", s.CallsForKey("k1"), 2)
	f("CallsForKey(k2)", s.CallsForKey("k2"), 1)
	f("CallsForKey(k3)", s.CallsForKey("k3"), 0)
	f("CallsForBody(A)", s.CallsForBody([]byte(bodyA)), 2)
	f("CallsForBody(B)", s.CallsForBody([]byte(bodyB)), 1)
	f("CallsForBody(A with a space)", s.CallsForBody([]byte(bodyA+" ")), 0)

	reqs := s.Requests()
	if len(reqs) != 4 {
		t.Fatalf("want 4 requests, got %d", len(reqs))
	}
	r0 := reqs[0]
	if r0.Path != "/v1/chat/completions" || r0.Model != "a" || r0.Stream || string(r0.Body) != bodyA ||
		r0.Authorization != "Bearer up-key" || r0.IdempotencyKey != "k1" || r0.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("unexpected first request %+v", r0)
	}
	if !reqs[2].Stream || reqs[2].Model != "b" || reqs[3].Path != "/v1/embeddings" {
		t.Fatalf("unexpected requests order or fields: %+v", reqs)
	}
	// Requests returns copies.
	reqs[0].Body[0] = 'X'
	if s.Requests()[0].Body[0] != '{' {
		t.Fatalf("Requests must return copies")
	}

	s.ResetCounters()
	f("Calls after reset", s.Calls(), 0)
	f("CallsForKey(k1) after reset", s.CallsForKey("k1"), 0)
	f("CallsForBody(A) after reset", s.CallsForBody([]byte(bodyA)), 0)
	f("Requests after reset", len(s.Requests()), 0)
	// Ids keep increasing across a reset, so bodies stay unique.
	_, data := post(t, nil, s.URL+"/chat/completions", bodyA)
	if !bytes.Contains(data, []byte(`"chatcmpl-fake-5"`)) {
		t.Fatalf("want id chatcmpl-fake-5 after a reset, got %s", data)
	}
	f("Calls after a call", s.Calls(), 1)
}

func TestMaxRequests(t *testing.T) {
	s := startServer(t)
	s.SetMaxRequests(3)
	for i := range 8 {
		post(t, nil, s.URL+"/chat/completions", `{"model":"m`+strconv.Itoa(i)+`"}`)
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[0].Model != "m5" || reqs[2].Model != "m7" {
		t.Fatalf("want the 3 most recent requests, got %+v", reqs)
	}
	if s.Calls() != 8 {
		t.Fatalf("the cap must not affect counters, got %d calls", s.Calls())
	}
	s.SetMaxRequests(0)
	post(t, nil, s.URL+"/chat/completions", `{"model":"x"}`)
	if n := len(s.Requests()); n != 0 {
		t.Fatalf("SetMaxRequests(0) must stop recording, got %d requests", n)
	}
}

func TestRouting(t *testing.T) {
	s := startServer(t)
	f := func(method, path, body string, wantStatus int, wantCalls int) {
		t.Helper()
		s.ResetCounters()
		req, err := http.NewRequest(method, "http://"+s.Addr()+path, strings.NewReader(body))
		if err != nil {
			t.Fatalf("cannot build request: %s", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("cannot %s %s: %s", method, path, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantStatus || s.Calls() != wantCalls {
			t.Fatalf("%s %s: want status %d and %d calls, got %d and %d: %s", method, path, wantStatus, wantCalls, resp.StatusCode, s.Calls(), data)
		}
		if wantStatus >= 400 && !bytes.HasPrefix(data, []byte(`{"error":{"message":`)) {
			t.Fatalf("%s %s: want an OpenAI error body, got %s", method, path, data)
		}
	}
	f("POST", "/v1/chat/completions", `{"model":"m"}`, 200, 1)
	f("POST", "/v1/chat/completions", `{"model":`, 400, 1)
	f("POST", "/v1/unknown", `{"model":"m"}`, 404, 1)
	f("GET", "/v1/chat/completions", ``, 405, 0)
	f("POST", "/other", `{}`, 404, 0)
	f("GET", "/v1/models", ``, 200, 0)
	f("POST", "/v1/embeddings", `{"model":"m"}`, 400, 1)
	f("POST", "/v1/embeddings", `{"model":"m","input":"x","stream":true}`, 400, 1)
}

func TestAppendJSONString(t *testing.T) {
	f := func(s string) {
		t.Helper()
		var got, want string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil {
			t.Fatalf("%q: invalid JSON %s: %s", s, appendJSONString(nil, s), err)
		}
		ref, _ := json.Marshal(s)
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatalf("cannot decode reference %s: %s", ref, err)
		}
		if got != want {
			t.Fatalf("%q: want %q, got %q", s, want, got)
		}
	}
	f("")
	f("plain")
	f(`quote " and backslash \`)
	f("new\nline\ttab\rcr\x00nul\x1f")
	f("héllo 世界 🎉")
	f("bad \xff utf8 \xe2\x82")
	f("<html>&amp;</html>")
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("hello")
	f.Add("a\"b\\c\n\x00")
	f.Add("bad \xff utf8 \xe2\x82")
	f.Fuzz(func(t *testing.T, s string) {
		var got, want string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil {
			t.Fatalf("%q: invalid JSON: %s", s, err)
		}
		ref, _ := json.Marshal(s)
		_ = json.Unmarshal(ref, &want)
		if got != want {
			t.Fatalf("%q: want %q, got %q", s, want, got)
		}
	})
}

func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
