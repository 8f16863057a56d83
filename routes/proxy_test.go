package routes_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// dedupeModes are the two ways a body is checked: canonicalised for a
// derived key (dedupe on), or only validated (dedupe off).
var dedupeModes = []struct{ name, yaml string }{
	{"dedupe", ""},
	{"no-dedupe", "dedupe: {enabled: false}\n"},
}

// A missing, non-string, empty or repeated model is 400 with param
// "model"; a model no route takes is 404 model_not_found. None of them
// reaches the upstream.
func TestModelField(t *testing.T) {
	for _, m := range dedupeModes {
		t.Run(m.name, func(t *testing.T) {
			g := startGW(t, gwOptions{yaml: m.yaml + "routes:\n  - model: known\n    targets: [{provider: fake}]\n"})
			f := func(body string, status int, code string) {
				t.Helper()
				wantError(t, g.post(body), status, "invalid_request_error", code, "model")
			}
			f(`{"messages":[]}`, 400, "missing_model")
			f(`{}`, 400, "missing_model")
			f(`{"nested":{"model":"known"}}`, 400, "missing_model")
			f(`{"model":""}`, 400, "invalid_model")
			f(`{"model":42}`, 400, "invalid_model")
			f(`{"model":null}`, 400, "invalid_model")
			f(`{"model":["known"]}`, 400, "invalid_model")
			f(`{"model":"known","model":"known"}`, 400, "duplicate_model")
			f(`{"model":"known","stream":false,"model":"other"}`, 400, "duplicate_model")
			f(`{"model":"unknown"}`, 404, "model_not_found")
			if n := g.fake.Calls(); n != 0 {
				t.Fatalf("%d upstream calls for refused bodies", n)
			}
			wantStatus(t, g.post(`{"model":"known","messages":[]}`), 200)
		})
	}
}

// A body that is not one JSON object is 400 invalid_json, whether dedupe
// canonicalises it or not.
func TestInvalidJSON(t *testing.T) {
	for _, m := range dedupeModes {
		t.Run(m.name, func(t *testing.T) {
			g := startGW(t, gwOptions{yaml: m.yaml})
			f := func(body string) {
				t.Helper()
				wantError(t, g.post(body), 400, "invalid_request_error", "invalid_json", "")
			}
			f("")
			f("not json")
			f(`["model","m"]`)
			f(`"m"`)
			f(`{"model":"m"`)
			f(`{"model":"m",}`)
			f(`{"model":"m"} trailing`)
			f(`{"model":"m"}{"model":"m"}`)
			f(`{"model":"m","messages":[}`)
			f(`{"model":"m","x":tru}`)
			if n := g.fake.Calls(); n != 0 {
				t.Fatalf("%d upstream calls for invalid bodies", n)
			}
		})
	}
}

// A body over max_body_bytes is 413 request_too_large: from the handler
// when the server lets it through, and from fasthttp (TransportError)
// when the server's own limit stops it first, as in the gateway.
func TestBodyTooLarge(t *testing.T) {
	body := func(n int) string {
		b := `{"model":"m","pad":"`
		return b + strings.Repeat("x", n-len(b)-2) + `"}`
	}
	f := func(serverMaxBody int) {
		t.Helper()
		g := startGW(t, gwOptions{yaml: "max_body_bytes: 1024\n", serverMaxBody: serverMaxBody})
		wantStatus(t, g.post(body(1024)), 200)
		e := wantErrorBody(t, g.post(body(1025)), 413, "invalid_request_error", "request_too_large", "")
		if !strings.Contains(e.Message, "max_body_bytes") && !strings.Contains(e.Message, "1024") {
			t.Fatalf("message %q does not name the limit", e.Message)
		}
		// Bigger bodies would not fit the in-memory pipe's buffers while
		// the server stops reading, so the client could not write them.
		wantErrorBody(t, g.post(body(2048)), 413, "invalid_request_error", "request_too_large", "")
		if n := g.fake.Calls(); n != 1 {
			t.Fatalf("%d upstream calls, want 1 (the body at the limit)", n)
		}
	}
	f(1 << 20) // the handler's check
	f(0)       // fasthttp's limit, answered by TransportError
}

