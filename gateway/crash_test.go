package main

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// killLeaderMidCall starts a gateway process, sends a keyed request whose
// upstream answer is slow, and SIGKILLs the process while the upstream is
// still answering. It returns the config the process used.
func killLeaderMidCall(t *testing.T, fake *upstreamtest.Server, cfg, key, body string) {
	t.Helper()
	p := startProcess(t, cfg)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testClientKey)
		req.Header.Set("Idempotency-Key", key)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, 10*time.Second, "the upstream call", func() bool { return fake.CallsForKey(key) == 1 })
	p.kill()
	wg.Wait()
}

// Acceptance (issue 3, #6; issue 10): the leader is SIGKILLed while the
// upstream is still answering; after the lease runs out a retry with the
// same key takes over with fence 2 and completes. The killed leader's
// call, which the provider may have charged for, stays in the ledger as
// abandoned at fence 1, before the take-over's attempt at fence 2, on
// both stores. (The store-level refusal of a late fence-1 write is in
// dedupe's store suite.)
func TestKilledLeaderIsTakenOver(t *testing.T) {
	for _, store := range []string{"postgres", "embedded"} {
		t.Run(store, func(t *testing.T) {
			fake := startFake(t)
			fake.SetBehavior("slow", upstreamtest.Behavior{FirstByteDelay: 2 * time.Second})
			extra := "dedupe: {lease: 1s, wait_timeout: 20s}\n"
			if store == "postgres" {
				extra = newCluster(t).yaml(t, "") + extra
			}
			// The embedded store's file (in testConfig's temporary
			// directory) is the same for the killed process and its successor.
			cfg := testConfig(t, fake.URL, extra)
			body := chatBody("slow", "kill me", false)
			killLeaderMidCall(t, fake, cfg, "zombie-1", body)

			g := startGateway(t, cfg)
			start := time.Now()
			resp, b := post(t, g.URL, "/v1/chat/completions", body, "Idempotency-Key", "zombie-1")
			if resp.StatusCode != 200 {
				t.Fatalf("retry: %d %s", resp.StatusCode, b)
			}
			t.Logf("take-over answered after %v", time.Since(start))
			_, task := adminTask(t, g.URL, "zombie-1", "team-a")
			if task["status"] != "completed" || task["fence"].(float64) != 2 {
				t.Fatalf("task after take-over: %v", task)
			}
			checkAbandonedLedger(t, task, "success")
			if fake.CallsForKey("zombie-1") != 2 {
				t.Fatalf("upstream calls = %d, want 2 (the killed one and the take-over)", fake.CallsForKey("zombie-1"))
			}
			m := scrape(t, g.URL)
			if !strings.Contains(m, `gateway_dedupe_total{outcome="reclaimed"} 1`) ||
				!strings.Contains(m, `gateway_attempts_abandoned_total{provider="fake"} 1`) {
				t.Fatalf("reclaim or abandoned attempt not counted:\n%s", m)
			}
			// The completed task now replays.
			r2, b2 := post(t, g.URL, "/v1/chat/completions", body, "Idempotency-Key", "zombie-1")
			if r2.Header.Get("Idempotent-Replayed") != "true" || string(b2) != string(b) {
				t.Fatalf("no replay after take-over")
			}
		})
	}
}

// checkAbandonedLedger checks the attempt log of a task whose fence-1
// leader died mid-call: its attempt abandoned at fence 1, then (with a
// non-empty next) the take-over's at fence 2 with that outcome.
func checkAbandonedLedger(t *testing.T, task map[string]any, next string) {
	t.Helper()
	attempts, _ := task["attempts"].([]any)
	want := 1
	if next != "" {
		want = 2
	}
	if len(attempts) != want {
		t.Fatalf("attempts %v, want %d", attempts, want)
	}
	a1, _ := attempts[0].(map[string]any)
	if a1["n"] != 1.0 || a1["fence"] != 1.0 || a1["outcome"] != "abandoned" || a1["provider"] != "fake" || a1["error"] == "" {
		t.Fatalf("attempt 1 = %v, want the killed leader's call abandoned at fence 1", a1)
	}
	if next == "" {
		return
	}
	a2, _ := attempts[1].(map[string]any)
	if a2["n"] != 2.0 || a2["fence"] != 2.0 || a2["outcome"] != next {
		t.Fatalf("attempt 2 = %v, want the take-over's at fence 2, %s", a2, next)
	}
}

