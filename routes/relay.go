package routes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/upstreams"
	"github.com/idemgw/gateway/upstreams/dialect"
)

// lead calls the upstream chain and answers; with a ticket it records the
// attempts and the outcome (a nil ticket means no deduplication).
func (s *Server) lead(ctx *fasthttp.RequestCtx, c *call, p *proxied, t *dedupe.Ticket) error {
	upCtx, cancel := context.WithCancel(context.Background())
	if t != nil {
		t.OnLost(cancel)
	}
	req := upstreamRequest(p)
	req.Ledger = ledgerOf(t)
	req.Tracer = c.trace.Tracer()
	res, err := p.chain.Do(upCtx, req)
	c.attempts, c.provider = len(res.Attempts), res.Provider
	c.led = true
	c.servedBy, c.servedModel = p.chain.Served(res)
	if err == nil && res.Stream != nil {
		p.chain.ObserveFirstToken(p.path, c.servedBy, c.servedModel, time.Since(c.start))
		s.leadStream(ctx, c, p, t, res, cancel)
		return nil
	}
	defer cancel()
	if err != nil {
		s.fail(t, err.Error())
		return chainError(err, len(res.Attempts))
	}
	setUpstreamHeaders(ctx, res)
	ctx.SetStatusCode(res.Status)
	ctx.SetContentTypeBytes([]byte(res.ContentType))
	ctx.SetBody(res.Body)
	c.usage = recordedUsage(res.Usage)
	if t == nil {
		return nil
	}
	if res.Status < 200 || res.Status > 299 {
		s.fail(t, fmt.Sprintf("upstream %s answered %d", res.Provider, res.Status))
		return nil
	}
	if p.stream {
		// Asked for a stream, got a plain body: the client has it, but it
		// cannot be replayed or joined as a stream.
		s.fail(t, fmt.Sprintf("upstream %s answered a stream request without a stream (%s)", res.Provider, res.ContentType))
		return nil
	}
	if err := t.Complete(context.Background(), dedupe.Response{Status: res.Status, ContentType: res.ContentType, Body: res.Body}, c.usage); err != nil {
		return notRecorded(err, len(res.Attempts))
	}
	return nil
}

// notRecorded is the answer of a leader whose Complete failed: the store
// stayed down past the final write's budget, or the task was taken over
// (the lease ran out while the store was unreachable). The client must
// not keep an answer the record does not hold, since its retry would get
// another one (the take-over's, or a new call's): two different answers
// for one key. The call was paid; the retry replays whatever the record
// holds, or pays again (README "Guarantees"). Found by the chaos run.
func notRecorded(err error, attempts int) *APIError {
	e := &APIError{Status: 503, Type: "api_error", Code: "answer_not_recorded",
		Message: "the upstream answered, but the answer could not be recorded; retry with the same Idempotency-Key",
		Cause:   fmt.Errorf("cannot record the completed task: %w", err), Headers: retryHeaders(1000)}
	e.Headers["X-Gateway-Attempts"] = strconv.Itoa(attempts)
	return e
}

func setUpstreamHeaders(ctx *fasthttp.RequestCtx, res *upstreams.Result) {
	if res.Provider != "" {
		ctx.Response.Header.Set("X-Gateway-Provider", res.Provider)
	}
	ctx.Response.Header.Set("X-Gateway-Attempts", strconv.Itoa(len(res.Attempts)))
}

