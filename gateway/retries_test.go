package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// Issue 11: retries of the same target, 429 cooling, auth cooling, the
// forced call when every target is open, and max_attempts.

// attemptsOf is the provider/model/outcome/status list of a task's log.
func attemptsOf(task taskView) string {
	var parts []string
	for _, a := range task.Attempts {
		parts = append(parts, fmt.Sprintf("%s/%s:%s:%d", a.Provider, a.Model, a.Outcome, a.HTTPStatus))
	}
	return strings.Join(parts, " ")
}

// Retries (connect, 429, 5xx) go to the same target before the fallback,
// each its own attempt row, counted by gateway_retries_total; timeouts
// are not retried.
func TestRetriesBeforeFallback(t *testing.T) {
	fake := startFake(t)
	fake.SetSequence("m5xx", upstreamtest.Behavior{Status: 503}, upstreamtest.Behavior{Status: 500}, upstreamtest.Behavior{})
	fake.SetBehavior("mhang", upstreamtest.Behavior{Hang: true})
	// A port nobody listens on: connect errors.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	g := startGateway(t, providerConfig(t, fake.URL, fmt.Sprintf(`resilience:
  retries: 2
  retry_backoff: 20ms
providers:
  flaky: {base_url: FAKE_URL, api_key: k, timeout: 5s}
  gone: {base_url: %q, api_key: k, timeout: 5s}
  slow: {base_url: FAKE_URL, api_key: k, timeout: 300ms, first_byte_timeout: 300ms}
  backup: {base_url: FAKE_URL, api_key: k, timeout: 5s}
`, refused), `routes:
  - model: flaky
    targets: [{provider: flaky, model: m5xx}, {provider: backup, model: mok}]
  - model: gone
    targets: [{provider: gone, model: mgone}, {provider: backup, model: mok}]
  - model: slow
    targets: [{provider: slow, model: mhang}, {provider: backup, model: mok}]
`))
	f := func(route, key, wantProvider, wantLog string) {
		t.Helper()
		resp, b := post(t, g.URL, "/v1/chat/completions", chatBody(route, key, false), "Idempotency-Key", key)
		if resp.StatusCode != 200 || resp.Header.Get("X-Gateway-Provider") != wantProvider {
			t.Fatalf("%s: %d from %q (%s), want 200 from %s", route, resp.StatusCode, resp.Header.Get("X-Gateway-Provider"), b, wantProvider)
		}
		if got := attemptsOf(coreAdminTask(t, g.URL, key)); got != wantLog {
			t.Fatalf("%s: attempts\n got %s\nwant %s", route, got, wantLog)
		}
	}
	// Two 5xx, then the same target answers.
	f("flaky", "r-flaky", "flaky", "flaky/m5xx:error:503 flaky/m5xx:error:500 flaky/m5xx:success:200")
	// Connection refused three times (1 + 2 retries), then the fallback.
	f("gone", "r-gone", "backup", "gone/mgone:error:0 gone/mgone:error:0 gone/mgone:error:0 backup/mok:success:200")
	// A timeout may still be paid for upstream: never retried.
	f("slow", "r-slow", "backup", "slow/mhang:timeout:0 backup/mok:success:200")
	if n := fake.CallsForModel("mhang"); n != 1 {
		t.Fatalf("calls of the hanging target = %d, want 1 (no retry after a timeout)", n)
	}
	m := scrape(t, g.URL)
	for _, want := range []string{
		`gateway_retries_total{provider="flaky"} 2`, `gateway_retries_total{provider="gone"} 2`,
		`gateway_retries_total{provider="slow"} 0`, `gateway_retries_total{provider="backup"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(m, "gateway_retries_total"))
		}
	}
}

// A stream is retried only before its first byte: once the client has
// bytes, a cut stream ends in an error event, counted as cut.
func TestStreamCutNotRetried(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("mcut", upstreamtest.Behavior{DropAfter: 2, Chunks: 5})
	g := startGateway(t, testConfig(t, fake.URL, `resilience: {retries: 3, retry_backoff: 1ms}
routes:
  - model: cut
    targets: [{provider: fake, model: mcut}, {provider: fake2, model: mok}]
`))
	resp, b := post(t, g.URL, "/v1/chat/completions", chatBody("cut", "x", true), "Idempotency-Key", "cut-1")
	if resp.StatusCode != 200 || !strings.Contains(string(b), "stream_interrupted") {
		t.Fatalf("cut stream: %d %s, want 200 ending in stream_interrupted", resp.StatusCode, b)
	}
	if n := fake.CallsForModel("mcut"); n != 1 || fake.CallsForModel("mok") != 0 {
		t.Fatalf("calls: mcut %d, mok %d; want 1 and 0", n, fake.CallsForModel("mok"))
	}
	waitFor(t, 5*time.Second, "the cut attempt to be recorded", func() bool {
		return attemptsOf(coreAdminTask(t, g.URL, "cut-1")) == "fake/mcut:cut:200"
	})
	if v := adminUpstreams(t, g.URL, "fake", "mcut"); v.LastFailure != "cut" || v.ConsecutiveFailures != 1 {
		t.Fatalf("breaker after a cut stream: %+v, want 1 failure of class cut", v)
	}
}

