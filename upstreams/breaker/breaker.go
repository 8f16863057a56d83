// Package breaker keeps a circuit breaker per upstream target (provider,
// upstream model) for the chain of package upstreams (DESIGN.md section 7,
// issue 11): consecutive failures open a target for a cooldown, then
// exactly one request of the cluster probes it; a 429 cools the target for
// the provider's Retry-After; a 401/402/403 cools the whole provider.
//
// With a Redis client the state lives in Redis, one small hash per target,
// changed only by Lua scripts, so that one node's discovery spares every
// node and the probe is one per cluster. Each node reads the shared state
// in the background (every RefreshInterval) and decides from its copy, so
// a request pays no Redis round trip while its targets are closed. Without
// Redis, or while Redis does not answer, each node keeps its own state and
// goes back to the shared one when Redis answers again.
package breaker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/idemgw/gateway/config"
)

// Target is one (provider, upstream model) pair. Model is the target's
// configured model, "" for a pass-through target (which then has one
// breaker for every model sent through it). Both come from configuration
// and become metric labels, so never pass request data.
type Target struct {
	Provider string
	Model    string
}

// Defaults of Options.
const (
	DefaultRefreshInterval = 500 * time.Millisecond
	DefaultOpTimeout       = 250 * time.Millisecond
	DefaultRedisPause      = 2 * time.Second
	// probeMargin is added to a provider's timeout for the life of an
	// unreported probe grant.
	probeMargin = 5 * time.Second
)

// Options configure a Breaker. The zero value keeps every state in
// process.
type Options struct {
	// Redis shares the state across nodes (lock.kind: redis); nil keeps it
	// in this process.
	Redis redis.UniversalClient
	// Prefix starts every Redis key (lock.redis.key_prefix, e.g. "gw:").
	Prefix string
	// Now is the clock; nil means time.Now. Tests pass a fake one.
	Now func() time.Time
	// RefreshInterval is how often the shared state is read in the
	// background, i.e. how stale a node's view of another node's discovery
	// may be. Default 500ms; negative disables the background reads
	// (tests call Refresh).
	RefreshInterval time.Duration
	// OpTimeout bounds every Redis call the request path makes (taking a
	// probe, recording a failure): past it the call is abandoned and the
	// node's own state decides. Default 250ms.
	OpTimeout time.Duration
	// RedisPause is how long Redis is left alone after it failed. Default 2s.
	RedisPause time.Duration
	// Logger receives transitions (warn), auth cooling (error) and Redis
	// trouble; nil discards.
	Logger *slog.Logger
}

// Breaker holds the breakers of every target of a configuration. It is
// safe for concurrent use.
type Breaker struct {
	opts Options
	now  func() time.Time
	set  *metrics.Set
	log  *slog.Logger

	// entries maps targets to their breakers; it is replaced, never
	// modified, so Allow reads it without a lock.
	entries atomic.Pointer[map[Target]*entry]
	// mu serializes changes of entries and providers.
	mu        sync.Mutex
	providers map[string]*provider

	// node and seq make probe tokens unique in the cluster.
	node string
	seq  atomic.Uint64
	// redisDownUntil (unix nanoseconds of the clock) pauses Redis after a
	// failure; 0 while Redis answers.
	redisDownUntil atomic.Int64
	// redisDown is true from a failure to the next success (for the log).
	redisDown atomic.Bool

	stop chan struct{}
	done chan struct{}
}

// provider is the state shared by every target of one provider.
type provider struct {
	name string
	set  atomic.Pointer[settings]
	key  string // Redis hash of the provider's auth cooling

	mu sync.Mutex
	// authUntil (unix nanoseconds) is when an auth cooling ends; read
	// without the lock on the request path.
	authUntil atomic.Int64
	lastAt    time.Time
	gen       uint64 // bumped on every change, see Refresh
}

// entry is one target's breaker.
type entry struct {
	t        Target
	prov     *provider
	key      string // Redis hash of the state
	probeKey string // Redis key of the cluster's probe grant
	gauge    string // metric name of gateway_breaker_state

	// quiet is true while st is closed without failures: the request path
	// then needs no lock at all.
	quiet atomic.Bool

	mu sync.Mutex
	st state
	// gen is bumped on every change, so that a background read taken
	// before the change does not undo it.
	gen uint64
	// shared is true when st was last read from or written to Redis.
	shared bool
	// probeToken and probeUntil are the probe granted in process (no
	// Redis, or Redis down).
	probeToken string
	probeUntil time.Time
	// busyUntil: Redis said another node probes; until then this node
	// skips the target without asking again.
	busyUntil time.Time
}