// chainError is the client's answer when every target failed: the last
// upstream 5xx, 504 after a timeout, else 502 (DESIGN.md section 5).
func chainError(err error, attempts int) *APIError {
	if errors.Is(err, upstreams.ErrNotRecorded) {
		// The record store refused the attempt's row (or the task was
		// taken over): nothing went out for it.
		e := &APIError{Status: 503, Type: "api_error", Code: "store_unavailable",
			Message: "the attempt could not be recorded, so it was not sent upstream", Cause: err,
			Headers: retryHeaders(1000)}
		e.Headers["X-Gateway-Attempts"] = strconv.Itoa(attempts)
		return e
	}
	var refused *dialect.RequestError
	if errors.As(err, &refused) {
		// The request uses what the target's dialect cannot express (n > 1
		// for an Anthropic target, a server tool for an OpenAI one), and no
		// target of the route takes it as it is.
		return &APIError{Status: 400, Type: "invalid_request_error", Code: "unsupported_for_target", Param: refused.Param,
			Message: "the request cannot be sent to this route's providers: " + refused.Error(), Cause: err,
			Headers: map[string]string{"x-should-retry": "false", "X-Gateway-Attempts": strconv.Itoa(attempts)}}
	}
	if errors.Is(err, upstreams.ErrNoUsableTarget) {
		// No key, no kind that serves the endpoint: a retry meets the
		// same configuration, so SDKs are told not to send one.
		e := &APIError{Status: 502, Type: "api_error", Code: "no_usable_target",
			Message: err.Error(), Cause: err,
			Headers: map[string]string{"x-should-retry": "false", "X-Gateway-Attempts": strconv.Itoa(attempts)}}
		return e
	}
	status := 502
	var ue *upstreams.Error
	if errors.As(err, &ue) {
		switch {
		case ue.Status >= 500:
			status = ue.Status
		case ue.Timeout:
			status = 504
		}
	}
	e := errorf(status, "upstream_failed", "all %d upstream attempts failed; last: %v", attempts, err)
	e.Cause = err
	e.Headers = map[string]string{"X-Gateway-Attempts": strconv.Itoa(attempts)}
	return e
}

// leadStream relays a stream. With a ticket, a pump goroutine reads the
// upstream to the end and records every event, and the client reads the
// pump's live stream: a client that leaves does not stop the pump
// (detach_on_disconnect), so a retry replays instead of paying again.
func (s *Server) leadStream(ctx *fasthttp.RequestCtx, c *call, p *proxied, t *dedupe.Ticket, res *upstreams.Result, cancel context.CancelFunc) {
	setUpstreamHeaders(ctx, res)
	ctx.SetStatusCode(res.Status)
	ctx.SetContentTypeBytes([]byte(res.ContentType))
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	c.streaming = true
	if t == nil {
		setStreamBody(ctx, func(w io.Writer) {
			defer c.finish()
			defer cancel()
			c.status = res.Status
			s.relayDirect(newSSEWriter(w, 0, 0, p.dialect), c, res)
		})
		return
	}
	// The client's follow starts before the pump, so the live stream
	// keeps every event until the client has been handed it.
	fctx, stop := context.WithCancel(context.Background())
	evs, _ := t.Follow(fctx, p.from)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.pump(c, t, res, cancel)
	}()
	detached := detach(c.st.Config)
	setStreamBody(ctx, func(w io.Writer) {
		c.status = res.Status
		gone := writeEvents(newSSEWriter(w, t.Fence(), p.from, p.dialect), evs)
		stop()
		if gone && !detached {
			cancel()
		}
		// The log line carries the attempts and usage of the whole stream.
		if gone {
			// A detached pump may run for minutes: the connection's
			// goroutine and buffers need not wait for it.
			go func() {
				<-done
				c.finish()
			}()
			return
		}
		<-done
		c.finish()
	})
}

// pump reads the upstream stream to its end into the ticket. The final
// event (data: [DONE]) is held back until the record holds the stream
// (dedupe.Ticket.CompleteStream); every other one is relayed at once.
func (s *Server) pump(c *call, t *dedupe.Ticket, res *upstreams.Result, cancel context.CancelFunc) {
	defer cancel()
	var cut error
	var held []byte
	for {
		ev, err := res.Stream.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			cut = err
			break
		}
		if held != nil {
			t.Publish(held) // an event after the final one: relay both
			held = nil
		}
		if upstreams.IsFinalEvent(ev) {
			held = ev
			continue
		}
		t.Publish(ev)
	}
	// A continued stream (on_stream_cut: continue) made more attempts.
	c.attempts = len(res.Attempts)
	c.usage = recordedUsage(res.Stream.Usage())
	if cut != nil {
		if held != nil {
			t.Publish(held)
		}
		s.fail(t, cut.Error())
		c.err = cut
		return
	}
	if err := t.CompleteStream(context.Background(), dedupe.Response{Status: res.Status, ContentType: res.ContentType}, c.usage, held); err != nil {
		c.err = fmt.Errorf("cannot record the completed stream: %w", err)
	}
}

