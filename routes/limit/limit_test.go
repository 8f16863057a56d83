package limit

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/idemgw/gateway/dedupe/dedupetest"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestLimiter(rules ...Rule) (*Limiter, *clock, *metrics.Set) {
	set := metrics.NewSet()
	l := New(set)
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l.now = c.now
	l.Update(rules)
	return l, c, set
}

func counter(t *testing.T, set *metrics.Set, name string) uint64 {
	t.Helper()
	var b strings.Builder
	set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no series %s in\n%s", name, b.String())
	return 0
}

// A bucket of 60 per minute admits a burst of 60, then one a second; the
// refusal says when the next token comes and the headers' numbers are right.
func TestRateBucket(t *testing.T) {
	l, clk, set := newTestLimiter(Rule{ID: "k", Tenant: "a", PerMinute: 60})
	for i := 0; i < 60; i++ {
		v, _ := l.Acquire("k")
		if v.Reason != ReasonNone || v.Limit != 60 || v.Remaining != 59-i {
			t.Fatalf("request %d: %+v", i, v)
		}
	}
	v, _ := l.Acquire("k")
	if v.Reason != ReasonRate || v.Remaining != 0 || v.RetryAfter != time.Second || v.Reset != time.Minute {
		t.Fatalf("61st request: %+v", v)
	}
	clk.add(500 * time.Millisecond)
	if v, _ := l.Acquire("k"); v.Reason != ReasonRate || v.RetryAfter != 500*time.Millisecond {
		t.Fatalf("half a token later: %+v", v)
	}
	clk.add(500 * time.Millisecond)
	if v, _ := l.Acquire("k"); v.Reason != ReasonNone || v.Remaining != 0 {
		t.Fatalf("a token later: %+v", v)
	}
	clk.add(time.Hour) // refills to the size, not past it
	if v, _ := l.Acquire("k"); v.Remaining != 59 {
		t.Fatalf("an hour later: %+v", v)
	}
	if n := counter(t, set, `gateway_tenant_limited_total{tenant="a",reason="rate"}`); n != 2 {
		t.Fatalf("rate refusals counted %d, want 2", n)
	}
	// A key without rules is never limited.
	if v, s := l.Acquire("other"); v != (Verdict{}) || s != (Slot{}) {
		t.Fatalf("unknown key: %+v", v)
	}
}

// max_inflight admits that many at once; a release makes room; a request
// refused by the bucket gives its in-flight place back.
func TestConcurrency(t *testing.T) {
	l, _, set := newTestLimiter(Rule{ID: "k", Tenant: "a", MaxInflight: 2, PerMinute: 3})
	_, s1 := l.Acquire("k")
	_, s2 := l.Acquire("k")
	v, s3 := l.Acquire("k")
	if v.Reason != ReasonConcurrency || v.Limit != 2 || v.RetryAfter != time.Second || s3 != (Slot{}) {
		t.Fatalf("third concurrent request: %+v", v)
	}
	s1.Release()
	v, s4 := l.Acquire("k") // the bucket's third and last token
	if v.Reason != ReasonNone {
		t.Fatalf("after a release: %+v", v)
	}
	s4.Release()
	if v, _ := l.Acquire("k"); v.Reason != ReasonRate {
		t.Fatalf("empty bucket: %+v", v)
	}
	// The refused request did not keep a place: one is free.
	if l.keysFor("k").st.inflight.Load() != 1 {
		t.Fatalf("in flight = %d, want 1", l.keysFor("k").st.inflight.Load())
	}
	s2.Release()
	if n := counter(t, set, `gateway_tenant_limited_total{tenant="a",reason="concurrency"}`); n != 1 {
		t.Fatalf("concurrency refusals counted %d, want 1", n)
	}
}

func (l *Limiter) keysFor(id string) *entry { return (*l.keys.Load())[id] }

