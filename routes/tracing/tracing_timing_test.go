package tracing

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// offRequest is every tracing call a request makes, with tracing off.
func offRequest(t *Tracer, h *fasthttp.RequestHeader, start time.Time) {
	r := t.StartRequest(h, "/v1/chat/completions", start)
	r.Model("gpt-4o", "gpt-4o")
	r.Decision(start, "new", 1, nil)
	if r.Tracer() != nil {
		panic("BUG: tracing off gave the chain a tracer")
	}
	r.End(End{Status: 200, Decision: "new", Provider: "openai", Attempts: 1, Led: true, InputTokens: 10, OutputTokens: 9})
}

// Tracing off must cost the request path nothing (issue 16): no
// allocation at all.
func TestOffAllocatesNothing(t *testing.T) {
	var h fasthttp.RequestHeader
	h.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	start := time.Now()
	if n := testing.AllocsPerRun(1000, func() { offRequest(nil, &h, start) }); n != 0 {
		t.Fatalf("tracing off allocates %v times per request, want 0", n)
	}
}

// BenchmarkOff is the request path's tracing calls with tracing off.
func BenchmarkOff(b *testing.B) {
	var h fasthttp.RequestHeader
	start := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		offRequest(nil, &h, start)
	}
}
