package routes_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// Anthropic's Messages API on the gateway (issue 12, DESIGN.md section 5).

// messages is an Anthropic Messages body.
func messages(model, content string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"max_tokens":64,"messages":[{"role":"user","content":%q}],"stream":%v}`, model, content, stream)
}

// claudeRoutes send "c" to the kind anthropic provider and "o" to the
// OpenAI-compatible one, which cannot count tokens.
const claudeRoutes = `routes:
  - {model: c, targets: [{provider: claude}]}
  - {model: o, targets: [{provider: fake}]}
`

// wantAnthropicError checks the status and that the body is exactly
// Anthropic's error shape with the given type.
func wantAnthropicError(t *testing.T, a *answer, status int, typ string) string {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d; body %s", a.status, status, a.body)
	}
	if ct := a.get("Content-Type"); ct != "application/json" {
		t.Fatalf("error content type %q", ct)
	}
	var raw map[string]json.RawMessage
	var e struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(a.body, &raw) != nil || len(raw) != 2 || json.Unmarshal(a.body, &e) != nil || e.Type != "error" {
		t.Fatalf("error body %s is not {\"type\":\"error\",\"error\":{...}}", a.body)
	}
	if e.Error.Type != typ || e.Error.Message == "" {
		t.Fatalf("error %s, want type %q", a.body, typ)
	}
	if a.get("X-Request-Id") == "" {
		t.Fatal("error answer without X-Request-Id")
	}
	return e.Error.Message
}

// The client key is accepted as x-api-key (Anthropic's SDKs) as well as
// Authorization: Bearer, through the same lookup: tenant limits apply to
// it whichever header carries it. Refusals come in Anthropic's shape.
func TestMessagesAuth(t *testing.T) {
	g := startGW(t, gwOptions{yaml: "auth:\n  keys:\n    - {tenant: team-a, key: " + keyA + ", requests_per_minute: 2}\n    - {tenant: team-b, key: " + keyB + "}\n" + claudeRoutes})
	post := func(body string, headers ...string) *answer {
		return g.do("POST", "/v1/messages", body, headers...)
	}
	wantStatus(t, post(messages("c", "bearer", false)), 200)
	wantStatus(t, post(messages("c", "x-api-key", false), "Authorization", "", "x-api-key", keyA), 200)
	// The third request of team-a in the minute, by either header, is limited.
	a := post(messages("c", "limited", false), "Authorization", "", "x-api-key", keyA)
	wantAnthropicError(t, a, 429, "rate_limit_error")
	if a.get("retry-after") == "" || a.get("x-should-retry") != "true" {
		t.Fatalf("a limited request lacks retry headers: %s", a.header.String())
	}
	wantStatus(t, post(messages("c", "team-b", false), "Authorization", "", "x-api-key", keyB), 200)
	wantAnthropicError(t, post(messages("c", "wrong", false), "Authorization", "", "x-api-key", "sk-wrong"), 401, "authentication_error")
	wantAnthropicError(t, post(messages("c", "none", false), "Authorization", ""), 401, "authentication_error")
	// The OpenAI side takes x-api-key too, and answers in its own shape.
	wantStatus(t, g.post(chat("o", "x-api-key on chat", false), "Authorization", "", "x-api-key", keyB), 200)
	wantError(t, g.post(chat("o", "wrong", false), "Authorization", "", "x-api-key", "sk-wrong"), 401, "authentication_error", "invalid_api_key", "")
	if n := g.fake.Calls(); n != 4 {
		t.Fatalf("%d upstream calls, want 4", n)
	}
	for _, r := range g.fake.Requests() {
		if r.Path == "/v1/messages" && (r.Header.Get("x-api-key") != upstreamKey || r.Authorization != "") {
			t.Fatalf("the Anthropic upstream got x-api-key %q, Authorization %q", r.Header.Get("x-api-key"), r.Authorization)
		}
	}
}

// Every refusal on the Messages paths is in Anthropic's shape, with the
// usual statuses and retry hints.
func TestMessagesErrorsInAnthropicShape(t *testing.T) {
	g := startGW(t, gwOptions{yaml: claudeRoutes})
	post := func(path, body string, headers ...string) *answer {
		return g.do("POST", path, body, headers...)
	}
	wantAnthropicError(t, post("/v1/messages", "not json"), 400, "invalid_request_error")
	wantAnthropicError(t, post("/v1/messages", `{"max_tokens":1}`), 400, "invalid_request_error")
	wantAnthropicError(t, post("/v1/messages", messages("nope", "x", false)), 404, "not_found_error")
	wantAnthropicError(t, g.do("GET", "/v1/messages", ""), 405, "invalid_request_error")
	wantAnthropicError(t, post("/v1/messages", messages("c", "x", false), "Idempotency-Key", strings.Repeat("k", 256)), 400, "invalid_request_error")
	// count_tokens on a route of OpenAI-compatible providers only: no
	// target can serve it, so nothing is recorded or sent.
	a := post("/v1/messages/count_tokens", `{"model":"o","messages":[{"role":"user","content":"hi"}]}`)
	if msg := wantAnthropicError(t, a, 400, "invalid_request_error"); !strings.Contains(msg, "serves /v1/messages/count_tokens") {
		t.Fatalf("message %q", msg)
	}
	wantHeader(t, a, "x-should-retry", "false")
	// The same key with another body.
	wantStatus(t, post("/v1/messages", messages("c", "first", false), "Idempotency-Key", "msg-mismatch"), 200)
	a = post("/v1/messages", messages("c", "second", false), "Idempotency-Key", "msg-mismatch")
	wantAnthropicError(t, a, 422, "invalid_request_error")
	wantHeader(t, a, "x-should-retry", "false")
	// An upstream 4xx of an OpenAI-compatible target reaches the
	// Anthropic client in Anthropic's shape, with its status.
	g.fake.SetBehavior("o", upstreamtest.Behavior{Status: 403})
	wantAnthropicError(t, post("/v1/messages", messages("o", "denied", false)), 403, "permission_error")
	// Every target failed: a 5xx in Anthropic's shape.
	g.fake.SetBehavior("c", upstreamtest.Behavior{Status: 529})
	wantAnthropicError(t, post("/v1/messages", messages("c", "overloaded", false)), 529, "overloaded_error")
	if n := g.fake.Calls(); n != 3 {
		t.Fatalf("%d upstream calls, want 3", n)
	}
}

// The idempotency semantics of /v1/chat/completions hold on /v1/messages
// and count_tokens: a key sent twice, or a body derived twice, is one
// upstream call and a byte-for-byte replay, streams included.
func TestMessagesReplay(t *testing.T) {
	g := startGW(t, gwOptions{yaml: claudeRoutes})
	for _, model := range []string{"c", "o"} {
		body := messages(model, "replay me", false)
		first := g.do("POST", "/v1/messages", body, "Idempotency-Key", "msg-"+model)
		wantStatus(t, first, 200)
		wantHeader(t, first, "Idempotent-Replayed", "false")
		again := g.do("POST", "/v1/messages", body, "Idempotency-Key", "msg-"+model)
		wantHeader(t, again, "Idempotent-Replayed", "true")
		if !bytes.Equal(first.body, again.body) || !strings.Contains(string(first.body), `"type":"message"`) {
			t.Fatalf("%s: replay\n%s\nof\n%s", model, again.body, first.body)
		}
		// Derived from the body: the same again.
		derived := messages(model, "derived", false)
		d1, d2 := g.do("POST", "/v1/messages", derived), g.do("POST", "/v1/messages", derived)
		wantHeader(t, d2, "Idempotent-Replayed", "true")
		if !bytes.Equal(d1.body, d2.body) {
			t.Fatalf("%s: derived replay differs", model)
		}
	}
	count := `{"model":"c","messages":[{"role":"user","content":"count me"}]}`
	c1, c2 := g.do("POST", "/v1/messages/count_tokens", count), g.do("POST", "/v1/messages/count_tokens", count)
	wantHeader(t, c2, "Idempotent-Replayed", "true")
	if !bytes.Equal(c1.body, c2.body) || !strings.Contains(string(c1.body), "input_tokens") {
		t.Fatalf("count_tokens: %s / %s", c1.body, c2.body)
	}
	if n := g.fake.Calls(); n != 5 {
		t.Fatalf("%d upstream calls, want 5", n)
	}

	for _, model := range []string{"c", "o"} {
		body := messages(model, "stream me", true)
		s := g.streamAt("/v1/messages", body, "Idempotency-Key", "stream-"+model)
		evs := s.all(t)
		if !strings.HasPrefix(evs[0], "event: message_start") || !strings.HasPrefix(evs[len(evs)-1], "event: message_stop") {
			t.Fatalf("%s: events %q", model, evs)
		}
		r := g.streamAt("/v1/messages", body, "Idempotency-Key", "stream-"+model)
		wantHeader(t, &r.answer, "Idempotent-Replayed", "true")
		if again := r.all(t); strings.Join(again, "\n\n") != strings.Join(evs, "\n\n") {
			t.Fatalf("%s: replayed stream\n%q\nof\n%q", model, again, evs)
		}
	}
	if n := g.fake.Calls(); n != 7 {
		t.Fatalf("%d upstream calls, want 7", n)
	}
}

// A stream that breaks after its first byte ends, for an Anthropic
// client, with Anthropic's error event, never a clean message_stop; and
// the failed task is not replayed.
func TestMessagesStreamCut(t *testing.T) {
	g := startGW(t, gwOptions{yaml: claudeRoutes})
	for _, model := range []string{"c", "o"} {
		g.fake.SetBehavior(model, upstreamtest.Behavior{Chunks: 5, DropAfter: 2})
		s := g.streamAt("/v1/messages", messages(model, "cut", true), "Idempotency-Key", "cut-"+model)
		evs := s.all(t)
		last := evs[len(evs)-1]
		if !strings.HasPrefix(last, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"") {
			t.Fatalf("%s: a cut stream ended with %q", model, last)
		}
		for _, ev := range evs {
			if strings.Contains(ev, "message_stop") {
				t.Fatalf("%s: a cut stream has message_stop", model)
			}
		}
		g.fake.SetBehavior(model, upstreamtest.Behavior{})
		again := g.streamAt("/v1/messages", messages(model, "cut", true), "Idempotency-Key", "cut-"+model)
		wantHeader(t, &again.answer, "Idempotent-Replayed", "false")
		if evs := again.all(t); !strings.HasPrefix(evs[len(evs)-1], "event: message_stop") {
			t.Fatalf("%s: the retry of a cut stream: %q", model, evs)
		}
	}
}

// With on_stream_cut: continue (issue 15) an Anthropic client's stream
// cut mid-way goes on on the next target, whatever it speaks: one
// message_start, the whole text in one block, one message_stop, and a
// replay of the same events.
func TestMessagesStreamCutContinues(t *testing.T) {
	g := startGW(t, gwOptions{yaml: `routes:
  - model: cc
    on_stream_cut: continue
    targets: [{provider: claude, model: first}, {provider: fake, model: second}]
