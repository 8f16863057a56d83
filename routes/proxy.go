package routes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/upstreams"
)

// proxied is one parsed API request, copied out of the RequestCtx so that
// goroutines and stream writers may keep it after the handler returns.
type proxied struct {
	path    string
	dialect upstreams.Dialect // the client's: its errors and stream errors are in it
	body    []byte
	model   string
	stream  bool
	chain   *upstreams.Chain
	// plan is how the chain will try its targets, drawn before Begin so
	// that Begin records the skipped targets and the first call at once.
	plan upstreams.Plan
	// maxAttempts, when above 0, is what the key has left of key_attempts.
	maxAttempts int
	// key is the idempotency key used (sent or derived); "" = no dedupe.
	key string
	req dedupe.Request
	// from is the index of the first event to send, and fromFence the
	// generation it counts in (Last-Event-ID "fence.n"); resume is false
	// without Last-Event-ID.
	from      int
	fromFence int64
	resume    bool
}

// proxy handles the POST endpoints of both dialects.
func (s *Server) proxy(ctx *fasthttp.RequestCtx, c *call) error {
	cfg := c.st.Config
	body := ctx.PostBody()
	if len(body) > cfg.MaxBodyBytes {
		return errorf(413, "request_too_large", "request body is %d bytes, over the limit of %d", len(body), cfg.MaxBodyBytes)
	}
	c.trace = s.tracer.StartRequest(&ctx.Request.Header, c.path, c.start)
	p := &proxied{path: c.path, dialect: upstreams.DialectOf(c.path), body: bytes.Clone(body)}
	// One pass validates the body and reads model and stream.
	in, err := upstreams.Inspect(p.body)
	model := in.Model
	switch {
	case errors.Is(err, upstreams.ErrDuplicateField) && in.Duplicate == "model":
		return &APIError{Status: 400, Type: "invalid_request_error", Code: "duplicate_model", Param: "model", Message: "model appears more than once in the request body"}
	case errors.Is(err, upstreams.ErrNotObject):
		return errorf(400, "invalid_json", "request body is not a JSON object: %v", err)
	case err != nil:
		return errorf(400, "invalid_json", "request body is not valid JSON: %v", err)
	case !in.ModelPresent:
		return &APIError{Status: 400, Type: "invalid_request_error", Code: "missing_model", Param: "model", Message: "you must provide a model parameter"}
	case !in.ModelIsString || model == "":
		return &APIError{Status: 400, Type: "invalid_request_error", Code: "invalid_model", Param: "model", Message: "model must be a non-empty string"}
	}
	if in.StreamInvalid {
		// The gateway would relay and record a plain answer while a
		// lenient upstream (one that coerces "true" or 1) streams, and a
		// strict one would only answer 400 after a call.
		return &APIError{Status: 400, Type: "invalid_request_error", Code: "invalid_type", Param: "stream",
			Message: "invalid type for 'stream': expected a boolean"}
	}
	p.model, p.stream = model, in.Stream
	p.chain = c.st.Registry.ChainFor(model)
	if p.chain == nil {
		return &APIError{Status: 404, Type: "invalid_request_error", Code: "model_not_found", Param: "model",
			Message: "the model " + strconv.Quote(model) + " does not exist on this gateway"}
	}
	c.route, c.chain = p.chain.Route.Model, p.chain
	c.trace.Model(model, c.route)
	if !p.chain.Serves(p.path) {
		// A route of kind anthropic providers asked for embeddings, or of
		// kind openai ones for count_tokens: nothing could ever serve it.
		return &APIError{Status: 400, Type: "invalid_request_error", Code: "unsupported_endpoint", Param: "model",
			Message: "no provider of the route for model " + strconv.Quote(model) + " serves " + p.path,
			Headers: map[string]string{"x-should-retry": "false"}}
	}
	p.plan = p.chain.Plan(p.path, model)
	if err := s.decideKey(ctx, c, p); err != nil {
		return err
	}
	if p.key == "" {
		c.dedupe = dedupe.DecisionOff
		return s.lead(ctx, c, p, nil)
	}
	c.idemKey = p.key
	if id := ctx.Request.Header.Peek("Last-Event-ID"); len(id) > 0 {
		fence, n, ok := parseEventID(string(bytes.TrimSpace(id)))
		if !ok {
			return &APIError{Status: 400, Type: "invalid_request_error", Code: "invalid_last_event_id", Message: "Last-Event-ID must be an event id sent by this gateway"}
		}
		p.resume, p.fromFence, p.from = true, fence, n
	}
	return s.dedupe(ctx, c, p)
}

