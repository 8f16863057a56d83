package breaker

import (
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// cluster returns n breakers sharing one Redis key space and clock: the
// nodes of one gateway cluster.
func cluster(t *testing.T, n int) ([]*Breaker, *clock, *redis.Client, string) {
	t.Helper()
	client, prefix := redisForTest(t)
	clk := newClock()
	m := mode{name: "redis", redis: client, prefix: prefix}
	bs := make([]*Breaker, n)
	for i := range bs {
		bs[i] = m.new(t, clk, testYAML)
	}
	return bs, clk, client, prefix
}

// One node's discovery spares the others: after its background read, a
// node that never called the target skips it.
func TestSharedDiscovery(t *testing.T) {
	bs, clk, client, prefix := cluster(t, 2)
	a, b := bs[0], bs[1]
	ctx := context.Background()
	fail(a, pa, 3, Timeout)
	until := clk.Now().Add(30 * time.Second)
	// b decides from its copy, read every RefreshInterval.
	expect(t, b.Allow(ctx, pa), true, false, ReasonNone, time.Time{})
	if err := b.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	expect(t, b.Allow(ctx, pa), false, false, ReasonFailures, until)
	if s := b.Snapshot(ctx)[0]; s.State != Open || !s.Shared || s.ConsecutiveFailures != 3 {
		t.Fatalf("b's snapshot of p/a: %+v", s)
	}
	// The layout operators (and the next version) rely on.
	h, err := client.HGetAll(ctx, prefix+"breaker:{p/a}").Result()
	if err != nil {
		t.Fatal(err)
	}
	if h["s"] != "1" || h["f"] != "3" || h["u"] != strconv.FormatInt(until.UnixMilli(), 10) || h["c"] != "30000" || h["r"] != "failures" || h["l"] != "timeout" {
		t.Fatalf("hash of p/a = %v", h)
	}
	if ttl := client.PTTL(ctx, prefix+"breaker:{p/a}").Val(); ttl <= time.Hour || ttl > time.Hour+31*time.Second {
		t.Fatalf("PTTL of the hash = %v, want about 1h30s", ttl)
	}
	// An auth cooling found by b is seen by a.
	b.Report(b.Allow(ctx, qa), Result{Class: Auth})
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, a.Allow(ctx, q0), false, false, ReasonAuth, clk.Now().Add(time.Minute))
	if au := client.HGet(ctx, prefix+"breaker:{q}", "au").Val(); au != strconv.FormatInt(clk.Now().Add(time.Minute).UnixMilli(), 10) {
		t.Fatalf("provider hash au = %q", au)
	}
}

