package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// promSample is one line of the Prometheus text format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// labelNames returns the sorted label names joined by commas.
func (s promSample) labelNames() string {
	names := make([]string, 0, len(s.labels))
	for n := range s.labels {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// series is the sample's identity: name and sorted labels.
func (s promSample) series() string {
	names := strings.Split(s.labelNames(), ",")
	parts := make([]string, 0, len(names))
	for _, n := range names {
		if n != "" {
			parts = append(parts, n+"="+strconv.Quote(s.labels[n]))
		}
	}
	return s.name + "{" + strings.Join(parts, ",") + "}"
}

// parseProm parses Prometheus text exposition; a malformed line fails the test.
func parseProm(t *testing.T, text string) []promSample {
	t.Helper()
	var out []promSample
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := promSample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			s.name = line[:i]
			rest = line[i+1:]
			for {
				rest = strings.TrimLeft(rest, ", ")
				if strings.HasPrefix(rest, "}") {
					rest = rest[1:]
					break
				}
				eq := strings.Index(rest, `="`)
				if eq <= 0 {
					t.Fatalf("malformed metrics line %q", line)
				}
				name := rest[:eq]
				rest = rest[eq+2:]
				var v strings.Builder
				closed := false
				for i := 0; i < len(rest); i++ {
					c := rest[i]
					if c == '\\' && i+1 < len(rest) {
						i++
						switch rest[i] {
						case 'n':
							v.WriteByte('\n')
						default:
							v.WriteByte(rest[i])
						}
						continue
					}
					if c == '"' {
						rest = rest[i+1:]
						closed = true
						break
					}
					v.WriteByte(c)
				}
				if !closed {
					t.Fatalf("malformed metrics line %q", line)
				}
				s.labels[name] = v.String()
			}
		} else {
			sp := strings.IndexByte(line, ' ')
			if sp <= 0 {
				t.Fatalf("malformed metrics line %q", line)
			}
			s.name, rest = line[:sp], line[sp:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			t.Fatalf("metrics line without value %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			t.Fatalf("metrics line %q: bad value: %v", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// sumSeries sums the value of every sample of name whose labels include want.
func sumSeries(samples []promSample, name string, want map[string]string) (float64, bool) {
	total, found := 0.0, false
	for _, s := range samples {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
				break
			}
		}
		if match {
			total += s.value
			found = true
		}
	}
	return total, found
}

// obsResult is what observabilityTraffic leaves for the assertions.
type obsResult struct {
	// texts are the /metrics of every gateway started, by role.
	texts map[string]string
	// combined is all texts concatenated.
	combined string
	// secrets are request data (prompts, keys) that must not be label values.
	secrets []string
	// config words allowed as route, provider and model label values.
	configWords map[string]bool
	// replayCompletion and replayPrompt are the fake's usage of the
	// replayed task (route "chat").
	replayCompletion, replayPrompt int
	fallbackRequests               int
}

// rawDo sends a request without testing.T, for goroutines.
func rawDo(url, body string, headers ...string) (int, http.Header, string, error) {
	req, err := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}

// observabilityTraffic runs gateways on Postgres and Redis and sends the
// traffic that produces every series of DESIGN.md section 6 (every
// gateway_dedupe_total outcome included), then scrapes every gateway.
func observabilityTraffic(t *testing.T) obsResult {
	t.Helper()
	cl := newCluster(t)
	fake := startFake(t)
	const promptTok, completionTok = 11, 7
	fake.SetBehavior("m-chat", upstreamtest.Behavior{PromptTokens: promptTok, CompletionTokens: completionTok})
	fake.SetBehavior("m-bad", upstreamtest.Behavior{Status: 503})
	streamB := upstreamtest.Behavior{Chunks: 15, Interval: 60 * time.Millisecond}
	fake.SetBehavior("m-stream", streamB)
	fake.SetBehavior("m-slow", upstreamtest.Behavior{FirstByteDelay: 5 * time.Second})

	routesYAML := `pricing:
  m-chat: {prompt_per_1m: 1.5, completion_per_1m: 2}
  chat: {prompt_per_1m: 3, completion_per_1m: 4}
  m-ok: {prompt_per_1m: 1, completion_per_1m: 1}
  m-stream: {prompt_per_1m: 1, completion_per_1m: 1}
  streamy: {prompt_per_1m: 1, completion_per_1m: 1}
routes:
  - model: fb
    targets: [{provider: fake, model: m-bad}, {provider: fake2, model: m-ok}]
  - model: chat
    targets: [{provider: fake, model: m-chat}]
  - model: streamy
    targets: [{provider: fake3, model: m-stream}]
  - model: slowpoke
    targets: [{provider: fake, model: m-slow}]
  - model: "*"
    targets: [{provider: fake}]
`
	res := obsResult{
		texts: map[string]string{}, replayCompletion: completionTok, replayPrompt: promptTok,
		configWords: map[string]bool{"none": true},
	}
	for _, w := range []string{"fb", "chat", "streamy", "slowpoke", "*", "fake", "fake2", "fake3", "m-bad", "m-ok", "m-chat", "m-stream", "m-slow"} {
		res.configWords[w] = true
	}

	// G4: a gateway of its own database whose finished tasks expire
	// quickly; its request goes first so the expiry overlaps the rest.
	cl2 := newCluster(t)
	g4 := startGateway(t, testConfig(t, fake.URL, cl2.yaml(t, "")+"dedupe: {key_ttl: 1s, reap_interval: 200ms}\n"+routesYAML))
	if r, b := post(t, g4.URL, "/v1/chat/completions", chatBody("chat", "expire me", false), "Idempotency-Key", "expire-key-1"); r.StatusCode != 200 {
		t.Fatalf("expiring task: %d %s", r.StatusCode, b)
	}
	res.secrets = append(res.secrets, "expire me", "expire-key-1")

	// G1: the main gateway, loaded from a file so that it can reload.
	mainCfg := testConfig(t, fake.URL, cl.yaml(t, "")+"dedupe: {lease: 500ms, wait_timeout: 10s}\n"+routesYAML)
	path := writeConfigFile(t, mainCfg)
	c1, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g1 := startGatewayConfig(t, c1)
	// G2: same cluster, rejects in-flight duplicates.
	g2 := startGateway(t, testConfig(t, fake.URL, cl.yaml(t, "")+"dedupe: {lease: 500ms, on_in_progress: reject}\n"+routesYAML))

	// new + replayed + mismatch on route chat.
	chat := chatBody("chat", "replay prompt text", false)
	r1, b1 := post(t, g1.URL, "/v1/chat/completions", chat, "Idempotency-Key", "replay-key-1")
	r2, b2 := post(t, g1.URL, "/v1/chat/completions", chat, "Idempotency-Key", "replay-key-1")
	if r1.StatusCode != 200 || r2.StatusCode != 200 || r2.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(b1, b2) {
		t.Fatalf("replay: %d %d replayed=%q\n%s\n%s", r1.StatusCode, r2.StatusCode, r2.Header.Get("Idempotent-Replayed"), b1, b2)
	}
	if r, b := post(t, g1.URL, "/v1/chat/completions", chatBody("chat", "mismatching prompt", false), "Idempotency-Key", "replay-key-1"); r.StatusCode != 422 {
		t.Fatalf("mismatch: %d %s", r.StatusCode, b)
	}
	res.secrets = append(res.secrets, "replay prompt text", "replay-key-1", "mismatching prompt")

	// Fallback: the first target answers 503, the second serves.
	for i := range 2 {
		prompt := fmt.Sprintf("fallback prompt %d", i)
		r, b := post(t, g1.URL, "/v1/chat/completions", chatBody("fb", prompt, false))
		if r.StatusCode != 200 || r.Header.Get("X-Gateway-Provider") != "fake2" {
			t.Fatalf("fallback: %d provider %q %s", r.StatusCode, r.Header.Get("X-Gateway-Provider"), b)
		}
		res.secrets = append(res.secrets, prompt)
		res.fallbackRequests++
	}

	// joined (G1) and conflict (G2) against a slow stream led by G1.
	streamBody := chatBody("streamy", "stream prompt text", true)
	type out struct {
		status int
		hdr    http.Header
		body   string
		err    error
	}
	outs := make([]out, 2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var o out
		o.status, o.hdr, o.body, o.err = rawDo(g1.URL, streamBody, "Idempotency-Key", "join-key-1")
		outs[0] = o
	}()
	waitFor(t, 5*time.Second, "the leader's upstream stream", func() bool { return fake.CallsForKey("join-key-1") == 1 })
	wg.Add(1)
	go func() {
		defer wg.Done()
		var o out
		o.status, o.hdr, o.body, o.err = rawDo(g1.URL, streamBody, "Idempotency-Key", "join-key-1")
		outs[1] = o
	}()
	if r, b := post(t, g2.URL, "/v1/chat/completions", streamBody, "Idempotency-Key", "join-key-1"); r.StatusCode != 409 {
		t.Fatalf("reject duplicate on G2: %d %s", r.StatusCode, b)
	}
	wg.Wait()
	want := upstreamtest.StreamText(streamB)
	for i, o := range outs {
		if o.err != nil || o.status != 200 || deltaTextAll(o.body) != want || !strings.Contains(o.body, "[DONE]") {
			t.Fatalf("stream %d: %d %v text %q, want %q", i, o.status, o.err, deltaTextAll(o.body), want)
		}
	}
	if outs[1].hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the duplicate stream did not join")
	}
	res.secrets = append(res.secrets, "stream prompt text", "join-key-1")

	// reclaimed: a leader process dies mid-call; after its lease a retry
	// on G1 takes the task over.
	slowBody := chatBody("slowpoke", "zombie prompt text", false)
	killLeaderMidCall(t, fake, mainCfg, "zombie-key-1", slowBody)
	fake.SetBehavior("m-slow", upstreamtest.Behavior{})
	if r, b := post(t, g1.URL, "/v1/chat/completions", slowBody, "Idempotency-Key", "zombie-key-1"); r.StatusCode != 200 {
		t.Fatalf("take-over: %d %s", r.StatusCode, b)
	}
	res.secrets = append(res.secrets, "zombie prompt text", "zombie-key-1")

	// G3: Postgres and Redis behind proxies, on_store_error: open.
	redisProxy := startProxy(t, strings.TrimSuffix(strings.TrimPrefix(cl.redisURL, "redis://"), "/0"))
	host := strings.SplitN(strings.TrimPrefix(cl.pgURL, "postgres://postgres@"), "/", 2)
	if len(host) != 2 {
		t.Fatalf("unexpected Postgres URL form %q", cl.pgURL)
	}
	pgProxy := startProxy(t, host[0])
	g3yaml := fmt.Sprintf("store: {kind: postgres, url: %q}\nlock: {kind: redis, redis: {addrs: [%q], key_prefix: %q}}\n",
		"postgres://postgres@"+pgProxy.Addr()+"/"+host[1], redisProxy.Addr(), cl.prefix)
	g3 := startGateway(t, testConfig(t, fake.URL, g3yaml+"dedupe: {on_store_error: open}\n"+routesYAML))
	for i, cut := range []*tcpProxy{nil, redisProxy, pgProxy} {
		if cut != nil {
			cut.cut()
		}
		prompt := fmt.Sprintf("store prompt %d", i)
		if r, b := post(t, g3.URL, "/v1/chat/completions", chatBody("chat", prompt, false)); r.StatusCode != 200 {
			t.Fatalf("G3 request %d: %d %s", i, r.StatusCode, b)
		}
		res.secrets = append(res.secrets, prompt)
	}

	// A config reload, so gateway_config_reloads_total exists.
	if err := g1.app.reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}

	waitFor(t, 10*time.Second, "gateway_tasks_expired_total on G4", func() bool {
		v, _ := sumSeries(parseProm(t, scrape(t, g4.URL)), "gateway_tasks_expired_total", nil)
		return v >= 1
	})

	for name, g := range map[string]string{"g1": g1.URL, "g2": g2.URL, "g3": g3.URL, "g4": g4.URL} {
		res.texts[name] = scrape(t, g)
	}
	names := make([]string, 0, len(res.texts))
	for n := range res.texts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		res.combined += res.texts[n]
	}
	return res
}

