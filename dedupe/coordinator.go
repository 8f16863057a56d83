package dedupe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/idemgw/gateway/dedupe/seal"
)

// Options are the dedupe settings of gateway.yaml the coordinator acts on.
type Options struct {
	// Owner names this process in leases (host:pid:random).
	Owner         string
	Lease         time.Duration
	MaxProcessing time.Duration
	KeyTTL        time.Duration
	WaitTimeout   time.Duration
	// Reject answers in-flight duplicates with 409 instead of waiting.
	Reject bool
	// MaxRecordBytes caps one stored response or stream transcript.
	MaxRecordBytes int
	// ReapBatch is how many rows one reaper statement touches.
	ReapBatch int
	// OpTimeout bounds one store or lock call. Default 5s.
	OpTimeout time.Duration
	// Log receives the Redis up/down transitions; nil discards them.
	Log *slog.Logger
	// Keys seal the events of live streams kept in Redis
	// (store.encryption_keys); nil seals nothing.
	Keys *seal.Keyring
}

// Coordinator runs the idempotency state machine of DESIGN.md section 2
// over a record store (the truth), a lock and signal backend (speed), and
// live streams (joins).
type Coordinator struct {
	store Store
	// locker, notifier and remote are Redis in a cluster; with lock.kind
	// local they are the in-process local backend and remote is nil.
	locker   Locker
	notifier Notifier
	remote   Live
	// batch is remote's queue of live entries and task ends (Redis).
	batch batchedLive
	// local carries this node's live streams: the leader's own client and
	// same-node joiners read them without touching Redis.
	local *Local
	opts  Options
	set   *metrics.Set

	mu      sync.Mutex
	running map[string]bool // live stream names led by this node
	// leaders counts tasks this node leads, so shutdown can wait for
	// detached streams to be recorded before the store closes.
	leaders sync.WaitGroup
	// redis knows whether Redis answers; nil with lock.kind local.
	redis *redisHealth
	// served counts replays and joins until FlushServed (served.go).
	served servedCounts
	// replays keeps recently replayed answers (replaycache.go).
	replays replayCache
}

// redisSkipped reports whether Redis is down: requests then go straight
// to the record store, and a background probe finds out when it is back.
func (c *Coordinator) redisSkipped() bool {
	return c.redis != nil && c.redis.isDown()
}

// redisFailed counts a degraded operation and marks Redis down.
func (c *Coordinator) redisFailed(err error) {
	c.degraded()
	if c.redis != nil {
		c.redis.failed(err)
	}
}

// RedisStatus returns why Redis does not answer, or "" when it does (or
// is not used). While Redis is believed up it pings it once, so /readyz
// notices an outage that no request has met yet.
func (c *Coordinator) RedisStatus(ctx context.Context) string {
	if c.redis == nil {
		return ""
	}
	return c.redis.check(ctx)
}

// Close stops the coordinator's background work (the Redis probe). The
// store and the backend are the caller's to close.
func (c *Coordinator) Close() {
	if c.redis != nil {
		c.redis.close()
	}
}

// Drain waits until every task this node leads has ended (recorded or
// failed), or ctx is done.
func (c *Coordinator) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		c.leaders.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cannot drain running tasks: %w", ctx.Err())
	}
}

// batchedLive is a Backend that writes live entries and task ends in
// batches (Redis: see LiveWriter).
type batchedLive interface {
	Writer(name string, failed func(error)) *LiveWriter
	Finish(lock Lock, name string, done func(error))
}

// Backend is the lock, wake-up and live-stream service of a cluster (Redis).
type Backend interface {
	Locker
	Notifier
	Live
	// Ping checks that the backend answers.
	Ping(ctx context.Context) error
}

// NewCoordinator wires a coordinator. With a nil backend, everything runs
// in process (single node).
func NewCoordinator(store Store, backend Backend, opts Options) *Coordinator {
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = 5 * time.Second
	}
	if opts.ReapBatch <= 0 {
		opts.ReapBatch = 500
	}
	c := &Coordinator{store: store, local: NewLocal(), opts: opts, set: metrics.NewSet(), running: map[string]bool{}}
	c.locker, c.notifier = c.local, c.local
	if backend != nil {
		c.locker, c.notifier = backend, backend
		c.remote = sealedLive{Live: backend, keys: opts.Keys}
		c.batch, _ = backend.(batchedLive)
		c.redis = newRedisHealth(backend.Ping, opts.Log, opts.OpTimeout)
	}
	return c
}