// setState replaces the state; e.mu must be held.
func (e *entry) setState(st state) {
	e.st = st
	e.quiet.Store(!st.open && st.failures == 0)
}

// New builds the breakers of cfg's route targets (and starts the
// background reads when opts.Redis is set; Close stops them).
func New(cfg *config.Config, opts Options) *Breaker {
	if opts.RefreshInterval == 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = DefaultOpTimeout
	}
	if opts.RedisPause <= 0 {
		opts.RedisPause = DefaultRedisPause
	}
	b := &Breaker{opts: opts, now: opts.Now, set: metrics.NewSet(), log: opts.Logger, providers: map[string]*provider{}}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand, Go 1.24+)
	b.node = hex.EncodeToString(id[:])
	empty := map[Target]*entry{}
	b.entries.Store(&empty)
	b.Reload(cfg)
	if opts.Redis != nil && opts.RefreshInterval > 0 {
		b.stop, b.done = make(chan struct{}), make(chan struct{})
		go b.refreshLoop()
	}
	return b
}

// Close stops the background reads. The Breaker must not be used after.
func (b *Breaker) Close() {
	if b.stop != nil {
		close(b.stop)
		<-b.done
		b.stop = nil
	}
}

// Metrics returns the breaker's metric set (gateway_breaker_state,
// gateway_breaker_transitions_total).
func (b *Breaker) Metrics() *metrics.Set { return b.set }

// Reload applies a new configuration: provider settings change at once;
// targets still routed keep their state (DESIGN.md: breaker state survives
// a reload), the others are dropped with their gauges.
func (b *Breaker) Reload(cfg *config.Config) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, pc := range cfg.Providers {
		if pc == nil {
			continue
		}
		b.providerLocked(name).set.Store(settingsOf(pc))
		// Zero from the start, so that increase() sees the first one.
		for _, to := range []State{Open, HalfOpen, Closed} {
			b.transitionCounter(name, to)
		}
	}
	old := *b.entries.Load()
	next := make(map[Target]*entry, len(old))
	for _, r := range cfg.Routes {
		if r == nil {
			continue
		}
		for _, t := range r.Targets {
			tg := Target{Provider: t.Provider, Model: t.Model}
			if e := old[tg]; e != nil {
				next[tg] = e
			} else if next[tg] == nil {
				next[tg] = b.newEntryLocked(tg)
			}
		}
	}
	for tg, e := range old {
		if next[tg] == nil {
			b.set.UnregisterMetric(e.gauge)
		}
	}
	b.entries.Store(&next)
}

// settingsOf reads a provider's effective resilience.
func settingsOf(p *config.Provider) *settings {
	r := p.Resilience
	def := config.DefaultResilience()
	s := &settings{
		failures:          r.Breaker.Failures,
		cooldown:          r.Breaker.Cooldown,
		maxCooldown:       r.Breaker.MaxCooldown,
		rateLimitCooldown: r.RateLimitCooldown,
		authCooldown:      r.AuthCooldown,
		probeTTL:          p.Timeout + probeMargin,
	}
	// A config built in code without ApplyDefaults still gets a working
	// breaker.
	if s.failures <= 0 {
		s.failures = def.Breaker.Failures
	}
	if s.cooldown <= 0 {
		s.cooldown = def.Breaker.Cooldown
	}
	if s.maxCooldown < s.cooldown {
		s.maxCooldown = max(def.Breaker.MaxCooldown, s.cooldown)
	}
	if s.rateLimitCooldown <= 0 {
		s.rateLimitCooldown = def.RateLimitCooldown
	}
	if s.authCooldown <= 0 {
		s.authCooldown = def.AuthCooldown
	}
	if p.Timeout <= 0 {
		s.probeTTL = config.DefaultTimeout + probeMargin
	}
	return s
}