// A request fasthttp cannot parse still gets OpenAI's error shape.
func TestTransportErrorMalformed(t *testing.T) {
	g := startGW(t, gwOptions{})
	f := func(request string) {
		t.Helper()
		wantErrorBody(t, g.raw(request), 400, "invalid_request_error", "bad_request", "")
	}
	f("POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: abc\r\n\r\n")
	f("POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
	if n := g.fake.Calls(); n != 0 {
		t.Fatalf("%d upstream calls for malformed requests", n)
	}
}

// The original body bytes go upstream with the provider's key; the answer
// names the provider and the attempts.
func TestProxyForwards(t *testing.T) {
	g := startGW(t, gwOptions{yaml: "routes:\n  - model: alias\n    targets: [{provider: fake, model: real-model}]\n  - model: \"*\"\n    targets: [{provider: fake}]\n"})
	body := `{ "stream" : false, "model":"m",  "messages":[{"role":"user","content":"héllo \u00e9"}] }`
	a := g.post(body, "Idempotency-Key", "fwd-1")
	wantStatus(t, a, 200)
	wantHeader(t, a, "X-Gateway-Provider", "fake")
	wantHeader(t, a, "X-Gateway-Attempts", "1")
	if !strings.Contains(string(a.body), upstreamtest.ContentFor(upstreamtest.Behavior{}, "m")) {
		t.Fatalf("body %s is not the upstream's answer", a.body)
	}
	reqs := g.fake.Requests()
	if len(reqs) != 1 || !bytes.Equal(reqs[0].Body, []byte(body)) {
		t.Fatalf("upstream got %d requests, body %q; want the client's bytes", len(reqs), reqs[0].Body)
	}
	if reqs[0].Path != "/v1/chat/completions" || reqs[0].IdempotencyKey != "fwd-1" {
		t.Fatalf("upstream request %s with key %q", reqs[0].Path, reqs[0].IdempotencyKey)
	}

	// A route target's model replaces the client's.
	wantStatus(t, g.post(chat("alias", "renamed", false)), 200)
	if n := g.fake.CallsForModel("real-model"); n != 1 {
		t.Fatalf("%d calls for real-model, want 1", n)
	}
	for _, p := range []string{"/v1/completions", "/v1/embeddings", "/v1/responses"} {
		wantStatus(t, g.do("POST", p, `{"model":"m","prompt":"p","input":"i"}`), 200)
	}
}

// When every target fails the client gets the last 5xx (or 502) as
// upstream_failed with the attempt count; a status fallback_on does not
// cover comes back as the upstream sent it.
func TestUpstreamFailures(t *testing.T) {
	g := startGW(t, gwOptions{yaml: `routes:
  - model: chain
    targets: [{provider: fake, model: fail-500}, {provider: fake, model: fail-503}]
  - model: "*"
    targets: [{provider: fake}]
`})
	a := g.post(chat("chain", "both fail", false), "Idempotency-Key", "fail-chain")
	e := wantError(t, a, 503, "api_error", "upstream_failed", "")
	wantHeader(t, a, "X-Gateway-Attempts", "2")
	if !strings.Contains(e.Message, "2") {
		t.Fatalf("message %q does not count the attempts", e.Message)
	}
	a = g.post(chat("fail-400", "client error", false))
	wantStatus(t, a, 400)
	wantHeader(t, a, "X-Gateway-Provider", "fake")
	if !strings.Contains(string(a.body), `"error"`) {
		t.Fatalf("the upstream's 400 body was not passed on: %s", a.body)
	}
	// A failed task is retryable: the same key calls the chain again.
	before := g.fake.Calls()
	wantStatus(t, g.post(chat("chain", "both fail", false), "Idempotency-Key", "fail-chain"), 503)
	if n := g.fake.Calls() - before; n != 2 {
		t.Fatalf("retry of a failed key made %d upstream calls, want 2", n)
	}
}
