package routes_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/idemgw/gateway/routes"
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

// /readyz reports the stores' check: 200 ok, 200 degraded naming the
// Redis failure (the node still answers correctly through the record
// store), or 503 not_ready naming why the node must get no traffic.
func TestReadyz(t *testing.T) {
	f := func(ready func(context.Context) routes.Readiness, wantBody, wantMessage string) {
		t.Helper()
		g := startGW(t, gwOptions{ready: ready})
		a := g.do("GET", "/readyz", "", "Authorization", "")
		if wantMessage == "" {
			wantStatus(t, a, 200)
			wantHeader(t, a, "Content-Type", "application/json")
			if string(a.body) != wantBody {
				t.Fatalf("body %s, want %s", a.body, wantBody)
			}
			return
		}
		e := wantError(t, a, 503, "api_error", "not_ready", "")
		if !strings.Contains(e.Message, wantMessage) {
			t.Fatalf("message %q does not name the failure %q", e.Message, wantMessage)
		}
	}
	f(nil, `{"status":"ok"}`, "")
	f(func(ctx context.Context) routes.Readiness {
		if _, ok := ctx.Deadline(); !ok {
			return routes.Readiness{Unready: "the check runs without a deadline"}
		}
		return routes.Readiness{}
	}, `{"status":"ok"}`, "")
	f(func(context.Context) routes.Readiness {
		return routes.Readiness{Redis: "dial tcp: connection refused"}
	}, `{"status":"degraded","redis":"dial tcp: connection refused"}`, "")
	f(func(context.Context) routes.Readiness {
		return routes.Readiness{Unready: "record store: connection refused", Redis: "down too"}
	}, "", "record store: connection refused")
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
