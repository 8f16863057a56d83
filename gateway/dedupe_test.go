package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// result is one client's answer.
type result struct {
	status   int
	body     []byte
	replayed string
	err      error
}

// fire sends n identical requests concurrently, spread over urls.
func fire(t *testing.T, urls []string, n int, body string, headers ...string) []result {
	t.Helper()
	out := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			resp, err := http.DefaultClient.Do(newPost(t, urls[i%len(urls)]+"/v1/chat/completions", body, headers...))
			if err != nil {
				out[i].err = err
				return
			}
			defer resp.Body.Close()
			out[i].body, out[i].err = io.ReadAll(resp.Body)
			out[i].status, out[i].replayed = resp.StatusCode, resp.Header.Get("Idempotent-Replayed")
		}(i)
	}
	close(start)
	wg.Wait()
	return out
}

// checkOnePaid asserts every answer is the same 200 body and that all but
// one are replays.
func checkOnePaid(t *testing.T, rs []result) {
	t.Helper()
	replays := 0
	for i, r := range rs {
		if r.err != nil || r.status != 200 {
			t.Fatalf("request %d: status %d err %v body %s", i, r.status, r.err, r.body)
		}
		if !bytes.Equal(r.body, rs[0].body) {
			t.Fatalf("request %d body differs:\n%s\nvs\n%s", i, r.body, rs[0].body)
		}
		if r.replayed == "true" {
			replays++
		}
	}
	if replays != len(rs)-1 {
		t.Fatalf("replayed answers = %d, want %d", replays, len(rs)-1)
	}
}

// Acceptance (issue 3, #1): three gateway processes sharing Postgres and
// Redis; 60 concurrent identical requests with one key: one upstream call.
func TestThreeProcessesOneUpstreamCall(t *testing.T) {
	cl := newCluster(t)
	fake := startFake(t)
	fake.SetBehavior("m", upstreamtest.Behavior{FirstByteDelay: 400 * time.Millisecond})
	cfg := testConfig(t, fake.URL, cl.yaml(t, ""))
	var urls []string
	for i := 0; i < 3; i++ {
		urls = append(urls, startProcess(t, cfg).URL)
	}
	rs := fire(t, urls, 60, chatBody("m", "write a title", false), "Idempotency-Key", "job-42")
	if n := fake.Calls(); n != 1 {
		t.Fatalf("upstream calls = %d, want 1", n)
	}
	checkOnePaid(t, rs)
}

// Acceptance (issue 3, #2): derived keys under body, off and retries.
func TestDerivedKeys(t *testing.T) {
	cl := newCluster(t)
	fake := startFake(t)
	fake.SetBehavior("m", upstreamtest.Behavior{FirstByteDelay: 300 * time.Millisecond})
	t.Run("body", func(t *testing.T) {
		fake.ResetCounters()
		g := startGateway(t, testConfig(t, fake.URL, cl.yaml(t, "")+"dedupe: {derive: body}\n"))
		rs := fire(t, []string{g.URL}, 60, chatBody("m", "derive body", false))
		if n := fake.Calls(); n != 1 {
			t.Fatalf("upstream calls = %d, want 1", n)
		}
		checkOnePaid(t, rs)
		// The same body with keys in another order and other spacing is
		// the same request.
		resp, _ := post(t, g.URL, "/v1/chat/completions", `{ "stream":false, "messages":[{"content":"derive body","role":"user"}], "model":"m"}`)
		if resp.Header.Get("Idempotent-Replayed") != "true" || fake.Calls() != 1 {
			t.Fatalf("reordered body was not a replay: %v calls=%d", resp.Header, fake.Calls())
		}
		if !strings.HasPrefix(resp.Header.Get("Idempotency-Key"), "derived:") {
			t.Fatalf("derived key not echoed: %q", resp.Header.Get("Idempotency-Key"))
		}
	})
	t.Run("off", func(t *testing.T) {
		fake.ResetCounters()
		g := startGateway(t, testConfig(t, fake.URL, cl.yaml(t, "")+"dedupe: {derive: off}\n"))
		rs := fire(t, []string{g.URL}, 60, chatBody("m", "derive off", false))
		if n := fake.Calls(); n != 60 {
			t.Fatalf("upstream calls = %d, want 60", n)
		}
		for _, r := range rs {
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
		}
	})
	t.Run("retries", func(t *testing.T) {
		fake.ResetCounters()
		g := startGateway(t, testConfig(t, fake.URL, cl.yaml(t, "")+"dedupe: {derive: retries}\n"))
		body := chatBody("m", "derive retries", false)
		first, b1 := post(t, g.URL, "/v1/chat/completions", body, "x-stainless-retry-count", "0")
		retry, b2 := post(t, g.URL, "/v1/chat/completions", body, "x-stainless-retry-count", "1")
		if first.StatusCode != 200 || retry.StatusCode != 200 || !bytes.Equal(b1, b2) || fake.Calls() != 1 {
			t.Fatalf("first try + retry: statuses %d %d, same body %v, calls %d", first.StatusCode, retry.StatusCode, bytes.Equal(b1, b2), fake.Calls())
		}
		if retry.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry not replayed")
		}
		// "Regenerate": a second first try is a new generation.
		again, b3 := post(t, g.URL, "/v1/chat/completions", body, "x-stainless-retry-count", "0")
		if again.StatusCode != 200 || bytes.Equal(b1, b3) || fake.Calls() != 2 {
			t.Fatalf("second first try: status %d, new body %v, calls %d", again.StatusCode, !bytes.Equal(b1, b3), fake.Calls())
		}
		// Its retry finds the newest generation.
		_, b4 := post(t, g.URL, "/v1/chat/completions", body, "x-stainless-retry-count", "2")
		if !bytes.Equal(b3, b4) || fake.Calls() != 2 {
			t.Fatalf("retry of the second first try: same %v calls %d", bytes.Equal(b3, b4), fake.Calls())
		}
	})
}

