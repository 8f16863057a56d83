package routes_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/routes"
	"github.com/idemgw/gateway/upstreams"
	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// The routes tests drive the exported surface only (NewState, NewServer,
// Handler, TransportError) so that the handlers' insides can be
// refactored under them: a fasthttp.Server on an in-memory listener, the
// fake upstream over real loopback HTTP, and a real coordinator on an
// embedded store in the test's temporary directory.

// Keys of the test configs: two tenants and the admin.
const (
	keyA     = "sk-routes-team-a"
	keyB     = "sk-routes-team-b"
	adminKey = "routes-admin-key"
	// upstreamKey is what the gateway must send upstream instead of the
	// client's key.
	upstreamKey = "sk-upstream-secret"
)

// waitLong bounds waits for something that must happen soon; generous so
// that a loaded machine under -race does not fail the tests.
const waitLong = 20 * time.Second

// gwOptions shape one test gateway.
type gwOptions struct {
	// yaml is appended to the base config. Without an "auth:" section the
	// two test tenants and the admin key are used; without "routes:" every
	// model goes to the fake.
	yaml string
	// reject answers in-flight duplicates with 409 (dedupe.Options.Reject,
	// which the gateway sets from on_in_progress: reject).
	reject bool
	// ready is the /readyz check; nil means always ready.
	ready func(context.Context) routes.Readiness
	// serverMaxBody is the fasthttp.Server's MaxRequestBodySize; 0 uses
	// max_body_bytes, as the gateway does.
	serverMaxBody int
}

// testGW is one routes.Server under test.
type testGW struct {
	t      *testing.T
	fake   *upstreamtest.Server
	cfg    *config.Config
	store  *dedupe.Embedded // nil with dedupe disabled
	coord  *dedupe.Coordinator
	client *fasthttp.Client
	// streamer reads bodies as they arrive, for the relay tests.
	streamer *fasthttp.Client
	// dial opens a raw connection to the server.
	dial func() (net.Conn, error)
	logs *syncBuffer
}

// startGW starts a gateway on a fresh fake upstream.
func startGW(t *testing.T, o gwOptions) *testGW {
	t.Helper()
	fake, err := upstreamtest.Start()
	if err != nil {
		t.Fatalf("cannot start the fake upstream: %v", err)
	}
	g := &testGW{t: t, fake: fake, logs: &syncBuffer{}}
	g.cfg = parseConfig(t, baseYAML(t, fake.URL, o.yaml))
	if g.cfg.Dedupe.IsEnabled() {
		if g.store, err = dedupe.OpenEmbedded(g.cfg.Store.Path); err != nil {
			t.Fatalf("cannot open the embedded store: %v", err)
		}
		t.Cleanup(func() { _ = g.store.Close() })
		d := g.cfg.Dedupe
		g.coord = dedupe.NewCoordinator(g.store, nil, dedupe.Options{
			Owner: "routes-test", Lease: d.Lease, MaxProcessing: d.MaxProcessing, KeyTTL: d.KeyTTL,
			WaitTimeout: d.WaitTimeout, Reject: o.reject, MaxRecordBytes: d.MaxRecordBytes, ReapBatch: d.ReapBatch,
		})
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			defer cancel()
			if err := g.coord.Drain(ctx); err != nil {
				t.Errorf("running tasks did not end: %v", err)
			}
		})
	}
	st, err := routes.NewState(g.cfg, upstreams.NewMetrics(), nil)
	if err != nil {
		t.Fatalf("NewState: %v", err)
	}
	srv := routes.NewServer(st, g.coord, slog.New(slog.NewJSONHandler(g.logs, nil)), o.ready)
	hs := &fasthttp.Server{
		Handler:               srv.Handler(),
		ErrorHandler:          routes.TransportError,
		MaxRequestBodySize:    g.cfg.MaxBodyBytes,
		NoDefaultServerHeader: true,
		CloseOnShutdown:       true,
		Logger:                log.New(g.logs, "fasthttp: ", 0),
	}
	if o.serverMaxBody > 0 {
		hs.MaxRequestBodySize = o.serverMaxBody
	}
	ln := fasthttputil.NewInmemoryListener()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		_ = hs.ShutdownWithContext(ctx)
		<-served
	})
	// The fake closes first: that releases upstream calls a test left
	// hanging, so the server and the coordinator can drain.
	t.Cleanup(func() { _ = fake.Close() })
	g.dial = ln.Dial
	dial := func(string) (net.Conn, error) { return ln.Dial() }
	g.client = &fasthttp.Client{Dial: dial, ReadTimeout: waitLong, WriteTimeout: waitLong}
	g.streamer = &fasthttp.Client{Dial: dial, StreamResponseBody: true, ReadTimeout: waitLong, WriteTimeout: waitLong}
	return g
}

