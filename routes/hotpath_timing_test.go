package routes

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/upstreams"
)

// upstreamAnswer is what the canned upstream answers: a chat completion
// with usage, as the fake upstream sends it.
const upstreamAnswer = `{"id":"chatcmpl-fake-1","object":"chat.completion","created":1,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"fake reply from bench-model: tok0 tok1 tok2 tok3 tok4"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":9,"total_tokens":19}}`

// benchRequestBody is a ~1 KB chat completion.
var benchRequestBody = []byte(`{"model":"bench-model","messages":[{"role":"system","content":"You are a careful assistant. Answer briefly and cite the source of every fact. You are a careful assistant. Answer briefly and cite the source of every fact. You are a careful assistant. Answer briefly and cite the source of every fact. You are a careful assistant. Answer briefly and cite the source of every fact. You are a careful assistant. Answer briefly and cite the source of every fact. You are a careful assistant. Answer briefly and cite the source of every fact. You are a careful assistant. Answer briefly and cite the source of every fact. You are a careful assistant. Answer briefly and cite the source of every fact. You are a careful assistant. Answer briefly and cite the source of every fact. You are a careful assistant. Answer briefly and cite the source of every fact."},{"role":"user","content":"benchmark prompt 42"}],"temperature":0.2,"max_tokens":256,"stream":false}`)

// startCannedUpstream serves upstreamAnswer on loopback with fasthttp,
// which allocates nothing per request once warm: the allocations counted
// around it are the gateway's.
func startCannedUpstream(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(upstreamAnswer)
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String() + "/v1"
}

// offServer is a gateway with dedupe off in front of the canned upstream,
// logging as in production (JSON, info) to nowhere.
func offServer(t testing.TB) fasthttp.RequestHandler {
	t.Helper()
	yaml := `listen: 127.0.0.1:0
auth: {mode: keys, keys: [{tenant: bench, key: sk-bench}]}
dedupe: {enabled: false}
providers:
  fake: {base_url: "` + startCannedUpstream(t) + `", api_key: upstream-key, timeout: 10s, first_byte_timeout: 5s}
routes:
  - model: "*"
    targets: [{provider: fake}]
`
	cfg, err := config.Parse("bench.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewState(cfg, upstreams.NewMetrics(), nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return NewServer(st, nil, log, nil).Handler()
}

// offRequest prepares ctx as a client's POST of benchRequestBody.
func offRequest(ctx *fasthttp.RequestCtx) {
	var req fasthttp.Request
	req.SetRequestURI("/v1/chat/completions")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", "Bearer sk-bench")
	req.SetBody(benchRequestBody)
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, nil)
}

