package dedupe

import (
	"context"
	"time"
)

// Reap runs one reaper pass: it fails zombies (processing past their
// lease or max_processing, fence bumped so late writes are refused) and
// deletes expired finished tasks, each in small batches so no statement
// holds locks for long (DESIGN.md section 2, retention).
func (c *Coordinator) Reap(ctx context.Context) (reclaimed, expired int, err error) {
	for {
		sctx, cancel := c.ctx(ctx)
		r, err := c.store.ReclaimZombies(sctx, c.opts.MaxProcessing, c.opts.ReapBatch)
		cancel()
		if err != nil {
			return reclaimed, expired, c.storeError("reclaim", err)
		}
		reclaimed += r.Tasks
		c.set.GetOrCreateCounter(`gateway_zombies_reclaimed_total`).Add(r.Tasks)
		for provider, n := range r.Abandoned {
			c.countAbandoned(provider, n)
		}
		if r.Tasks < c.opts.ReapBatch {
			break
		}
	}
	for {
		sctx, cancel := c.ctx(ctx)
		n, err := c.store.DeleteExpired(sctx, c.opts.ReapBatch)
		cancel()
		if err != nil {
			return reclaimed, expired, c.storeError("delete_expired", err)
		}
		expired += n
		c.set.GetOrCreateCounter(`gateway_tasks_expired_total`).Add(n)
		if n < c.opts.ReapBatch {
			return reclaimed, expired, nil
		}
	}
}

// RunReaper runs Reap every interval until ctx is done; report receives
// each pass's result (for the log). It also writes the replays and joins
// counted since its last flush every few seconds (FlushServed); a failed
// flush is reported as a failed pass.
func (c *Coordinator) RunReaper(ctx context.Context, interval time.Duration, report func(reclaimed, expired int, err error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	flush := time.NewTicker(servedFlushInterval)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			if err := c.FlushServed(ctx); err != nil && report != nil {
				report(0, 0, err)
			}
			continue
		case <-t.C:
		}
		r, e, err := c.Reap(ctx)
		if report != nil && (r > 0 || e > 0 || err != nil) {
			report(r, e, err)
		}
	}
}
