package routes_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// listAnswer is the body of GET /admin/tasks.
type listAnswer struct {
	Tasks []struct {
		Tenant      string   `json:"tenant"`
		KeyHash     string   `json:"key_hash"`
		Status      string   `json:"status"`
		Model       string   `json:"model"`
		CreatedAt   string   `json:"created_at"`
		Attempts    int      `json:"attempts"`
		Providers   []string `json:"providers"`
		LastOutcome string   `json:"last_outcome"`
		Replays     int64    `json:"replays"`
		Joins       int64    `json:"joins"`
	} `json:"tasks"`
	Next string `json:"next_cursor"`
}

func adminList(t *testing.T, g *testGW, query string) listAnswer {
	t.Helper()
	a := adminGet(g, "/admin/tasks?"+query)
	wantStatus(t, a, 200)
	wantHeader(t, a, "Content-Type", "application/json")
	var out listAnswer
	if err := json.Unmarshal(a.body, &out); err != nil {
		t.Fatalf("list body %s: %v", a.body, err)
	}
	return out
}

// The task list pages through every task once, newest first, filters by
// tenant and route, and summarises the attempts.
func TestAdminTaskList(t *testing.T) {
	g := startGW(t, gwOptions{})
	var want []string // tenant/key hash, oldest first
	for i := range 7 {
		key, tenantKey, tenant := fmt.Sprintf("list-%d", i), keyA, "team-a"
		if i%3 == 0 {
			tenantKey, tenant = keyB, "team-b"
		}
		a := g.post(chat("m", fmt.Sprintf("task %d", i), false), "Idempotency-Key", key, "Authorization", "Bearer "+tenantKey)
		wantStatus(t, a, 200)
		task := adminTaskOf(t, g, key, tenant)
		want = append(want, tenant+"/"+task)
	}
	var got []string
	cursor, pages := "", 0
	for {
		page := adminList(t, g, "limit=3&cursor="+url.QueryEscape(cursor))
		pages++
		for _, ts := range page.Tasks {
			got = append(got, ts.Tenant+"/"+ts.KeyHash)
			if ts.Status != "completed" || ts.Attempts != 1 || len(ts.Providers) != 1 || ts.Providers[0] != "fake" ||
				ts.LastOutcome != "success" || ts.Model != "*" || !strings.HasSuffix(ts.CreatedAt, "Z") {
				t.Fatalf("summary %+v", ts)
			}
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if pages != 3 {
		t.Fatalf("7 tasks at 3 a page took %d pages", pages)
	}
	for i := range want {
		if got[len(got)-1-i] != want[i] {
			t.Fatalf("listed %v, want the reverse of %v", got, want)
		}
	}
	if b := adminList(t, g, "tenant=team-b"); len(b.Tasks) != 3 || b.Next != "" {
		t.Fatalf("team-b: %+v", b)
	}
	if r := adminList(t, g, "route=other&status=completed"); len(r.Tasks) != 0 {
		t.Fatalf("route other: %+v", r)
	}
	if r := adminList(t, g, "route=*&since=2000-01-01T00:00:00Z"); len(r.Tasks) != 7 {
		t.Fatalf("route *: %d tasks", len(r.Tasks))
	}
}

// adminTaskOf returns the key hash of a task through the one-task API.
func adminTaskOf(t *testing.T, g *testGW, key, tenant string) string {
	t.Helper()
	a := adminGet(g, "/admin/tasks/"+url.PathEscape(key)+"?tenant="+tenant)
	wantStatus(t, a, 200)
	var task struct {
		KeyHash string `json:"key_hash"`
	}
	_ = json.Unmarshal(a.body, &task)
	return task.KeyHash
}

// Bad parameters are a 400 naming the parameter, in OpenAI's shape; the
// list needs the admin key, a GET, and dedupe.
func TestAdminTaskListErrors(t *testing.T) {
	g := startGW(t, gwOptions{})
	f := func(query, param string) {
		t.Helper()
		wantError(t, adminGet(g, "/admin/tasks?"+query), 400, "invalid_request_error", "invalid_parameter", param)
	}
	f("status=done", "status")
	f("limit=0", "limit")
	f("limit=501", "limit")
	f("limit=ten", "limit")
	f("since=yesterday", "since")
	f("until=2026-01-02", "until")
	f("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "until")
	f("cursor=not-a-cursor", "cursor")
	f("cursor=pAAAAAAAAAAAAAAAAAAAAAA", "cursor")
	f("tennant=team-a", "tennant")
	f("tenant="+strings.Repeat("x", 600), "tenant")

	wantError(t, g.do("GET", "/admin/tasks", ""), 401, "authentication_error", "invalid_api_key", "")
	wantError(t, g.do("GET", "/admin/tasks", "", "Authorization", "Bearer "+keyA), 401, "authentication_error", "invalid_api_key", "")
	a := g.do("POST", "/admin/tasks", "", "Authorization", "Bearer "+adminKey)
	wantError(t, a, 405, "invalid_request_error", "method_not_allowed", "")

	off := startGW(t, gwOptions{yaml: "dedupe: {enabled: false}\n"})
	wantError(t, adminGet(off, "/admin/tasks"), 404, "invalid_request_error", "not_found", "")
}
