// Package limit enforces the per-client-key limits of DESIGN.md section 8:
// max_inflight (concurrent requests, counted per node) and
// requests_per_minute (a token bucket, shared by the cluster through Redis
// when there is one, per node when there is not or it does not answer).
//
// In-flight requests are counted per node on purpose: a shared counter
// leaks the slots of a node that dies mid-request until some expiry, and a
// long stream would have to keep renewing its slot. The rate, which is
// what a tenant's bill follows, is the one shared.
package limit

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Reason says which limit refused a request; it is the reason label of
// gateway_tenant_limited_total.
type Reason string

// Reasons.
const (
	// ReasonNone: the request is admitted.
	ReasonNone Reason = ""
	// ReasonConcurrency: max_inflight requests of the key are running.
	ReasonConcurrency Reason = "concurrency"
	// ReasonRate: the key's token bucket is empty.
	ReasonRate Reason = "rate"
)

// concurrencyRetry is the retry hint of a concurrency refusal: nothing
// tells when a running request ends, and a second is what OpenAI's SDKs
// would wait anyway.
const concurrencyRetry = time.Second

// Rule is the configured limit of one client key.
type Rule struct {
	// ID names the key across reloads, in Redis and nowhere else; it is
	// derived from the key's hash and never is the key.
	ID string
	// Tenant is the metric label.
	Tenant string
	// MaxInflight caps the key's concurrent requests on this node; 0 = no cap.
	MaxInflight int
	// PerMinute is the bucket's size and refill per minute; 0 = no bucket.
	PerMinute int
}

// Verdict is the decision on one request.
type Verdict struct {
	// Reason is ReasonNone for an admitted request.
	Reason Reason
	// Limit, Remaining and Reset describe the limit for the
	// x-ratelimit-*-requests headers: the bucket (requests per minute,
	// whole tokens left, time until full) or, for a concurrency refusal,
	// max_inflight, 0 and RetryAfter. Limit is 0 when there is nothing to
	// report (an admitted request of a key without a bucket).
	Limit     int
	Remaining int
	Reset     time.Duration
	// RetryAfter is when a refused request may pass.
	RetryAfter time.Duration
}

// Slot is an admitted request's in-flight place; Release gives it back.
// The zero Slot holds nothing.
type Slot struct{ st *state }

// Release ends the request's in-flight place. Call it exactly once.
func (s Slot) Release() {
	if s.st != nil {
		s.st.inflight.Add(-1)
	}
}

// state is what a key keeps across reloads.
type state struct {
	inflight atomic.Int64
	bucket   bucket
}

type entry struct {
	rule Rule
	st   *state
	// The counters of this key's refusals.
	concurrency, rate *metrics.Counter
}

// Limiter holds the state of every limited key.
type Limiter struct {
	keys   atomic.Pointer[map[string]*entry]
	mu     sync.Mutex // serialises Update
	shared *shared
	set    *metrics.Set
	now    func() time.Time
	// degraded counts rate decisions taken per node because Redis failed.
	degraded *metrics.Counter
}

// New returns a limiter that counts into set, with no rules and no Redis.
func New(set *metrics.Set) *Limiter {
	l := &Limiter{set: set, now: time.Now, degraded: set.GetOrCreateCounter(`gateway_limit_degraded_total`)}
	l.keys.Store(&map[string]*entry{})
	return l
}

// Update installs the rules of a (re)loaded config. A key that is still
// configured keeps its bucket and its in-flight count, so a reload neither
// refills a bucket nor forgets running requests; a removed key's state is
// dropped.
func (l *Limiter) Update(rules []Rule) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := *l.keys.Load()
	next := make(map[string]*entry, len(rules))
	for _, r := range rules {
		if r.MaxInflight <= 0 && r.PerMinute <= 0 {
			continue
		}
		e := &entry{rule: r, st: &state{}}
		if prev, ok := old[r.ID]; ok {
			e.st = prev.st
		}
		tenant := strconv.Quote(r.Tenant)
		e.concurrency = l.set.GetOrCreateCounter(`gateway_tenant_limited_total{tenant=` + tenant + `,reason="concurrency"}`)
		e.rate = l.set.GetOrCreateCounter(`gateway_tenant_limited_total{tenant=` + tenant + `,reason="rate"}`)
		next[r.ID] = e
	}
	l.keys.Store(&next)
}

// Acquire decides on one request of the key id. An admitted request gets
// a Slot to release when it ends; a refused one holds nothing.
func (l *Limiter) Acquire(id string) (Verdict, Slot) {
	e := (*l.keys.Load())[id]
	if e == nil {
		return Verdict{}, Slot{}
	}
	r := e.rule
	var slot Slot
	if r.MaxInflight > 0 {
		if e.st.inflight.Add(1) > int64(r.MaxInflight) {
			e.st.inflight.Add(-1)
			e.concurrency.Inc()
			return Verdict{Reason: ReasonConcurrency, Limit: r.MaxInflight, Reset: concurrencyRetry, RetryAfter: concurrencyRetry}, Slot{}
		}
		slot = Slot{e.st}
	}
	if r.PerMinute <= 0 {
		return Verdict{}, slot
	}
	v := l.take(e)
	if v.Reason != ReasonNone {
		slot.Release()
		e.rate.Inc()
		return v, Slot{}
	}
	return v, slot
}

// take takes a token from the key's bucket: the cluster's in Redis when
// it answers, else this node's. The node's bucket pays for every request
// this node admits, so that it holds the node's recent traffic when
// Redis goes away.
func (l *Limiter) take(e *entry) Verdict {
	now := l.now()
	if l.shared != nil && !l.shared.skipped(now) {
		ok, tokens, err := l.shared.take(e.rule)
		if err == nil {
			if ok {
				e.st.bucket.take(now, e.rule.PerMinute)
			}
			return verdict(e.rule.PerMinute, ok, tokens)
		}
		l.shared.failed(now, err)
		l.degraded.Inc()
	}
	ok, tokens := e.st.bucket.take(now, e.rule.PerMinute)
	return verdict(e.rule.PerMinute, ok, tokens)
}

// verdict describes a bucket of perMinute with tokens left after a take
// that succeeded (ok) or not.
func verdict(perMinute int, ok bool, tokens float64) Verdict {
	per := time.Minute / time.Duration(perMinute) // one token's refill time
	v := Verdict{Limit: perMinute, Remaining: int(tokens), Reset: time.Duration((float64(perMinute) - tokens) * float64(per))}
	if !ok {
		v.Reason = ReasonRate
		v.RetryAfter = time.Duration((1 - tokens) * float64(per))
		v.RetryAfter = max(v.RetryAfter, time.Millisecond)
	}
	return v
}
