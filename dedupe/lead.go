package dedupe

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// liveLinger is how long an ended live stream stays readable for joiners
// that decided to join just before the end.
const (
	localLinger  = 5 * time.Second
	remoteLinger = time.Minute
)

// leader is the state a leading request keeps while it calls upstream.
type leader struct {
	c     *Coordinator
	req   Request
	fence int64
	lock  Lock
	name  string
	// beats renews the lease (heartbeat): a timer, not a goroutine
	// waiting on a ticker, since every open stream has a leader (issue 14).
	beatMu      sync.Mutex
	beats       *time.Timer
	beatStopped bool
	// halted is closed once no heartbeat runs or will run.
	halted  chan struct{}
	lost    atomic.Bool
	started time.Time
	// generation is the task's CreatedAt from Begin (Completion.Generation).
	generation time.Time
	// onLost cancels the leader's upstream call once its task was taken
	// over or outlived max_processing: whatever it still pays for could
	// not be recorded.
	onLostMu sync.Mutex
	onLost   func()
	ledger   ledger

	// Written by the leading goroutine only.
	transcript []byte
	events     int
	tooLarge   bool
	remoteDown bool
	// remoteStarted: an entry of the stream reached Redis, so the next
	// ones continue it (LiveEvent.Continues); for a backend without a
	// batched writer.
	remoteStarted bool
	// writer queues the stream's entries for Redis (nil without one).
	writer  *LiveWriter
	endOnce sync.Once
}

func (c *Coordinator) newLeader(r Request, task Task, started *Attempt, lock Lock) *leader {
	l := &leader{c: c, req: r, fence: task.Fence, lock: lock, name: liveName(r.KeyHash, task.Fence, task.CreatedAt),
		halted: make(chan struct{}), started: time.Now(), generation: task.CreatedAt}
	if started != nil {
		l.ledger.on, l.ledger.current = true, *started
		// Begin wrote the skipped rows right before the first call's.
		l.ledger.base = started.N - len(r.Skipped)
	}
	if r.Stream {
		if c.batch != nil {
			l.writer = c.batch.Writer(l.name, c.redisFailed)
		}
		c.local.Open(l.name)
		c.mu.Lock()
		c.running[l.name] = true
		c.mu.Unlock()
	}
	c.leaders.Add(1)
	l.beatMu.Lock()
	l.beats = time.AfterFunc(l.beatEvery(), l.heartbeat)
	l.beatMu.Unlock()
	return l
}

// beatEvery is the heartbeat's period: lease/3 (DESIGN.md section 3).
func (l *leader) beatEvery() time.Duration {
	if every := l.c.opts.Lease / 3; every > 0 {
		return every
	}
	return time.Second
}

// heartbeat extends the lease, every lease/3 (DESIGN.md section 3) until
// the task ends; a stale fence means a take-over happened. It runs on
// the timer's goroutine and sets the timer again when it is done.
func (l *leader) heartbeat() {
	if l.beatDone() {
		return
	}
	if l.c.opts.MaxProcessing > 0 && time.Since(l.started) > l.c.opts.MaxProcessing {
		l.lose()
	}
	ctx, cancel := l.c.ctx(context.Background())
	err := l.c.store.Heartbeat(ctx, l.req.Tenant, l.req.KeyHash, l.fence, l.c.opts.Lease)
	if errors.Is(err, ErrFenced) {
		l.lose()
	} else if err != nil {
		l.c.storeError("heartbeat", err)
	}
	if l.lock != nil && !l.c.redisSkipped() {
		if _, err := l.lock.Extend(ctx, l.c.opts.Lease); err != nil {
			l.c.redisFailed(err)
		}
	}
	cancel()
	l.beatMu.Lock()
	defer l.beatMu.Unlock()
	if l.beatStopped {
		close(l.halted)
		return
	}
	l.beats.Reset(l.beatEvery())
}

// beatDone reports whether the heartbeat was stopped, closing halted for
// the stopper that found the timer fired.
func (l *leader) beatDone() bool {
	l.beatMu.Lock()
	defer l.beatMu.Unlock()
	if l.beatStopped {
		close(l.halted)
	}
	return l.beatStopped
}

// stopHeartbeat stops the heartbeat and waits for a beat in progress.
func (l *leader) stopHeartbeat() {
	l.beatMu.Lock()
	l.beatStopped = true
	pending := l.beats.Stop() // true: the beat will not run, so none closes halted
	l.beatMu.Unlock()
	if pending {
		close(l.halted)
	}
	<-l.halted
}

// lose marks the lease lost and cancels the upstream call.
func (l *leader) lose() {
	l.lost.Store(true)
	l.onLostMu.Lock()
	f := l.onLost
	l.onLostMu.Unlock()
	if f != nil {
		f()
	}
}

