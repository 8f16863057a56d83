package upstreams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/idemgw/gateway/upstreams/breaker"
	"github.com/idemgw/gateway/upstreams/dialect"
)

// pass is one request's way through a chain (DESIGN.md section 7): the
// targets in the request's order, each asked of its breaker first; open
// ones skipped at once, the others called, retried and fallen back from
// within the attempt budget.
type pass struct {
	c   *Chain
	ctx context.Context
	req Request
	res *Result
	// left is how many calls the request may still make (max_attempts,
	// lowered by the key's budget); calls counts those made.
	left  int
	calls int
	last  *Error
	// open are the targets the breakers skipped, with their decisions,
	// for the forced call when every target was skipped.
	open     []breaker.Decision
	openT    []Target
	unusable []string // why the other skipped targets cannot be called
	// refused is why a target could not be sent the request in its
	// dialect (a feature the other API lacks): the client's to fix, so
	// when no target was called it is the answer (a 400).
	refused error
	// prev is the provider reached last, for gateway_fallbacks_total.
	prev string
	// order is the request's order of the targets, and pos the index in
	// it of the next one to try (a continuation starts there).
	order []int
	pos   int
}

// Do calls the targets in order until one answers with a 2xx or a
// failure that fallback_on does not cover. It returns the last *Error when
// every target failed, an *Error wrapping ErrNoUsableTarget when none could
// be called; Result.Attempts is filled in every case. With on_stream_cut:
// continue, a chat stream that is cut goes on with the targets after the
// one that answered (see resume).
func (c *Chain) Do(ctx context.Context, req Request) (*Result, error) {
	p := &pass{c: c, ctx: ctx, req: req, res: &Result{}, left: c.maxAttempts}
	if req.MaxAttempts > 0 && req.MaxAttempts < p.left {
		p.left = req.MaxAttempts
	}
	err := p.run()
	if s := p.res.Stream; err == nil && s != nil && c.Route.ContinuesCutStreams() && continuable(req.Path, req.Body) {
		s.splice = &splice{cur: s, resume: p.resume, messages: req.Path == MessagesPath, blocks: messagesBlocks{open: -1},
			counted: func(continued bool) { c.metrics.streamCut(c.Route.Model, continued) }}
	}
	return p.res, err
}

// run goes through the request's plan: its skipped targets, then the
// others in order, then, when none could be called, the open target that
// closes first.
func (p *pass) run() error {
	c, req := p.c, p.req
	pl := req.Plan
	recorded := len(pl.Order) == len(c.Targets)
	if !recorded {
		pl = c.Plan(req.Path, req.Model)
	}
	p.order = pl.Order
	for k, s := range pl.skips {
		if done, err := p.planned(s, pl.Skipped[k], recorded); done {
			return err
		}
	}
	for p.pos = len(pl.skips); p.pos < len(p.order); {
		t := c.Targets[p.order[p.pos]]
		p.pos++
		if done, err := p.target(t); done {
			return err
		}
	}
	if p.calls == 0 {
		if k := breaker.Soonest(p.open); k >= 0 {
			// Every callable target is open: the gateway never fails a
			// request without trying, so the one that closes first is
			// called anyway, as its probe.
			t := p.openT[k]
			pr, err := c.prepare(t, req)
			if err != nil {
				return p.unprepared(t, err)
			}
			d := c.breaker.Force(p.ctx, p.open[k])
			if done, err := p.call(t, d, pr); done {
				return err
			}
		} else if p.last == nil {
			return p.noUsableTarget()
		}
	}
	return p.final()
}

