package routes_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// A malformed Idempotency-Key is 400 idempotency_key_invalid and nothing
// goes upstream.
func TestIdempotencyKeyInvalid(t *testing.T) {
	g := startGW(t, gwOptions{})
	f := func(key string) {
		t.Helper()
		wantError(t, g.post(chat("m", "bad key", false), "Idempotency-Key", key), 400, "invalid_request_error", "idempotency_key_invalid", "")
	}
	f(strings.Repeat("k", 256))
	f(`"unterminated`)
	f(`"quoted" trailing`)
	f(`"bad \q escape"`)
	f("caf\xc3\xa9")
	if n := g.fake.Calls(); n != 0 {
		t.Fatalf("%d upstream calls for invalid keys", n)
	}
	// The longest valid key, and a quoted one (an RFC 8941 string).
	wantStatus(t, g.post(chat("m", "long key", false), "Idempotency-Key", strings.Repeat("k", 255)), 200)
	a := g.post(chat("m", "quoted key", false), "Idempotency-Key", `"quoted key"`)
	wantStatus(t, a, 200)
	wantHeader(t, a, "Idempotency-Key", "quoted key")
}

// With require_key, a request without Idempotency-Key is refused; with
// dedupe disabled the setting has nothing to require.
func TestRequireKey(t *testing.T) {
	g := startGW(t, gwOptions{yaml: "dedupe: {require_key: true}\n"})
	wantError(t, g.post(chat("m", "no key", false)), 400, "invalid_request_error", "idempotency_key_missing", "")
	if n := g.fake.Calls(); n != 0 {
		t.Fatalf("%d upstream calls without a key", n)
	}
	wantStatus(t, g.post(chat("m", "keyed", false), "Idempotency-Key", "required-1"), 200)

	off := startGW(t, gwOptions{yaml: "dedupe: {require_key: true, enabled: false}\n"})
	wantStatus(t, off.post(chat("m", "no key, no dedupe", false)), 200)
}

// The first answer of a key is a live one and names its provider; the
// second is a replay of the same bytes. Both echo the key.
func TestReplayHeaders(t *testing.T) {
	g := startGW(t, gwOptions{})
	body := chat("m", "replay me", false)
	first := g.post(body, "Idempotency-Key", "replay-1")
	wantStatus(t, first, 200)
	wantHeader(t, first, "Idempotent-Replayed", "false")
	wantHeader(t, first, "Idempotency-Key", "replay-1")
	wantHeader(t, first, "X-Gateway-Provider", "fake")
	wantHeader(t, first, "X-Gateway-Attempts", "1")

	second := g.post(body, "Idempotency-Key", "replay-1", "X-Request-Id", "retry-of-replay-1")
	wantStatus(t, second, 200)
	wantHeader(t, second, "Idempotent-Replayed", "true")
	wantHeader(t, second, "Idempotency-Key", "replay-1")
	wantHeader(t, second, "X-Request-Id", "retry-of-replay-1")
	wantHeader(t, second, "Content-Type", first.get("Content-Type"))
	if string(second.body) != string(first.body) {
		t.Fatalf("replay body differs:\nfirst  %s\nreplay %s", first.body, second.body)
	}
	if n := g.fake.CallsForKey("replay-1"); n != 1 {
		t.Fatalf("%d upstream calls for the key, want 1", n)
	}
	// Whitespace and key order do not make another request.
	reordered := `{"stream":false, "messages":[{"content":"replay me","role":"user"}], "model":"m"}`
	wantHeader(t, g.post(reordered, "Idempotency-Key", "replay-1"), "Idempotent-Replayed", "true")

	// An answer without a key still gets one derived from the body, which
	// the gateway echoes so the client can retry with it.
	derived := g.post(chat("m", "derive me", false))
	wantStatus(t, derived, 200)
	key := derived.get("Idempotency-Key")
	if !strings.HasPrefix(key, "derived:") {
		t.Fatalf("derived key %q", key)
	}
	again := g.post(chat("m", "derive me", false), "Idempotency-Key", key)
	wantHeader(t, again, "Idempotent-Replayed", "true")
	if g.fake.CallsForModel("m") != 2 {
		t.Fatalf("%d calls, want 2 (replay-1 and derive me)", g.fake.CallsForModel("m"))
	}
}