// decideKey validates the body and sets the idempotency key, the
// fingerprint and the key hash (DESIGN.md section 2).
func (s *Server) decideKey(ctx *fasthttp.RequestCtx, c *call, p *proxied) error {
	d := c.st.Config.Dedupe
	// PeekAll, not Peek: an empty header is a key that is invalid, not an
	// absent one (which would silently derive a key), and two headers are
	// two keys, of which the gateway must not pick one.
	sent := ctx.Request.Header.PeekAll("Idempotency-Key")
	var key string
	if len(sent) > 1 {
		return &APIError{Status: 400, Type: "invalid_request_error", Code: "idempotency_key_invalid",
			Message: fmt.Sprintf("%d Idempotency-Key headers; send one", len(sent))}
	}
	if len(sent) == 1 {
		k, err := dedupe.ParseKey(sent[0])
		if err != nil {
			return &APIError{Status: 400, Type: "invalid_request_error", Code: "idempotency_key_invalid", Message: err.Error()}
		}
		key = k
	} else if d.RequireKey && d.IsEnabled() {
		return errorf(400, "idempotency_key_missing", "this gateway requires an Idempotency-Key header")
	}
	dedupeOn := d.IsEnabled() && s.coord != nil && (key != "" || d.DerivesKeys())
	if !dedupeOn {
		return nil // Inspect has validated the body
	}
	canon, err := dedupe.Canonical(nil, p.body, nil)
	if err != nil {
		return errorf(400, "invalid_json", "request body is not valid JSON: %v", err)
	}
	if key == "" {
		if d.DedupesRetriesOnly() && dedupe.RetryCount(ctx.Request.Header.Peek("x-stainless-retry-count")) == 0 {
			// A first try: recorded so its SDK retries find it, but never
			// deduplicated against another first try ("regenerate").
			p.req.Fresh = true
		}
		derived := canon
		if len(d.DeriveFields) > 0 {
			if derived, err = dedupe.Canonical(nil, p.body, d.DeriveFields); err != nil {
				return errorf(400, "invalid_json", "request body is not valid JSON: %v", err)
			}
		}
		// No time bucket in the key: the window is the age of the answer
		// (MaxAge), so a retry a second later never falls into a new bucket.
		key = dedupe.DeriveKey(p.path, derived, 0, s.now())
		p.req.MaxAge = d.DeriveWindow
	}
	p.key = key
	p.req.Tenant = c.tenant
	p.req.KeyHash = dedupe.HashKey(c.tenant, key)
	p.req.Fingerprint = dedupe.Fingerprint(append([]byte(p.path+"\n"), canon...))
	p.req.Stream = p.stream
	p.req.Model = c.route
	p.req.First = recordedAttempt(p.plan.First)
	for _, a := range p.plan.Skipped {
		p.req.Skipped = append(p.req.Skipped, recordedAttempt(a))
	}
	p.req.BypassOnStoreError = d.FailsOpen()
	r := c.st.Config.Resilience
	p.req.AttemptWindow, p.req.AttemptBudget = r.KeyAttemptsWindow, r.KeyAttempts
	c.keyHash = p.req.KeyHash
	return nil
}

// dedupe asks the coordinator what to do and does it.
func (s *Server) dedupe(ctx *fasthttp.RequestCtx, c *call, p *proxied) error {
	began := time.Now()
	t, err := s.coord.Begin(context.Background(), p.req)
	if err != nil {
		c.dedupe = dedupe.DecisionOf(err)
		c.trace.Decision(began, c.dedupe.String(), 0, err)
		return s.refusal(err)
	}
	c.trace.Decision(began, t.Decision.String(), t.Task.Fence, t.StoreErr)
	if t.StoreErr != nil {
		// on_store_error: open: forwarded as if deduplication were off.
		c.dedupe, c.err = t.Decision, t.StoreErr
		return s.lead(ctx, c, p, nil)
	}
	follows := t.Decision == dedupe.DecisionReplayed || t.Decision == dedupe.DecisionJoined
	if p.resume && (!follows || t.Task.Fence != p.fromFence) {
		// The events the client has belong to another generation: going
		// on from its position would splice two different answers.
		if t.Leads() {
			s.fail(t, "cannot resume: the stream is a new generation")
		}
		e := errorf(409, "stream_not_resumable", "the stream of this Idempotency-Key cannot be resumed from Last-Event-ID: it is a new generation; retry without Last-Event-ID")
		e.Headers = map[string]string{"x-should-retry": "false"}
		return e
	}
	c.dedupe = t.Decision
	switch {
	case t.Decision == dedupe.DecisionReplayed:
		return s.replay(ctx, c, p, t)
	case t.Decision == dedupe.DecisionJoined:
		return s.join(ctx, c, p, t)
	case t.Leads():
		if err := s.keyBudget(c, p, t); err != nil {
			return err
		}
		return s.lead(ctx, c, p, t)
	}
	return s.lead(ctx, c, p, nil) // DecisionBypassed: no record
}