// A 429 cools its target for the provider's Retry-After: the next
// request skips it; a Retry-After within max_retry_wait is waited and
// retried instead of falling back.
func TestRateLimitHonoursRetryAfter(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("m429", upstreamtest.Behavior{Status: 429, RetryAfter: "3"})
	fake.SetSequence("mbrief", upstreamtest.Behavior{Status: 429, RetryAfterMs: "150"}, upstreamtest.Behavior{})
	g := startGateway(t, providerConfig(t, fake.URL, `providers:
  limited: {base_url: FAKE_URL, api_key: k, timeout: 5s}
  brief: {base_url: FAKE_URL, api_key: k, timeout: 5s, resilience: {retries: 1, max_retry_wait: 1s}}
  backup: {base_url: FAKE_URL, api_key: k, timeout: 5s}
`, `routes:
  - model: limited
    targets: [{provider: limited, model: m429}, {provider: backup, model: mok}]
  - model: brief
    targets: [{provider: brief, model: mbrief}, {provider: backup, model: mok}]
`))
	before := time.Now()
	if st, prov, _ := keyedPost(t, g.URL, "limited", "rl-1"); st != 200 || prov != "backup" {
		t.Fatalf("429: %d from %q, want 200 from backup", st, prov)
	}
	v := adminUpstreams(t, g.URL, "limited", "m429")
	if v.State != "open" || v.Reason != "rate_limited" || v.ConsecutiveFailures != 0 ||
		v.OpenUntil.Before(before.Add(2500*time.Millisecond)) || v.OpenUntil.After(time.Now().Add(3500*time.Millisecond)) {
		t.Fatalf("after a 429 with Retry-After: 3: %+v, want open (rate_limited) for about 3s, no failure counted", v)
	}
	if st, prov, _ := keyedPost(t, g.URL, "limited", "rl-2"); st != 200 || prov != "backup" {
		t.Fatalf("during the cooling: %d from %q, want 200 from backup", st, prov)
	}
	if n := fake.CallsForModel("m429"); n != 1 {
		t.Fatalf("calls of the rate-limited target = %d, want 1", n)
	}
	if got := attemptsOf(coreAdminTask(t, g.URL, "rl-2")); got != "limited/m429:skipped:0 backup/mok:success:200" {
		t.Fatalf("attempts during the cooling: %s", got)
	}

	// retry-after-ms 150 is within max_retry_wait: wait it, retry, answer.
	st, prov, took := keyedPost(t, g.URL, "brief", "rl-3")
	if st != 200 || prov != "brief" || took < 150*time.Millisecond {
		t.Fatalf("brief 429: %d from %q after %s, want 200 from brief after waiting its 150ms", st, prov, took)
	}
	if got := attemptsOf(coreAdminTask(t, g.URL, "rl-3")); got != "brief/mbrief:rate_limited:429 brief/mbrief:success:200" {
		t.Fatalf("attempts of the retried 429: %s", got)
	}
	if v := adminUpstreams(t, g.URL, "brief", "mbrief"); v.State != "closed" {
		t.Fatalf("after the retry succeeded: %+v, want closed", v)
	}
}

