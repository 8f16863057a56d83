package upstreams

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/config"
)

// maxErrorBody caps how much of an upstream error body is kept.
const maxErrorBody = 64 << 10

// maxResponseBody caps a non-stream upstream body.
const maxResponseBody = 64 << 20

// Provider is a client of one upstream API, OpenAI-compatible or
// Anthropic's (its kind), reusing connections through a
// fasthttp.HostClient.
type Provider struct {
	Name             string
	kind             config.ProviderKind
	dialect          Dialect
	apiKey           string
	basePath         string
	anthropicVersion string
	defaultMaxTokens int
	timeout          time.Duration
	firstByteTimeout time.Duration
	// resilience is the provider's effective resilience block (retries,
	// backoff); its breaker settings live in the chain's Breaker.
	resilience config.Resilience
	client     *fasthttp.HostClient
}

// NewProvider builds the client of a validated provider config.
func NewProvider(p *config.Provider) (*Provider, error) {
	u, err := url.Parse(p.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("cannot parse base_url %q of provider %q: %w", p.BaseURL, p.Name, err)
	}
	isTLS := u.Scheme == "https"
	addr := u.Host
	if u.Port() == "" {
		if isTLS {
			addr = net.JoinHostPort(u.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	version := p.AnthropicVersion
	if version == "" {
		version = config.DefaultAnthropicVersion
	}
	return &Provider{
		Name:             p.Name,
		kind:             p.Kind,
		dialect:          dialectOfKind(p.Kind),
		anthropicVersion: version,
		defaultMaxTokens: p.DefaultMaxTokens,
		apiKey:           p.APIKey,
		basePath:         strings.TrimSuffix(u.Path, "/"),
		timeout:          p.Timeout,
		firstByteTimeout: p.FirstByteTimeout,
		resilience:       p.Resilience,
		client: &fasthttp.HostClient{
			Addr:     addr,
			Name:     "idempotent-llm-gateway",
			IsTLS:    isTLS,
			MaxConns: p.MaxConns,
			// Shorter than the idle timeouts of common servers, so a
			// pooled connection is rarely found closed when a POST is sent.
			MaxIdleConnDuration: 30 * time.Second,
			MaxConnWaitTimeout:  p.Timeout,
			// The body is handed out as a stream so that SSE events are
			// relayed as they arrive and no body is buffered whole.
			StreamResponseBody: true,
		},
	}, nil
}

// Call is one request to a provider.
type Call struct {
	// Path is the upstream path, e.g. /v1/chat/completions; for kind
	// openai the /v1 prefix is replaced by the provider's base path, kind
	// anthropic appends it whole to its base URL.
	Path           string
	Body           []byte
	Stream         bool
	IdempotencyKey string
	// Traceparent and Tracestate name the attempt's span as the parent of
	// the provider's (W3C Trace Context); "" sends none.
	Traceparent, Tracestate string
}

// reply is a provider's answer after its first byte arrived.
type reply struct {
	status      int
	contentType string
	body        *bufio.Reader // the rest of the body
	ttfb        time.Duration
	release     func()
}

// hasKey reports whether the provider has an api_key; without one its
// targets are skipped, never called.
func (p *Provider) hasKey() bool { return p.apiKey != "" }

// do sends c and waits for the first byte of the answer, bounded by
// first_byte_timeout and timeout. ctx cancels the call (detach off, or
// shutdown). On success the caller owns reply.release.
func (p *Provider) do(ctx context.Context, c Call, start time.Time) (*reply, *Error) {
	if p.apiKey == "" {
		return nil, &Error{Provider: p.Name, Err: ErrNoAPIKey}
	}
	x := p.newExchange(c, start)
	if e := x.send(ctx); e != nil {
		return nil, e
	}
	return x.firstByte(ctx)
}

// exchange is one request to a provider and its response, from sending to
// release.
type exchange struct {
	p    *Provider
	req  *fasthttp.Request
	resp *fasthttp.Response
	// done receives the result of the call once its headers are in (or it
	// failed); it is buffered so that an abandoned call can still finish.
	done  chan error
	start time.Time
	// firstByteBy is when a silent upstream is cut (first_byte_timeout,
	// capped by deadline); deadline ends the whole call (timeout).
	firstByteBy time.Time
	deadline    time.Time
}

// newExchange builds the upstream request of c.
func (p *Provider) newExchange(c Call, start time.Time) *exchange {
	x := &exchange{p: p, req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse(), done: make(chan error, 1),
		start: start, deadline: start.Add(p.timeout), firstByteBy: start.Add(p.firstByteTimeout)}
	if x.firstByteBy.After(x.deadline) {
		x.firstByteBy = x.deadline
	}
	req := x.req
	if p.dialect == DialectAnthropic {
		req.SetRequestURI(p.basePath + c.Path)
	} else {
		req.SetRequestURI(p.basePath + strings.TrimPrefix(c.Path, "/v1"))
	}
	req.Header.SetHost(p.client.Addr)
	if p.client.IsTLS {
		req.URI().SetScheme("https")
	}
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if p.dialect == DialectAnthropic {
		req.Header.Set("x-api-key", p.apiKey)
		req.Header.Set("anthropic-version", p.anthropicVersion)
	} else {
		req.Header.Set("Authorization", "Bearer "+p.apiKey)
	}
	if c.Stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	if c.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", c.IdempotencyKey)
	}
	if c.Traceparent != "" {
		req.Header.Set("traceparent", c.Traceparent)
		if c.Tracestate != "" {
			req.Header.Set("tracestate", c.Tracestate)
		}
	}
	req.SetBodyRaw(c.Body)
	x.resp.StreamBody = true
	return x
}

// send starts the call and waits for the response headers, at most until
// the first-byte deadline or ctx ends.
func (x *exchange) send(ctx context.Context) *Error {
	go func() { x.done <- x.p.client.DoDeadline(x.req, x.resp, x.deadline) }()
	timer := time.NewTimer(time.Until(x.firstByteBy))
	defer timer.Stop()
	select {
	case err := <-x.done:
		if err != nil {
			x.free()
			return x.p.transportError(err)
		}
		return nil
	case <-timer.C:
		x.abandon()
		return &Error{Provider: x.p.Name, Timeout: true, Err: ErrFirstByteTimeout}
	case <-ctx.Done():
		x.abandon()
		return &Error{Provider: x.p.Name, Err: fmt.Errorf("cannot finish call: %w", ctx.Err())}
	}
}

// firstByte waits for the first body byte: headers alone do not prove the
// upstream is working, so a silent body is cut at first_byte_timeout too.
// A non-2xx answer becomes an *Error carrying the upstream's body.
func (x *exchange) firstByte(ctx context.Context) (*reply, *Error) {
	body := x.resp.BodyStream()
	var seen atomic.Bool
	timer, stopCancel := x.arm(ctx, body, &seen)
	// fasthttp's connection reader already buffers 4 KiB: this one only
	// frames SSE lines (longer ones come in pieces), and an open stream
	// holds it for its whole life (issue 14).
	br := bufio.NewReaderSize(body, 1<<10)
	_, err := br.Peek(1)
	seen.Store(err == nil || err == io.EOF)
	timedOut := !timer.Stop()
	ttfb := time.Since(x.start)
	if err != nil && err != io.EOF {
		stopCancel()
		x.release()
		e := x.p.transportError(err)
		if timedOut {
			e.Timeout, e.Err = true, ErrFirstByteTimeout
		}
		return nil, e
	}
	status := x.resp.StatusCode()
	if status < 200 || status > 299 {
		stopCancel()
		b, _ := io.ReadAll(io.LimitReader(br, maxErrorBody))
		e := &Error{Provider: x.p.Name, Status: status, Body: b, Err: errors.New(strconv.Itoa(status) + " " + fasthttp.StatusMessage(status))}
		// Read before release: the headers go with the response.
		e.RetryAfter, e.HasRetryAfter = ParseRetryAfter(string(x.resp.Header.Peek("retry-after-ms")), string(x.resp.Header.Peek("Retry-After")), time.Now())
		x.release()
		return nil, e
	}
	rep := &reply{status: status, contentType: string(x.resp.Header.ContentType()), body: br, ttfb: ttfb}
	rep.release = func() {
		stopCancel()
		x.release()
	}
	return rep, nil
}

// arm sets up the two ways a body read is cut: at first_byte_timeout
// until seen is set (once the first byte is in, the timer must not cut the
// answer), and when ctx ends, for as long as the body is read.
func (x *exchange) arm(ctx context.Context, body io.Reader, seen *atomic.Bool) (timer *time.Timer, stopCancel func() bool) {
	closer, _ := body.(interface{ CloseWithError(error) error })
	interrupt := func() {
		if closer != nil {
			_ = closer.CloseWithError(ErrAttemptTimeout)
		}
	}
	timer = time.AfterFunc(time.Until(x.firstByteBy), func() {
		if !seen.Load() {
			interrupt()
		}
	})
	return timer, context.AfterFunc(ctx, interrupt)
}

// abandon leaves a call that is still waiting for its headers: it goes on
// in the background until its deadline, and is freed then.
func (x *exchange) abandon() {
	go func() {
		<-x.done
		x.release()
	}()
}

// release closes the body stream and frees the request and response.
func (x *exchange) release() {
	_ = x.resp.CloseBodyStream()
	x.free()
}

func (x *exchange) free() {
	fasthttp.ReleaseRequest(x.req)
	fasthttp.ReleaseResponse(x.resp)
}

// transportError classifies an error from the connection.
func (p *Provider) transportError(err error) *Error {
	e := &Error{Provider: p.Name, Err: err}
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, ErrAttemptTimeout), errors.As(err, &netErr) && netErr.Timeout():
		e.Timeout = true
	case isDialError(err):
		e.Connect = true
	}
	return e
}

// isDialError reports errors that prove the request never reached the
// upstream, so falling back cannot pay twice.
func isDialError(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host")
}