// contractMetric is one row of DESIGN.md section 6.
type contractMetric struct {
	name      string
	histogram bool
	labels    string // sorted label names, comma separated
}

var contractMetrics = []contractMetric{
	{"gateway_requests_total", false, "code,route"},
	{"gateway_request_duration_seconds", true, "route"},
	{"gateway_inflight_requests", false, ""},
	{"gateway_dedupe_total", false, "outcome"},
	{"gateway_upstream_attempts_total", false, "outcome,provider"},
	{"gateway_upstream_duration_seconds", true, "provider"},
	{"gateway_upstream_ttfb_seconds", true, "provider"},
	{"gateway_fallbacks_total", false, "from,route,to"},
	{"gateway_tokens_total", false, "kind,model,provider"},
	{"gateway_tokens_saved_total", false, "kind,model"},
	{"gateway_zombies_reclaimed_total", false, ""},
	{"gateway_store_errors_total", false, "op,store"},
	{"gateway_lock_degraded_total", false, ""},
	{"gateway_tasks_expired_total", false, ""},
	{"gateway_attempts_abandoned_total", false, "provider"},
	{"gateway_store_table_bytes", false, "table"},
	{"gateway_store_dead_tuples", false, "table"},
	{"gateway_store_oldest_processing_seconds", false, ""},
	{"gateway_cost_usd_total", false, "model"},
	{"gateway_cost_saved_usd_total", false, "model"},
	{"gateway_breaker_state", false, "model,provider"},
	{"gateway_breaker_transitions_total", false, "provider,to"},
	{"gateway_retries_total", false, "provider"},
	{"gateway_attempt_budget_exhausted_total", false, "route"},
	{"go_goroutines", false, ""},
	{"process_resident_memory_bytes", false, ""},
}