// Exactly one probe per cooldown in the whole cluster, however many
// requests arrive on however many nodes.
func TestOneProbePerCluster(t *testing.T) {
	bs, clk, client, prefix := cluster(t, 2)
	ctx := context.Background()
	fail(bs[0], pa, 3, Timeout)
	for _, b := range bs {
		if err := b.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(30 * time.Second)
	ds := allowConcurrently(bs, pa, 20)
	var probe Decision
	probes := 0
	for _, d := range ds {
		switch {
		case d.Probe:
			probes++
			probe = d
		case d.Call || d.Reason != ReasonProbing:
			t.Fatalf("a request other than the probe got %+v (%s)", d, d)
		}
	}
	if probes != 1 {
		t.Fatalf("%d probes among 20 requests on 2 nodes, want exactly 1", probes)
	}
	if tok := client.Get(ctx, prefix+"breaker:{p/a}:probe").Val(); tok != probe.token {
		t.Fatalf("probe key holds %q, want the granted token %q", tok, probe.token)
	}
	if ttl := client.PTTL(ctx, prefix+"breaker:{p/a}:probe").Val(); ttl <= 10*time.Second || ttl > 15*time.Second {
		t.Fatalf("probe PTTL = %v, want the provider timeout (10s) plus 5s", ttl)
	}
	half := metric(t, bs[0], `gateway_breaker_transitions_total{provider="p",to="half_open"}`) +
		metric(t, bs[1], `gateway_breaker_transitions_total{provider="p",to="half_open"}`)
	if half != 1 { // one node counted it; the other's series exists at 0
		t.Fatalf("half_open transitions over the cluster: %v", half)
	}
	// The probe fails: every node sees the doubled cooldown.
	var holder, other *Breaker
	for i, d := range ds {
		if d.Probe {
			holder, other = bs[i%2], bs[(i+1)%2]
		}
	}
	holder.Report(probe, Result{Class: Timeout})
	if client.Exists(ctx, prefix+"breaker:{p/a}:probe").Val() != 0 {
		t.Fatal("the probe key outlived its report")
	}
	if err := other.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	until := clk.Now().Add(time.Minute)
	expect(t, other.Allow(ctx, pa), false, false, ReasonFailures, until)
	expect(t, holder.Allow(ctx, pa), false, false, ReasonFailures, until)
	// Next cooldown: one probe again, and its success closes it for all.
	clk.Advance(time.Minute)
	ds = allowConcurrently(bs, pa, 20)
	probes = 0
	for i, d := range ds {
		if d.Probe {
			probes++
			bs[i%2].Report(d, Result{Class: Success})
		}
	}
	if probes != 1 {
		t.Fatalf("second cooldown: %d probes, want 1", probes)
	}
	for _, b := range bs {
		if err := b.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		expect(t, b.Allow(ctx, pa), true, false, ReasonNone, time.Time{})
	}
}

// The request path sends no Redis command while targets are closed; while
// another node probes, a node asks Redis once, not per request.
func TestNoRedisCommandWhenClosed(t *testing.T) {
	client, prefix := redisForTest(t)
	var n commands
	client.AddHook(&n)
	clk := newClock()
	b := mode{redis: client, prefix: prefix}.new(t, clk, testYAML)
	ctx := context.Background()
	before := n.n.Load()
	for i := 0; i < 1000; i++ {
		for _, tg := range []Target{pa, pb, qa, q0} {
			d := b.Allow(ctx, tg)
			if !d.Call {
				t.Fatalf("closed target skipped: %s", d)
			}
			b.Report(d, Result{Class: Success})
		}
	}
	if got := n.n.Load() - before; got != 0 {
		t.Fatalf("%d Redis commands for 4000 Allow+Report on closed targets, want 0", got)
	}
	// A failure is recorded in Redis.
	b.Report(b.Allow(ctx, pa), Result{Class: Timeout})
	if n.n.Load() == before {
		t.Fatal("a failure sent no Redis command")
	}

	// Another node holds the probe of p/b.
	otherClient, _ := redisForTest(t)
	other := mode{redis: otherClient, prefix: prefix}.new(t, clk, testYAML)
	open(t, other, clk, pb)
	if d := other.Allow(ctx, pb); !d.Probe {
		t.Fatalf("the other node did not get the probe: %s", d)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	before = n.n.Load()
	for i := 0; i < 100; i++ {
		if d := b.Allow(ctx, pb); d.Call || d.Reason != ReasonProbing {
			t.Fatalf("Allow during another node's probe: %s", d)
		}
	}
	if got := n.n.Load() - before; got != 1 {
		t.Fatalf("%d Redis commands for 100 requests during another node's probe, want 1", got)
	}
}

// Redis not answering (nothing listens on its port): each node decides
// from its own state at once, and leaves Redis alone for RedisPause.
func TestRedisUnreachable(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), DialTimeout: 500 * time.Millisecond, MaxRetries: 1})
	defer client.Close()
	var n commands
	client.AddHook(&n)
	clk := newClock()
	b := New(testConfig(t, testYAML), Options{Redis: client, Prefix: "gwtest:", Now: clk.Now, RefreshInterval: -1})
	defer b.Close()
	ctx := context.Background()

	start := time.Now()
	fail(b, pa, 3, Timeout)
	expect(t, b.Allow(ctx, pa), false, false, ReasonFailures, clk.Now().Add(30*time.Second))
	t.Logf("3 failures and a skip with Redis refusing connections took %v", time.Since(start))
	if got := n.n.Load(); got != 1 {
		t.Fatalf("%d Redis commands within the pause, want 1 (the first failure)", got)
	}
	if err := b.Refresh(ctx); err != errPaused {
		t.Fatalf("Refresh during the pause = %v, want errPaused", err)
	}
	if s := b.Snapshot(ctx)[0]; s.Shared || s.State != Open {
		t.Fatalf("snapshot: %+v, want this node's own open state", s)
	}
	// The pause is over when the cooldown ends: one of the 20 requests
	// tries Redis again, the others go on without waiting for it, and the
	// half-open probe is this node's own.
	clk.Advance(30 * time.Second)
	ds := allowConcurrently(b, pa, 20)
	probes := 0
	for _, d := range ds {
		if d.Probe {
			probes++
		}
	}
	if probes != 1 {
		t.Fatalf("%d probes on one node without Redis, want 1", probes)
	}
	if got := n.n.Load(); got != 2 {
		t.Fatalf("%d Redis commands, want 2 (one per pause)", got)
	}
	if err := b.Refresh(ctx); err != errPaused {
		t.Fatalf("Refresh during the new pause = %v, want errPaused", err)
	}
	// After the pause, Redis is tried again (and paused again).
	clk.Advance(DefaultRedisPause)
	if err := b.Refresh(ctx); err == nil || err == errPaused {
		t.Fatalf("Refresh after the pause = %v, want Redis's error", err)
	}
	if got := n.n.Load(); got <= 2 {
		t.Fatalf("Redis was not tried again after the pause (%d commands)", got)
	}
}