// baseYAML renders a gateway.yaml around the fake at fakeURL.
func baseYAML(t *testing.T, fakeURL, extra string) string {
	var b strings.Builder
	if !strings.Contains(extra, "auth:") {
		fmt.Fprintf(&b, "auth:\n  mode: keys\n  keys:\n    - {tenant: team-a, key: %s}\n    - {tenant: team-b, key: %s}\n  admin_key: %s\n", keyA, keyB, adminKey)
	}
	fmt.Fprintf(&b, "providers:\n  fake: {base_url: %q, api_key: %s, timeout: 60s, first_byte_timeout: 60s}\n", fakeURL, upstreamKey)
	// The same fake speaks Anthropic's API without the /v1 of its URL.
	fmt.Fprintf(&b, "  claude: {kind: anthropic, base_url: %q, api_key: %s, timeout: 60s, first_byte_timeout: 60s}\n", strings.TrimSuffix(fakeURL, "/v1"), upstreamKey)
	if !strings.Contains(extra, "routes:") {
		b.WriteString("routes:\n  - model: \"*\"\n    targets: [{provider: fake}]\n")
	}
	fmt.Fprintf(&b, "store: {kind: embedded, path: %q}\n", t.TempDir()+"/gw.db")
	b.WriteString(extra)
	return b.String()
}

func parseConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("routes-test.yaml", []byte(text), nil)
	if err != nil {
		t.Fatalf("cannot parse the test config: %v\n%s", err, text)
	}
	return cfg
}

// answer is a response copied out of fasthttp's pooled objects.
type answer struct {
	status int
	header fasthttp.ResponseHeader
	body   []byte
}

func (a *answer) get(name string) string { return string(a.header.Peek(name)) }

// request builds a request with tenant A's key and the given extra
// headers (name, value pairs; an empty value deletes the header).
func request(method, path, body string, headers ...string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI("http://gateway.test" + path)
	req.Header.SetMethod(method)
	req.Header.Set("Authorization", "Bearer "+keyA)
	if body != "" {
		req.Header.SetContentType("application/json")
		req.SetBodyString(body)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// do sends one request and reads the whole answer.
func (g *testGW) do(method, path, body string, headers ...string) *answer {
	g.t.Helper()
	req := request(method, path, body, headers...)
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := g.client.Do(req, resp); err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	a := &answer{status: resp.StatusCode(), body: bytes.Clone(resp.Body())}
	resp.Header.CopyTo(&a.header)
	return a
}

// raw writes request bytes as they are and reads one answer.
func (g *testGW) raw(request string) *answer {
	g.t.Helper()
	conn, err := g.dial()
	if err != nil {
		g.t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitLong))
	if _, err := io.WriteString(conn, request); err != nil {
		g.t.Fatalf("write: %v", err)
	}
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		g.t.Fatalf("read the answer to %q: %v", request, err)
	}
	a := &answer{status: resp.StatusCode(), body: bytes.Clone(resp.Body())}
	resp.Header.CopyTo(&a.header)
	return a
}

// post sends a chat completion body.
func (g *testGW) post(body string, headers ...string) *answer {
	g.t.Helper()
	return g.do("POST", "/v1/chat/completions", body, headers...)
}

// sse is a streamed answer read event by event.
type sse struct {
	answer
	resp *fasthttp.Response
	r    *bufio.Reader
}

// stream sends a request and returns once the headers are in; the body
// is read with next.
func (g *testGW) stream(body string, headers ...string) *sse {
	g.t.Helper()
	return g.streamAt("/v1/chat/completions", body, headers...)
}