// A 401 cools every target of the provider, logged as an error that names
// the provider and never its key.
func TestAuthFailureCoolsTheProvider(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("m401", upstreamtest.Behavior{Status: 401})
	g := startGateway(t, providerConfig(t, fake.URL, `providers:
  revoked: {base_url: FAKE_URL, api_key: sk-revoked-upstream-key, timeout: 5s}
  backup: {base_url: FAKE_URL, api_key: k, timeout: 5s}
`, `routes:
  - model: a
    targets: [{provider: revoked, model: m401}, {provider: backup, model: mok}]
  - model: b
    targets: [{provider: revoked, model: mother}, {provider: backup, model: mok}]
`))
	// fallback_on does not cover 401 by default: the client gets it.
	resp, b := post(t, g.URL, "/v1/chat/completions", chatBody("a", "x", false), "Idempotency-Key", "auth-1")
	if resp.StatusCode != 401 {
		t.Fatalf("401 upstream: %d %s", resp.StatusCode, b)
	}
	// Another model of the same provider is skipped now.
	if st, prov, _ := keyedPost(t, g.URL, "b", "auth-2"); st != 200 || prov != "backup" {
		t.Fatalf("other model of the cooled provider: %d from %q, want 200 from backup", st, prov)
	}
	if n := fake.CallsForModel("mother"); n != 0 {
		t.Fatalf("the cooled provider was called %d times", n)
	}
	task := coreAdminTask(t, g.URL, "auth-2")
	if got := attemptsOf(task); got != "revoked/mother:skipped:0 backup/mok:success:200" || !strings.Contains(task.Attempts[0].Error, "rejected its key") {
		t.Fatalf("attempts: %s (%q)", got, task.Attempts[0].Error)
	}
	if v := adminUpstreams(t, g.URL, "revoked", "mother"); v.State != "open" || v.Reason != "auth" {
		t.Fatalf("other target of the provider: %+v, want open (auth)", v)
	}
	logs := g.logs.String()
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "rejected its API key") {
			line = l
		}
	}
	if !strings.Contains(line, `"level":"ERROR"`) || !strings.Contains(line, `"provider":"revoked"`) {
		t.Fatalf("no error log naming the provider; logs:\n%s", logs)
	}
	if strings.Contains(logs, "sk-revoked-upstream-key") {
		t.Fatal("the provider's key is in the log")
	}
}

// A route whose only target is open still makes a real attempt: the
// gateway never fails a request without trying.
func TestOnlyTargetOpenIsTried(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("m503", upstreamtest.Behavior{Status: 503})
	g := startGateway(t, testConfig(t, fake.URL, `resilience: {breaker: {failures: 2, cooldown: 1m}}
routes:
  - model: only
    targets: [{provider: fake, model: m503}]
`))
	for i := range 2 {
		if st, _, _ := keyedPost(t, g.URL, "only", fmt.Sprintf("only-%d", i)); st != 503 {
			t.Fatalf("request %d: %d, want the upstream's 503", i, st)
		}
	}
	if v := adminUpstreams(t, g.URL, "fake", "m503"); v.State != "open" {
		t.Fatalf("after 2 failures: %+v, want open", v)
	}
	fake.SetBehavior("m503", upstreamtest.Behavior{})
	st, prov, _ := keyedPost(t, g.URL, "only", "only-open")
	if st != 200 || prov != "fake" || fake.CallsForModel("m503") != 3 {
		t.Fatalf("open only target: %d from %q, %d calls; want it called (200, 3 calls)", st, prov, fake.CallsForModel("m503"))
	}
	if got := attemptsOf(coreAdminTask(t, g.URL, "only-open")); got != "fake/m503:skipped:0 fake/m503:success:200" {
		t.Fatalf("attempts: %s, want the skipped row and the forced call", got)
	}
	// The forced call was its probe: it closed the breaker.
	if v := adminUpstreams(t, g.URL, "fake", "m503"); v.State != "closed" {
		t.Fatalf("after the forced call succeeded: %+v, want closed", v)
	}
}

// max_attempts caps a request across retries and targets.
func TestMaxAttempts(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("m503", upstreamtest.Behavior{Status: 503})
	g := startGateway(t, testConfig(t, fake.URL, `resilience: {max_attempts: 3, retries: 1, retry_backoff: 1ms}
routes:
  - model: capped
    targets: [{provider: fake, model: m503}, {provider: fake2, model: m503}, {provider: fake3, model: m503}]
`))
	resp, b := post(t, g.URL, "/v1/chat/completions", chatBody("capped", "x", false), "Idempotency-Key", "cap-1")
	if resp.StatusCode != 503 || !strings.Contains(string(b), "max_attempts") {
		t.Fatalf("capped request: %d %s, want 503 naming max_attempts", resp.StatusCode, b)
	}
	if n := fake.CallsForModel("m503"); n != 3 {
		t.Fatalf("calls = %d, want max_attempts = 3", n)
	}
	if got := attemptsOf(coreAdminTask(t, g.URL, "cap-1")); got != "fake/m503:error:503 fake/m503:error:503 fake2/m503:error:503" {
		t.Fatalf("attempts: %s", got)
	}
}