// Acceptance (issue 5): after traffic that exercises every path, /metrics
// has every series of DESIGN.md section 6 with the contract's label names,
// plausible values, and label values that come from configuration only.
func TestMetricsAfterTraffic(t *testing.T) {
	res := observabilityTraffic(t)
	all := parseProm(t, res.combined)
	per := map[string][]promSample{}
	for name, text := range res.texts {
		per[name] = parseProm(t, text)
	}

	byName := map[string]map[string]bool{} // name -> label-name sets seen
	for _, s := range all {
		if byName[s.name] == nil {
			byName[s.name] = map[string]bool{}
		}
		byName[s.name][s.labelNames()] = true
	}
	checkLabels := func(name, want string) {
		sets, ok := byName[name]
		if !ok {
			t.Errorf("metric %s is missing from /metrics", name)
			return
		}
		for got := range sets {
			if got != want {
				t.Errorf("metric %s has labels {%s}, want {%s}", name, got, want)
			}
		}
	}
	for _, m := range contractMetrics {
		if !m.histogram {
			checkLabels(m.name, m.labels)
			continue
		}
		le := "le"
		if m.labels != "" {
			le = strings.Join(sortedSplit(m.labels+",le"), ",")
		}
		checkLabels(m.name+"_bucket", le)
		checkLabels(m.name+"_sum", m.labels)
		checkLabels(m.name+"_count", m.labels)
		if _, ok := sumSeries(all, m.name+"_bucket", map[string]string{"le": "+Inf"}); !ok {
			t.Errorf("histogram %s has no le=\"+Inf\" bucket", m.name)
		}
	}

	// Each dedupe outcome, on the gateway that produced it.
	for _, c := range []struct{ gw, outcome string }{
		{"g1", "new"}, {"g1", "replayed"}, {"g1", "joined"}, {"g1", "mismatch"}, {"g1", "reclaimed"},
		{"g2", "conflict"}, {"g3", "bypassed"},
	} {
		if v, _ := sumSeries(per[c.gw], "gateway_dedupe_total", map[string]string{"outcome": c.outcome}); v < 1 {
			t.Errorf("%s: gateway_dedupe_total{outcome=%q} = %v, want >= 1", c.gw, c.outcome, v)
		}
	}
	for _, c := range []struct {
		gw, name string
		labels   map[string]string
		min      float64
	}{
		{"g1", "gateway_zombies_reclaimed_total", nil, 1},
		{"g1", "gateway_attempts_abandoned_total", map[string]string{"provider": "fake"}, 1},
		{"g3", "gateway_store_errors_total", map[string]string{"store": "record"}, 1},
		{"g3", "gateway_lock_degraded_total", nil, 1},
		{"g4", "gateway_tasks_expired_total", nil, 1},
		{"g1", "gateway_tokens_total", map[string]string{"provider": "fake", "model": "m-chat", "kind": "completion"}, float64(res.replayCompletion)},
		{"g1", "gateway_cost_usd_total", map[string]string{"model": "m-chat"}, 1e-9},
		{"g1", "gateway_cost_saved_usd_total", map[string]string{"model": "chat"}, 1e-9},
		{"g1", "gateway_upstream_attempts_total", map[string]string{"provider": "fake", "outcome": "error"}, 2},
		{"g1", "gateway_requests_total", map[string]string{"route": "chat", "code": "422"}, 1},
		{"g1", "gateway_config_reloads_total", map[string]string{"result": "success"}, 1},
	} {
		if v, ok := sumSeries(per[c.gw], c.name, c.labels); !ok || v < c.min {
			t.Errorf("%s: %s%v = %v (present %v), want >= %v", c.gw, c.name, c.labels, v, ok, c.min)
		}
	}

	// Exact values where the traffic fixes them.
	if v, _ := sumSeries(per["g1"], "gateway_tokens_saved_total", map[string]string{"model": "chat", "kind": "completion"}); v != float64(res.replayCompletion) {
		t.Errorf("tokens saved (completion) on route chat = %v, want the replayed task's %d", v, res.replayCompletion)
	}
	if v, _ := sumSeries(per["g1"], "gateway_tokens_saved_total", map[string]string{"model": "chat", "kind": "prompt"}); v != float64(res.replayPrompt) {
		t.Errorf("tokens saved (prompt) on route chat = %v, want the replayed task's %d", v, res.replayPrompt)
	}
	// The replay saved 11 prompt and 7 completion tokens at the route's price.
	wantSaved := (float64(res.replayPrompt)*3 + float64(res.replayCompletion)*4) / 1e6
	if v, _ := sumSeries(per["g1"], "gateway_cost_saved_usd_total", map[string]string{"model": "chat"}); v < wantSaved*0.999 || v > wantSaved*1.001 {
		t.Errorf("cost saved on route chat = %v, want %v", v, wantSaved)
	}
	if v, _ := sumSeries(per["g1"], "gateway_fallbacks_total", map[string]string{"route": "fb", "from": "fake", "to": "fake2"}); v != float64(res.fallbackRequests) {
		t.Errorf("fallbacks = %v, want %d (one per fallback request)", v, res.fallbackRequests)
	}
	if v, _ := sumSeries(per["g1"], "gateway_dedupe_total", map[string]string{"outcome": "replayed"}); v != 1 {
		t.Errorf("replayed = %v, want 1", v)
	}
	if v, _ := sumSeries(per["g1"], "gateway_dedupe_total", map[string]string{"outcome": "joined"}); v != 1 {
		t.Errorf("joined = %v, want 1", v)
	}
	if v, _ := sumSeries(per["g1"], "gateway_inflight_requests", nil); v != 0 {
		t.Errorf("inflight requests after all traffic = %v, want 0", v)
	}

	// Label values are configuration words and fixed vocabulary.
	outcomes := map[string]bool{"new": true, "replayed": true, "joined": true, "conflict": true, "mismatch": true,
		"reclaimed": true, "bypassed": true, "success": true, "timeout": true, "error": true, "rate_limited": true, "skipped": true, "cut": true}
	word := regexp.MustCompile(`^[a-z_]+$`)
	for _, s := range all {
		if !strings.HasPrefix(s.name, "gateway_") {
			continue
		}
		for k, v := range s.labels {
			ok := false
			switch {
			case k == "to" && s.name == "gateway_breaker_transitions_total":
				ok = v == "open" || v == "half_open" || v == "closed"
			case k == "route", k == "provider", k == "from", k == "to", k == "model":
				ok = res.configWords[v]
			case k == "outcome":
				ok = outcomes[v]
			case k == "kind":
				ok = v == "prompt" || v == "completion"
			case k == "code":
				n, err := strconv.Atoi(v)
				ok = err == nil && n >= 100 && n <= 599
			case k == "le":
				_, err := strconv.ParseFloat(v, 64)
				ok = err == nil || v == "+Inf"
			case k == "result":
				ok = v == "success" || v == "failure"
			default:
				ok = word.MatchString(v)
			}
			if !ok {
				t.Errorf("%s: label %s=%q is not a configuration word", s.series(), k, v)
			}
		}
	}
	for _, secret := range append(res.secrets, testClientKey, testAdminKey, "upstream-secret-key") {
		if strings.Contains(res.combined, secret) {
			t.Errorf("/metrics contains request data or a secret %q", secret)
		}
	}
}