// Acceptance (issue 3, #10): a zombie left by a killed process is
// reclaimed by the reaper without any client retry.
func TestReaperReclaimsZombie(t *testing.T) {
	cl := newCluster(t)
	fake := startFake(t)
	fake.SetBehavior("slow", upstreamtest.Behavior{FirstByteDelay: 2 * time.Second})
	cfg := testConfig(t, fake.URL, cl.yaml(t, "")+"dedupe: {lease: 500ms, reap_interval: 200ms}\n")
	killLeaderMidCall(t, fake, cfg, "zombie-2", chatBody("slow", "reap me", false))

	g := startGateway(t, cfg)
	waitFor(t, 10*time.Second, "the reaper", func() bool {
		_, task := adminTask(t, g.URL, "zombie-2", "team-a")
		return task["status"] == "failed" && task["fence"].(float64) == 2
	})
	_, task := adminTask(t, g.URL, "zombie-2", "team-a")
	checkAbandonedLedger(t, task, "")
	if m := scrape(t, g.URL); !strings.Contains(m, "gateway_zombies_reclaimed_total 1") ||
		!strings.Contains(m, `gateway_attempts_abandoned_total{provider="fake"} 1`) {
		t.Fatalf("reaper reclaim or abandoned attempt not counted:\n%s", m)
	}
	if fake.CallsForKey("zombie-2") != 1 {
		t.Fatalf("the reaper called upstream")
	}
}