// A reload keeps the bucket and in-flight count of a key that is still
// configured, takes its new numbers, and forgets removed keys.
func TestUpdateKeepsState(t *testing.T) {
	l, _, _ := newTestLimiter(Rule{ID: "k", Tenant: "a", PerMinute: 2, MaxInflight: 5}, Rule{ID: "gone", Tenant: "b", PerMinute: 1})
	_, done := l.Acquire("k")
	done.Release()
	_, held := l.Acquire("k")
	l.Acquire("gone")
	l.Update([]Rule{{ID: "k", Tenant: "a", PerMinute: 2, MaxInflight: 1}, {ID: "new", Tenant: "c", PerMinute: 1}})
	if v, _ := l.Acquire("k"); v.Reason != ReasonConcurrency {
		t.Fatalf("after reload, with one request running and max_inflight 1: %+v", v)
	}
	held.Release()
	if v, _ := l.Acquire("k"); v.Reason != ReasonRate {
		t.Fatalf("after reload the bucket was refilled: %+v", v)
	}
	if v, _ := l.Acquire("new"); v.Reason != ReasonNone {
		t.Fatalf("new key: %+v", v)
	}
	l.Update([]Rule{{ID: "gone", Tenant: "b", PerMinute: 1}})
	if v, _ := l.Acquire("k"); v.Reason != ReasonNone || v.Limit != 0 {
		t.Fatalf("removed key is still limited: %+v", v)
	}
	if v, _ := l.Acquire("gone"); v.Reason != ReasonNone {
		t.Fatalf("a key added back starts full: %+v", v)
	}
}

func testRedis(t testing.TB) redis.UniversalClient {
	t.Helper()
	opt, err := redis.ParseURL(dedupetest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Two nodes sharing Redis share one bucket: what one spent, the other
// cannot spend again.
func TestSharedBucket(t *testing.T) {
	client := testRedis(t)
	prefix := dedupetest.KeyPrefix(t)
	rule := Rule{ID: "k", Tenant: "a", PerMinute: 3}
	a, b := New(metrics.NewSet()), New(metrics.NewSet())
	for _, l := range []*Limiter{a, b} {
		l.Share(client, prefix, func(err error) { t.Errorf("redis failed: %v", err) })
		l.Update([]Rule{rule})
	}
	for i, l := range []*Limiter{a, a, b} {
		if v, _ := l.Acquire("k"); v.Reason != ReasonNone || v.Remaining != 2-i {
			t.Fatalf("request %d: %+v", i, v)
		}
	}
	for _, l := range []*Limiter{a, b} {
		v, _ := l.Acquire("k")
		if v.Reason != ReasonRate || v.RetryAfter <= 0 || v.RetryAfter > 20*time.Second {
			t.Fatalf("fourth request: %+v", v)
		}
	}
	ttl, err := client.PTTL(context.Background(), prefix+"limit:k").Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("bucket key ttl %v, %v", ttl, err)
	}
}

// A Redis that accepts connections and never answers costs a request at
// most the bound, then is skipped for a pause; decisions fall back to the
// node's bucket, which has counted every request all along.
func TestRedisDownFallsBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	client := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ReadTimeout: 5 * time.Second, MaxRetries: -1})
	defer client.Close()
	set := metrics.NewSet()
	l := New(set)
	var errs []error
	l.Share(client, "gw:", func(err error) { errs = append(errs, err) })
	l.Update([]Rule{{ID: "k", Tenant: "a", PerMinute: 2}})
	start := time.Now()
	v1, _ := l.Acquire("k")
	first := time.Since(start)
	v2, _ := l.Acquire("k")
	v3, _ := l.Acquire("k")
	if v1.Reason != ReasonNone || v2.Reason != ReasonNone || v3.Reason != ReasonRate {
		t.Fatalf("verdicts %+v %+v %+v", v1, v2, v3)
	}
	if first > 2*time.Second {
		t.Fatalf("a hung Redis held the first request %v", first)
	}
	if len(errs) != 1 || counter(t, set, "gateway_limit_degraded_total") != 1 {
		t.Fatalf("redis errors %v: Redis was not skipped after it failed", errs)
	}
}
