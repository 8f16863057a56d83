package routes_test

import (
	"context"
	"strings"
	"testing"
)

// The ledger page is served under /admin/ beside the JSON API, from the
// real store: a replay shows in the task's counts after the flush.
func TestLedgerPage(t *testing.T) {
	g := startGW(t, gwOptions{yaml: "pricing:\n  \"*\": {prompt_per_1m: 1000000, completion_per_1m: 1000000}\n"})
	for range 2 {
		wantStatus(t, g.post(chat("m", "page me", false), "Idempotency-Key", "page-1"), 200)
	}
	if err := g.coord.FlushServed(context.Background()); err != nil {
		t.Fatal(err)
	}
	hash := adminTaskOf(t, g, "page-1", "team-a")

	a := g.do("GET", "/admin/", "")
	if a.status != 401 || !strings.Contains(string(a.body), `id="login"`) {
		t.Fatalf("without the key: %d %s", a.status, a.body)
	}
	a = adminGet(g, "/admin/?tenant=team-a")
	wantStatus(t, a, 200)
	wantHeader(t, a, "Content-Type", "text/html; charset=utf-8")
	if !strings.Contains(string(a.body), "/admin/task?key_hash="+hash+"&amp;tenant=team-a") {
		t.Fatalf("the list does not link the task:\n%s", a.body)
	}
	a = adminGet(g, "/admin/task?tenant=team-a&key_hash="+hash)
	wantStatus(t, a, 200)
	body := string(a.body)
	for _, want := range []string{`<dd id="replays">1</dd>`, `<dd id="joins">0</dd>`, `class="attempt o-success"`, `<dd id="saved-cost">$`} {
		if !strings.Contains(body, want) {
			t.Fatalf("the task page lacks %q:\n%s", want, body)
		}
	}
	if a := adminGet(g, "/admin/?limit=0"); a.status != 400 {
		t.Fatalf("a bad filter: %d", a.status)
	}
	if a := g.do("GET", "/admin", ""); a.status != 301 || !strings.HasSuffix(a.get("Location"), "/admin/") {
		t.Fatalf("/admin: %d %q", a.status, a.get("Location"))
	}
	// The JSON API keeps its paths.
	wantHeader(t, adminGet(g, "/admin/tasks"), "Content-Type", "application/json")
	wantHeader(t, adminGet(g, "/admin/upstreams"), "Content-Type", "application/json")
}