// relayDirect relays a stream that is not recorded: its events carry no
// id, since nothing could resume them.
func (s *Server) relayDirect(sw *sseWriter, c *call, res *upstreams.Result) {
	defer res.Stream.Close()
	for {
		ev, err := res.Stream.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			c.err, c.attempts = err, len(res.Attempts)
			_ = sw.fail("the upstream stream was interrupted: " + err.Error())
			return
		}
		if sw.event(ev) != nil {
			return // client gone; nothing is recorded, so stop paying
		}
	}
	c.attempts = len(res.Attempts)
	c.usage = recordedUsage(res.Stream.Usage())
}

// writeEvents writes a leader's live events to its client and reports
// whether the client went away.
func writeEvents(sw *sseWriter, evs <-chan dedupe.LiveEvent) (gone bool) {
	for ev := range evs {
		if err := sw.live(ev); err != nil || ev.End {
			return err != nil
		}
	}
	// The live stream ended without its end marker (backend gone).
	return sw.fail("the live stream was lost") != nil
}

// replay answers with a completed task's stored response, byte for byte.
func (s *Server) replay(ctx *fasthttp.RequestCtx, c *call, p *proxied, t *dedupe.Ticket) error {
	r := t.Task.Response
	c.usage = t.Task.Usage
	s.countSaved(p, c.usage)
	ctx.SetStatusCode(r.Status)
	ctx.SetContentType(r.ContentType)
	if !t.Task.Stream {
		ctx.SetBody(r.Body)
		return nil
	}
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	c.streaming = true
	evs := dedupe.SplitEvents(r.Body)
	from := p.from
	setStreamBody(ctx, func(w io.Writer) {
		defer c.finish()
		c.status = r.Status
		sw := newSSEWriter(w, t.Task.Fence, from, p.dialect)
		for _, ev := range evs[min(from, len(evs)):] {
			if sw.event(ev) != nil {
				return
			}
		}
	})
	return nil
}

// join streams a running task's events to a duplicate request.
func (s *Server) join(ctx *fasthttp.RequestCtx, c *call, p *proxied, t *dedupe.Ticket) error {
	ctx.SetStatusCode(200)
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	c.streaming = true
	setStreamBody(ctx, func(w io.Writer) {
		defer c.finish()
		c.status = 200
		var u upstreams.Usage
		sw := newSSEWriter(w, t.Task.Fence, p.from, p.dialect)
		jctx, stop := context.WithCancel(context.Background())
		defer stop()
		err := s.coord.Join(jctx, p.req, t, p.from, func(ev dedupe.LiveEvent) error {
			u = eventUsage(p.dialect, u, upstreams.SSEData(ev.Data))
			return sw.live(ev)
		})
		if err != nil {
			c.err = err
		}
		c.usage = recordedUsage(u)
		s.countSaved(p, c.usage)
	})
	return nil
}

// countSaved counts the tokens (and, when priced, the dollars) that a
// replay or join did not pay for again.
func (s *Server) countSaved(p *proxied, u dedupe.Usage) {
	s.coord.CountSaved(p.req.Model, u)
	cost := upstreams.Cost(p.chain.SavedPrice(), upstreamUsage(u))
	if cost > 0 {
		s.set.GetOrCreateFloatCounter(`gateway_cost_saved_usd_total{model=` + strconv.Quote(p.req.Model) + `}`).Add(cost)
	}
}

// eventUsage is the usage after one event of a client's stream, in its
// dialect: an Anthropic stream tells the prompt side in message_start and
// the output in message_delta, so the last non-zero of each is kept.
func eventUsage(d upstreams.Dialect, u upstreams.Usage, data []byte) upstreams.Usage {
	if d != upstreams.DialectAnthropic {
		if pu, ok := upstreams.ParseUsage(data); ok {
			return pu
		}
		return u
	}
	if prompt, completion, ok := dialect.MessagesUsage(data); ok {
		if prompt > 0 {
			u.PromptTokens = prompt
		}
		if completion > 0 {
			u.CompletionTokens = completion
		}
	}
	return u
}
