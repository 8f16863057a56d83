package dedupe

import (
	"context"
	"errors"
	"sync"
)

// ledger is a leader's side of the attempt ledger (see ledger.go): which
// attempt is running, and the final record of the one that ended, which
// goes out with the next write (the next StartAttempt, or Complete or
// Fail) so that no attempt costs a commit of its own to end.
type ledger struct {
	mu sync.Mutex
	// on: Begin wrote the first attempt (Request.First was set).
	on bool
	// claimed: the chain's first attempt took Begin's row.
	claimed bool
	// current is the attempt started last; final its final record once
	// it ended, until written.
	current Attempt
	final   *Attempt
	// base is the number N of this leader's first row: the chain counts
	// its attempts from 1, the task's ledger across every leader.
	base int
}

// StartAttempt records attempt a as started before its call goes out,
// together with the final record of the attempt before it. The first
// attempt's row was written by Begin: when a is that target, nothing is
// written. An error (a store failure, or ErrFenced once the task was
// taken over) means the call must not go out: it could not be recorded.
// Without Request.First the ticket keeps no ledger and this does nothing.
func (t *Ticket) StartAttempt(ctx context.Context, a Attempt) error {
	l := t.lead
	g := &l.ledger
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.on {
		return nil
	}
	if l.lost.Load() {
		return ErrFenced
	}
	st := AttemptStart{Lease: l.c.opts.Lease}
	a.Continues = g.number(a.Continues)
	if !g.claimed {
		g.claimed = true
		if a.Provider == g.current.Provider && a.Model == g.current.Model {
			return nil
		}
		// Not the target Begin was told about: the same row, rewritten.
		st.Next = startedAttempt(a, g.current.N, l.fence, a.StartedAt)
	} else {
		st.Finished = g.ended()
		st.Next = startedAttempt(a, g.current.N+1, l.fence, a.StartedAt)
	}
	sctx, cancel := l.c.ctx(ctx)
	defer cancel()
	if err := l.c.store.StartAttempt(sctx, l.req.Tenant, l.req.KeyHash, l.fence, st); err != nil {
		if errors.Is(err, ErrFenced) {
			l.lose()
			return err
		}
		return l.c.storeError("start_attempt", err)
	}
	g.current, g.final = st.Next, nil
	return nil
}

// FinishAttempt keeps the final record of the attempt started last; it
// is written with the next StartAttempt, Complete or Fail.
func (t *Ticket) FinishAttempt(a Attempt) {
	l := t.lead
	g := &l.ledger
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.on {
		return
	}
	a.N, a.Fence = g.current.N, l.fence
	a.Continues = g.number(a.Continues)
	g.final = &a
}

// number is the N of the k-th attempt of this leader (k from 1); 0 stays
// 0. It turns what the chain knows of a continued stream (Continues, the
// position of the cut attempt among its own) into the ledger's number.
func (g *ledger) number(k int) int {
	if k <= 0 {
		return 0
	}
	return g.base + k - 1
}

// ended is the final record of the current attempt. One that never
// reported its end is closed as an error rather than left started.
// Call with mu held.
func (g *ledger) ended() *Attempt {
	if g.final != nil {
		return g.final
	}
	a := g.current
	a.Outcome, a.Error = "error", "the attempt ended without reporting an outcome"
	return &a
}

// last is the final record Complete or Fail writes: the attempt that
// ended last, or Begin's row closed as skipped when no call was made.
func (g *ledger) last() *Attempt {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.on {
		return nil
	}
	if !g.claimed {
		a := g.current
		a.Outcome, a.Error = AttemptSkipped, "not called: the request ended before its first attempt"
		return &a
	}
	return g.ended()
}