// OnLost registers the function that cancels the leader's upstream call
// when its task is taken over or outlives max_processing.
func (t *Ticket) OnLost(cancel func()) {
	t.lead.onLostMu.Lock()
	t.lead.onLost = cancel
	t.lead.onLostMu.Unlock()
	if t.lead.lost.Load() {
		cancel()
	}
}

// Fence is the leader's fencing token.
func (t *Ticket) Fence() int64 { return t.Task.Fence }

// Publish records one SSE event of the leader's stream and hands it to
// its own client and to joiners. Events must be published in order by
// one goroutine.
func (t *Ticket) Publish(ev []byte) {
	l := t.lead
	ctx := context.Background()
	if l.c.remote != nil && l.writer == nil {
		// Only a backend without a batched writer is waited for here
		// (the local copy never blocks): no timer per event otherwise.
		var cancel context.CancelFunc
		ctx, cancel = l.c.ctx(ctx)
		defer cancel()
	}
	l.live(ctx, ev)
	l.record(ctx, ev)
}

// live hands one event to the leader's client and to joiners.
func (l *leader) live(ctx context.Context, ev []byte) {
	_ = l.c.local.Append(ctx, l.name, LiveEvent{Data: ev})
	if l.tooLarge {
		// Not recordable, so not joinable: keep only what this node's
		// readers still need.
		l.c.local.Trim(l.name)
		return
	}
	if l.c.remote != nil && !l.remoteDown {
		if l.c.redisSkipped() {
			l.remoteDown = true
		} else if l.writer != nil {
			// Queued, not sent: the leader's client already has the
			// event from this node's copy, so nothing here waits for Redis.
			if l.writer.Down() {
				l.remoteDown = true
			} else {
				l.writer.Append(LiveEvent{Data: l.c.liveData(l.name, ev)})
			}
		} else if err := l.c.remote.Append(ctx, l.name, LiveEvent{Data: ev, Continues: l.remoteStarted}); err != nil {
			// Remote joiners fall back to waiting for the stored result.
			l.remoteDown = true
			if !errors.Is(err, ErrLiveLost) {
				l.c.redisFailed(err)
			}
		} else {
			l.remoteStarted = true
		}
	}
}

// record adds one event to the transcript that Complete stores.
func (l *leader) record(ctx context.Context, ev []byte) {
	l.events++
	if l.tooLarge {
		return
	}
	if len(l.transcript)+len(ev)+2 > l.c.opts.MaxRecordBytes {
		l.tooLarge, l.transcript = true, nil
		if l.c.remote != nil && !l.remoteDown {
			// Joiners on other nodes stop here with a clear reason.
			if l.writer != nil {
				l.writer.End(LiveEvent{Err: ErrTooLarge.Error()}, 0, false)
			} else {
				_ = l.c.remote.Append(ctx, l.name, LiveEvent{End: true, Err: ErrTooLarge.Error(), Continues: l.remoteStarted})
			}
			l.remoteDown = true
		}
		return
	}
	l.transcript = append(l.transcript, ev...)
	l.transcript = append(l.transcript, '\n', '\n')
}

// Follow reads the leader's own live stream from index from, for the
// leader's client. Call it before the first Publish: from then on the
// follower's position holds the events it has not read yet.
func (t *Ticket) Follow(ctx context.Context, from int) (<-chan LiveEvent, func() error) {
	return t.lead.c.local.Follow(ctx, t.lead.name, from, t.lead.c.opts.WaitTimeout)
}

// Complete stores the response and ends the task. For a stream, pass the
// status and content type: the body is the published transcript.
func (t *Ticket) Complete(ctx context.Context, resp Response, usage Usage) error {
	return t.CompleteStream(ctx, resp, usage, nil)
}

// CompleteStream completes a stream whose last event, last, was held back
// from Publish: it is recorded, stored, and only then handed to the
// clients. A client that saw a stream end holds an answer the record
// holds too; when the write fails (the store stayed down, or the task was
// taken over), the stream ends with an error instead, so that the client
// retries and gets the key's one answer (issue 13, found by the chaos run).
func (t *Ticket) CompleteStream(ctx context.Context, resp Response, usage Usage, last []byte) error {
	l := t.lead
	lctx, cancel := l.c.ctx(context.Background())
	defer cancel()
	if last != nil {
		l.record(lctx, last)
	}
	c := Completion{Response: resp, Usage: usage, TTL: l.c.opts.KeyTTL, Generation: l.generation, Attempt: l.ledger.last()}
	if l.req.Stream && l.events > 0 {
		c.Response.Body, c.TooLarge = l.transcript, l.tooLarge
	} else if len(resp.Body) > l.c.opts.MaxRecordBytes {
		c.Response.Body, c.TooLarge = nil, true
	}
	err := l.write("complete", func(ctx context.Context) error {
		return l.c.store.Complete(ctx, l.req.Tenant, l.req.KeyHash, l.fence, c)
	})
	if err != nil {
		l.end("the answer could not be recorded: " + err.Error())
		return err
	}
	if last != nil {
		l.live(lctx, last)
	}
	l.end("")
	return nil
}

