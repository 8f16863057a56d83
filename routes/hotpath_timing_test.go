package routes

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

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
