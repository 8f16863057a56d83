package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// Issue 11, acceptance 1: breakers shared by the cluster, tried against
// the fake upstream with real gateway processes sharing Redis.

// upstreamView is one target of GET /admin/upstreams.
type upstreamView struct {
	Provider            string    `json:"provider"`
	Model               string    `json:"model"`
	State               string    `json:"state"`
	Reason              string    `json:"reason"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	OpenUntil           time.Time `json:"open_until"`
	LastFailure         string    `json:"last_failure"`
	Shared              bool      `json:"shared"`
}

// adminUpstreams reads GET /admin/upstreams and returns the target of
// provider and model.
func adminUpstreams(t *testing.T, url, provider, model string) upstreamView {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/admin/upstreams", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Targets []upstreamView `json:"targets"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
		t.Fatalf("GET /admin/upstreams = %d %s", resp.StatusCode, b)
	}
	for _, v := range out.Targets {
		if v.Provider == provider && v.Model == model {
			return v
		}
	}
	t.Fatalf("GET /admin/upstreams has no target %s/%s: %s", provider, model, b)
	return upstreamView{}
}

// breakerGauge is this node's own view of a target, from /metrics (no
// Redis read, unlike /admin/upstreams).
func breakerGauge(t *testing.T, url, provider, model string) string {
	t.Helper()
	want := fmt.Sprintf(`gateway_breaker_state{provider=%q,model=%q} `, provider, model)
	for _, line := range strings.Split(scrape(t, url), "\n") {
		if v, ok := strings.CutPrefix(line, want); ok {
			return v
		}
	}
	t.Fatalf("/metrics of %s has no %s", url, want)
	return ""
}

// keyedPost sends a chat request with its own Idempotency-Key and
// returns the status, the provider that answered and the duration.
func keyedPost(t *testing.T, url, model, key string) (status int, provider string, took time.Duration) {
	t.Helper()
	start := time.Now()
	resp, b := post(t, url, "/v1/chat/completions", chatBody(model, "hello "+key, false), "Idempotency-Key", key)
	if resp.StatusCode != 200 {
		t.Logf("%s: %d %s", key, resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header.Get("X-Gateway-Provider"), time.Since(start)
}

// A hanging target costs its timeout only `failures` times: then it is
// skipped, on this node and (through Redis) on the other, without being
// called; after the cooldown exactly one request of the cluster probes it
// while 20 arrive; once it recovers, a probe closes it.
func TestBreakerSharedByTheCluster(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("mhang", upstreamtest.Behavior{Hang: true})
	cl := newCluster(t)
	cfg := providerConfig(t, fake.URL, `resilience:
  breaker: {failures: 3, cooldown: 3s, max_cooldown: 3s}
providers:
  dead: {base_url: FAKE_URL, api_key: k1, timeout: 1500ms, first_byte_timeout: 1500ms}
  alive: {base_url: FAKE_URL, api_key: k2, timeout: 5s}
`, cl.yaml(t, "")+`routes:
  - model: writer
    targets: [{provider: dead, model: mhang}, {provider: alive, model: mok}]
`)
	n1, n2 := startProcess(t, cfg), startProcess(t, cfg)

	// 1. Three requests pay the hang (concurrently, to keep the test short).
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if st, prov, _ := keyedPost(t, n1.URL, "writer", fmt.Sprintf("hang-%d", i)); st != 200 || prov != "alive" {
				t.Errorf("request %d: %d from %q, want 200 from the fallback", i, st, prov)
			}
		})
	}
	wg.Wait()
	if n := fake.CallsForModel("mhang"); n != 3 {
		t.Fatalf("calls of the hanging target = %d, want 3", n)
	}
	v := adminUpstreams(t, n1.URL, "dead", "mhang")
	if v.State != "open" || v.Reason != "failures" || v.ConsecutiveFailures != 3 || v.LastFailure != "timeout" || !v.Shared {
		t.Fatalf("after 3 timeouts: %+v, want open (failures, 3, timeout, shared)", v)
	}

	// 2. The next request skips it at once, on either node, without a call.
	st, prov, took := keyedPost(t, n1.URL, "writer", "skip-1")
	if st != 200 || prov != "alive" || took >= 1500*time.Millisecond {
		t.Fatalf("request after the breaker opened: %d from %q in %s, want 200 from alive well before the 1.5s timeout", st, prov, took)
	}
	task := coreAdminTask(t, n1.URL, "skip-1")
	if len(task.Attempts) != 2 || task.Attempts[0].Outcome != "skipped" || !strings.Contains(task.Attempts[0].Error, "breaker open until") {
		t.Fatalf("attempts = %+v, want a skipped row naming the breaker, then the fallback", task.Attempts)
	}
	// Node 2 learns it from Redis in the background (its own gauge, which
	// reads no Redis, turns open), then skips too.
	waitFor(t, 5*time.Second, "node 2 to see the breaker open", func() bool { return breakerGauge(t, n2.URL, "dead", "mhang") == "1" })
	if st, prov, _ := keyedPost(t, n2.URL, "writer", "skip-2"); st != 200 || prov != "alive" {
		t.Fatalf("node 2: %d from %q, want 200 from alive", st, prov)
	}
	if n := fake.CallsForModel("mhang"); n != 3 {
		t.Fatalf("calls of the open target = %d, want still 3: the second node called it", n)
	}

	// 3. After the cooldown: 20 requests on both nodes, one probe.
	time.Sleep(time.Until(v.OpenUntil) + 100*time.Millisecond)
	for i := range 20 {
		node := n1
		if i%2 == 1 {
			node = n2
		}
		wg.Go(func() {
			if st, prov, _ := keyedPost(t, node.URL, "writer", fmt.Sprintf("burst-%d", i)); st != 200 || prov != "alive" {
				t.Errorf("burst request %d: %d from %q, want 200 from alive", i, st, prov)
			}
		})
	}
	wg.Wait()
	if n := fake.CallsForModel("mhang"); n != 4 {
		t.Fatalf("calls of the half-open target during 20 requests = %d, want 4 (exactly one probe)", n)
	}
	v = adminUpstreams(t, n2.URL, "dead", "mhang")
	if v.State != "open" || v.ConsecutiveFailures != 4 {
		t.Fatalf("after the failed probe: %+v, want open again with 4 failures", v)
	}

	// 4. Recovery: the next probe succeeds and closes it for the cluster.
	fake.SetBehavior("mhang", upstreamtest.Behavior{})
	time.Sleep(time.Until(v.OpenUntil) + 100*time.Millisecond)
	if st, prov, _ := keyedPost(t, n2.URL, "writer", "probe-ok"); st != 200 || prov != "dead" {
		t.Fatalf("probe after recovery: %d from %q, want 200 from the recovered target", st, prov)
	}
	if v := adminUpstreams(t, n1.URL, "dead", "mhang"); v.State != "closed" || v.ConsecutiveFailures != 0 {
		t.Fatalf("after a successful probe: %+v, want closed with 0 failures", v)
	}
	if st, prov, _ := keyedPost(t, n1.URL, "writer", "closed-1"); st != 200 || prov != "dead" {
		t.Fatalf("node 1 after recovery: %d from %q, want 200 from the first target", st, prov)
	}
	m := scrape(t, n1.URL) + scrape(t, n2.URL)
	for _, to := range []string{"open", "half_open", "closed"} {
		if !strings.Contains(m, fmt.Sprintf(`gateway_breaker_transitions_total{provider="dead",to=%q} 1`, to)) &&
			!strings.Contains(m, fmt.Sprintf(`gateway_breaker_transitions_total{provider="dead",to=%q} 2`, to)) {
			t.Errorf("no transition of dead to %s counted:\n%s", to, grepLines(m, "gateway_breaker_transitions_total"))
		}
	}
	if !strings.Contains(m, `gateway_upstream_attempts_total{provider="dead",outcome="skipped"}`) {
		t.Errorf("skipped attempts not counted:\n%s", grepLines(m, "gateway_upstream_attempts_total"))
	}
}

