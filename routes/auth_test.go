package routes_test

import (
	"strconv"
	"strings"
	"testing"
)

// The API needs Authorization: Bearer <key> of a configured tenant; the
// key is checked before the body is read and never reaches the upstream
// or the log.
func TestAuthKeys(t *testing.T) {
	g := startGW(t, gwOptions{yaml: "dedupe: {enabled: false}\n"})
	f := func(authorization string, wantOK bool) {
		t.Helper()
		a := g.post(chat("m", "auth "+authorization, false), "Authorization", authorization)
		if wantOK {
			wantStatus(t, a, 200)
			return
		}
		wantError(t, a, 401, "authentication_error", "invalid_api_key", "")
	}
	f("Bearer "+keyA, true)
	f("Bearer "+keyB, true)
	f("bearer "+keyA, true)
	f("BEARER "+keyA+"  ", true)
	f("", false)
	f("Bearer", false)
	f("Bearer ", false)
	f("Bearer "+keyA+"x", false)
	f("Bearer "+keyA[:len(keyA)-1], false)
	f("Basic "+keyA, false)
	f(keyA, false)
	f("Bearer "+adminKey, false) // the admin key is not a tenant key
	calls := g.fake.Calls()
	if calls != 4 {
		t.Fatalf("%d upstream calls, want 4 (one per accepted key)", calls)
	}

	// A refused key is refused before the body is looked at.
	wantError(t, g.post("not json", "Authorization", "Bearer wrong"), 401, "authentication_error", "invalid_api_key", "")
	for _, r := range g.fake.Requests() {
		if got := r.Authorization; got != "Bearer "+upstreamKey {
			t.Fatalf("upstream got Authorization %q, want the provider's key", got)
		}
	}
	if logs := g.logs.String(); strings.Contains(logs, keyA) || strings.Contains(logs, keyB) {
		t.Fatalf("a client key reached the log:\n%s", logs)
	}
}

// With auth mode none every request is tenant "default", with or
// without a key.
func TestAuthModeNone(t *testing.T) {
	g := startGW(t, gwOptions{yaml: "auth: {mode: none, admin_key: " + adminKey + "}\n"})
	wantStatus(t, g.post(chat("m", "no key", false), "Authorization", "", "Idempotency-Key", "none-1"), 200)
	wantStatus(t, g.post(chat("m", "any key", false), "Authorization", "Bearer whatever", "Idempotency-Key", "none-2"), 200)
	wantStatus(t, g.do("GET", "/v1/models", "", "Authorization", ""), 200)
	// Both were recorded for tenant "default": the admin API finds them
	// without ?tenant=.
	for _, key := range []string{"none-1", "none-2"} {
		a := g.do("GET", "/admin/tasks/"+key, "", "Authorization", "Bearer "+adminKey)
		wantStatus(t, a, 200)
		if !strings.Contains(string(a.body), `"tenant":"default"`) {
			t.Fatalf("task %s: %s, want tenant default", key, a.body)
		}
	}
}

// Two Authorization headers are no credentials, whichever is valid: a
// proxy in front may have checked the other one (issue 13). Before, the
// first one won.
func TestAuthTwoHeaders(t *testing.T) {
	g := startGW(t, gwOptions{yaml: "dedupe: {enabled: false}\n"})
	body := chat("m", "two keys", false)
	f := func(first, second string) {
		t.Helper()
		a := g.raw("POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + first + "\r\nAuthorization: Bearer " + second +
			"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body)
		wantError(t, a, 401, "authentication_error", "invalid_api_key", "")
	}
	f(keyA, "other")
	f("other", keyA)
	f(keyA, keyA)
	f(keyA, keyB)
	if n := g.fake.Calls(); n != 0 {
		t.Fatalf("%d upstream calls", n)
	}
}
