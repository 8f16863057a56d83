package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/dedupe/dedupetest"
	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// withKeyLimits adds limits (a flow-mapping fragment such as
// "requests_per_minute: 3") to tenant team-a's key in a test config.
func withKeyLimits(t testing.TB, yamlText, limits string) string {
	t.Helper()
	old := "{tenant: team-a, key: " + testClientKey + "}"
	if !strings.Contains(yamlText, old) {
		t.Fatalf("team-a's key is not in the config")
	}
	return strings.Replace(yamlText, old, "{tenant: team-a, key: "+testClientKey+", "+limits+"}", 1)
}

// checkLimited asserts a limit answer: 429 with its code in OpenAI's
// shape and every retry and x-ratelimit header.
func checkLimited(t *testing.T, r *http.Response, b []byte, code string, limit int) {
	t.Helper()
	checkErrorShape(t, code, r.StatusCode, b, 429, code)
	ra, err1 := strconv.Atoi(r.Header.Get("Retry-After"))
	ms, err2 := strconv.Atoi(r.Header.Get("retry-after-ms"))
	if err1 != nil || err2 != nil || ra < 1 || ms < 1 || ra*1000 < ms {
		t.Fatalf("%s: Retry-After %q, retry-after-ms %q", code, r.Header.Get("Retry-After"), r.Header.Get("retry-after-ms"))
	}
	if got := r.Header.Get("x-ratelimit-limit-requests"); got != strconv.Itoa(limit) {
		t.Fatalf("%s: x-ratelimit-limit-requests = %q, want %d", code, got, limit)
	}
	if got := r.Header.Get("x-ratelimit-remaining-requests"); got != "0" {
		t.Fatalf("%s: x-ratelimit-remaining-requests = %q, want 0", code, got)
	}
	if _, err := time.ParseDuration(r.Header.Get("x-ratelimit-reset-requests")); err != nil {
		t.Fatalf("%s: x-ratelimit-reset-requests = %q", code, r.Header.Get("x-ratelimit-reset-requests"))
	}
}

// requests_per_minute: a burst of that many passes, the next is a 429
// that writes no record and calls no upstream; the other tenant is not
// affected; refusals are counted by tenant and reason.
func TestRequestsPerMinute(t *testing.T) {
	fake := startFake(t)
	g := startGateway(t, withKeyLimits(t, testConfig(t, fake.URL, ""), "requests_per_minute: 3"))
	for i := range 3 {
		r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", fmt.Sprint("rpm ", i), false))
		if r.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, r.StatusCode, b)
		}
		if r.Header.Get("x-ratelimit-limit-requests") != "3" || r.Header.Get("x-ratelimit-remaining-requests") != strconv.Itoa(2-i) {
			t.Fatalf("request %d: x-ratelimit headers %v", i, r.Header)
		}
	}
	calls := fake.Calls()
	r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", "one too many", false), "Idempotency-Key", "limited-1")
	checkLimited(t, r, b, "rate_limit_exceeded", 3)
	if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra > 20 {
		t.Fatalf("Retry-After %d: a token of 3/min comes within 20s", ra)
	}
	// A stream is refused the same way, before anything is sent.
	r, b = post(t, g.URL, "/v1/chat/completions", chatBody("m", "stream too", true), "Idempotency-Key", "limited-2")
	checkLimited(t, r, b, "rate_limit_exceeded", 3)
	if fake.Calls() != calls {
		t.Fatalf("a limited request called the upstream: %d calls, want %d", fake.Calls(), calls)
	}
	for _, key := range []string{"limited-1", "limited-2"} {
		if status, task := adminTask(t, g.URL, key, "team-a"); status != 404 {
			t.Fatalf("a limited request wrote a record: %d %v", status, task)
		}
	}
	if r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", "team b", false), "Authorization", "Bearer "+testClientKeyB); r.StatusCode != 200 {
		t.Fatalf("team-b, which has no limits: %d %s", r.StatusCode, b)
	}
	if m := scrape(t, g.URL); !strings.Contains(m, `gateway_tenant_limited_total{tenant="team-a",reason="rate"} 2`) ||
		!strings.Contains(m, `gateway_tenant_limited_total{tenant="team-a",reason="concurrency"} 0`) ||
		strings.Contains(m, `tenant="team-b"`) {
		t.Fatalf("limit metrics:\n%s", grepLines(m, "limited"))
	}
}

