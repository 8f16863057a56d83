package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// The key a deduplicated answer used is always echoed, refusals and
// upstream failures included, with Idempotent-Replayed: false (issue 9):
// a client that only sees the error can still retry with that key, which
// matters most for a derived key it never saw.
func TestErrorAnswersEchoTheKey(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("down", upstreamtest.Behavior{Status: 503})
	fake.SetBehavior("slow", upstreamtest.Behavior{FirstByteDelay: 2 * time.Second})
	routes := "routes:\n" +
		"  - model: down\n    targets: [{provider: fake, model: down}, {provider: fake2, model: down}]\n" +
		"  - model: \"*\"\n    targets: [{provider: fake}]\n"
	g := startGateway(t, testConfig(t, fake.URL, "dedupe: {on_in_progress: reject}\n"+routes))
	check := func(what string, resp *http.Response, body []byte, status int, key string) {
		t.Helper()
		if resp.StatusCode != status {
			t.Fatalf("%s: status %d, want %d: %s", what, resp.StatusCode, status, body)
		}
		got := resp.Header.Get("Idempotency-Key")
		if got != key && !(key == "derived:" && strings.HasPrefix(got, key)) {
			t.Errorf("%s: Idempotency-Key = %q, want %q", what, got, key)
		}
		if r := resp.Header.Get("Idempotent-Replayed"); r != "false" {
			t.Errorf("%s: Idempotent-Replayed = %q, want false", what, r)
		}
	}
	chat := "/v1/chat/completions"

	r, b := post(t, g.URL, chat, chatBody("m", "original", false), "Idempotency-Key", "echo-1")
	check("first answer", r, b, 200, "echo-1")
	r, b = post(t, g.URL, chat, chatBody("m", "changed", false), "Idempotency-Key", "echo-1")
	check("422 mismatch", r, b, 422, "echo-1")

	r, b = post(t, g.URL, chat, chatBody("down", "x", false), "Idempotency-Key", "echo-2")
	check("every target failed", r, b, 503, "echo-2")
	if !strings.Contains(string(b), "upstream_failed") || r.Header.Get("X-Gateway-Attempts") != "2" {
		t.Errorf("every target failed: attempts %q, body %s", r.Header.Get("X-Gateway-Attempts"), b)
	}
	r, b = post(t, g.URL, chat, chatBody("down", "derive me", false))
	check("every target failed, derived key", r, b, 503, "derived:")

	leader := newPost(t, g.URL+chat, chatBody("slow", "x", false), "Idempotency-Key", "echo-3")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(leader); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	}()
	waitFor(t, 5*time.Second, "the slow leader's call", func() bool { return fake.CallsForModel("slow") == 1 })
	r, b = post(t, g.URL, chat, chatBody("slow", "x", false), "Idempotency-Key", "echo-3")
	check("409 in progress", r, b, 409, "echo-3")
	<-done
}