// Keys are per tenant: the same key of two tenants is two tasks.
func TestKeysPerTenant(t *testing.T) {
	g := startGW(t, gwOptions{})
	a := g.post(chat("m", "tenant a", false), "Idempotency-Key", "shared")
	b := g.post(chat("m", "tenant b", false), "Idempotency-Key", "shared", "Authorization", "Bearer "+keyB)
	wantHeader(t, a, "Idempotent-Replayed", "false")
	wantHeader(t, b, "Idempotent-Replayed", "false")
	if n := g.fake.CallsForKey("shared"); n != 2 {
		t.Fatalf("%d upstream calls, want 2", n)
	}
}

// A key reused with another body is 422 and touches nothing: the
// original answer still replays.
func TestKeyMismatch(t *testing.T) {
	g := startGW(t, gwOptions{})
	wantStatus(t, g.post(chat("m", "original", false), "Idempotency-Key", "mm-1"), 200)
	a := g.post(chat("m", "another body", false), "Idempotency-Key", "mm-1")
	wantError(t, a, 422, "invalid_request_error", "idempotency_key_mismatch", "")
	wantHeader(t, a, "x-should-retry", "false")
	// Another endpoint with the same bytes is another request too.
	wantError(t, g.do("POST", "/v1/completions", chat("m", "original", false), "Idempotency-Key", "mm-1"),
		422, "invalid_request_error", "idempotency_key_mismatch", "")
	wantHeader(t, g.post(chat("m", "original", false), "Idempotency-Key", "mm-1"), "Idempotent-Replayed", "true")
	if n := g.fake.CallsForKey("mm-1"); n != 1 {
		t.Fatalf("%d upstream calls for the key, want 1", n)
	}
}

// With on_in_progress: reject, a duplicate of a running request is 409
// with the hints OpenAI SDKs read to retry on their own: a third of the
// lease.
func TestInProgressReject(t *testing.T) {
	g := startGW(t, gwOptions{reject: true, yaml: "dedupe: {lease: 3s, on_in_progress: reject}\n"})
	g.fake.SetBehavior("held", upstreamtest.Behavior{Hang: true})
	body := chat("held", "running", false)
	var wg sync.WaitGroup
	var leader *answer
	wg.Go(func() { leader = g.post(body, "Idempotency-Key", "busy-1") })
	eventually(t, "the leader's upstream call", func() bool { return g.fake.CallsForKey("busy-1") == 1 })

	a := g.post(body, "Idempotency-Key", "busy-1")
	wantError(t, a, 409, "invalid_request_error", "idempotency_key_in_use", "")
	wantHeader(t, a, "Retry-After", "1")
	wantHeader(t, a, "retry-after-ms", "1000")
	wantHeader(t, a, "x-should-retry", "true")
	// Another body under the running key is still a mismatch.
	wantError(t, g.post(chat("held", "other", false), "Idempotency-Key", "busy-1"), 422, "invalid_request_error", "idempotency_key_mismatch", "")

	// The upstream goes away: the leader's client gets the failure.
	_ = g.fake.Close()
	wg.Wait()
	wantError(t, leader, 502, "api_error", "upstream_failed", "")
	if n := g.fake.CallsForKey("busy-1"); n != 1 {
		t.Fatalf("%d upstream calls for the key, want 1", n)
	}
}

// A record store that fails is 503 store_unavailable with retry hints
// and no upstream call (on_store_error: fail), or a pass-through without
// deduplication (open).
func TestStoreUnavailable(t *testing.T) {
	g := startGW(t, gwOptions{})
	_ = g.store.Close()
	a := g.post(chat("m", "store down", false), "Idempotency-Key", "down-1")
	wantError(t, a, 503, "api_error", "store_unavailable", "")
	wantHeader(t, a, "x-should-retry", "true")
	wantHeader(t, a, "retry-after-ms", "1000")
	if n := g.fake.Calls(); n != 0 {
		t.Fatalf("%d upstream calls with the store down", n)
	}

	open := startGW(t, gwOptions{yaml: "dedupe: {on_store_error: open}\n"})
	_ = open.store.Close()
	for range 2 {
		a := open.post(chat("m", "store down, open", false), "Idempotency-Key", "down-2")
		wantStatus(t, a, 200)
		wantHeader(t, a, "X-Gateway-Provider", "fake")
	}
	if n := open.fake.CallsForKey("down-2"); n != 2 {
		t.Fatalf("%d upstream calls, want 2 (nothing deduplicated without a store)", n)
	}
}
