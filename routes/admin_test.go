package routes_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/idemgw/gateway/dedupe"
)

// adminGet reads a task with the admin key.
func adminGet(g *testGW, path string, headers ...string) *answer {
	g.t.Helper()
	return g.do("GET", path, "", append([]string{"Authorization", "Bearer " + adminKey}, headers...)...)
}

// The admin API needs the admin key: a tenant's key, a wrong key or no
// key is 401, and without an admin_key it is always 401.
func TestAdminTaskAuth(t *testing.T) {
	g := startGW(t, gwOptions{})
	f := func(authorization string) {
		t.Helper()
		a := g.do("GET", "/admin/tasks/k?tenant=team-a", "", "Authorization", authorization)
		wantError(t, a, 401, "authentication_error", "invalid_api_key", "")
	}
	f("")
	f("Bearer " + keyA)
	f("Bearer " + adminKey + "x")
	f("Basic " + adminKey)

	off := startGW(t, gwOptions{yaml: "auth:\n  mode: keys\n  keys: [{tenant: team-a, key: " + keyA + "}]\n"})
	for _, authz := range []string{"", "Bearer ", "Bearer " + adminKey} {
		wantError(t, off.do("GET", "/admin/tasks/k?tenant=team-a", "", "Authorization", authz), 401, "authentication_error", "invalid_api_key", "")
	}
}

// With tenant keys a lookup must name the tenant; an unknown key is 404
// task_not_found, and with dedupe disabled there are no tasks at all.
func TestAdminTaskErrors(t *testing.T) {
	g := startGW(t, gwOptions{})
	wantError(t, adminGet(g, "/admin/tasks/some-key"), 400, "invalid_request_error", "missing_tenant", "tenant")
	wantError(t, adminGet(g, "/admin/tasks/some-key?tenant="), 400, "invalid_request_error", "missing_tenant", "tenant")
	wantError(t, adminGet(g, "/admin/tasks/some-key?tenant=team-a"), 404, "invalid_request_error", "task_not_found", "")

	off := startGW(t, gwOptions{yaml: "dedupe: {enabled: false}\n"})
	wantError(t, adminGet(off, "/admin/tasks/some-key?tenant=team-a"), 404, "invalid_request_error", "not_found", "")
}

// A task is found by its key and tenant only; the answer has the task,
// its attempts, and the stored body with ?body=1.
func TestAdminTaskShape(t *testing.T) {
	g := startGW(t, gwOptions{})
	key := "admin key/1" // the path carries it escaped
	client := g.post(chat("m", "look me up", false), "Idempotency-Key", key)
	wantStatus(t, client, 200)
	path := "/admin/tasks/" + url.PathEscape(key)

	wantError(t, adminGet(g, path+"?tenant=team-b"), 404, "invalid_request_error", "task_not_found", "")
	a := adminGet(g, path+"?tenant=team-a")
	wantStatus(t, a, 200)
	wantHeader(t, a, "Content-Type", "application/json")
	var task struct {
		Tenant, KeyHash, Status, Model, Fingerprint string
		CreatedAt, UpdatedAt, ExpiresAt, LeaseUntil string
		Fence                                       int64
		Stream                                      bool
		Attempts                                    []map[string]any
		Response                                    *struct {
			Status      int
			ContentType string `json:"content_type"`
			Body        string
		}
	}
	if err := json.Unmarshal(a.body, &task); err != nil {
		t.Fatalf("task body %s: %v", a.body, err)
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(a.body, &raw)
	for _, f := range []string{"key_hash", "created_at", "updated_at", "expires_at", "usage", "attempts"} {
		if _, ok := raw[f]; !ok {
			t.Fatalf("task body %s has no %q", a.body, f)
		}
	}
	if _, ok := raw["lease_until"]; ok {
		t.Fatalf("a completed task shows a lease: %s", a.body)
	}
	var hash string
	_ = json.Unmarshal(raw["key_hash"], &hash)
	if task.Tenant != "team-a" || hash != dedupe.HashKey("team-a", key) || task.Status != "completed" ||
		task.Fence != 1 || task.Model != "*" || task.Stream || task.Response != nil {
		t.Fatalf("task %s", a.body)
	}
	if len(task.Attempts) != 1 || task.Attempts[0]["provider"] != "fake" {
		t.Fatalf("attempts %v, want one by fake", task.Attempts)
	}

	a = adminGet(g, path+"?tenant=team-a&body=1")
	wantStatus(t, a, 200)
	if err := json.Unmarshal(a.body, &task); err != nil || task.Response == nil {
		t.Fatalf("task with body %s: %v", a.body, err)
	}
	if task.Response.Status != 200 || task.Response.Body != string(client.body) {
		t.Fatalf("stored response %d %q, want the client's %q", task.Response.Status, task.Response.Body, client.body)
	}
	// The raw key never reaches the log: the path is logged as a pattern.
	logs := g.logs.String()
	if strings.Contains(logs, "admin key") || strings.Contains(logs, url.PathEscape(key)) || !strings.Contains(logs, `"path":"/admin/tasks/{key}"`) {
		t.Fatalf("the log shows the admin lookup's key:\n%s", logs)
	}
}