// Acceptance (issue 3, #3): a completed key replays the same bytes with no
// upstream call, also after every gateway restarts, on both stores.
func TestReplayAfterRestart(t *testing.T) {
	fake := startFake(t)
	stores := map[string]func(t *testing.T) string{
		"embedded": func(t *testing.T) string {
			return fmt.Sprintf("store: {kind: embedded, path: %q}\n", t.TempDir()+"/gw.db")
		},
		"postgres": func(t *testing.T) string { return newCluster(t).yaml(t, "") },
	}
	for name, storeYAML := range stores {
		t.Run(name, func(t *testing.T) {
			fake.ResetCounters()
			cfg := testConfig(t, fake.URL, storeYAML(t))
			body := chatBody("m", "replay after restart "+name, false)
			key := "restart-" + name
			g := startGateway(t, cfg)
			r1, b1 := post(t, g.URL, "/v1/chat/completions", body, "Idempotency-Key", key)
			r2, b2 := post(t, g.URL, "/v1/chat/completions", body, "Idempotency-Key", key)
			g.stop(t)
			g2 := startGateway(t, cfg)
			r3, b3 := post(t, g2.URL, "/v1/chat/completions", body, "Idempotency-Key", key)
			if fake.Calls() != 1 {
				t.Fatalf("upstream calls = %d, want 1", fake.Calls())
			}
			if r1.StatusCode != 200 || !bytes.Equal(b1, b2) || !bytes.Equal(b1, b3) {
				t.Fatalf("replays differ:\n%s\n%s\n%s", b1, b2, b3)
			}
			if r1.Header.Get("Idempotent-Replayed") != "false" || r2.Header.Get("Idempotent-Replayed") != "true" || r3.Header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("Idempotent-Replayed headers: %q %q %q", r1.Header.Get("Idempotent-Replayed"), r2.Header.Get("Idempotent-Replayed"), r3.Header.Get("Idempotent-Replayed"))
			}
			if r3.Header.Get("Content-Type") != r1.Header.Get("Content-Type") {
				t.Fatalf("content type changed on replay: %q vs %q", r3.Header.Get("Content-Type"), r1.Header.Get("Content-Type"))
			}
		})
	}
}

// adminTask fetches /admin/tasks/{key} for tenant.
func adminTask(t *testing.T, url, key, tenant string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/admin/tasks/"+key+"?tenant="+tenant, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("admin answer is not JSON: %s", b)
	}
	return resp.StatusCode, v
}