`})
	const story = "The quick brown fox jumps over the lazy dog, and the dog does not mind at all."
	g.fake.SetBehavior("first", upstreamtest.Behavior{Content: story, Chunks: 10, DropAfter: 4})
	g.fake.SetBehavior("second", upstreamtest.Behavior{Content: story, Chunks: 5, Continue: true, RepeatWords: 2})
	body := messages("cc", "a story", true)
	evs := g.streamAt("/v1/messages", body, "Idempotency-Key", "cont").all(t)
	var text strings.Builder
	count := map[string]int{}
	for _, ev := range evs {
		var e struct {
			Type  string
			Delta struct{ Text string }
		}
		_, data, _ := strings.Cut(ev, "data: ")
		data, _, _ = strings.Cut(data, "\n")
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			t.Fatalf("event %q: %v", ev, err)
		}
		count[e.Type]++
		text.WriteString(e.Delta.Text)
	}
	if text.String() != story || count["message_start"] != 1 || count["content_block_start"] != 1 || count["message_stop"] != 1 || count["error"] != 0 ||
		!strings.HasPrefix(evs[len(evs)-1], "event: message_stop") {
		t.Fatalf("text %q, events %v:\n%q", text.String(), count, evs)
	}
	again := g.streamAt("/v1/messages", body, "Idempotency-Key", "cont")
	wantHeader(t, &again.answer, "Idempotent-Replayed", "true")
	if r := again.all(t); strings.Join(r, "\n\n") != strings.Join(evs, "\n\n") {
		t.Fatalf("replay\n%q\nof\n%q", r, evs)
	}
	if n := g.fake.Calls(); n != 2 {
		t.Fatalf("%d upstream calls, want 2", n)
	}
}
