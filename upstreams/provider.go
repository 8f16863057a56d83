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

// Provider is a client of one OpenAI-compatible API, reusing connections
// through a fasthttp.HostClient.
type Provider struct {
	Name             string
	apiKey           string
	basePath         string
	timeout          time.Duration
	firstByteTimeout time.Duration
	client           *fasthttp.HostClient
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
	return &Provider{
		Name:             p.Name,
		apiKey:           p.APIKey,
		basePath:         strings.TrimSuffix(u.Path, "/"),
		timeout:          p.Timeout,
		firstByteTimeout: p.FirstByteTimeout,
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
	// Path is the client's path, e.g. /v1/chat/completions; the /v1 prefix
	// is replaced by the provider's base path.
	Path           string
	Body           []byte
	Stream         bool
	IdempotencyKey string
}

// reply is a provider's answer after its first byte arrived.
type reply struct {
	status      int
	contentType string
	body        *bufio.Reader // the rest of the body
	ttfb        time.Duration
	release     func()
}

// do sends c and waits for the first byte of the answer, bounded by
// first_byte_timeout and timeout. ctx cancels the call (detach off, or
// shutdown). On success the caller owns reply.release.
func (p *Provider) do(ctx context.Context, c Call, start time.Time) (*reply, *Error) {
	if p.apiKey == "" {
		return nil, &Error{Provider: p.Name, Err: ErrNoAPIKey}
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	req.SetRequestURI(p.basePath + strings.TrimPrefix(c.Path, "/v1"))
	req.Header.SetHost(p.client.Addr)
	if p.client.IsTLS {
		req.URI().SetScheme("https")
	}
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", "Bearer "+p.apiKey)
	if c.Stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	if c.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", c.IdempotencyKey)
	}
	req.SetBodyRaw(c.Body)
	resp.StreamBody = true

	deadline := start.Add(p.timeout)
	firstByte := start.Add(p.firstByteTimeout)
	if firstByte.After(deadline) {
		firstByte = deadline
	}
	done := make(chan error, 1)
	go func() { done <- p.client.DoDeadline(req, resp, deadline) }()

	abandon := func() {
		// The call goes on in the background until its deadline; free it then.
		go func() {
			<-done
			_ = resp.CloseBodyStream()
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}()
	}
	fbTimer := time.NewTimer(time.Until(firstByte))
	defer fbTimer.Stop()
	select {
	case err := <-done:
		if err != nil {
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
			return nil, p.transportError(err)
		}
	case <-fbTimer.C:
		abandon()
		return nil, &Error{Provider: p.Name, Timeout: true, Err: ErrFirstByteTimeout}
	case <-ctx.Done():
		abandon()
		return nil, &Error{Provider: p.Name, Err: fmt.Errorf("cannot finish call: %w", ctx.Err())}
	}

	bodyStream := resp.BodyStream()
	closer, _ := bodyStream.(interface{ CloseWithError(error) error })
	// Once the first byte is in, the first-byte timer must not cut the
	// answer: an interrupt then comes only from ctx (or the deadline).
	var firstByteSeen atomic.Bool
	interrupt := func() {
		if closer != nil {
			_ = closer.CloseWithError(ErrAttemptTimeout)
		}
	}
	interruptSilent := func() {
		if !firstByteSeen.Load() {
			interrupt()
		}
	}
	release := func() {
		_ = resp.CloseBodyStream()
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	// Until the first body byte, a silent upstream is cut at first_byte_timeout.
	firstByteTimer := time.AfterFunc(time.Until(firstByte), interruptSilent)
	stopCancel := context.AfterFunc(ctx, interrupt)
	br := bufio.NewReaderSize(bodyStream, 4<<10)
	_, peekErr := br.Peek(1)
	firstByteSeen.Store(peekErr == nil || peekErr == io.EOF)
	timedOut := !firstByteTimer.Stop()
	ttfb := time.Since(start)
	status := resp.StatusCode()
	if peekErr != nil && peekErr != io.EOF {
		stopCancel()
		release()
		e := p.transportError(peekErr)
		if timedOut {
			e.Timeout, e.Err = true, ErrFirstByteTimeout
		}
		return nil, e
	}
	if status < 200 || status > 299 {
		stopCancel()
		body, _ := io.ReadAll(io.LimitReader(br, maxErrorBody))
		release()
		return nil, &Error{Provider: p.Name, Status: status, Body: body, Err: errors.New(strconv.Itoa(status) + " " + fasthttp.StatusMessage(status))}
	}
	return &reply{
		status:      status,
		contentType: string(resp.Header.ContentType()),
		body:        br,
		ttfb:        ttfb,
		release: func() {
			stopCancel()
			release()
		},
	}, nil
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
