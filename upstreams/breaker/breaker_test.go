package breaker

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every behaviour runs in process and, with GATEWAY_TEST_REDIS_URL, over
// Redis: both must make the same decisions.
func TestBreaker(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			t.Run("OpensAfterFailures", func(t *testing.T) { testOpensAfterFailures(t, m) })
			t.Run("SuccessResetsFailures", func(t *testing.T) { testSuccessResets(t, m) })
			t.Run("OneProbe", func(t *testing.T) { testOneProbe(t, m) })
			t.Run("ProbeSuccessCloses", func(t *testing.T) { testProbeSuccessCloses(t, m) })
			t.Run("ProbeFailureDoubles", func(t *testing.T) { testProbeFailureDoubles(t, m) })
			t.Run("RateLimited", func(t *testing.T) { testRateLimited(t, m) })
			t.Run("AuthCoolsProvider", func(t *testing.T) { testAuthCoolsProvider(t, m) })
			t.Run("ForceSoonest", func(t *testing.T) { testForceSoonest(t, m) })
			t.Run("Snapshot", func(t *testing.T) { testSnapshot(t, m) })
			t.Run("PeekTakesNoProbe", func(t *testing.T) { testPeek(t, m) })
		})
	}
}

// fresh gives each subtest its own key space in Redis.
func (m mode) fresh(t *testing.T) mode {
	if m.redis != nil {
		m.prefix += t.Name() + ":"
	}
	return m
}

func testOpensAfterFailures(t *testing.T, m mode) {
	m = m.fresh(t)
	clk := newClock()
	b := m.new(t, clk, testYAML)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		d := b.Allow(ctx, pa)
		expect(t, d, true, false, ReasonNone, time.Time{})
		b.Report(d, Result{Class: Timeout})
	}
	if got := metric(t, b, `gateway_breaker_state{provider="p",model="a"}`); got != 0 {
		t.Fatalf("state gauge after 2 failures = %v, want 0 (closed)", got)
	}
	// A pass-through target is labelled as its route is written, "*".
	if got := metric(t, b, `gateway_breaker_state{provider="q",model="*"}`); got != 0 {
		t.Fatalf("state gauge of the pass-through target = %v, want 0 (closed)", got)
	}
	d := b.Allow(ctx, pa)
	b.Report(d, Result{Class: ServerError})
	until := clk.Now().Add(30 * time.Second)
	// The third failure opens it: skipped at once, with when it closes.
	d = b.Allow(ctx, pa)
	expect(t, d, false, false, ReasonFailures, until)
	if want := "breaker open until 12:00:30 UTC after 3 consecutive failures (last: server_error)"; d.String() != want {
		t.Fatalf("skip message = %q, want %q", d, want)
	}
	clk.Advance(29 * time.Second)
	expect(t, b.Allow(ctx, pa), false, false, ReasonFailures, until)
	// Other targets, even of the same provider, are untouched.
	expect(t, b.Allow(ctx, pb), true, false, ReasonNone, time.Time{})
	expect(t, b.Allow(ctx, qa), true, false, ReasonNone, time.Time{})
	if got := metric(t, b, `gateway_breaker_state{provider="p",model="a"}`); got != 1 {
		t.Fatalf("state gauge = %v, want 1 (open)", got)
	}
	if got := metric(t, b, `gateway_breaker_transitions_total{provider="p",to="open"}`); got != 1 {
		t.Fatalf("open transitions = %v, want 1", got)
	}
	// Each class of failure counts: connect and cut too.
	fail(b, pb, 1, Connect)
	fail(b, pb, 1, Cut)
	fail(b, pb, 1, Timeout)
	expect(t, b.Allow(ctx, pb), false, false, ReasonFailures, clk.Now().Add(30*time.Second))
}

func testSuccessResets(t *testing.T, m mode) {
	m = m.fresh(t)
	clk := newClock()
	b := m.new(t, clk, testYAML)
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		fail(b, pa, 2, Timeout)
		b.Report(b.Allow(ctx, pa), Result{Class: Success})
	}
	expect(t, b.Allow(ctx, pa), true, false, ReasonNone, time.Time{})
	// An upstream 4xx is an answer: the target is healthy.
	fail(b, pa, 2, Timeout)
	b.Report(b.Allow(ctx, pa), Result{Class: ClassOf(400)})
	fail(b, pa, 2, Timeout)
	expect(t, b.Allow(ctx, pa), true, false, ReasonNone, time.Time{})
	fail(b, pb, 1, Timeout)
	if s := b.Snapshot(ctx); s[0].ConsecutiveFailures != 2 || s[1].ConsecutiveFailures != 1 {
		t.Fatalf("consecutive failures = %d, %d; want 2, 1", s[0].ConsecutiveFailures, s[1].ConsecutiveFailures)
	}
}