// resume continues a cut chat stream (on_stream_cut: continue): the
// targets after the one that answered, in the request's order, breakers
// and the attempt budget as for any fallback, are asked to continue text,
// until one answers with a stream, which it returns. Its rows go into the
// request's attempts with Continues set to cut's attempt number.
func (p *pass) resume(text string, cut *Stream) (*Stream, error) {
	if err := p.ctx.Err(); err != nil {
		return nil, err
	}
	if p.left <= 0 {
		return nil, fmt.Errorf("max_attempts reached after %d attempts", p.calls)
	}
	body, err := continuationBody(p.req.Body, text)
	if err != nil {
		return nil, err
	}
	req := p.req
	req.Body, req.continues = body, cut.row+1
	if req.IdempotencyKey != "" {
		// Another body: a provider that honours the key must not take it
		// for a retry of the first call.
		req.IdempotencyKey = fmt.Sprintf("%s/continue-%d", req.IdempotencyKey, req.continues)
	}
	// The caller may still read the Result's answer fields (status,
	// provider) on another goroutine: a continuation fills a Result of its
	// own, and only its attempts come back. The rows of the attempts that
	// ended are final by now, and the one running keeps writing into the
	// same array, which nothing appends to until it ended.
	real, own := p.res, &Result{Attempts: p.res.Attempts}
	orig := p.req
	p.req, p.res, p.last = req, own, nil
	defer func() {
		real.Attempts = own.Attempts
		p.req, p.res = orig, real
	}()
	for p.pos < len(p.order) {
		t := p.c.Targets[p.order[p.pos]]
		p.pos++
		done, err := p.target(t)
		switch {
		case !done:
			continue
		case err != nil:
			return nil, err
		case own.Stream == nil:
			return nil, fmt.Errorf("%s answered %d without a stream", own.Provider, own.Status)
		}
		return own.Stream, nil
	}
	if p.last != nil {
		return nil, p.last
	}
	return nil, errors.New("no target left after it")
}

// target tries one target. done reports that the request has its answer
// (or must stop), with err its error.
func (p *pass) target(t Target) (done bool, err error) {
	if err := p.ctx.Err(); err != nil {
		// Cancelled (client gone without detach, or the task was taken
		// over): calling the next target would pay for nothing.
		return true, &Error{Err: fmt.Errorf("cannot try the next target: %w", err)}
	}
	if p.left <= 0 {
		return true, p.stopped()
	}
	p.reach(t)
	if _, ok := t.Provider.serves(p.req.Path); !ok {
		reason := t.Provider.cannotServe(p.req.Path)
		p.unusable = append(p.unusable, reason)
		return p.skip(t, reason)
	}
	if !t.Provider.hasKey() {
		reason := fmt.Sprintf("provider %q has no api_key configured", t.Provider.Name)
		p.unusable = append(p.unusable, reason)
		return p.skip(t, reason)
	}
	pr, err := p.c.prepare(t, p.req)
	if err != nil {
		var re *dialect.RequestError
		if !errors.As(err, &re) {
			return true, p.unprepared(t, err)
		}
		reason := fmt.Sprintf("cannot translate the request for provider %q (kind %s): %s", t.Provider.Name, t.Provider.kind, re.Error())
		p.unusable = append(p.unusable, reason)
		if p.refused == nil {
			p.refused = re
		}
		return p.skip(t, reason)
	}
	d := p.c.breaker.Allow(p.ctx, t.key)
	if !d.Call {
		p.open, p.openT = append(p.open, d), append(p.openT, t)
		return p.skip(t, d.String())
	}
	return p.call(t, d, pr)
}

// unprepared is the error of a request that could not be made ready for
// t; a translation refusal is the client's (a *dialect.RequestError).
func (p *pass) unprepared(t Target, err error) error {
	return &Error{Provider: t.Provider.Name, Err: err}
}

// reach counts the move to t from the target reached before it.
func (p *pass) reach(t Target) {
	if p.prev != "" {
		p.c.metrics.fallback(p.c.Route.Model, p.prev, t.Provider.Name)
	}
	p.prev = t.Provider.Name
}