// dedupeHeaders are set on every answer once its key is decided, errors
// included (writeError resets the response, so the handler sets them
// last): Idempotency-Key echoes the key, sent or derived, so that a client
// can retry with it, and Idempotent-Replayed says whether the answer is a
// stored one (DESIGN.md section 2). A bypassed request has no record, so
// it gets no Idempotent-Replayed.
func (c *call) dedupeHeaders(h *fasthttp.ResponseHeader) {
	if c.idemKey == "" {
		return
	}
	h.Set("Idempotency-Key", c.idemKey)
	switch c.dedupe {
	case dedupe.DecisionReplayed, dedupe.DecisionJoined:
		h.Set("Idempotent-Replayed", "true")
	case dedupe.DecisionNew, dedupe.DecisionReclaimed, dedupe.DecisionConflict, dedupe.DecisionMismatch:
		h.Set("Idempotent-Replayed", "false")
	}
}

// keyBudget applies key_attempts (DESIGN.md section 7): a key whose
// earlier requests spent it within key_attempts_window is refused before
// any upstream call, with x-should-retry: false so that SDKs stop
// multiplying the gateway's fallbacks; otherwise what is left caps this
// request's attempts.
func (s *Server) keyBudget(c *call, p *proxied, t *dedupe.Ticket) error {
	r := c.st.Config.Resilience
	if r.KeyAttempts <= 0 {
		return nil
	}
	left := r.KeyAttempts - t.RecentAttempts
	if left > 0 {
		p.maxAttempts = left
		return nil
	}
	p.chain.CountBudgetExhausted()
	s.fail(t, fmt.Sprintf("attempt budget exhausted: %d attempts within key_attempts_window", t.RecentAttempts))
	e := errorf(503, "attempt_budget_exhausted",
		"this Idempotency-Key made %d upstream attempts within the last %s (key_attempts is %d); nothing was sent upstream; retry later or send a new key",
		t.RecentAttempts, r.KeyAttemptsWindow, r.KeyAttempts)
	e.Headers = map[string]string{"x-should-retry": "false"}
	return e
}

// refusal is the client's answer to a Begin error.
func (s *Server) refusal(err error) error {
	switch {
	case errors.Is(err, dedupe.ErrMismatch):
		e := errorf(422, "idempotency_key_mismatch", "this Idempotency-Key was already used with a different request body")
		e.Headers = map[string]string{"x-should-retry": "false"}
		return e
	case errors.Is(err, dedupe.ErrInProgress):
		e := errorf(409, "idempotency_key_in_use", "a request with this Idempotency-Key is still being processed; retry later")
		e.Headers = retryHeaders(int(s.coord.Lease().Milliseconds() / 3))
		return e
	case errors.Is(err, dedupe.ErrTooLarge):
		e := errorf(409, "idempotency_response_too_large", "the response for this Idempotency-Key was larger than max_record_bytes and cannot be replayed; send a new key for a new generation")
		e.Headers = map[string]string{"x-should-retry": "false"}
		return e
	case errors.Is(err, dedupe.ErrStore):
		return &APIError{Status: 503, Type: "api_error", Code: "store_unavailable",
			Message: "the idempotency record store is unavailable; nothing was sent upstream", Cause: err,
			Headers: retryHeaders(1000)}
	}
	return err
}

// upstreamRequest is the chain input for p.
func upstreamRequest(p *proxied) upstreams.Request {
	return upstreams.Request{Path: p.path, Body: p.body, Model: p.model, Stream: p.stream, IdempotencyKey: p.key,
		Plan: p.plan, MaxAttempts: p.maxAttempts}
}

// detach reports whether the upstream call outlives the client.
func detach(cfg *config.Config) bool { return cfg.Dedupe.Detach() }
