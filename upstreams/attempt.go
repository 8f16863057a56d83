package upstreams

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/idemgw/gateway/upstreams/breaker"
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
	// Continues is the number (1-based, in the request's attempts) of the
	// cut stream attempt this one continues (on_stream_cut: continue);
	// 0 for a plain attempt.
	Continues int
}

// Usage is what the upstream reported in its usage object.
type Usage struct {
	PromptTokens     int64
	CompletionTokens int64
}

// outcomeFor classifies a finished attempt; status is the upstream's
// HTTP status once one answered.
func outcomeFor(err *Error, status int) AttemptOutcome {
	switch {
	case err == nil:
		return OutcomeSuccess
	case err.Err == ErrNoAPIKey:
		return OutcomeSkipped
	case err.Timeout:
		return OutcomeTimeout
	case err.Status == 429:
		return OutcomeRateLimited
	case cutAnswer(err, status):
		return OutcomeCut
	default:
		return OutcomeError
	}
}

// cutAnswer reports a 2xx answer that broke before its end (a stream
// without its terminating event, a body cut short): the upstream started
// and failed, which is neither a refusal nor the gateway's doing.
func cutAnswer(err *Error, status int) bool {
	return status >= 200 && status <= 299 && !errors.Is(err, ErrStreamAbandoned) && !canceled(err)
}

