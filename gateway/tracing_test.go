//go:build !notracing

package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an in-process OTLP/HTTP trace endpoint: it decodes each
// export request with the collector's own protobuf types.
type otlpReceiver struct {
	mu      sync.Mutex
	spans   []*tracepb.Span
	service string
	paths   []string
	headers []string // the X-Collector-Key of each export
}

func startReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var exp coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &exp)
		}
		if err != nil || req.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("bad export (%s): %v", req.Header.Get("Content-Type"), err)
			w.WriteHeader(400)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.paths = append(r.paths, req.URL.Path)
		r.headers = append(r.headers, req.Header.Get("X-Collector-Key"))
		for _, rs := range exp.ResourceSpans {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					r.service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

// attrs flattens a span's attributes to strings (ints in decimal).
func attrs(s *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes {
		switch v := kv.GetValue().Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = strconv.FormatInt(v.IntValue, 10)
		default:
			m[kv.Key] = fmt.Sprint(v)
		}
	}
	return m
}

func id(b []byte) string { return hex.EncodeToString(b) }

// Acceptance (issue 16): with tracing on, a request with the client's
// traceparent that falls back from a failing provider exports a server
// span continuing the client's trace, a child for the idempotency
// decision and a client span per attempt, with the GenAI and gateway
// attributes; each upstream call carries a traceparent naming its attempt
// span. A replay is a span of its own with what it saved.
func TestTracingSpans(t *testing.T) {
	recv, endpoint := startReceiver(t)
	fake := startFake(t)
	fake.SetMaxRequests(100)
	g := startGateway(t, testConfig(t, fake.URL, `tracing:
  otlp_endpoint: `+endpoint+`
  sample_ratio: 0
  headers: {X-Collector-Key: collector-secret-1}
routes:
  - model: traced
    targets: [{provider: fake, model: fail-503}, {provider: fake2, model: gpt-traced}]
`))
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	traceparent := "00-" + clientTrace + "-" + clientSpan + "-01"
	body := chatBody("traced", "trace me", false)
	for range 2 { // the second is a replay
		resp, b := post(t, g.URL, "/v1/chat/completions", body, "traceparent", traceparent, "Idempotency-Key", "trace-1")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	}
	// A stream without a traceparent: sample_ratio 0 leaves a new trace
	// unrecorded, yet the provider still gets a (not sampled) traceparent.
	resp, b := post(t, g.URL, "/v1/chat/completions", chatBody("traced", "stream me", true), "Idempotency-Key", "trace-2")
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte("[DONE]")) {
		t.Fatalf("stream status %d: %s", resp.StatusCode, b)
	}
	metricsText := getMetrics(t, g.URL)
	g.stop(t) // flushes the batch of spans

	recv.mu.Lock()
	spans, service, paths, headers := recv.spans, recv.service, recv.paths, recv.headers
	recv.mu.Unlock()
	if service != "idempotent-llm-gateway" || paths[0] != "/v1/traces" || headers[0] != "collector-secret-1" {
		t.Fatalf("service %q, export paths %q, headers %q", service, paths, headers)
	}
	var servers, decisions, clients []*tracepb.Span
	for _, s := range spans {
		if id(s.TraceId) != clientTrace {
			t.Errorf("span %q of trace %s: only the client's trace is sampled", s.Name, id(s.TraceId))
		}
		switch {
		case s.Kind == tracepb.Span_SPAN_KIND_SERVER:
			servers = append(servers, s)
		case s.Kind == tracepb.Span_SPAN_KIND_CLIENT:
			clients = append(clients, s)
		case strings.HasPrefix(s.Name, "idempotency "):
			decisions = append(decisions, s)
		}
	}
	if len(servers) != 2 || len(decisions) != 2 || len(clients) != 2 || len(spans) != 6 {
		t.Fatalf("got %d spans: %d server, %d decision, %d client; want 2, 2, 2", len(spans), len(servers), len(decisions), len(clients))
	}
	lead, replay := servers[0], servers[1]
	if attrs(lead)[string("gateway.idempotency.outcome")] != "new" {
		lead, replay = replay, lead
	}
	for _, s := range servers {
		if id(s.ParentSpanId) != clientSpan {
			t.Errorf("server span %q has parent %s, want the client's %s", s.Name, id(s.ParentSpanId), clientSpan)
		}
	}
	wantAttrs(t, lead, map[string]string{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "traced", "gen_ai.provider.name": "fake2",
		"gen_ai.response.model": "gpt-traced", "gateway.idempotency.outcome": "new", "gateway.idempotency.fence": "1",
		"gateway.attempts": "2", "http.response.status_code": "200", "gateway.route": "traced",
	}, "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
	if lead.Name != "chat traced" {
		t.Errorf("request span name %q, want %q", lead.Name, "chat traced")
	}
	wantAttrs(t, replay, map[string]string{"gateway.idempotency.outcome": "replayed", "gateway.attempts": "0"},
		"gateway.saved.input_tokens", "gateway.saved.output_tokens")
	if a := attrs(replay); a["gen_ai.usage.input_tokens"] != "" {
		t.Errorf("a replay paid no tokens, got gen_ai.usage.input_tokens %s", a["gen_ai.usage.input_tokens"])
	}
	for _, d := range decisions {
		if id(d.ParentSpanId) != id(lead.SpanId) && id(d.ParentSpanId) != id(replay.SpanId) {
			t.Errorf("decision span %q is not a child of a request span", d.Name)
		}
	}
	first, second := clients[0], clients[1]
	if attrs(first)["gateway.attempt.number"] != "1" {
		first, second = second, first
	}
	wantAttrs(t, first, map[string]string{
		"gen_ai.provider.name": "fake", "gen_ai.request.model": "fail-503", "gateway.attempt.outcome": "error",
		"gateway.attempt.number": "1", "http.response.status_code": "503", "error.type": "error", "gateway.idempotency.fence": "1",
	})
	wantAttrs(t, second, map[string]string{
		"gen_ai.provider.name": "fake2", "gen_ai.request.model": "gpt-traced", "gen_ai.response.model": "gpt-traced",
		"gateway.attempt.outcome": "success", "gateway.attempt.number": "2", "http.response.status_code": "200",
	}, "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
	if first.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || second.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("attempt statuses %v, %v: want error, then not", first.Status, second.Status)
	}
	for _, c := range clients {
		if id(c.ParentSpanId) != id(lead.SpanId) {
			t.Errorf("attempt span %q has parent %s, want the request span %s", c.Name, id(c.ParentSpanId), id(lead.SpanId))
		}
	}

	// The provider got each attempt's span as its parent.
	got := map[string][]string{}
	for _, r := range fake.Requests() {
		got[r.Model] = append(got[r.Model], r.Header.Get("Traceparent"))
	}
	for _, c := range clients {
		want := "00-" + clientTrace + "-" + id(c.SpanId) + "-01"
		if model := attrs(c)["gen_ai.request.model"]; len(got[model]) < 1 || got[model][0] != want {
			t.Errorf("the upstream calls for %s carried traceparents %q, want %q first", model, got[model], want)
		}
	}
	// The unsampled stream: a new trace, flags 00, nothing exported.
	if tp := got["gpt-traced"]; len(tp) != 2 || !strings.HasSuffix(tp[1], "-00") || strings.Contains(tp[1], clientTrace) || len(tp[1]) != 55 {
		t.Errorf("the stream's upstream call carried %q, want a new, unsampled traceparent", tp)
	}

	// The GenAI metrics, in Prometheus form, labelled from config.
	samples := parseProm(t, metricsText)
	gen := map[string]string{"gen_ai_operation_name": "chat", "gen_ai_request_model": "traced", "gen_ai_provider_name": "fake2", "gen_ai_response_model": "gpt-traced"}
	for _, m := range []struct {
		name  string
		extra map[string]string
		count float64
	}{
		{"gen_ai_client_token_usage_count", map[string]string{"gen_ai_token_type": "input"}, 2},
		{"gen_ai_client_token_usage_count", map[string]string{"gen_ai_token_type": "output"}, 2},
		{"gen_ai_client_operation_duration_seconds_count", nil, 2},
		{"gen_ai_server_request_duration_seconds_count", nil, 2},
		{"gen_ai_server_time_to_first_token_seconds_count", nil, 1},
	} {
		want := map[string]string{}
		for k, v := range gen {
			want[k] = v
		}
		for k, v := range m.extra {
			want[k] = v
		}
		if n, _ := sumSeries(samples, m.name, want); n != m.count {
			t.Errorf("%s%v = %v, want %v", m.name, want, n, m.count)
		}
	}
	failed := map[string]string{"gen_ai_provider_name": "fake", "gen_ai_response_model": "fail-503", "error_type": "error"}
	if n, _ := sumSeries(samples, "gen_ai_client_operation_duration_seconds_count", failed); n != 2 {
		t.Errorf("failed calls in gen_ai_client_operation_duration_seconds: %v, want 2", n)
	}
	if n, _ := sumSeries(samples, "gen_ai_client_token_usage_bucket", map[string]string{"gen_ai_token_type": "input", "le": "16384"}); n != 2 {
		t.Errorf("gen_ai_client_token_usage has no le=16384 bucket, one of the conventions': %v", n)
	}
}

// wantAttrs checks attribute values, and that the keys in present are set.
func wantAttrs(t *testing.T, s *tracepb.Span, want map[string]string, present ...string) {
	t.Helper()
	got := attrs(s)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("span %q: %s = %q, want %q (all: %v)", s.Name, k, got[k], v, got)
		}
	}
	for _, k := range present {
		if got[k] == "" || got[k] == "0" {
			t.Errorf("span %q: %s is missing (all: %v)", s.Name, k, got)
		}
	}
}

func getMetrics(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A collector that does not answer costs the requests nothing: they are
// answered, the lost batch is logged, and shutdown is not held up past
// its bound.
func TestTracingCollectorDown(t *testing.T) {
	fake := startFake(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	g := startGateway(t, testConfig(t, fake.URL, "tracing: {otlp_endpoint: "+dead+"}\n"))
	for i := range 3 {
		resp, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", fmt.Sprint("collector down ", i), false))
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	}
	start := time.Now()
	g.stop(t)
	t.Logf("shutdown took %v", time.Since(start))
	if logs := g.logs.String(); !strings.Contains(logs, "cannot export spans; dropped") {
		t.Fatalf("no log line for the lost spans:\n%s", logs)
	}
}