// Redis accepting connections but never answering must not hold a
// request longer than OpTimeout, even with a client that would wait an
// hour for a reply.
func TestRedisHanging(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	client := redis.NewClient(&redis.Options{Addr: l.Addr().String(), ReadTimeout: time.Hour, WriteTimeout: time.Hour, MaxRetries: -1})
	defer client.Close()
	clk := newClock()
	b := New(testConfig(t, testYAML), Options{Redis: client, Prefix: "gwtest:", Now: clk.Now, RefreshInterval: -1, OpTimeout: 50 * time.Millisecond})
	defer b.Close()
	ctx := context.Background()
	start := time.Now()
	fail(b, pa, 3, Timeout)
	expect(t, b.Allow(ctx, pa), false, false, ReasonFailures, clk.Now().Add(30*time.Second))
	clk.Advance(30*time.Second + DefaultRedisPause)
	if d := b.Allow(ctx, pa); !d.Probe {
		t.Fatalf("after a hanging Redis call the node must grant its own probe: %s", d)
	}
	t.Logf("two calls abandoned after OpTimeout (50ms): %v in all", time.Since(start))
}

// When Redis comes back (restarted, empty), the nodes share their state
// through it again.
func TestRedisRecovers(t *testing.T) {
	srv := startRedisServer(t)
	newClient := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.addr(), DialTimeout: 500 * time.Millisecond, MaxRetries: 1})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	clk := newClock()
	a := mode{redis: newClient(), prefix: "gw:"}.new(t, clk, testYAML)
	b := mode{redis: newClient(), prefix: "gw:"}.new(t, clk, testYAML)
	ctx := context.Background()
	fail(a, pa, 3, Timeout)
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, b.Allow(ctx, pa), false, false, ReasonFailures, clk.Now().Add(30*time.Second))

	srv.stop()
	clk.Advance(30 * time.Second)
	// Each node now probes on its own, from the state it last read.
	da, db := a.Allow(ctx, pa), b.Allow(ctx, pa)
	if !da.Probe || !db.Probe {
		t.Fatalf("with Redis down each node probes on its own: %s / %s", da, db)
	}
	b.Report(db, Result{Class: Success})
	expect(t, b.Allow(ctx, pa), true, false, ReasonNone, time.Time{})
	expect(t, a.Allow(ctx, pa), false, false, ReasonProbing, clk.Now())

	srv.start()
	// A pooled connection to the dead server may fail once more.
	recovered := func(x *Breaker) {
		t.Helper()
		for i := 0; ; i++ {
			clk.Advance(DefaultRedisPause)
			if err := x.Refresh(ctx); err == nil {
				return
			} else if i == 3 {
				t.Fatalf("Redis back, but Refresh still fails: %v", err)
			}
		}
	}
	recovered(a)
	recovered(b)
	// The restarted Redis is empty: p/a reads as closed, and new
	// discoveries are shared again.
	if s := a.Snapshot(ctx)[0]; s.State != Closed || !s.Shared {
		t.Fatalf("a after recovery: %+v", s)
	}
	fail(a, qa, 3, ServerError)
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, b.Allow(ctx, qa), false, false, ReasonFailures, clk.Now().Add(30*time.Second))
}