// canceled reports an attempt ended by the request's context (its client
// left without detach, its task was taken over, shutdown): it says
// nothing about the upstream.
func canceled(err *Error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// breakerResult is what an attempt's end tells its target's breaker; ok is
// false when it tells nothing (the gateway cancelled the call).
func breakerResult(err *Error, status int) (r breaker.Result, ok bool) {
	switch {
	case err == nil, errors.Is(err, ErrStreamAbandoned):
		// An abandoned stream was flowing until the gateway stopped it.
		return breaker.Result{Class: breaker.Success}, true
	case canceled(err):
		return breaker.Result{}, false
	case err.Timeout:
		return breaker.Result{Class: breaker.Timeout}, true
	case err.Connect:
		return breaker.Result{Class: breaker.Connect}, true
	case cutAnswer(err, status):
		return breaker.Result{Class: breaker.Cut}, true
	case err.Status != 0:
		r = breaker.Result{Class: breaker.ClassOf(err.Status)}
		if r.Class == breaker.RateLimited && err.HasRetryAfter {
			// 0 would mean "none sent" to the breaker: a Retry-After of 0
			// asks for the shortest cooling, not the default one.
			r.RetryAfter = max(err.RetryAfter, time.Millisecond)
		}
		return r, true
	}
	// The connection broke before any status (reset, EOF): the target
	// failed to answer.
	return breaker.Result{Class: breaker.ServerError}, true
}

// attempt is one call of a chain to one target, from the moment its
// record opens (started) to its outcome.
type attempt struct {
	chain  *Chain
	target Target
	res    *Result
	idx    int      // its record in res.Attempts
	model  string   // the model sent upstream
	label  string   // the model metric label: the target's configured model, else the route's
	pr     prepared // the request as sent to the target, and how its answer comes back
	status int      // the upstream HTTP status, once one answered
	ledger Ledger   // nil: attempts are not recorded as they happen
	// decision is the breaker's leave to call; the attempt's end is
	// reported under it, unless ctx (the request's) ended first: a call
	// the gateway cut says nothing about the target.
	decision breaker.Decision
	ctx      context.Context
	op       string      // gen_ai.operation.name of the endpoint
	span     AttemptSpan // nil: not traced
	// answerModel is the model the upstream named (read when traced).
	answerModel string
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
func (c *Chain) try(ctx context.Context, t Target, d breaker.Decision, pr prepared, req Request, res *Result) (next bool, e *Error) {
	a := c.newAttempt(t, pr, req, res)
	a.decision, a.ctx = d, ctx
	if a.ledger != nil {
		if err := a.ledger.Start(*a.record()); err != nil {
			res.Attempts = res.Attempts[:a.idx]
			return false, &Error{Provider: t.Provider.Name, Err: fmt.Errorf("%w: %w", ErrNotRecorded, err)}
		}
	}
	call := Call{Path: pr.path, Body: pr.body, Stream: req.Stream, IdempotencyKey: req.IdempotencyKey}
	if req.Tracer != nil {
		a.span = req.Tracer.StartAttempt(a.idx+1, a.record())
		call.Traceparent, call.Tracestate = a.span.Traceparent()
	}
	rep, e := t.Provider.do(ctx, call, a.record().Start)
	if e != nil {
		return a.failed(e)
	}
	res.Provider, res.Model = t.Provider.Name, a.model
	res.Status, res.ContentType = rep.status, rep.contentType
	a.status = rep.status
	a.record().TTFB = rep.ttfb
	if req.Stream && isEventStream(rep.contentType) {
		res.Stream = &Stream{br: rep.body, release: rep.release, finish: a.finish, provider: t.Provider.Name, needsDone: true,
			anthropic: t.Provider.dialect == DialectAnthropic, tr: pr.streamTranslator(req.Body), row: a.idx}
		if pr.conv != passThrough {
			res.ContentType = "text/event-stream"
		}
		return false, nil
	}
	return false, a.readBody(rep)
}

// newAttempt opens the record of an attempt of t with the request pr.
func (c *Chain) newAttempt(t Target, pr prepared, req Request, res *Result) *attempt {
	a := &attempt{chain: c, target: t, res: res, model: pr.model, label: t.Model, pr: pr, ledger: req.Ledger, op: Operation(req.Path)}
	if a.label == "" {
		a.label = c.Route.Model
	}
	a.idx = len(res.Attempts)
	res.Attempts = append(res.Attempts, Attempt{Provider: t.Provider.Name, Model: a.model, Outcome: OutcomeStarted, Start: time.Now(), Continues: req.continues})
	return a
}

// skipped records a target that is not called (its breaker is open, its
// provider has no key): a row with outcome skipped and the reason, which
// goes through the ledger like any attempt so the log shows why the next
// target answered. A ledger error stops the chain as for a call.
func (c *Chain) skipped(t Target, req Request, res *Result, reason string) *Error {
	model := req.Model
	if t.Model != "" {
		model = t.Model
	}
	label := t.label(c)
	rec := Attempt{Provider: t.Provider.Name, Model: model, Outcome: OutcomeStarted, Start: time.Now()}
	if req.Ledger != nil {
		if err := req.Ledger.Start(rec); err != nil {
			return &Error{Provider: t.Provider.Name, Err: fmt.Errorf("%w: %w", ErrNotRecorded, err)}
		}
	}
	rec.Outcome, rec.Error = OutcomeSkipped, reason
	res.Attempts = append(res.Attempts, rec)
	c.metrics.attempt(&rec, label, nil)
	traceSkipped(req.Tracer, len(res.Attempts), &rec)
	if req.Ledger != nil {
		req.Ledger.Finish(rec)
	}
	return nil
}

// label is t's model metric label: its configured model, else the
// route's (never the client's free text).
func (t Target) label(c *Chain) string {
	if t.Model != "" {
		return t.Model
	}
	return c.Route.Model
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
		res.Status, res.ContentType, res.Body = e.Status, "application/json", a.pr.errorBody(e.Status, e.Body)
		return false, nil
	}
	return false, e
}

// readBody reads a whole (non-stream) answer into res.
func (a *attempt) readBody(rep *reply) *Error {
	// One byte over the cap tells a body that is too large from one
	// that fits exactly; cutting it silently would hand the client, and
	// the record, a truncated 200.
	b, err := io.ReadAll(io.LimitReader(rep.body, maxResponseBody+1))
	rep.release()
	if err == nil && len(b) > maxResponseBody {
		b, err = nil, fmt.Errorf("response body over %d bytes", maxResponseBody)
	}
	if err != nil {
		e := &Error{Provider: a.target.Provider.Name, Status: rep.status, Err: fmt.Errorf("cannot read response: %w", err), Timeout: isTimeout(err)}
		a.finish(e, Usage{})
		// The upstream answered: assume it did the work, never retry elsewhere.
		return e
	}
	out, u, err := a.pr.answer(a.target.Provider, b)
	if err != nil {
		// The upstream answered, and was paid, but not in a shape that
		// translates: the attempt failed like a cut answer.
		e := &Error{Provider: a.target.Provider.Name, Status: rep.status, Err: fmt.Errorf("cannot translate the answer: %w", err)}
		a.finish(e, u)
		return e
	}
	if a.pr.conv != passThrough {
		a.res.ContentType = "application/json"
	}
	a.res.Body, a.res.Usage = out, u
	if a.span != nil {
		a.answerModel = answerModel(b) // the upstream's own shape names it too
	}
	a.finish(nil, u)
	return nil
}

// finish closes the attempt's record (err nil is a success), counts it
// and reports it to the target's breaker. A stream's attempt finishes when
// the stream ends, so a stream cut after its first byte counts as cut.
func (a *attempt) finish(err *Error, u Usage) {
	r := a.record()
	r.Outcome, r.Duration, r.Usage, r.HTTPStatus = outcomeFor(err, a.status), time.Since(r.Start), u, a.status
	if err != nil {
		r.Error = err.Error()
	}
	if br, ok := breakerResult(err, a.status); ok && (err == nil || a.ctx.Err() == nil) {
		a.chain.breaker.Report(a.decision, br)
	}
	a.chain.metrics.attempt(r, a.label, a.chain.price(a.label))
	a.chain.metrics.genaiAttempt(a.op, a.chain.Route.Model, a.label, r)
	if a.ledger != nil {
		a.ledger.Finish(*r)
	}
	if a.span != nil {
		a.span.End(r, a.answerModel)
	}
}

func (a *attempt) record() *Attempt { return &a.res.Attempts[a.idx] }