func (b *Breaker) providerLocked(name string) *provider {
	p := b.providers[name]
	if p == nil {
		p = &provider{name: name, key: b.opts.Prefix + "breaker:{" + name + "}"}
		p.set.Store(settingsOf(&config.Provider{Name: name}))
		b.providers[name] = p
	}
	return p
}

func (b *Breaker) newEntryLocked(t Target) *entry {
	key := b.opts.Prefix + "breaker:{" + t.Provider + "/" + t.Model + "}"
	// A pass-through target is labelled "*", as its route is written: an
	// empty label value would read as no label at all in PromQL.
	label := t.Model
	if label == "" {
		label = "*"
	}
	e := &entry{
		t: t, prov: b.providerLocked(t.Provider), key: key, probeKey: key + ":probe",
		gauge: fmt.Sprintf(`gateway_breaker_state{provider=%q,model=%q}`, t.Provider, label),
	}
	e.quiet.Store(true)
	b.set.GetOrCreateGauge(e.gauge, func() float64 {
		return float64(b.view(e, b.now()).State)
	})
	return e
}

// entry returns t's breaker, creating it for a target the configuration
// does not route (a chain built from a newer config than the last Reload).
func (b *Breaker) entry(t Target) *entry {
	if e := (*b.entries.Load())[t]; e != nil {
		return e
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.entries.Load()
	if e := old[t]; e != nil {
		return e
	}
	next := make(map[Target]*entry, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	e := b.newEntryLocked(t)
	next[t] = e
	b.entries.Store(&next)
	return e
}

// Decision is Allow's answer for one target.
type Decision struct {
	Target Target
	// Call is true when the target may be called: it is closed, or this
	// request holds its probe.
	Call bool
	// Probe is true when this call is the target's half-open probe; its
	// Report closes or reopens the breaker.
	Probe bool
	// Reason and Until say why a target is skipped and when it may be
	// called again (for ReasonProbing, when its cooldown ended).
	Reason Reason
	Until  time.Time
	// Failures and Last describe the failures that opened it.
	Failures int
	Last     Class

	e     *entry
	token string
}

// String is the error of a skipped attempt row, naming the breaker and
// when it closes, e.g. "breaker open until 12:00:03 UTC after 5
// consecutive failures (last: timeout)".
func (d Decision) String() string {
	until := d.Until.UTC().Format(time.TimeOnly) + " UTC"
	switch d.Reason {
	case ReasonFailures:
		return fmt.Sprintf("breaker open until %s after %d consecutive failures (last: %s)", until, d.Failures, d.Last)
	case ReasonRateLimited:
		return "breaker open until " + until + ": the provider answered 429"
	case ReasonAuth:
		return "breaker open until " + until + ": the provider rejected its key (401/402/403), every target of it cools"
	case ReasonProbing:
		return "breaker half-open: another request is probing the target"
	}
	if d.Call {
		return "breaker closed"
	}
	return "breaker open until " + until
}

// Allow says whether to call t now. On the closed path it reads only this
// node's copy of the state; it asks Redis only to take a half-open
// target's probe, bounded by OpTimeout. ctx's cancellation does not cut
// that call short: a probe taken in Redis but never reported would keep
// every node from probing until it expired.
func (b *Breaker) Allow(ctx context.Context, t Target) Decision {
	d, halfOpen := b.decide(t)
	if !halfOpen {
		return d
	}
	d.Call = false // until the probe is granted
	return b.probe(ctx, d.e, d, b.now(), false)
}

// Peek is Allow without taking a probe and without Redis: what this
// node's copy says of t now, a hint that Allow may still overrule. A
// half-open target whose probe looks free reads as callable (Call true,
// Probe false); only Allow may grant the probe. The chain uses it to plan
// a request before its ledger opens (the targets it will skip).
func (b *Breaker) Peek(t Target) Decision {
	d, _ := b.decide(t)
	return d
}

// decide is Allow's answer from this node's copy; halfOpen reports a
// target whose probe is free to take (d is then not final).
func (b *Breaker) decide(t Target) (d Decision, halfOpen bool) {
	e := b.entry(t)
	d = Decision{Target: t, e: e}
	// The closed path reads two atomics and not even the clock (which
	// costs more than the rest on some virtual machines).
	au := e.prov.authUntil.Load()
	if au == 0 && e.quiet.Load() {
		d.Call = true
		return d, false
	}
	now := b.now()
	if now.UnixNano() < au {
		d.Reason, d.Until, d.Last = ReasonAuth, time.Unix(0, au), Auth
		return d, false
	}
	if au != 0 {
		// The cooling is over; forget it so the next call is fast again.
		e.prov.authUntil.CompareAndSwap(au, 0)
	}
	if e.quiet.Load() {
		d.Call = true
		return d, false
	}
	e.mu.Lock()
	st := e.st
	// Redis said another node probes it, or this node holds the probe.
	busy := now.Before(e.busyUntil) || (e.probeToken != "" && now.Before(e.probeUntil))
	e.mu.Unlock()
	d.Failures, d.Last = st.failures, st.last
	switch st.effective(now) {
	case Closed:
		d.Call = true
		return d, false
	case Open:
		d.Reason, d.Until = st.reason, st.until
		return d, false
	}
	if busy {
		d.Reason, d.Until = ReasonProbing, st.until
		return d, false
	}
	d.Call = true // half-open: callable once its probe is taken
	return d, true
}

// Force turns a skipped decision into a call: the chain uses it on the
// target that closes first (Soonest) when every target of a route is
// open, because the gateway never fails a request without trying. The
// call is the target's probe when no other request holds it (even before
// the cooldown ended); a provider cooling for auth is called without one.
func (b *Breaker) Force(ctx context.Context, d Decision) Decision {
	if d.Call {
		return d
	}
	if d.e == nil {
		d.e = b.entry(d.Target)
	}
	if d.Reason == ReasonAuth {
		d.Call, d.Reason, d.Until = true, ReasonNone, time.Time{}
		return d
	}
	d = b.probe(ctx, d.e, d, b.now(), true)
	d.Call, d.Reason, d.Until = true, ReasonNone, time.Time{}
	return d
}

// Soonest returns the index of the skipped decision whose target may be
// called first (earliest Until; a half-open one first of all), or -1 when
// none was skipped.
func Soonest(ds []Decision) int {
	best := -1
	for i, d := range ds {
		if d.Call {
			continue
		}
		if best < 0 || d.Until.Before(ds[best].Until) {
			best = i
		}
	}
	return best
}

// probe takes the half-open target's probe: in Redis (one per cluster)
// when it answers, else in process. force takes it even before the
// cooldown ended.
func (b *Breaker) probe(ctx context.Context, e *entry, d Decision, now time.Time, force bool) Decision {
	token := b.node + ":" + strconv.FormatUint(b.seq.Add(1), 10)
	s := e.prov.set.Load()
	if b.shared(now) {
		g, err := b.acquireShared(ctx, e, token, s, now, force)
		if err == nil {
			b.redisOK()
			return b.granted(e, d, g, token, now)
		}
		b.redisFailed(now, err)
	}
	e.mu.Lock()
	eff := e.st.effective(now)
	switch {
	case eff == Closed:
		e.mu.Unlock()
		d.Call, d.Reason, d.Until = true, ReasonNone, time.Time{}
		return d
	case eff == Open && !force:
		d.Reason, d.Until = e.st.reason, e.st.until
		e.mu.Unlock()
		return d
	case e.probeToken != "" && now.Before(e.probeUntil):
		d.Reason, d.Until = ReasonProbing, e.st.until
		e.mu.Unlock()
		return d
	}
	e.probeToken, e.probeUntil = token, now.Add(s.probeTTL)
	e.mu.Unlock()
	b.transition(e.t.Provider, HalfOpen)
	d.Call, d.Probe, d.token, d.Reason, d.Until = true, true, token, ReasonNone, time.Time{}
	return d
}

// granted turns the answer of the shared probe script into a decision.
func (b *Breaker) granted(e *entry, d Decision, g grant, token string, now time.Time) Decision {
	e.mu.Lock()
	e.setState(g.st)
	e.shared = true
	e.gen++
	if g.code == grantBusy {
		e.busyUntil = now.Add(min(g.probeTTL, b.refreshEvery()))
	}
	e.mu.Unlock()
	d.Failures, d.Last = g.st.failures, g.st.last
	switch g.code {
	case grantClosed:
		d.Call, d.Reason, d.Until = true, ReasonNone, time.Time{}
	case grantProbe:
		b.transition(e.t.Provider, HalfOpen)
		d.Call, d.Probe, d.token, d.Reason, d.Until = true, true, token, ReasonNone, time.Time{}
	case grantOpen:
		d.Reason, d.Until = g.st.reason, g.st.until
	default:
		d.Reason, d.Until = ReasonProbing, g.st.until
	}
	return d
}

// Report records the result of a call Allow or Force granted. A success
// on a closed target without failures costs nothing; anything else is one
// Redis script (bounded by OpTimeout), or a change of this node's state
// when Redis does not answer. It never blocks on the client: the request
// may be gone, the result still counts.
func (b *Breaker) Report(d Decision, r Result) {
	e := d.e
	if e == nil {
		e = b.entry(d.Target)
	}
	p := e.prov
	au := p.authUntil.Load()
	if r.Class == Success && !d.Probe && au == 0 && e.quiet.Load() {
		return
	}
	now := b.now()
	authCooled := now.UnixNano() < au
	if r.Class == Success && !d.Probe && !authCooled && e.quiet.Load() {
		return
	}
	s := p.set.Load()
	to, moved := b.reportTarget(e, d, r, s, now)
	if moved {
		b.transition(e.t.Provider, to)
		b.logTransition(e, to, now)
	}
	switch {
	case r.Class == Auth:
		b.coolProvider(p, s, now)
	case r.Class == Success && authCooled:
		// The key works again (a forced call got through): every target
		// of the provider may be called.
		b.uncoolProvider(p, now)
	}
}

// reportTarget applies r to the target's state, in Redis when it answers.
func (b *Breaker) reportTarget(e *entry, d Decision, r Result, s *settings, now time.Time) (State, bool) {
	if b.shared(now) {
		res, err := b.reportShared(e, d, r, s, now)
		if err == nil {
			b.redisOK()
			e.mu.Lock()
			e.setState(res.st)
			e.shared = true
			e.gen++
			if d.token != "" && e.probeToken == d.token {
				e.probeToken = ""
			}
			e.busyUntil = time.Time{}
			e.mu.Unlock()
			return res.to, res.moved
		}
		b.redisFailed(now, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	probe := d.Probe
	if d.token != "" && e.probeToken == d.token {
		e.probeToken = ""
	}
	e.gen++
	e.shared = false
	e.busyUntil = time.Time{}
	st := e.st
	to, moved := st.report(now, r, probe, s)
	e.setState(st)
	return to, moved
}

// coolProvider starts (or extends) an auth cooling of every target of p.
func (b *Breaker) coolProvider(p *provider, s *settings, now time.Time) {
	until := now.Add(s.authCooldown)
	p.mu.Lock()
	opened := now.UnixNano() >= p.authUntil.Load()
	p.mu.Unlock()
	if b.shared(now) {
		au, fresh, err := b.coolShared(p, until, now)
		if err == nil {
			b.redisOK()
			opened, until = fresh, au
		} else {
			b.redisFailed(now, err)
		}
	}
	p.mu.Lock()
	if until.UnixNano() > p.authUntil.Load() {
		p.authUntil.Store(until.UnixNano())
	}
	p.lastAt = now
	p.gen++
	p.mu.Unlock()
	if opened {
		b.transition(p.name, Open)
		// DESIGN.md section 7: auth failures are logged as errors. The
		// provider is named; its key never is.
		b.log.Error("provider rejected its API key: every target of it cools", "provider", p.name, "until", until.UTC().Format(time.RFC3339))
	}
}

func (b *Breaker) uncoolProvider(p *provider, now time.Time) {
	if b.shared(now) {
		if err := b.uncoolShared(p); err != nil {
			b.redisFailed(now, err)
		} else {
			b.redisOK()
		}
	}
	p.mu.Lock()
	moved := now.UnixNano() < p.authUntil.Load()
	p.authUntil.Store(0)
	p.gen++
	p.mu.Unlock()
	if moved {
		b.transition(p.name, Closed)
		b.log.Info("provider accepted its API key again", "provider", p.name)
	}
}

// TargetState is one target in GET /admin/upstreams.
type TargetState struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	State    State  `json:"state"`
	// Reason is why it is open: failures, rate_limited or auth.
	Reason              Reason    `json:"reason,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	OpenUntil           time.Time `json:"open_until,omitzero"`
	// CooldownMS is the failure cooldown in force, which a failed probe
	// doubles.
	CooldownMS    int64     `json:"cooldown_ms,omitempty"`
	LastFailure   Class     `json:"last_failure,omitempty"`
	LastFailureAt time.Time `json:"last_failure_at,omitzero"`
	// Shared is true when the state comes from Redis, false when it is
	// this node's own (no Redis, or Redis not answering).
	Shared bool `json:"shared"`
}

// Snapshot returns every target's state, sorted by provider and model,
// read from Redis first when it is used (bounded by ctx and OpTimeout).
func (b *Breaker) Snapshot(ctx context.Context) []TargetState {
	if b.opts.Redis != nil {
		_ = b.Refresh(ctx)
	}
	now := b.now()
	m := *b.entries.Load()
	out := make([]TargetState, 0, len(m))
	for _, e := range m {
		out = append(out, b.view(e, now))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Provider != out[j].Provider {
			return out[i].Provider < out[j].Provider
		}
		return out[i].Model < out[j].Model
	})
	return out
}

// view is the effective state of e at now, an auth cooling of its
// provider included.
func (b *Breaker) view(e *entry, now time.Time) TargetState {
	e.mu.Lock()
	st, shared := e.st, e.shared
	e.mu.Unlock()
	v := TargetState{
		Provider: e.t.Provider, Model: e.t.Model, State: st.effective(now),
		ConsecutiveFailures: st.failures, LastFailure: st.last, LastFailureAt: st.lastAt,
		Shared: shared,
	}
	if st.open {
		v.Reason, v.OpenUntil, v.CooldownMS = st.reason, st.until, st.cooldown.Milliseconds()
	}
	if au := e.prov.authUntil.Load(); now.UnixNano() < au {
		v.State, v.Reason = Open, ReasonAuth
		if t := time.Unix(0, au); t.After(v.OpenUntil) {
			v.OpenUntil = t
		}
	}
	return v
}

// shared reports whether to ask Redis now: it is used, and not paused
// after a failure. When a pause has ended, exactly one caller (the one
// that moves the pause on) tries Redis again while the others keep
// deciding on their own, so that a burst of requests does not queue on a
// Redis that is still down.
func (b *Breaker) shared(now time.Time) bool {
	if b.opts.Redis == nil {
		return false
	}
	until := b.redisDownUntil.Load()
	if until == 0 {
		return true
	}
	return now.UnixNano() >= until && b.redisDownUntil.CompareAndSwap(until, now.Add(b.opts.RedisPause).UnixNano())
}

// redisOK ends a pause after Redis answered.
func (b *Breaker) redisOK() {
	if b.redisDownUntil.Load() != 0 {
		b.redisDownUntil.Store(0)
		if b.redisDown.CompareAndSwap(true, false) {
			b.log.Info("breaker state in Redis available again: the nodes share it")
		}
	}
}

// redisFailed pauses Redis; the first failure of an outage is logged.
func (b *Breaker) redisFailed(now time.Time, err error) {
	b.redisDownUntil.Store(now.Add(b.opts.RedisPause).UnixNano())
	if b.redisDown.CompareAndSwap(false, true) {
		b.log.Warn("breaker state in Redis unavailable: each node uses its own until Redis answers", "error", err)
	}
}

// errTimeout is the cause of a Redis call abandoned after OpTimeout.
var errTimeout = errors.New("breaker: redis call timed out")

// bounded runs fn with a deadline of OpTimeout (or ctx's, if sooner) and
// returns at that deadline even when the client does not honour it (a
// go-redis client without ContextTimeoutEnabled waits for its own read
// timeout): the request path never waits longer than OpTimeout.
func (b *Breaker) bounded(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.OpTimeout)
	done := make(chan error, 1)
	go func() {
		defer cancel()
		done <- fn(ctx)
	}()
	t := time.NewTimer(b.opts.OpTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errTimeout
	}
}

func (b *Breaker) refreshEvery() time.Duration {
	if b.opts.RefreshInterval > 0 {
		return b.opts.RefreshInterval
	}
	return DefaultRefreshInterval
}