// Acceptance (issue 3, #4 and #5): a different body with the same key is
// a 422 that changes nothing; another tenant's key is another task.
func TestMismatchAndTenants(t *testing.T) {
	fake := startFake(t)
	g := startGateway(t, testConfig(t, fake.URL, newCluster(t).yaml(t, "")))
	r1, b1 := post(t, g.URL, "/v1/chat/completions", chatBody("m", "original", false), "Idempotency-Key", "k1")
	_, before := adminTask(t, g.URL, "k1", "team-a")
	r2, b2 := post(t, g.URL, "/v1/chat/completions", chatBody("m", "changed", false), "Idempotency-Key", "k1")
	if r1.StatusCode != 200 || r2.StatusCode != 422 {
		t.Fatalf("statuses %d %d: %s", r1.StatusCode, r2.StatusCode, b2)
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if json.Unmarshal(b2, &e) != nil || e.Error.Code != "idempotency_key_mismatch" || r2.Header.Get("x-should-retry") != "false" {
		t.Fatalf("422 body %s headers %v", b2, r2.Header)
	}
	_, after := adminTask(t, g.URL, "k1", "team-a")
	for _, f := range []string{"status", "fence", "fingerprint", "updated_at"} {
		if fmt.Sprint(before[f]) != fmt.Sprint(after[f]) {
			t.Fatalf("422 touched the task: %s %v -> %v", f, before[f], after[f])
		}
	}
	_, b3 := post(t, g.URL, "/v1/chat/completions", chatBody("m", "original", false), "Idempotency-Key", "k1")
	if !bytes.Equal(b1, b3) || fake.Calls() != 1 {
		t.Fatalf("replay after 422 differs or paid: calls %d", fake.Calls())
	}
	// Tenant B sends tenant A's key and body: a new task, never A's body.
	r4, b4 := post(t, g.URL, "/v1/chat/completions", chatBody("m", "original", false), "Idempotency-Key", "k1", "Authorization", "Bearer "+testClientKeyB)
	if r4.StatusCode != 200 || bytes.Equal(b1, b4) || r4.Header.Get("Idempotent-Replayed") != "false" || fake.Calls() != 2 {
		t.Fatalf("tenant B: status %d replayed %q same body %v calls %d", r4.StatusCode, r4.Header.Get("Idempotent-Replayed"), bytes.Equal(b1, b4), fake.Calls())
	}
	if code, _ := adminTask(t, g.URL, "k1", "team-b"); code != 200 {
		t.Fatalf("tenant B has no task of its own: %d", code)
	}
	if code, _ := adminTask(t, g.URL, "nope", "team-a"); code != 404 {
		t.Fatalf("unknown task: %d", code)
	}
}

// Acceptance (issue 3, #7): every target fails, the task is failed with
// its attempts; a retry with the key makes a fresh attempt that succeeds.
func TestFailedTaskRetries(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("a", upstreamtest.Behavior{Status: 503})
	fake.SetBehavior("b", upstreamtest.Behavior{Status: 503})
	routes := "routes:\n  - model: flaky\n    targets: [{provider: fake, model: a}, {provider: fake2, model: b}]\n"
	g := startGateway(t, testConfig(t, fake.URL, newCluster(t).yaml(t, "")+routes))
	body := chatBody("flaky", "hello", false)
	r1, b1 := post(t, g.URL, "/v1/chat/completions", body, "Idempotency-Key", "f1")
	if r1.StatusCode != 503 || !strings.Contains(string(b1), "2 upstream attempts") {
		t.Fatalf("all failed: %d %s", r1.StatusCode, b1)
	}
	_, task := adminTask(t, g.URL, "f1", "team-a")
	if task["status"] != "failed" || len(task["attempts"].([]any)) != 2 {
		t.Fatalf("failed task: %v", task)
	}
	fake.SetBehavior("a", upstreamtest.Behavior{})
	r2, _ := post(t, g.URL, "/v1/chat/completions", body, "Idempotency-Key", "f1")
	if r2.StatusCode != 200 || r2.Header.Get("Idempotent-Replayed") != "false" {
		t.Fatalf("retry: %d replayed %q", r2.StatusCode, r2.Header.Get("Idempotent-Replayed"))
	}
	_, task = adminTask(t, g.URL, "f1", "team-a")
	atts := task["attempts"].([]any)
	if task["status"] != "completed" || task["fence"].(float64) != 2 || len(atts) != 3 {
		t.Fatalf("after retry: %v", task)
	}
	last := atts[2].(map[string]any)
	if last["outcome"] != "success" || last["fence"].(float64) != 2 {
		t.Fatalf("last attempt %v", last)
	}
	if fake.CallsForModel("a") != 2 || fake.CallsForModel("b") != 1 {
		t.Fatalf("calls a=%d b=%d", fake.CallsForModel("a"), fake.CallsForModel("b"))
	}
}