// open opens t and moves the clock to the end of its cooldown.
func open(t *testing.T, b *Breaker, clk *clock, tg Target) {
	t.Helper()
	fail(b, tg, 3, Timeout)
	if d := b.Allow(context.Background(), tg); d.Call {
		t.Fatalf("%v not open after 3 failures", tg)
	}
	clk.Advance(30 * time.Second)
}

func testOneProbe(t *testing.T, m mode) {
	m = m.fresh(t)
	clk := newClock()
	b := m.new(t, clk, testYAML)
	open(t, b, clk, pa)
	if got := metric(t, b, `gateway_breaker_state{provider="p",model="a"}`); got != 2 {
		t.Fatalf("state gauge after the cooldown = %v, want 2 (half-open)", got)
	}
	ds := allowConcurrently(b, pa, 20)
	probes := 0
	for _, d := range ds {
		switch {
		case d.Probe:
			probes++
			if !d.Call {
				t.Fatal("a probe must be called")
			}
		case d.Call || d.Reason != ReasonProbing:
			t.Fatalf("a request other than the probe got %+v (%s)", d, d)
		}
	}
	if probes != 1 {
		t.Fatalf("%d probes among 20 requests, want exactly 1", probes)
	}
	if got := metric(t, b, `gateway_breaker_transitions_total{provider="p",to="half_open"}`); got != 1 {
		t.Fatalf("half_open transitions = %v, want 1", got)
	}
}

// allowConcurrently calls Allow n times at once, over the given breakers
// in turn.
func allowConcurrently(bs any, tg Target, n int) []Decision {
	var list []*Breaker
	switch v := bs.(type) {
	case *Breaker:
		list = []*Breaker{v}
	case []*Breaker:
		list = v
	}
	ds := make([]Decision, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			ds[i] = list[i%len(list)].Allow(context.Background(), tg)
		}()
	}
	start.Done()
	wg.Wait()
	return ds
}