func grepLines(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// max_inflight: while one request (plain or stream) of the tenant runs,
// the next is a 429 tenant_concurrency_limit that reaches nothing; when
// it ends, the place is free again.
func TestMaxInflight(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("slow", upstreamtest.Behavior{FirstByteDelay: 700 * time.Millisecond})
	fake.SetBehavior("slow-stream", upstreamtest.Behavior{Chunks: 10, Interval: 70 * time.Millisecond})
	g := startGateway(t, withKeyLimits(t, testConfig(t, fake.URL, ""), "max_inflight: 1"))
	for _, model := range []string{"slow", "slow-stream"} {
		stream := model == "slow-stream"
		var wg sync.WaitGroup
		var first int
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.DefaultClient.Do(newPost(t, g.URL+"/v1/chat/completions", chatBody(model, "holds the place", stream)))
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			first = resp.StatusCode
		}()
		waitFor(t, 5*time.Second, "the first call upstream", func() bool { return fake.CallsForModel(model) == 1 })
		r, b := post(t, g.URL, "/v1/chat/completions", chatBody(model, "second", stream), "Idempotency-Key", "conc-"+model)
		checkLimited(t, r, b, "tenant_concurrency_limit", 1)
		if status, _ := adminTask(t, g.URL, "conc-"+model, "team-a"); status != 404 || fake.CallsForModel(model) != 1 {
			t.Fatalf("%s: a limited request left a record (%d) or called upstream (%d calls)", model, status, fake.CallsForModel(model))
		}
		if r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", "team b", false), "Authorization", "Bearer "+testClientKeyB); r.StatusCode != 200 {
			t.Fatalf("team-b: %d %s", r.StatusCode, b)
		}
		wg.Wait()
		if first != 200 {
			t.Fatalf("%s: the first request got %d", model, first)
		}
		if r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", "after "+model, false)); r.StatusCode != 200 {
			t.Fatalf("after the %s request ended: %d %s", model, r.StatusCode, b)
		}
	}
}

// A reload keeps the bucket of a key that is still configured (it is not
// a way to reset a limit) and applies new numbers and new keys.
func TestLimitsSurviveReload(t *testing.T) {
	fake := startFake(t)
	base := withKeyLimits(t, testConfig(t, fake.URL, ""), "requests_per_minute: 2")
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	write := func(text string) {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g := startGatewayConfig(t, cfg)
	for i := range 2 {
		if r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", fmt.Sprint("reload ", i), false)); r.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, r.StatusCode, b)
		}
	}
	// team-b gets a limit of 1 too.
	next := strings.Replace(base, "{tenant: team-b, key: "+testClientKeyB+"}", "{tenant: team-b, key: "+testClientKeyB+", requests_per_minute: 1}", 1)
	write(next)
	if err := g.app.reload(); err != nil {
		t.Fatal(err)
	}
	r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", "after reload", false))
	checkLimited(t, r, b, "rate_limit_exceeded", 2)
	authB := []string{"Authorization", "Bearer " + testClientKeyB}
	if r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", "b1", false), authB...); r.StatusCode != 200 {
		t.Fatalf("team-b's first: %d %s", r.StatusCode, b)
	}
	r, b = post(t, g.URL, "/v1/chat/completions", chatBody("m", "b2", false), authB...)
	checkLimited(t, r, b, "rate_limit_exceeded", 1)
	// Limit removed: team-a is free at once.
	write(strings.Replace(next, ", requests_per_minute: 2}", "}", 1))
	if err := g.app.reload(); err != nil {
		t.Fatal(err)
	}
	if r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", "unlimited", false)); r.StatusCode != 200 || r.Header.Get("x-ratelimit-limit-requests") != "" {
		t.Fatalf("after the limit was removed: %d %s %v", r.StatusCode, b, r.Header)
	}
}

