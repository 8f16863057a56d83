//go:build !notracing

package tracing

import (
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/upstreams"
)

// BenchmarkOn is the same with tracing on, every span sampled (and
// dropped by an exporter that is never reached within the run), for
// comparison: what turning tracing on costs a request.
func BenchmarkOn(b *testing.B) {
	tr, err := New(configFor("http://127.0.0.1:1"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.provider.Shutdown(b.Context()) })
	var h fasthttp.RequestHeader
	start := time.Now()
	a := &upstreams.Attempt{Provider: "openai", Model: "gpt-4o", Outcome: upstreams.OutcomeSuccess, HTTPStatus: 200, Start: start}
	b.ReportAllocs()
	for b.Loop() {
		r := tr.StartRequest(&h, "/v1/chat/completions", start)
		r.Model("gpt-4o", "gpt-4o")
		r.Decision(start, "new", 1, nil)
		s := r.Tracer().StartAttempt(1, a)
		_, _ = s.Traceparent()
		s.End(a, "gpt-4o-2024-08-06")
		r.End(End{Status: 200, Decision: "new", Provider: "openai", Attempts: 1, Led: true, InputTokens: 10, OutputTokens: 9})
	}
}
