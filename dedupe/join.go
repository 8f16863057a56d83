package dedupe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// Join sends the events of a running stream, from index from on, to emit:
// first from the live stream (this node's, or Redis for a leader on
// another node), and when that is unavailable or breaks, by waiting for
// the task to finish and replaying the rest from the record. The last
// event passed to emit has End set. An error from emit (the client left)
// stops the join.
func (c *Coordinator) Join(ctx context.Context, r Request, t *Ticket, from int, emit func(LiveEvent) error) error {
	name := liveName(r.KeyHash, t.Task.Fence, t.Task.CreatedAt)
	c.mu.Lock()
	local := c.running[name]
	c.mu.Unlock()
	var src Live = c.local
	if !local && c.remote != nil {
		if c.redisSkipped() {
			c.degraded()
			return c.joinFromRecord(ctx, r, t.Task.Fence, from, emit)
		}
		src = c.remote
	}
	n := from
	fctx, stop := context.WithTimeout(ctx, c.opts.MaxProcessing)
	defer stop()
	go c.watchLeader(fctx, stop, r, t.Task.Fence)
	ch, errf := src.Follow(fctx, name, from, c.opts.WaitTimeout)
	for ev := range ch {
		if err := emit(ev); err != nil {
			return err
		}
		if ev.End {
			return nil
		}
		n++
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := errf(); err != nil {
		switch {
		case errors.Is(err, ErrLockUnavailable):
			c.redisFailed(err)
		case errors.Is(err, ErrSealed):
			// A live event that does not open (a key missing on this node):
			// the rest comes from the record, which the store opens or refuses.
			c.set.GetOrCreateCounter(`gateway_store_errors_total{store="live",op="open"}`).Inc()
		}
	}
	return c.joinFromRecord(ctx, r, t.Task.Fence, n, emit)
}

// watchLeader stops a join whose live stream will not end by itself: the
// leader died (its lease ran out), the task was taken over, or the task
// finished but its end marker never reached the live stream.
func (c *Coordinator) watchLeader(ctx context.Context, stop context.CancelFunc, r Request, fence int64) {
	every := max(c.opts.Lease/3, 100*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	finished := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sctx, cancel := c.ctx(ctx)
		task, _, err := c.store.Get(sctx, r.Tenant, r.KeyHash)
		cancel()
		if err != nil {
			continue
		}
		// The lease is compared with a margin of one lease, since it was
		// set by another clock.
		dead := task.Status == StatusProcessing && time.Now().After(task.LeaseUntil.Add(c.opts.Lease))
		if task.Status != StatusProcessing {
			// The end marker should have arrived; if the live stream lost
			// it (a failed append), finish from the record.
			finished++
		}
		if task.Fence != fence || dead || finished >= 2 {
			stop()
			return
		}
	}
}

// joinFromRecord waits until the task is finished and replays its
// transcript from event index from.
func (c *Coordinator) joinFromRecord(ctx context.Context, r Request, fence int64, from int, emit func(LiveEvent) error) error {
	task, err := c.awaitFinished(ctx, r)
	if err != nil {
		return emit(LiveEvent{End: true, Err: err.Error()})
	}
	switch {
	case task.Fence != fence && from > 0:
		// Another generation: its events would not continue the ones sent.
		return emit(LiveEvent{End: true, Err: "the leading request died mid-stream; retry with the same key"})
	case task.Status == StatusFailed:
		return emit(LiveEvent{End: true, Err: "the leading request failed: " + task.Error})
	case task.TooLarge || task.Response == nil:
		return emit(LiveEvent{End: true, Err: ErrTooLarge.Error()})
	}
	evs := SplitEvents(task.Response.Body)
	for i := from; i < len(evs); i++ {
		if err := emit(LiveEvent{Data: evs[i]}); err != nil {
			return err
		}
	}
	return emit(LiveEvent{End: true})
}

// awaitFinished waits, up to wait_timeout, until the task is completed
// or failed, woken by the notifier and re-checking slowly.
func (c *Coordinator) awaitFinished(ctx context.Context, r Request) (Task, error) {
	var remote <-chan struct{}
	lch, unsubs := c.subscribe(ctx, r.KeyHash, &remote, nil)
	defer func() {
		for _, u := range unsubs {
			u()
		}
	}()
	deadline := time.Now().Add(c.opts.WaitTimeout)
	for {
		sctx, cancel := c.ctx(ctx)
		task, _, err := c.store.Get(sctx, r.Tenant, r.KeyHash)
		cancel()
		if err != nil {
			return Task{}, c.storeError("get", err)
		}
		if task.Status != StatusProcessing {
			return task, nil
		}
		if time.Now().After(task.LeaseUntil.Add(c.opts.Lease)) {
			// The leader died; the client's retry takes the task over
			// (a joiner cannot lead a stream it is already relaying).
			return Task{}, errLeaderDied
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return Task{}, ErrInProgress
		}
		timer := time.NewTimer(min(remaining, time.Second))
		select {
		case <-lch:
		case <-remote:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return Task{}, fmt.Errorf("cannot wait for the stream: %w", ctx.Err())
		}
		timer.Stop()
	}
}

var eventSep = []byte("\n\n")

// errLeaderDied ends a join whose leader stopped renewing its lease.
var errLeaderDied = errors.New("the leading request died mid-stream; retry with the same key")

// SplitEvents splits a recorded transcript into its SSE events (each
// without the blank line that ended it).
func SplitEvents(transcript []byte) [][]byte {
	var out [][]byte
	for len(transcript) > 0 {
		i := bytes.Index(transcript, eventSep)
		if i < 0 {
			out = append(out, transcript)
			break
		}
		out = append(out, transcript[:i])
		transcript = transcript[i+2:]
	}
	return out
}