// limitCluster renders the lock section of nodes that share Redis at addr
// under prefix (dedupe uses each node's embedded store).
func limitCluster(addr, prefix string) string {
	return fmt.Sprintf("lock: {kind: redis, redis: {addrs: [%q], key_prefix: %q}}\n", addr, prefix)
}

// Two nodes sharing Redis share one bucket; when Redis goes away, each
// node falls back to its own bucket at once (no request waits on the dead
// Redis or fails), and the degraded decisions are counted.
func TestSharedLimitsAcrossNodes(t *testing.T) {
	redisAddr := strings.TrimSuffix(strings.TrimPrefix(dedupetest.RedisURL(t), "redis://"), "/0")
	prefix := dedupetest.KeyPrefix(t)
	fake := startFake(t)
	proxy := startProxy(t, redisAddr)
	nodeA := startGateway(t, withKeyLimits(t, testConfig(t, fake.URL, limitCluster(proxy.Addr(), prefix)), "requests_per_minute: 4"))
	nodeB := startGateway(t, withKeyLimits(t, testConfig(t, fake.URL, limitCluster(proxy.Addr(), prefix)), "requests_per_minute: 4"))
	for i, g := range []*gw{nodeA, nodeB, nodeA} {
		if r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", fmt.Sprint("shared ", i), false)); r.StatusCode != 200 || r.Header.Get("x-ratelimit-remaining-requests") != strconv.Itoa(3-i) {
			t.Fatalf("request %d: %d %s remaining %q", i, r.StatusCode, b, r.Header.Get("x-ratelimit-remaining-requests"))
		}
	}
	if r, b := post(t, nodeB.URL, "/v1/chat/completions", chatBody("m", "shared 3", false)); r.StatusCode != 200 {
		t.Fatalf("request 3: %d %s", r.StatusCode, b)
	}
	calls := fake.Calls()
	for _, g := range []*gw{nodeA, nodeB} {
		r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", "over the shared limit", false))
		checkLimited(t, r, b, "rate_limit_exceeded", 4)
	}
	if fake.Calls() != calls {
		t.Fatalf("limited requests called upstream")
	}

	// Redis gone: node A has taken 2 tokens of its own bucket (it always
	// pays both), so it admits 2 more; node B likewise.
	proxy.cut()
	for _, g := range []*gw{nodeA, nodeB} {
		for i := range 3 {
			start := time.Now()
			r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", fmt.Sprint("redis down ", i), false))
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("with Redis down a request took %v", d)
			}
			if i < 2 && r.StatusCode != 200 {
				t.Fatalf("with Redis down, request %d: %d %s", i, r.StatusCode, b)
			}
			if i == 2 {
				checkLimited(t, r, b, "rate_limit_exceeded", 4)
			}
		}
		if m := scrape(t, g.URL); strings.Contains(m, "gateway_limit_degraded_total 0") {
			t.Fatalf("degraded limit decisions not counted:\n%s", grepLines(m, "limit"))
		}
	}
	if !strings.Contains(nodeA.logs.String(), "rate limits are per node until Redis answers again") {
		t.Fatalf("the fallback was not logged")
	}
}

// `gateway check` shows each key's limits (the key redacted) and reports a
// bad one with its line.
func TestCheckShowsLimits(t *testing.T) {
	fake := startFake(t)
	good := withKeyLimits(t, testConfig(t, fake.URL, ""), "max_inflight: 8, requests_per_minute: 120")
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-config", writeConfigFile(t, good)}, &out, &errOut); code != 0 {
		t.Fatalf("check: %d %s", code, errOut.String())
	}
	if s := out.String(); !strings.Contains(s, "max_inflight: 8") || !strings.Contains(s, "requests_per_minute: 120") || strings.Contains(s, testClientKey) {
		t.Fatalf("check output:\n%s", s)
	}
	bad := withKeyLimits(t, testConfig(t, fake.URL, ""), "max_inflight: -2")
	path := writeConfigFile(t, bad)
	out.Reset()
	errOut.Reset()
	if code := run([]string{"check", "-config", path}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), path+":5: auth.keys[0].max_inflight: must not be negative (0 = unlimited), got -2") {
		t.Fatalf("check of a negative limit: %d\n%s", code, errOut.String())
	}
}