// Metrics returns the coordinator's metric set.
func (c *Coordinator) Metrics() *metrics.Set { return c.set }

// Lease is the leader lease the coordinator runs with (a reload does not
// change it), for the retry hints of a 409.
func (c *Coordinator) Lease() time.Duration { return c.opts.Lease }

// Store returns the record store.
func (c *Coordinator) Store() Store { return c.store }

// count adds one to gateway_dedupe_total{outcome}; Begin is its only caller.
func (c *Coordinator) count(d Decision) {
	c.set.GetOrCreateCounter(`gateway_dedupe_total{outcome="` + d.String() + `"}`).Inc()
}

func (c *Coordinator) storeError(op string, err error) error {
	c.set.GetOrCreateCounter(`gateway_store_errors_total{store="record",op="` + op + `"}`).Inc()
	return fmt.Errorf("%w: cannot %s: %w", ErrStore, op, err)
}

// countAbandoned adds n to gateway_attempts_abandoned_total{provider}: calls
// whose leader died mid-call, which may have been paid and whose answer
// is lost. The provider was written from the config, so the label is
// bounded.
func (c *Coordinator) countAbandoned(provider string, n int) {
	c.set.GetOrCreateCounter(`gateway_attempts_abandoned_total{provider=` + strconv.Quote(provider) + `}`).Add(n)
}

func (c *Coordinator) degraded() {
	c.set.GetOrCreateCounter(`gateway_lock_degraded_total`).Inc()
}

// Request identifies one deduplicated request.
type Request struct {
	Tenant string
	// KeyHash is HashKey(tenant, key).
	KeyHash     string
	Fingerprint string
	Stream      bool
	// Model is the route's model name (a bounded label).
	Model string
	// MaxAge: see BeginRequest.MaxAge (derived keys).
	MaxAge time.Duration
	// Fresh marks a first try under derive: retries: it is recorded so
	// that its SDK retries find it, but it never replays or waits for an
	// earlier request (an identical "regenerate" is a new generation).
	Fresh bool
	// BypassOnStoreError (on_store_error: open): a store failure gives a
	// DecisionBypassed ticket carrying the failure instead of an ErrStore
	// error.
	BypassOnStoreError bool
	// First is the attempt the request makes first if it leads (provider
	// and model of the route's first target): Begin writes it as started,
	// and the ticket then keeps the attempt ledger (StartAttempt).
	First Attempt
	// AttemptWindow and AttemptBudget are key_attempts_window and
	// key_attempts (see BeginRequest); a leader's ticket then carries
	// RecentAttempts.
	AttemptWindow time.Duration
	AttemptBudget int
	// Skipped are recorded before First (see BeginRequest.Skipped).
	Skipped []Attempt
}

// Ticket is the decision for one request and what its holder needs to
// carry it out.
type Ticket struct {
	// Decision says what the holder must do: DecisionNew or
	// DecisionReclaimed, lead (call upstream, then Complete or Fail);
	// DecisionReplayed, send Task.Response; DecisionJoined, follow the
	// leader's live stream (Join); DecisionBypassed, call upstream without
	// a record.
	Decision Decision
	// Task is the record as seen at the decision (for DecisionReplayed it
	// holds the response).
	Task Task
	// StoreErr is the store failure behind a DecisionBypassed ticket of a
	// BypassOnStoreError request (nil otherwise), for the log.
	StoreErr error
	// RecentAttempts is, for a leader, how many attempts the key made
	// within Request.AttemptWindow before this request (BeginResult).
	RecentAttempts int

	lead *leader
}

// Leads reports whether the holder leads the task: it must Complete or
// Fail it.
func (t *Ticket) Leads() bool { return t.lead != nil }

func (c *Coordinator) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, c.opts.OpTimeout)
}