// finalWriteBudget bounds how long a leader retries storing its outcome.
const finalWriteBudget = 30 * time.Second

// write stores the task's outcome, retrying with backoff while the
// heartbeat keeps the lease: a paid answer lost to a passing store error
// would be paid again by the retry.
func (l *leader) write(op string, fn func(ctx context.Context) error) error {
	deadline := time.Now().Add(finalWriteBudget)
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := l.c.ctx(context.Background())
		err := fn(ctx)
		cancel()
		if err == nil || errors.Is(err, ErrFenced) {
			return err
		}
		err = l.c.storeError(op, err)
		if time.Now().Add(backoff).After(deadline) {
			return err
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

// Fail marks the task failed (a retry makes a new attempt) and ends it;
// joiners receive reason as the stream's error.
func (t *Ticket) Fail(ctx context.Context, reason string) error {
	l := t.lead
	f := Failure{Reason: reason, TTL: l.c.opts.KeyTTL, Attempt: l.ledger.last()}
	err := l.write("fail", func(ctx context.Context) error {
		return l.c.store.Fail(ctx, l.req.Tenant, l.req.KeyHash, l.fence, f)
	})
	if reason == "" {
		reason = "upstream failed"
	}
	l.end(reason)
	return err
}

// end closes the live streams, wakes waiters and releases the lock, in
// that order, after the store holds the outcome. What goes to Redis is
// done off the request path (issue 10): the outcome is durable already,
// and until the lock is released a duplicate reads the store instead
// (Coordinator.try), which replays it, so the answer need not wait for
// two more Redis round trips. Shutdown waits for it (leaders).
func (l *leader) end(errText string) {
	l.endOnce.Do(func() {
		l.stopHeartbeat()
		ctx, cancel := l.c.ctx(context.Background())
		// After events, the end continues a stream: where Redis lost (or
		// never got) them, remote joiners finish from the record.
		ev := LiveEvent{End: true, Err: errText, Continues: l.events > 0}
		if l.req.Stream {
			_ = l.c.local.Append(ctx, l.name, ev)
			_ = l.c.local.Expire(ctx, l.name, localLinger)
		}
		_ = l.c.local.Publish(ctx, l.req.KeyHash)
		l.c.mu.Lock()
		delete(l.c.running, l.name)
		l.c.mu.Unlock()
		cancel()
		if l.c.batch == nil || l.c.redisSkipped() {
			go l.endRemote(ev)
			return
		}
		// The stream's End, its linger, the lock's release and the
		// wake-up of other nodes go out in the queue's next flush, with
		// those of every other task ending meanwhile: one round trip.
		if l.writer != nil {
			// After events Redis missed, the End sends remote joiners
			// to the record.
			l.writer.End(ev, remoteLinger, l.remoteDown)
		}
		l.c.batch.Finish(l.lock, l.req.KeyHash, l.finished)
	})
}

// finished takes in the result of Finish.
func (l *leader) finished(err error) {
	defer l.c.leaders.Done()
	if err != nil && !errors.Is(err, ErrLiveLost) {
		l.c.redisFailed(err)
	}
}

// liveData is an event's bytes as a live stream in Redis keeps them:
// sealed (store.encryption_keys), or a copy, since the writer sends them
// after Publish returned.
func (c *Coordinator) liveData(name string, ev []byte) []byte {
	if c.opts.Keys.Enabled() && len(ev) > 0 {
		return sealLive(c.opts.Keys, name, ev)
	}
	return append([]byte(nil), ev...)
}

// endRemote ends remote joiners, releases the lock and wakes waiters on
// other nodes.
func (l *leader) endRemote(ev LiveEvent) {
	defer l.c.leaders.Done()
	ctx, cancel := l.c.ctx(context.Background())
	defer cancel()
	if l.c.remote != nil && l.req.Stream && l.writer == nil && !l.c.redisSkipped() {
		// Even after a failed append, try to end remote joiners now
		// rather than at their watchdog.
		err := l.c.remote.Append(ctx, l.name, ev)
		if err == nil {
			err = l.c.remote.Expire(ctx, l.name, remoteLinger)
		}
		if err != nil && !errors.Is(err, ErrLiveLost) {
			l.c.redisFailed(err)
		}
	}
	// Released before waking the other nodes: a woken waiter of a failed
	// task can then take the lock and restart it at once.
	l.c.release(l.lock)
	if l.c.notifier != Notifier(l.c.local) && !l.c.redisSkipped() {
		if err := l.c.notifier.Publish(ctx, l.req.KeyHash); err != nil {
			l.c.redisFailed(err)
		}
	}
}