func testProbeSuccessCloses(t *testing.T, m mode) {
	m = m.fresh(t)
	clk := newClock()
	b := m.new(t, clk, testYAML)
	ctx := context.Background()
	open(t, b, clk, pa)
	d := b.Allow(ctx, pa)
	expect(t, d, true, true, ReasonNone, time.Time{})
	b.Report(d, Result{Class: Success})
	expect(t, b.Allow(ctx, pa), true, false, ReasonNone, time.Time{})
	if s := b.Snapshot(ctx)[0]; s.State != Closed || s.ConsecutiveFailures != 0 || !s.OpenUntil.IsZero() || s.LastFailure != Timeout {
		t.Fatalf("after the probe: %+v; want closed, no failures, last failure kept", s)
	}
	for series, want := range map[string]float64{
		`gateway_breaker_state{provider="p",model="a"}`:                  0,
		`gateway_breaker_transitions_total{provider="p",to="open"}`:      1,
		`gateway_breaker_transitions_total{provider="p",to="half_open"}`: 1,
		`gateway_breaker_transitions_total{provider="p",to="closed"}`:    1,
	} {
		if got := metric(t, b, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	// Closed again means failures count from zero.
	fail(b, pa, 2, Timeout)
	expect(t, b.Allow(ctx, pa), true, false, ReasonNone, time.Time{})
}

func testProbeFailureDoubles(t *testing.T, m mode) {
	m = m.fresh(t)
	clk := newClock()
	b := m.new(t, clk, testYAML)
	ctx := context.Background()
	open(t, b, clk, pa)
	// cooldown 30s, max_cooldown 2m: 60s, 120s, 120s.
	for _, cooldown := range []time.Duration{time.Minute, 2 * time.Minute, 2 * time.Minute} {
		d := b.Allow(ctx, pa)
		expect(t, d, true, true, ReasonNone, time.Time{})
		b.Report(d, Result{Class: Connect})
		until := clk.Now().Add(cooldown)
		expect(t, b.Allow(ctx, pa), false, false, ReasonFailures, until)
		clk.Advance(cooldown - time.Second)
		expect(t, b.Allow(ctx, pa), false, false, ReasonFailures, until)
		clk.Advance(time.Second)
	}
	if got := metric(t, b, `gateway_breaker_transitions_total{provider="p",to="open"}`); got != 4 {
		t.Fatalf("open transitions = %v, want 4 (the opening and 3 failed probes)", got)
	}
	// A request that is not the probe does not reopen a half-open target.
	d := b.Allow(ctx, pa)
	expect(t, d, true, true, ReasonNone, time.Time{})
	b.Report(Decision{Target: pa}, Result{Class: Timeout})
	expect(t, b.Allow(ctx, pa), false, false, ReasonProbing, clk.Now())
	b.Report(d, Result{Class: Success})
	if s := b.Snapshot(ctx)[0]; s.State != Closed || s.CooldownMS != 0 {
		t.Fatalf("after a successful probe: %+v, want closed with the cooldown reset", s)
	}
	// Reopened later, it starts again from the base cooldown.
	fail(b, pa, 3, Timeout)
	expect(t, b.Allow(ctx, pa), false, false, ReasonFailures, clk.Now().Add(30*time.Second))
}

func testRateLimited(t *testing.T, m mode) {
	m = m.fresh(t)
	clk := newClock()
	b := m.new(t, clk, testYAML)
	ctx := context.Background()
	// A 429 with Retry-After cools the target that long, at once.
	b.Report(b.Allow(ctx, pa), Result{Class: RateLimited, RetryAfter: 7 * time.Second})
	until := clk.Now().Add(7 * time.Second)
	d := b.Allow(ctx, pa)
	expect(t, d, false, false, ReasonRateLimited, until)
	if !strings.Contains(d.String(), "until 12:00:07 UTC: the provider answered 429") {
		t.Fatalf("skip message = %q", d)
	}
	expect(t, b.Allow(ctx, pb), true, false, ReasonNone, time.Time{})
	clk.Advance(7 * time.Second)
	// Then one probe, like any open target.
	d = b.Allow(ctx, pa)
	expect(t, d, true, true, ReasonNone, time.Time{})
	// Without Retry-After: rate_limit_cooldown (10s).
	b.Report(d, Result{Class: RateLimited})
	expect(t, b.Allow(ctx, pa), false, false, ReasonRateLimited, clk.Now().Add(10*time.Second))
	// A Retry-After past max_cooldown (2m) is capped.
	b.Report(b.Allow(ctx, pb), Result{Class: RateLimited, RetryAfter: time.Hour})
	expect(t, b.Allow(ctx, pb), false, false, ReasonRateLimited, clk.Now().Add(2*time.Minute))
	if s := b.Snapshot(ctx); s[0].ConsecutiveFailures != 0 || s[0].LastFailure != RateLimited {
		t.Fatalf("a 429 is not a consecutive failure: %+v", s[0])
	}
}

func testAuthCoolsProvider(t *testing.T, m mode) {
	m = m.fresh(t)
	clk := newClock()
	b := m.new(t, clk, testYAML)
	ctx := context.Background()
	b.Report(b.Allow(ctx, pa), Result{Class: ClassOf(401)})
	// auth_cooldown is 5m for p: both of its targets cool, q does not.
	until := clk.Now().Add(5 * time.Minute)
	d := b.Allow(ctx, pb)
	expect(t, d, false, false, ReasonAuth, until)
	if !strings.Contains(d.String(), "the provider rejected its key") {
		t.Fatalf("skip message = %q", d)
	}
	expect(t, b.Allow(ctx, pa), false, false, ReasonAuth, until)
	expect(t, b.Allow(ctx, qa), true, false, ReasonNone, time.Time{})
	if got := metric(t, b, `gateway_breaker_state{provider="p",model="b"}`); got != 1 {
		t.Fatalf("state gauge of p/b = %v, want 1 (open)", got)
	}
	if got := metric(t, b, `gateway_breaker_transitions_total{provider="p",to="open"}`); got != 1 {
		t.Fatalf("open transitions = %v, want 1", got)
	}
	// Another 403 does not count a second opening.
	b.Report(Decision{Target: pb}, Result{Class: ClassOf(403)})
	if got := metric(t, b, `gateway_breaker_transitions_total{provider="p",to="open"}`); got != 1 {
		t.Fatalf("open transitions after a second 403 = %v, want 1", got)
	}
	clk.Advance(5 * time.Minute)
	expect(t, b.Allow(ctx, pb), true, false, ReasonNone, time.Time{})

	// q's own auth_cooldown (1m) applies to q; a 402 counts too.
	b.Report(b.Allow(ctx, q0), Result{Class: ClassOf(402)})
	expect(t, b.Allow(ctx, qa), false, false, ReasonAuth, clk.Now().Add(time.Minute))
	// A forced call that succeeds proves the key works again.
	d = b.Force(ctx, b.Allow(ctx, qa))
	if !d.Call || d.Probe {
		t.Fatalf("forced call on an auth-cooled provider: %+v", d)
	}
	b.Report(d, Result{Class: Success})
	expect(t, b.Allow(ctx, q0), true, false, ReasonNone, time.Time{})
	if got := metric(t, b, `gateway_breaker_transitions_total{provider="q",to="closed"}`); got != 1 {
		t.Fatalf("q closed transitions = %v, want 1", got)
	}
}

func testForceSoonest(t *testing.T, m mode) {
	m = m.fresh(t)
	clk := newClock()
	b := m.new(t, clk, testYAML)
	ctx := context.Background()
	fail(b, pa, 3, Timeout) // open until 12:00:30
	clk.Advance(10 * time.Second)
	fail(b, pb, 3, Timeout)                                                              // open until 12:00:40
	b.Report(b.Allow(ctx, qa), Result{Class: RateLimited, RetryAfter: 25 * time.Second}) // until 12:00:35
	ds := []Decision{b.Allow(ctx, pb), b.Allow(ctx, pa), b.Allow(ctx, qa)}
	i := Soonest(ds)
	if i != 1 {
		t.Fatalf("Soonest = %d (%v), want 1 (p/a, open until 12:00:30)", i, ds)
	}
	if Soonest([]Decision{{Call: true}}) != -1 || Soonest(nil) != -1 {
		t.Fatal("Soonest without a skipped decision must be -1")
	}
	// The gateway never fails a request without trying: the soonest is
	// called anyway, as its probe, before its cooldown ended.
	d := b.Force(ctx, ds[i])
	expect(t, d, true, true, ReasonNone, time.Time{})
	// While that probe runs, forcing again still calls (without a probe).
	d2 := b.Force(ctx, b.Allow(ctx, pa))
	if !d2.Call || d2.Probe {
		t.Fatalf("second forced call: %+v, want a call without the probe", d2)
	}
	b.Report(d, Result{Class: Success})
	expect(t, b.Allow(ctx, pa), true, false, ReasonNone, time.Time{})
	// Forcing a decision that was a call changes nothing.
	if d := b.Force(ctx, b.Allow(ctx, pa)); !d.Call || d.Probe {
		t.Fatalf("Force of a closed target: %+v", d)
	}
}

func testSnapshot(t *testing.T, m mode) {
	m = m.fresh(t)
	clk := newClock()
	b := m.new(t, clk, testYAML)
	ctx := context.Background()
	fail(b, pa, 3, ServerError)
	fail(b, qa, 1, Cut)
	b.Report(b.Allow(ctx, q0), Result{Class: Auth})
	s := b.Snapshot(ctx)
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	shared := m.redis != nil
	want := []TargetState{
		{Provider: "p", Model: "a", State: Open, Reason: ReasonFailures, ConsecutiveFailures: 3, OpenUntil: clk.Now().Add(30 * time.Second), CooldownMS: 30000, LastFailure: ServerError, LastFailureAt: clk.Now(), Shared: shared},
		{Provider: "p", Model: "b", State: Closed, Shared: shared},
		{Provider: "q", Model: "", State: Open, Reason: ReasonAuth, OpenUntil: clk.Now().Add(time.Minute), LastFailure: Auth, LastFailureAt: clk.Now(), Shared: shared},
		{Provider: "q", Model: "a", State: Open, Reason: ReasonAuth, ConsecutiveFailures: 1, OpenUntil: clk.Now().Add(time.Minute), LastFailure: Cut, LastFailureAt: clk.Now(), Shared: shared},
	}
	if len(s) != len(want) {
		t.Fatalf("snapshot %s, want %d targets", js, len(want))
	}
	for i := range want {
		if !equalState(s[i], want[i]) {
			t.Errorf("snapshot[%d] = %+v\nwant %+v", i, s[i], want[i])
		}
	}
	for _, part := range []string{
		`{"provider":"p","model":"a","state":"open","reason":"failures","consecutive_failures":3,"open_until":"2026-11-27T12:00:30Z","cooldown_ms":30000,"last_failure":"server_error","last_failure_at":"2026-11-27T12:00:00Z","shared":` + map[bool]string{true: "true", false: "false"}[shared] + `}`,
		`{"provider":"p","model":"b","state":"closed","consecutive_failures":0,"shared":`,
	} {
		if !strings.Contains(string(js), part) {
			t.Errorf("snapshot JSON lacks %s:\n%s", part, js)
		}
	}
}

func equalState(a, b TargetState) bool {
	ta, tb := a.OpenUntil, b.OpenUntil
	la, lb := a.LastFailureAt, b.LastFailureAt
	a.OpenUntil, b.OpenUntil, a.LastFailureAt, b.LastFailureAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b && ta.Equal(tb) && la.Equal(lb)
}

// A reload keeps the state of targets still routed and drops the others
// with their gauges; provider settings change at once.
func TestReload(t *testing.T) {
	clk := newClock()
	b := mode{name: "local"}.new(t, clk, testYAML)
	ctx := context.Background()
	fail(b, pa, 3, Timeout)
	fail(b, pb, 3, Timeout)
	next := strings.Replace(testYAML, "      - {provider: p, model: b}\n", "", 1)
	next = strings.Replace(next, "failures: 3,", "failures: 1,", 1)
	b.Reload(testConfig(t, next))
	expect(t, b.Allow(ctx, pa), false, false, ReasonFailures, clk.Now().Add(30*time.Second))
	if got := metric(t, b, `gateway_breaker_state{provider="p",model="b"}`); got != -1 {
		t.Fatalf("the gauge of a target no longer routed is still there: %v", got)
	}
	if s := b.Snapshot(ctx); len(s) != 3 {
		t.Fatalf("snapshot after reload has %d targets, want 3", len(s))
	}
	// failures: 1 now opens q/a at the first failure.
	fail(b, qa, 1, Timeout)
	expect(t, b.Allow(ctx, qa), false, false, ReasonFailures, clk.Now().Add(30*time.Second))
	// A target the config does not route (a chain newer than the last
	// reload) still gets a breaker.
	other := Target{Provider: "p", Model: "new"}
	expect(t, b.Allow(ctx, other), true, false, ReasonNone, time.Time{})
	if got := metric(t, b, `gateway_breaker_state{provider="p",model="new"}`); got != 0 {
		t.Fatalf("gauge of a new target = %v, want 0", got)
	}
}

func TestClassOf(t *testing.T) {
	f := func(status int, want Class) {
		t.Helper()
		if got := ClassOf(status); got != want {
			t.Fatalf("ClassOf(%d) = %s, want %s", status, got, want)
		}
	}
	f(200, Success)
	f(400, Success)
	f(404, Success)
	f(422, Success)
	f(401, Auth)
	f(402, Auth)
	f(403, Auth)
	f(429, RateLimited)
	f(408, Timeout)
	f(500, ServerError)
	f(503, ServerError)
	f(599, ServerError)
}

// Peek answers like Allow from the node's copy but never takes a probe:
// planning a request must not hold the cluster's probe before the call.
func testPeek(t *testing.T, m mode) {
	m = m.fresh(t)
	clk := newClock()
	b := m.new(t, clk, testYAML)
	ctx := context.Background()
	expect(t, b.Peek(pa), true, false, ReasonNone, time.Time{})
	fail(b, pa, 3, Timeout)
	until := clk.Now().Add(30 * time.Second)
	expect(t, b.Peek(pa), false, false, ReasonFailures, until)
	clk.Advance(31 * time.Second)
	// Half-open: callable, but the probe is still free for Allow.
	for range 3 {
		expect(t, b.Peek(pa), true, false, ReasonNone, time.Time{})
	}
	expect(t, b.Allow(ctx, pa), true, true, ReasonNone, time.Time{})
	// In process the node knows its own probe is taken.
	if m.redis == nil {
		if d := b.Peek(pa); d.Call || d.Reason != ReasonProbing {
			t.Fatalf("Peek while the probe is held = %+v (%s), want skipped (probing)", d, d)
		}
	}
}