// With Redis unreachable each node keeps its own breakers: the node that
// saw the failures skips the target, the other still calls it, and every
// request is answered.
func TestBreakerWithoutRedisIsPerNode(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("m503", upstreamtest.Behavior{Status: 503})
	cl := newCluster(t)
	u, err := url.Parse(cl.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	cfg := testConfig(t, fake.URL, cl.yaml(t, proxy.Addr())+`resilience: {breaker: {failures: 2, cooldown: 1m}}
routes:
  - model: r
    targets: [{provider: fake, model: m503}, {provider: fake2, model: mok}]
`)
	n1, n2 := startGateway(t, cfg), startGateway(t, cfg)
	if st, prov, _ := keyedPost(t, n1.URL, "r", "nr-0"); st != 200 || prov != "fake2" {
		t.Fatalf("with Redis: %d from %q", st, prov)
	}
	if v := adminUpstreams(t, n1.URL, "fake", "m503"); !v.Shared || v.ConsecutiveFailures != 1 {
		t.Fatalf("with Redis: %+v, want 1 failure, shared", v)
	}
	proxy.cut()
	for i := range 2 {
		if st, prov, _ := keyedPost(t, n1.URL, "r", fmt.Sprintf("nr-1-%d", i)); st != 200 || prov != "fake2" {
			t.Fatalf("node 1 without Redis, request %d: %d from %q", i, st, prov)
		}
	}
	if v := adminUpstreams(t, n1.URL, "fake", "m503"); v.State != "open" || v.Shared {
		t.Fatalf("node 1 without Redis: %+v, want open, its own state", v)
	}
	calls := fake.CallsForModel("m503")
	if st, prov, _ := keyedPost(t, n1.URL, "r", "nr-1-skip"); st != 200 || prov != "fake2" || fake.CallsForModel("m503") != calls {
		t.Fatalf("node 1 skips: %d from %q, calls %d -> %d", st, prov, calls, fake.CallsForModel("m503"))
	}
	// Node 2 never heard of it: it calls the target (and falls back).
	if st, prov, _ := keyedPost(t, n2.URL, "r", "nr-2"); st != 200 || prov != "fake2" || fake.CallsForModel("m503") != calls+1 {
		t.Fatalf("node 2: %d from %q, calls %d -> %d; want it to call the target itself", st, prov, calls, fake.CallsForModel("m503"))
	}
	if v := adminUpstreams(t, n2.URL, "fake", "m503"); v.Shared {
		t.Fatalf("node 2 without Redis: %+v, want its own state", v)
	}
}
