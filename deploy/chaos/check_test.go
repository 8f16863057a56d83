package main

import (
	"strings"
	"testing"
)

// Each invariant of issue 13 is reported when broken, and a clean run
// reports nothing.
func TestCheckFindsEveryViolation(t *testing.T) {
	good := func() evidence {
		return evidence{
			keys: []string{"k1", "k2"},
			results: []tryResult{
				{key: "k1", status: 0, detail: "no answer"},
				{key: "k1", status: 200, ok: true, body: "A"},
				{key: "k1", status: 200, ok: true, body: "A", replayed: true, final: true},
				{key: "k2", status: 503, detail: "503 upstream"},
				{key: "k2", status: 200, ok: true, body: "B", final: true},
			},
			calls: map[string]int{"k1": 2, "k2": 1},
			ledger: map[string]ledgerTask{
				"k1": {found: true, status: "completed", attempts: 2},
				"k2": {found: true, status: "completed", attempts: 3},
			},
		}
	}
	if v := check(good()); len(v) != 0 {
		t.Fatalf("clean evidence: %v", v)
	}
	f := func(want string, spoil func(*evidence)) {
		t.Helper()
		ev := good()
		spoil(&ev)
		v := check(ev)
		if len(v) != 1 || !strings.Contains(v[0], want) {
			t.Fatalf("violations %q, want one with %q", v, want)
		}
	}
	f("2 different successful bodies", func(ev *evidence) {
		ev.results = append(ev.results, tryResult{key: "k1", status: 200, ok: true, body: "other"})
	})
	f("3 upstream calls but 2 non-skipped attempts", func(ev *evidence) { ev.calls["k1"] = 3 })
	f("no task in the ledger", func(ev *evidence) { ev.ledger["k2"] = ledgerTask{} })
	f("still processing", func(ev *evidence) {
		ev.ledger["k2"] = ledgerTask{found: true, status: "processing", attempts: 3}
	})
	f("final retry did not succeed", func(ev *evidence) { ev.results[4].final = false })
	f("unexpected answer 422", func(ev *evidence) {
		ev.results = append(ev.results, tryResult{key: "k2", status: 422, detail: "422 idempotency_key_mismatch"})
	})
}

// A stream is a success only with [DONE] and no error event; replays and
// joins number their events, which the identity leaves out.
func TestStreamIdentity(t *testing.T) {
	live := "data: {\"id\":\"c1\"}\nid: 1.1\n\ndata: [DONE]\nid: 1.2\n\n"
	replay := "data: {\"id\":\"c1\"}\nid: 2.1\n\n: keep-alive\n\ndata: [DONE]\nid: 2.2\n\n"
	ok1, id1, _ := streamIdentity([]byte(live))
	ok2, id2, _ := streamIdentity([]byte(replay))
	if !ok1 || !ok2 || id1 != id2 {
		t.Fatalf("live %v %s, replay %v %s: want the same success", ok1, id1, ok2, id2)
	}
	if _, other, _ := streamIdentity([]byte("data: {\"id\":\"c2\"}\n\ndata: [DONE]\n\n")); other == id1 {
		t.Fatal("another answer has the same identity")
	}
	f := func(body string) {
		t.Helper()
		if ok, _, detail := streamIdentity([]byte(body)); ok || detail == "" {
			t.Fatalf("%q: a success", body)
		}
	}
	f("")
	f("data: {\"id\":\"c1\"}\n\n")
	f("data: {\"id\":\"c1\"}\n\ndata: {\"error\":{\"code\":\"stream_interrupted\"}}\n\n")
	f("data: {\"error\":{\"code\":\"x\"}}\n\ndata: [DONE]\n\n")
}