// scrape returns the gateway's /metrics text.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// Acceptance (issue 3, #8): Redis stopped mid-run, requests still
// deduplicate through Postgres alone; Postgres unreachable answers 503
// under on_store_error: fail.
func TestStoresDown(t *testing.T) {
	cl := newCluster(t)
	fake := startFake(t)
	fake.SetBehavior("m", upstreamtest.Behavior{FirstByteDelay: 300 * time.Millisecond})
	t.Run("redis", func(t *testing.T) {
		redisProxy := startProxy(t, strings.TrimSuffix(strings.TrimPrefix(cl.redisURL, "redis://"), "/0"))
		g := startGateway(t, testConfig(t, fake.URL, cl.yaml(t, redisProxy.Addr())+"dedupe: {lease: 2s}\n"))
		rs := fire(t, []string{g.URL}, 20, chatBody("m", "redis up", false), "Idempotency-Key", "r-up")
		checkOnePaid(t, rs)
		before := scrape(t, g.URL)
		redisProxy.cut()
		fake.ResetCounters()
		rs = fire(t, []string{g.URL}, 20, chatBody("m", "redis down", false), "Idempotency-Key", "r-down")
		if n := fake.Calls(); n != 1 {
			t.Fatalf("with Redis down: upstream calls = %d, want 1", n)
		}
		checkOnePaid(t, rs)
		if strings.Contains(before, "gateway_lock_degraded_total") || !strings.Contains(scrape(t, g.URL), "gateway_lock_degraded_total") {
			t.Fatalf("degraded mode not counted when Redis went away (or counted before)")
		}
	})
	t.Run("postgres", func(t *testing.T) {
		host := strings.SplitN(strings.TrimPrefix(cl.pgURL, "postgres://postgres@"), "/", 2)
		pgProxy := startProxy(t, host[0])
		url := "postgres://postgres@" + pgProxy.Addr() + "/" + host[1]
		g := startGateway(t, testConfig(t, fake.URL, "store: {kind: postgres, url: \""+url+"\"}\n"))
		if r, _ := post(t, g.URL, "/v1/chat/completions", chatBody("m", "pg up", false)); r.StatusCode != 200 {
			t.Fatalf("with Postgres up: %d", r.StatusCode)
		}
		pgProxy.cut()
		fake.ResetCounters()
		r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", "pg down", false))
		if r.StatusCode != 503 || !strings.Contains(string(b), "store_unavailable") || fake.Calls() != 0 {
			t.Fatalf("with Postgres down: %d %s, upstream calls %d", r.StatusCode, b, fake.Calls())
		}
		rz, err := http.Get(g.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		rz.Body.Close()
		if rz.StatusCode != 503 {
			t.Fatalf("readyz with Postgres down: %d", rz.StatusCode)
		}
	})
}

// SIGTERM stops accepting, lets the in-flight request finish, then the
// process exits 0 (issue 2).
func TestSigtermDrainsInFlight(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("slow", upstreamtest.Behavior{FirstByteDelay: time.Second})
	p := startProcess(t, testConfig(t, fake.URL, ""))
	type answer struct {
		status int
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(chatBody("slow", "drain", false)))
		req.Header.Set("Authorization", "Bearer "+testClientKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		resp.Body.Close()
		done <- answer{status: resp.StatusCode}
	}()
	waitFor(t, 5*time.Second, "the upstream call", func() bool { return fake.Calls() == 1 })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if a := <-done; a.err != nil || a.status != 200 {
		t.Fatalf("in-flight request during shutdown: %d %v", a.status, a.err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs.String())
	}
	if _, err := http.Get(p.URL + "/healthz"); err == nil {
		t.Fatal("the gateway still accepts after SIGTERM")
	}
}

// A stream whose client left is still being recorded when SIGTERM comes:
// shutdown waits for it, so the retry after the restart is a replay.
func TestShutdownRecordsDetachedStream(t *testing.T) {
	fake := startFake(t)
	b := upstreamtest.Behavior{Chunks: 20, Interval: 50 * time.Millisecond}
	fake.SetBehavior("m", b)
	cfg := testConfig(t, fake.URL, "")
	p := startProcess(t, cfg)
	resp := openStream(t, p.URL, sdkBody("m", "shutdown"), "Idempotency-Key", "sd")
	r := &sseReader{br: bufio.NewReader(resp.Body)}
	if _, err := r.next(); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	g := startGateway(t, cfg)
	text, err := sdkStreamText(t, g.URL, "m", "shutdown", "sd")
	if err != nil || text != upstreamtest.StreamText(b) || fake.Calls() != 1 {
		t.Fatalf("after restart: err %v, calls %d, text %q", err, fake.Calls(), text)
	}
}

// A joiner whose leader is SIGKILLed mid-stream gets an error event soon
// after the lease runs out (not a stream that never ends), and the
// client's retry takes the task over and gets a whole answer.
func TestJoinerOfKilledLeader(t *testing.T) {
	cl := newCluster(t)
	fake := startFake(t)
	// 60 chunks of 50 ms: long enough to kill mid-stream, inside the
	// providers' 5 s attempt timeout.
	b := upstreamtest.Behavior{Chunks: 60, Interval: 50 * time.Millisecond}
	fake.SetBehavior("m", b)
	cfg := testConfig(t, fake.URL, cl.yaml(t, "")+"dedupe: {lease: 600ms}\n")
	a := startProcess(t, cfg)
	g := startGateway(t, cfg)
	body := sdkBody("m", "orphan")
	leader := openStream(t, a.URL, body, "Idempotency-Key", "orphan")
	lr := &sseReader{br: bufio.NewReader(leader.Body)}
	for i := 0; i < 3; i++ {
		if _, err := lr.next(); err != nil {
			t.Fatal(err)
		}
	}
	joiner := openStream(t, g.URL, body, "Idempotency-Key", "orphan")
	if joiner.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("no join: %v", joiner.Header)
	}
	jr := &sseReader{br: bufio.NewReader(joiner.Body)}
	if _, err := jr.next(); err != nil {
		t.Fatal(err)
	}
	a.kill()
	start := time.Now()
	restc := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(joiner.Body)
		restc <- b
	}()
	var rest []byte
	select {
	case rest = <-restc:
	case <-time.After(15 * time.Second): // lease 600 ms: generous for a loaded machine
		t.Fatal("the joiner of a dead leader did not end")
	}
	if !strings.Contains(string(rest), `data: {"error":`) || strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("joiner of a dead leader did not end with an error event:\n%s", rest)
	}
	t.Logf("joiner ended %v after the kill", time.Since(start))
	text, err := sdkStreamText(t, g.URL, "m", "orphan", "orphan")
	if err != nil || text != upstreamtest.StreamText(b) {
		t.Fatalf("retry after the dead leader: %v %q", err, text)
	}
	// The client has [DONE] a moment before the record is written.
	waitFor(t, 5*time.Second, "the retry to be recorded", func() bool {
		_, task := adminTask(t, g.URL, "orphan", "team-a")
		return task["status"] == "completed"
	})
	if _, task := adminTask(t, g.URL, "orphan", "team-a"); task["fence"].(float64) != 2 {
		t.Fatalf("task after the retry: %v", task)
	}
}