// Begin decides what the request does: lead, replay, join, bypass, or
// fail with ErrMismatch, ErrInProgress, ErrTooLarge or an ErrStore error.
// A non-stream duplicate of a running task waits (woken by the notifier,
// and re-checking the store at a slow pace in case a wake-up is lost)
// until it can replay, lead a retry or take over a zombie. Every decision
// is counted here, once.
func (c *Coordinator) Begin(ctx context.Context, r Request) (*Ticket, error) {
	t, err := c.decide(ctx, r)
	if err != nil && r.BypassOnStoreError && errors.Is(err, ErrStore) {
		t, err = &Ticket{Decision: DecisionBypassed, StoreErr: err}, nil
	}
	switch {
	case t != nil:
		c.count(t.Decision)
		c.served.add(t.Task, t.Decision)
	case DecisionOf(err) != DecisionNone:
		c.count(DecisionOf(err))
	}
	return t, err
}

// decide makes Begin's decision.
func (c *Coordinator) decide(ctx context.Context, r Request) (*Ticket, error) {
	deadline := time.Now().Add(c.opts.WaitTimeout)
	var wake <-chan struct{}
	var localWake <-chan struct{}
	var unsubs []func()
	defer func() {
		for _, u := range unsubs {
			u()
		}
	}()
	for {
		t, inflight, err := c.try(ctx, r)
		if err != nil {
			return nil, err
		}
		if t != nil {
			return t, nil
		}
		if r.Fresh {
			// An identical first try is running: this one is a new
			// generation too, but the record belongs to the other.
			return &Ticket{Decision: DecisionBypassed}, nil
		}
		if c.opts.Reject {
			return nil, ErrInProgress
		}
		if r.Stream && inflight.Fence > 0 {
			return &Ticket{Decision: DecisionJoined, Task: inflight}, nil
		}
		if wake == nil && localWake == nil {
			// Subscribe, then check again: a completion between the check
			// above and the subscription must not be missed.
			localWake, unsubs = c.subscribe(ctx, r.KeyHash, &wake, unsubs)
			continue
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return nil, ErrInProgress
		}
		// Without a lost wake-up the notifier ends the wait; the slow
		// re-check covers a leader that died (its lease runs out) or a
		// backend that dropped the message.
		poll := c.opts.Lease / 3
		if poll > time.Second || poll <= 0 {
			poll = time.Second
		}
		if poll > remaining {
			poll = remaining
		}
		timer := time.NewTimer(poll)
		select {
		case <-wake:
		case <-localWake:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("cannot wait for the leader: %w", ctx.Err())
		}
		timer.Stop()
	}
}

// subscribe listens for the task's completion on this node and, in a
// cluster, on the others.
func (c *Coordinator) subscribe(ctx context.Context, keyHash string, remote *<-chan struct{}, unsubs []func()) (<-chan struct{}, []func()) {
	lch, lcancel, _ := c.local.Subscribe(ctx, keyHash)
	unsubs = append(unsubs, lcancel)
	if c.notifier != Notifier(c.local) && !c.redisSkipped() {
		sctx, cancel := c.ctx(ctx)
		ch, rcancel, err := c.notifier.Subscribe(sctx, keyHash)
		cancel()
		if err != nil {
			c.redisFailed(err)
		} else {
			*remote = ch
			unsubs = append(unsubs, rcancel)
		}
	}
	return lch, unsubs
}