func sortedSplit(s string) []string {
	parts := strings.Split(s, ",")
	sort.Strings(parts)
	return parts
}

// Acceptance (issue 5): every metric the dashboard and alert rules query
// is exported once the gateway has seen traffic.
func TestDashboardMetricsExported(t *testing.T) {
	names := deployMetricNames(t)
	res := observabilityTraffic(t)
	have := map[string]bool{}
	for _, s := range parseProm(t, res.combined) {
		have[s.name] = true
	}
	for name := range names {
		if !have[name] {
			t.Errorf("the dashboard or an alert uses %q, which no gateway exported", name)
		}
	}
}

// Acceptance (issue 5): logs and error answers never carry secrets,
// prompts or idempotency keys; each request is one JSON line with the
// documented fields.
func TestLogsHaveNoSecrets(t *testing.T) {
	const (
		upstreamKey = "sk-upstream-SECRET-123"
		clientKey   = "sk-client-SECRET-abc"
		adminKey    = "admin-SECRET-xyz"
		redisPass   = "redis-SECRET-pw"
		pgPass      = "pg-SECRET-pw"
		prompt      = "PROMPT-SECRET-456"
		idemKey     = "KEY-SECRET-789"
		wrongKey    = "sk-wrong-SECRET"
	)
	secrets := []string{upstreamKey, clientKey, adminKey, redisPass, pgPass, prompt, idemKey, wrongKey}
	cl := newCluster(t)
	fake := startFake(t)
	redisAddr := strings.TrimSuffix(strings.TrimPrefix(cl.redisURL, "redis://"), "/0")
	// Postgres trusts local connections, so the password is carried but unused.
	pgURL := strings.Replace(cl.pgURL, "postgres://postgres@", "postgres://postgres:"+pgPass+"@", 1)
	if pgURL == cl.pgURL {
		t.Fatalf("unexpected Postgres URL form %q", cl.pgURL)
	}
	cfgText := func(format string) string {
		return fmt.Sprintf(`listen: 127.0.0.1:0
auth:
  mode: keys
  keys:
    - {tenant: team-a, key: %s}
  admin_key: %s
log: {level: info, format: %s}
providers:
  fake: {base_url: %q, api_key: %s, timeout: 5s}
routes:
  - model: "*"
    targets: [{provider: fake}]
store: {kind: postgres, url: %q}
lock: {kind: redis, redis: {addrs: [%q], password: %s, key_prefix: %q}}
`, clientKey, adminKey, format, fake.URL, upstreamKey, pgURL, redisAddr, redisPass, cl.prefix)
	}

	send := func(url, auth, body string, headers ...string) (int, string) {
		resp, err := http.DefaultClient.Do(newPost(t, url+"/v1/chat/completions", body, append([]string{"Authorization", "Bearer " + auth}, headers...)...))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	noSecrets := func(what, text string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s contains %q:\n%s", what, s, text)
			}
		}
	}

	g := startGateway(t, cfgText("json"))
	requests := []struct {
		auth, body string
		headers    []string
		status     int
	}{
		{clientKey, chatBody("m", "say "+prompt, false), []string{"Idempotency-Key", idemKey}, 200},
		{clientKey, chatBody("m", "say "+prompt, false), []string{"Idempotency-Key", idemKey}, 200},
		{clientKey, chatBody("m", "stream "+prompt, true), nil, 200},
		{clientKey, chatBody("m", "other "+prompt, false), []string{"Idempotency-Key", idemKey}, 422},
		{wrongKey, chatBody("m", "unauthorized "+prompt, false), nil, 401},
		{clientKey, `{"model":"m","messages":[{"role":"user","content":"` + prompt + `"}]`, nil, 400},
		{clientKey, `{"model":"m","messages":` + prompt + `}`, nil, 400},
		{clientKey, chatBody("m", prompt, false), []string{"Idempotency-Key", idemKey + "\u00e9"}, 400},
	}
	for i, r := range requests {
		status, body := send(g.URL, r.auth, r.body, r.headers...)
		if status != r.status {
			t.Errorf("request %d: status %d, want %d: %s", i, status, r.status, body)
		}
		if status >= 400 {
			noSecrets(fmt.Sprintf("error answer of request %d", i), body)
		}
	}
	// Admin lookup with the wrong admin key is refused without an echo.
	req, _ := http.NewRequest("GET", g.URL+"/admin/tasks/"+idemKey+"?tenant=team-a", nil)
	req.Header.Set("Authorization", "Bearer "+wrongKey)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 && resp.StatusCode != 403 {
			t.Errorf("admin with a wrong key: %d %s", resp.StatusCode, b)
		}
		noSecrets("admin error answer", strings.ReplaceAll(string(b), idemKey, ""))
	}
	g.stop(t)

	logs := g.logs.String()
	noSecrets("the JSON log", logs)
	requestLines := 0
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line is not JSON: %v: %s", err, line)
			continue
		}
		if m["msg"] != "request" {
			continue
		}
		requestLines++
		for _, f := range []string{"request_id", "tenant", "route", "key_hash", "dedupe", "provider", "attempts", "status", "duration_ms", "prompt_tokens", "completion_tokens"} {
			if _, ok := m[f]; !ok {
				t.Errorf("request log line lacks %q: %s", f, line)
			}
		}
	}
	// One line per request: the API requests and the admin lookup.
	if requestLines != len(requests)+1 {
		t.Errorf("request log lines = %d, want %d (one per request)\n%s", requestLines, len(requests)+1, logs)
	}

	// gateway check prints the config without its secrets.
	path := writeConfigFile(t, cfgText("json"))
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-config", path}, &out, &errOut); code != 0 {
		t.Fatalf("check: exit %d: %s", code, errOut.String())
	}
	noSecrets("gateway check output", out.String()+errOut.String())

	// The text format writes one line per request too.
	gt := startGateway(t, cfgText("text"))
	for i := range 3 {
		if status, body := send(gt.URL, clientKey, chatBody("m", fmt.Sprintf("text %d %s", i, prompt), false)); status != 200 {
			t.Fatalf("text-format request: %d %s", status, body)
		}
	}
	gt.stop(t)
	textLogs := gt.logs.String()
	noSecrets("the text log", textLogs)
	n := 0
	sc := bufio.NewScanner(strings.NewReader(textLogs))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "msg=request ") {
			n++
			for _, f := range []string{"request_id=", "tenant=team-a", "route=", "key_hash=", "dedupe=new", "status=200", "duration_ms="} {
				if !strings.Contains(line, f) {
					t.Errorf("text request line lacks %q: %s", f, line)
				}
			}
		}
	}
	if n != 3 {
		t.Errorf("text log has %d request lines, want 3:\n%s", n, textLogs)
	}
}