// serveOff runs one request through h on a prepared ctx.
func serveOff(tb testing.TB, h fasthttp.RequestHandler, ctx *fasthttp.RequestCtx) {
	ctx.Response.Reset()
	h(ctx)
	if ctx.Response.StatusCode() != 200 || string(ctx.Response.Body()) != upstreamAnswer {
		tb.Fatalf("status %d body %.200s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

// BenchmarkProxyOff is one non-stream request through the whole handler
// with dedupe off (auth, body inspection, routing, the upstream call over
// loopback, headers, metrics, the log line), without a client or server
// around it.
func BenchmarkProxyOff(b *testing.B) {
	h := offServer(b)
	var ctx fasthttp.RequestCtx
	offRequest(&ctx)
	serveOff(b, h, &ctx)
	b.ReportAllocs()
	for b.Loop() {
		serveOff(b, h, &ctx)
	}
}

// BenchmarkFinish is the end of every request: two metric updates and the
// JSON log line.
func BenchmarkFinish(b *testing.B) {
	s := &Server{set: metrics.NewSet(), log: slog.New(slog.NewJSONHandler(io.Discard, nil)), now: time.Now}
	b.ReportAllocs()
	for b.Loop() {
		c := &call{s: s, id: "0123456789abcdef01234567", start: time.Now(), path: "/v1/chat/completions", tenant: "bench",
			route: "*", dedupe: dedupe.DecisionOff, provider: "fake", attempts: 1, status: 200}
		s.active.Add(1)
		c.finish()
	}
}

// BenchmarkResponseHeaders sets what the gateway adds to an answer.
func BenchmarkResponseHeaders(b *testing.B) {
	var ctx fasthttp.RequestCtx
	res := &upstreams.Result{Provider: "fake", Attempts: make([]upstreams.Attempt, 1)}
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		ctx.Response.Header.Set("X-Request-Id", "0123456789abcdef01234567")
		ctx.Response.Header.Set("Idempotency-Key", "req-2b7f0c4e-9a61-4f5e")
		ctx.Response.Header.Set("Idempotent-Replayed", "false")
		setUpstreamHeaders(&ctx, res)
		ctx.SetContentTypeBytes([]byte("application/json"))
	}
}

// BenchmarkWriteEvent writes one numbered SSE event and flushes it, as
// the relay does per event.
func BenchmarkWriteEvent(b *testing.B) {
	ev := []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok1 "},"finish_reason":null}]}`)
	sw := newSSEWriter(io.Discard, 1, 0, upstreams.DialectOpenAI)
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		if err := sw.event(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// streamAnswer is what the canned stream upstream sends: eight content
// chunks, a usage chunk and [DONE], as a short streamed answer has.
var streamAnswer = func() string {
	var b strings.Builder
	for i := range 8 {
		fmt.Fprintf(&b, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"},\"finish_reason\":null}]}\n\n", i)
	}
	b.WriteString("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":8,\"total_tokens\":18}}\n\n")
	b.WriteString("data: [DONE]\n\n")
	return b.String()
}()

// streamServer is a gateway in front of a canned stream upstream, served
// by a fasthttp.Server on an in-memory listener (a stream's body is written
// by the server, not the handler), with the given dedupe section; with
// dedupe on, its records go to an embedded store and its live streams to
// the in-process backend. It returns a client of it.
func streamServer(b *testing.B, dedupeYAML string) *fasthttp.Client {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyString(streamAnswer)
	}}
	go func() { _ = up.Serve(ln) }()
	b.Cleanup(func() { _ = up.Shutdown() })
	yaml := `listen: 127.0.0.1:0
auth: {mode: keys, keys: [{tenant: bench, key: sk-bench}]}
` + dedupeYAML + `
store: {kind: embedded, path: "` + b.TempDir() + `/gw.db"}
providers:
  fake: {base_url: "http://` + ln.Addr().String() + `/v1", api_key: upstream-key, timeout: 10s, first_byte_timeout: 5s}
routes:
  - model: "*"
    targets: [{provider: fake}]
`
	cfg, err := config.Parse("bench.yaml", []byte(yaml), nil)
	if err != nil {
		b.Fatal(err)
	}
	var coord *dedupe.Coordinator
	if cfg.Dedupe.IsEnabled() {
		store, err := dedupe.OpenEmbedded(cfg.Store.Path)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = store.Close() })
		d := cfg.Dedupe
		coord = dedupe.NewCoordinator(store, nil, dedupe.Options{Owner: "bench", Lease: d.Lease, MaxProcessing: d.MaxProcessing,
			KeyTTL: d.KeyTTL, WaitTimeout: d.WaitTimeout, MaxRecordBytes: d.MaxRecordBytes, ReapBatch: d.ReapBatch})
		b.Cleanup(func() { _ = coord.Drain(context.Background()) })
	}
	st, err := NewState(cfg, upstreams.NewMetrics(), nil)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := &fasthttp.Server{Handler: NewServer(st, coord, log, nil).Handler(), NoDefaultServerHeader: true, CloseOnShutdown: true}
	gl := fasthttputil.NewInmemoryListener()
	go func() { _ = srv.Serve(gl) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return gl.Dial() }}
}

// benchStream sends one stream request with key (none: "") and checks
// that the whole stream came back.
func benchStream(b *testing.B, cl *fasthttp.Client, key string) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://gateway/v1/chat/completions")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", "Bearer sk-bench")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	req.SetBodyString(`{"model":"bench-model","messages":[{"role":"user","content":"benchmark prompt"}],"stream":true}`)
	if err := cl.Do(req, resp); err != nil {
		b.Fatal(err)
	}
	if body := resp.Body(); resp.StatusCode() != 200 || !bytes.Contains(body, []byte("data: [DONE]")) || !bytes.Contains(body, []byte("tok7 ")) {
		b.Fatalf("status %d body %.300s", resp.StatusCode(), body)
	}
}

// BenchmarkStreamOff relays one 10-event stream with dedupe off: the
// upstream call, the SSE split and the relay to the client, through a
// fasthttp server and client on an in-memory connection.
func BenchmarkStreamOff(b *testing.B) {
	cl := streamServer(b, "dedupe: {enabled: false}")
	benchStream(b, cl, "")
	b.ReportAllocs()
	for b.Loop() {
		benchStream(b, cl, "")
	}
}

// BenchmarkRecordedStream relays the same stream under a new
// Idempotency-Key: the relay plus its recording, each event appended to
// the in-process live stream (which the client follows) and the whole
// answer completed into the embedded store.
func BenchmarkRecordedStream(b *testing.B) {
	cl := streamServer(b, "dedupe: {enabled: true}")
	benchStream(b, cl, "bench-warm")
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		benchStream(b, cl, "bench-"+strconv.Itoa(n))
	}
}