// planned applies a skip the plan decided. Its row is in the ledger
// already when the plan came with the request (recorded); otherwise it
// goes through the ledger like any skip.
func (p *pass) planned(s plannedSkip, row Attempt, recorded bool) (done bool, err error) {
	p.reach(s.t)
	if s.unusable != "" {
		p.unusable = append(p.unusable, s.unusable)
	} else {
		p.open, p.openT = append(p.open, s.d), append(p.openT, s.t)
	}
	if !recorded {
		return p.skip(s.t, row.Error)
	}
	row.Start = time.Now()
	p.res.Attempts = append(p.res.Attempts, row)
	p.c.metrics.attempt(&row, s.t.label(p.c), nil)
	traceSkipped(p.req.Tracer, len(p.res.Attempts), &row)
	return false, nil
}

// skip records a target that is not called; it costs no attempt of the
// budget. done is true only when the ledger refused the row.
func (p *pass) skip(t Target, reason string) (done bool, err error) {
	if e := p.c.skipped(t, p.req, p.res, reason); e != nil {
		return true, e
	}
	return false, nil
}

// call calls t under decision d, then retries it while its failures allow
// (retries: connect, 429 and 5xx, before any byte reached the client, each
// retry its own attempt within the budget).
func (p *pass) call(t Target, d breaker.Decision, pr prepared) (done bool, err error) {
	r := t.Provider.resilience
	for n := 0; ; n++ {
		if p.left <= 0 {
			return true, p.stopped()
		}
		if n > 0 {
			p.c.metrics.retryCounter(t.Provider.Name).Inc()
		}
		p.left--
		p.calls++
		next, e := p.c.try(p.ctx, t, d, pr, p.req, p.res)
		if !next {
			if e != nil {
				return true, e
			}
			return true, nil
		}
		p.last = e
		if !retryable(e) || p.left <= 0 {
			return false, nil
		}
		wait, ok := RetryDelay(n, r, e.RetryAfter, e.HasRetryAfter, nil)
		if !ok {
			return false, nil
		}
		// A failure that opened the breaker ends the retries at once; a
		// Retry-After is waited first, because the 429 itself cooled the
		// target for exactly that long.
		if !e.HasRetryAfter {
			if d = p.c.breaker.Allow(p.ctx, t.key); !d.Call {
				return false, nil
			}
		}
		if !sleep(p.ctx, wait) {
			return true, &Error{Provider: t.Provider.Name, Err: fmt.Errorf("cannot retry: %w", p.ctx.Err())}
		}
		if e.HasRetryAfter {
			if d = p.c.breaker.Allow(p.ctx, t.key); !d.Call {
				return false, nil
			}
		}
	}
}

// retryable reports a failure worth a retry of the same target: the
// request provably never arrived (connect), or the upstream said to come
// back (429, 5xx). Timeouts are not retried: the upstream may still be
// working on, and paying for, the first call.
func retryable(e *Error) bool {
	return e.Connect || e.Status == 429 || e.Status >= 500
}

// final is the chain's error once no target answered: the last failure.
func (p *pass) final() error {
	if p.last == nil {
		return &Error{Err: fmt.Errorf("route %q has no targets", p.c.Route.Model)}
	}
	return p.last
}

// stopped is the error of a request whose attempt budget ran out while
// targets or retries were left: the last failure, naming the budget.
func (p *pass) stopped() error {
	if p.last == nil {
		return p.final()
	}
	e := *p.last
	e.Err = fmt.Errorf("%w (stopped: max_attempts reached after %d attempts)", p.last.Err, p.calls)
	return &e
}

// noUsableTarget is the error of a route none of whose targets can be
// called for a reason that no retry changes.
func (p *pass) noUsableTarget() error {
	if p.refused != nil {
		// At least one target was left out for the request's own sake:
		// the client must change it, so it hears why (a 400).
		return &Error{Err: fmt.Errorf("%w: %w (%s)", ErrNoUsableTarget, p.refused, strings.Join(p.unusable, "; "))}
	}
	return &Error{Err: fmt.Errorf("%w: %s", ErrNoUsableTarget, strings.Join(p.unusable, "; "))}
}

// sleep waits d, and reports false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