// try makes one decision. It returns a ticket, or the in-flight task to
// wait for or join (zero Task when the holder has not written its row yet).
func (c *Coordinator) try(ctx context.Context, r Request) (*Ticket, Task, error) {
	now := time.Now()
	if !r.Fresh {
		if task, ok := c.replays.get(r, now); ok {
			return &Ticket{Decision: DecisionReplayed, Task: task}, Task{}, nil
		}
	}
	var (
		lock Lock
		ok   = true
		err  error
	)
	if c.redisSkipped() {
		c.degraded()
	} else {
		lctx, cancel := c.ctx(ctx)
		lock, ok, err = c.locker.TryAcquire(lctx, r.KeyHash, c.opts.Lease)
		cancel()
		if err != nil {
			// Redis is a shortcut; the store's row and fence decide alone.
			c.redisFailed(err)
			lock, ok = nil, true
		}
	}
	if !ok {
		if r.Fresh {
			return nil, Task{}, nil // the holder is running; Begin bypasses
		}
		// Another request holds the lock: skip the insert and only read.
		return c.inspect(ctx, r, now)
	}
	sctx, cancel := c.ctx(ctx)
	res, err := c.store.Begin(sctx, BeginRequest{
		Tenant: r.Tenant, KeyHash: r.KeyHash, Fingerprint: r.Fingerprint, Stream: r.Stream, Model: r.Model,
		Owner: c.opts.Owner, Lease: c.opts.Lease, MaxProcessing: c.opts.MaxProcessing, Fresh: r.Fresh, MaxAge: r.MaxAge,
		First: r.First, AttemptWindow: r.AttemptWindow, AttemptBudget: r.AttemptBudget, Skipped: r.Skipped,
		AttemptRetention: c.opts.KeyTTL,
	})
	cancel()
	if err != nil {
		c.release(lock)
		return nil, Task{}, c.storeError("begin", err)
	}
	switch res.Verdict {
	case VerdictLeader, VerdictReclaimed:
		d := DecisionNew
		if res.Verdict == VerdictReclaimed {
			d = DecisionReclaimed
			c.set.GetOrCreateCounter(`gateway_zombies_reclaimed_total`).Inc()
		}
		for _, a := range res.Abandoned {
			c.countAbandoned(a.Provider, 1)
		}
		c.replays.drop(r.Tenant, r.KeyHash, res.Task.CreatedAt, res.Task.Fence, time.Now())
		return &Ticket{Decision: d, Task: res.Task, RecentAttempts: res.RecentAttempts, lead: c.newLeader(r, res.Task, res.Started, lock)}, Task{}, nil
	case VerdictCompleted:
		c.release(lock)
		c.replays.put(res.Task, now)
		t, err := c.replay(res.Task)
		return t, Task{}, err
	case VerdictMismatch:
		c.release(lock)
		return nil, Task{}, ErrMismatch
	default:
		c.release(lock)
		return nil, res.Task, nil
	}
}

// inspect reads the row of a task whose lock is held elsewhere; the read
// began at now.
func (c *Coordinator) inspect(ctx context.Context, r Request, now time.Time) (*Ticket, Task, error) {
	sctx, cancel := c.ctx(ctx)
	task, err := c.store.Lookup(sctx, r.Tenant, r.KeyHash)
	cancel()
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, Task{}, nil
	case err != nil:
		return nil, Task{}, c.storeError("get", err)
	case !task.ExpiresAt.IsZero() && time.Now().After(task.ExpiresAt),
		r.MaxAge > 0 && task.Status != StatusProcessing && time.Since(task.UpdatedAt) > r.MaxAge:
		return nil, Task{}, nil
	case task.Fingerprint != r.Fingerprint:
		return nil, Task{}, ErrMismatch
	case task.Status == StatusCompleted:
		c.replays.put(task, now)
		t, err := c.replay(task)
		return t, Task{}, err
	case task.Status == StatusProcessing:
		return nil, task, nil
	default:
		// Failed: the lock holder is about to restart it.
		return nil, Task{}, nil
	}
}

func (c *Coordinator) replay(task Task) (*Ticket, error) {
	if task.TooLarge || task.Response == nil {
		return nil, ErrTooLarge
	}
	return &Ticket{Decision: DecisionReplayed, Task: task}, nil
}

// CountSaved counts the usage a replay or join did not pay for again;
// model is the route's model name.
func (c *Coordinator) CountSaved(model string, u Usage) {
	if u.PromptTokens > 0 {
		c.set.GetOrCreateCounter(`gateway_tokens_saved_total{model=` + strconv.Quote(model) + `,kind="prompt"}`).Add(int(u.PromptTokens))
	}
	if u.CompletionTokens > 0 {
		c.set.GetOrCreateCounter(`gateway_tokens_saved_total{model=` + strconv.Quote(model) + `,kind="completion"}`).Add(int(u.CompletionTokens))
	}
}

func (c *Coordinator) release(l Lock) {
	if l == nil {
		return
	}
	ctx, cancel := c.ctx(context.Background())
	defer cancel()
	if err := l.Release(ctx); err != nil {
		c.redisFailed(err)
	}
}

// liveName names the live stream of one fence of one generation of a
// task (fences restart after the record is deleted; see
// Completion.Generation), so a joiner never reads an older answer's
// lingering stream.
func liveName(keyHash string, fence int64, generation time.Time) string {
	return keyHash + ":" + strconv.FormatInt(generation.UnixMicro(), 36) + ":" + strconv.FormatInt(fence, 10)
}
