package upstreams

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// AttemptOutcome is how one upstream attempt ended (DESIGN.md section 3).
// Its string is the outcome label of gateway_upstream_attempts_total and
// what the dedupe record stores.
type AttemptOutcome string

// Attempt outcomes. The chain produces started (while the call runs),
// success, timeout, error, rate_limited and skipped; cut and abandoned
// are the ledger's words for a stream broken after its first byte and a
// call whose leader died.
const (
	OutcomeStarted     AttemptOutcome = "started"
	OutcomeSuccess     AttemptOutcome = "success"
	OutcomeTimeout     AttemptOutcome = "timeout"
	OutcomeError       AttemptOutcome = "error"
	OutcomeRateLimited AttemptOutcome = "rate_limited"
	OutcomeCut         AttemptOutcome = "cut"
	OutcomeSkipped     AttemptOutcome = "skipped"
	OutcomeAbandoned   AttemptOutcome = "abandoned"
)

// Attempt is the record of one upstream call.
type Attempt struct {
	Provider   string
	Model      string
	Outcome    AttemptOutcome
	HTTPStatus int
	Error      string
	Start      time.Time
	Duration   time.Duration
	// TTFB is the time to the first response byte (0 when none arrived).
	TTFB  time.Duration
	Usage Usage
}

// Usage is what the upstream reported in its usage object.
type Usage struct {
	PromptTokens     int64
	CompletionTokens int64
}

// outcomeFor classifies a finished attempt.
func outcomeFor(err *Error) AttemptOutcome {
	switch {
	case err == nil:
		return OutcomeSuccess
	case err.Err == ErrNoAPIKey:
		return OutcomeSkipped
	case err.Timeout:
		return OutcomeTimeout
	case err.Status == 429:
		return OutcomeRateLimited
	default:
		return OutcomeError
	}
}

// attempt is one call of a chain to one target, from the moment its
// record opens (started) to its outcome.
type attempt struct {
	chain  *Chain
	target Target
	res    *Result
	idx    int    // its record in res.Attempts
	model  string // the model sent upstream
	label  string // the model metric label: the target's configured model, else the route's
	body   []byte // the client's body with model rewritten for the target
	status int    // the upstream HTTP status, once one answered
	ledger Ledger // nil: attempts are not recorded as they happen
}

// Ledger records a chain's attempts as they happen. upstreams does not
// import dedupe: routes adapts the task's record to it.
type Ledger interface {
	// Start is called before an attempt's call goes out, with its record
	// (outcome started). An error keeps the call from going out, and the
	// chain stops with ErrNotRecorded.
	Start(a Attempt) error
	// Finish is called once the attempt ended (any outcome), with its
	// final record; a stream's attempt ends with the stream.
	Finish(a Attempt)
}

// try is one attempt's life: send to the target, wait for the first byte,
// then hand the answer to res, or record why there is none. next reports
// that the chain should go on to its next target, with e the failure.
func (c *Chain) try(ctx context.Context, t Target, req Request, res *Result) (next bool, e *Error) {
	a, e := c.newAttempt(t, req, res)
	if e != nil {
		return false, e
	}
	if a.ledger != nil {
		if err := a.ledger.Start(*a.record()); err != nil {
			res.Attempts = res.Attempts[:a.idx]
			return false, &Error{Provider: t.Provider.Name, Err: fmt.Errorf("%w: %w", ErrNotRecorded, err)}
		}
	}
	rep, e := t.Provider.do(ctx, Call{Path: req.Path, Body: a.body, Stream: req.Stream, IdempotencyKey: req.IdempotencyKey}, a.record().Start)
	if e != nil {
		return a.failed(e)
	}
	res.Provider, res.Model = t.Provider.Name, a.model
	res.Status, res.ContentType = rep.status, rep.contentType
	a.status = rep.status
	a.record().TTFB = rep.ttfb
	if req.Stream && isEventStream(rep.contentType) {
		res.Stream = &Stream{br: rep.body, release: rep.release, finish: a.finish, provider: t.Provider.Name, needsDone: true}
		return false, nil
	}
	return false, a.readBody(rep)
}

// newAttempt rewrites the body for t and opens the attempt's record.
func (c *Chain) newAttempt(t Target, req Request, res *Result) (*attempt, *Error) {
	a := &attempt{chain: c, target: t, res: res, model: req.Model, label: t.Model, body: req.Body, ledger: req.Ledger}
	if t.Model != "" {
		// json.Marshal, not strconv.Quote: Go's \x escapes are not JSON.
		quoted, err := json.Marshal(t.Model)
		if err == nil {
			a.body, err = ReplaceField(req.Body, "model", quoted)
		}
		if err != nil {
			return nil, &Error{Provider: t.Provider.Name, Err: fmt.Errorf("cannot rewrite model: %w", err)}
		}
		a.model = t.Model
	}
	if a.label == "" {
		a.label = c.Route.Model
	}
	a.idx = len(res.Attempts)
	res.Attempts = append(res.Attempts, Attempt{Provider: t.Provider.Name, Model: a.model, Outcome: OutcomeStarted, Start: time.Now()})
	return a, nil
}

// failed records an attempt that got no 2xx answer and says whether the
// chain falls back. A failure that must not fall back and carries an
// upstream status (a 4xx) goes back to the client as it is.
func (a *attempt) failed(e *Error) (next bool, _ *Error) {
	a.status = e.Status
	a.finish(e, Usage{})
	if e.Err == ErrNoAPIKey || a.chain.Route.Fallback.Covers(e.Status, e.Connect, e.Timeout) {
		return true, e
	}
	if e.Status != 0 {
		res := a.res
		res.Provider, res.Model = a.target.Provider.Name, a.model
		res.Status, res.ContentType, res.Body = e.Status, "application/json", e.Body
		return false, nil
	}
	return false, e
}

// readBody reads a whole (non-stream) answer into res.
func (a *attempt) readBody(rep *reply) *Error {
	b, err := io.ReadAll(io.LimitReader(rep.body, maxResponseBody))
	rep.release()
	if err != nil {
		e := &Error{Provider: a.target.Provider.Name, Status: rep.status, Err: fmt.Errorf("cannot read response: %w", err), Timeout: isTimeout(err)}
		a.finish(e, Usage{})
		// The upstream answered: assume it did the work, never retry elsewhere.
		return e
	}
	a.res.Body = b
	a.res.Usage, _ = ParseUsage(b)
	a.finish(nil, a.res.Usage)
	return nil
}

// finish closes the attempt's record (err nil is a success) and counts it.
func (a *attempt) finish(err *Error, u Usage) {
	r := a.record()
	r.Outcome, r.Duration, r.Usage, r.HTTPStatus = outcomeFor(err), time.Since(r.Start), u, a.status
	if err != nil {
		r.Error = err.Error()
	}
	a.chain.metrics.attempt(r, a.label, a.chain.price(a.label))
	if a.ledger != nil {
		a.ledger.Finish(*r)
	}
}

func (a *attempt) record() *Attempt { return &a.res.Attempts[a.idx] }