// streamAt is stream on another path.
func (g *testGW) streamAt(path, body string, headers ...string) *sse {
	g.t.Helper()
	req := request("POST", path, body, headers...)
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	if err := g.streamer.Do(req, resp); err != nil {
		g.t.Fatalf("POST stream: %v", err)
	}
	s := &sse{answer: answer{status: resp.StatusCode()}, resp: resp}
	resp.Header.CopyTo(&s.header)
	g.t.Cleanup(s.close)
	if bs := resp.BodyStream(); bs != nil {
		s.r = bufio.NewReader(bs)
	} else {
		s.r = bufio.NewReader(bytes.NewReader(bytes.Clone(resp.Body())))
	}
	return s
}

// next reads one SSE event (the lines up to a blank line), without the
// blank line; io.EOF after the last one.
func (s *sse) next() (string, error) {
	var ev strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF && ev.Len()+len(line) > 0 {
				return ev.String() + line, io.ErrUnexpectedEOF
			}
			return "", err
		}
		if line == "\n" {
			if ev.Len() == 0 {
				continue
			}
			return strings.TrimSuffix(ev.String(), "\n"), nil
		}
		ev.WriteString(line)
	}
}

// all reads the remaining events up to the end of the body.
func (s *sse) all(t *testing.T) []string {
	t.Helper()
	var evs []string
	for {
		ev, err := s.next()
		if err == io.EOF {
			return evs
		}
		if err != nil {
			t.Fatalf("reading the stream after %d events: %v (%q)", len(evs), err, ev)
		}
		evs = append(evs, ev)
	}
}

func (s *sse) close() {
	if s.resp != nil {
		_ = s.resp.CloseBodyStream()
		fasthttp.ReleaseResponse(s.resp)
		s.resp = nil
	}
}

// chat is a chat completion body.
func chat(model, content string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}],"stream":%v}`, model, content, stream)
}

// apiError is OpenAI's error body.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// wantError checks the status, that the body is exactly OpenAI's error
// shape {"error":{"message","type","param","code"}} with the given type,
// code and param ("" means null), and that the answer carries its
// X-Request-Id.
func wantError(t *testing.T, a *answer, status int, typ, code, param string) apiError {
	t.Helper()
	e := wantErrorBody(t, a, status, typ, code, param)
	if a.get("X-Request-Id") == "" {
		t.Fatalf("error answer without X-Request-Id")
	}
	return e
}

// wantErrorBody is wantError without the X-Request-Id check.
func wantErrorBody(t *testing.T, a *answer, status int, typ, code, param string) apiError {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d; body %s", a.status, status, a.body)
	}
	if ct := a.get("Content-Type"); ct != "application/json" {
		t.Fatalf("error content type %q, want application/json", ct)
	}
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(a.body, &raw); err != nil || len(raw) != 1 || len(raw["error"]) != 4 {
		t.Fatalf("error body %s is not {\"error\":{message,type,param,code}} (%v)", a.body, err)
	}
	for _, f := range []string{"message", "type", "param", "code"} {
		if _, ok := raw["error"][f]; !ok {
			t.Fatalf("error body %s has no %q", a.body, f)
		}
	}
	var e struct{ Error apiError }
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("error body %s: %v", a.body, err)
	}
	got := e.Error
	if got.Message == "" || got.Type != typ || str(got.Code) != code || str(got.Param) != param {
		t.Fatalf("error %s; want type %q, code %q, param %q", a.body, typ, code, param)
	}
	if param == "" && got.Param != nil || code == "" && got.Code != nil {
		t.Fatalf("error %s: an absent param or code must be null", a.body)
	}
	return got
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// wantStatus fails unless a has the status.
func wantStatus(t *testing.T, a *answer, status int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d; body %s", a.status, status, a.body)
	}
}

// wantHeader fails unless a has the header value.
func wantHeader(t *testing.T, a *answer, name, want string) {
	t.Helper()
	if got := a.get(name); got != want {
		t.Fatalf("%s: %q, want %q", name, got, want)
	}
}

// eventually polls cond until it holds or waitLong passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a log sink tests can read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
