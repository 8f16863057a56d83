//go:build !notracing

package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/upstreams"
)

// ServiceName is the service.name of the spans, unless OTEL_SERVICE_NAME
// or OTEL_RESOURCE_ATTRIBUTES say otherwise.
const ServiceName = "idempotent-llm-gateway"

// scopeName is the instrumentation scope of every span.
const scopeName = "github.com/idemgw/gateway/routes/tracing"

// Attribute keys: the GenAI semantic conventions' (gen-ai-spans), and the
// gateway's own under gateway.*.
const (
	keyOperation     = attribute.Key("gen_ai.operation.name")
	keyProvider      = attribute.Key("gen_ai.provider.name")
	keyRequestModel  = attribute.Key("gen_ai.request.model")
	keyResponseModel = attribute.Key("gen_ai.response.model")
	keyInputTokens   = attribute.Key("gen_ai.usage.input_tokens")
	keyOutputTokens  = attribute.Key("gen_ai.usage.output_tokens")
	keyErrorType     = attribute.Key("error.type")
	keyStatus        = attribute.Key("http.response.status_code")
	keyPath          = attribute.Key("url.path")

	// KeyIdempotencyOutcome is the decision (gateway_dedupe_total's
	// outcome words, "off" without deduplication).
	KeyIdempotencyOutcome = attribute.Key("gateway.idempotency.outcome")
	// KeyFence is the fence of the task's leader (DESIGN.md section 3).
	KeyFence = attribute.Key("gateway.idempotency.fence")
	// KeyAttemptOutcome is the attempt's ledger outcome.
	KeyAttemptOutcome = attribute.Key("gateway.attempt.outcome")
	// KeyAttemptNumber is the attempt's row in the ledger, from 1.
	KeyAttemptNumber = attribute.Key("gateway.attempt.number")
	keyRoute         = attribute.Key("gateway.route")
	keyAttempts      = attribute.Key("gateway.attempts")
	keySavedInput    = attribute.Key("gateway.saved.input_tokens")
	keySavedOutput   = attribute.Key("gateway.saved.output_tokens")
)

// Tracer makes the spans of every request and exports them in batches.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TraceContext
}

// New returns the tracer of cfg, or nil when tracing is off. It does not
// connect: the exporter posts batches in the background, and a collector
// that does not answer costs the requests nothing (its batches are
// dropped and logged).
func New(cfg config.Tracing, log *slog.Logger) (*Tracer, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	u := cfg.ExportURL()
	if u == nil {
		return nil, fmt.Errorf("cannot parse tracing.otlp_endpoint %q", cfg.OTLPEndpoint)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host), otlptracehttp.WithURLPath(u.Path)}
	if u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot create the OTLP exporter: %w", err)
	}
	// Later detectors win: the environment may rename the service.
	res, err := resource.New(context.Background(),
		resource.WithAttributes(attribute.String("service.name", ServiceName)),
		resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("cannot build the trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(loggedExporter{SpanExporter: exp, log: log}),
		// A client's sampled flag decides for its trace; sample_ratio
		// decides for traces that start here.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
		sdktrace.WithResource(res))
	return &Tracer{provider: tp, tracer: tp.Tracer(scopeName)}, nil
}

// Shutdown exports the spans still queued, within ctx.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("cannot flush the last spans: %w", err)
	}
	return nil
}

// loggedExporter logs a failed export into the gateway's log instead of
// OpenTelemetry's global error handler (plain lines on stderr).
type loggedExporter struct {
	sdktrace.SpanExporter
	log *slog.Logger
}

func (e loggedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := e.SpanExporter.ExportSpans(ctx, spans); err != nil {
		e.log.Warn("cannot export spans; dropped", "spans", len(spans), "error", err.Error())
	}
	return nil
}

// Request is the span of one API request and the parent of its children.
type Request struct {
	t     *Tracer
	ctx   context.Context // holds span
	span  trace.Span
	op    string
	fence int64
	// model is what the upstream named in its answer, for the request
	// span's gen_ai.response.model; set when an attempt succeeds, which
	// happens before End (the same goroutine, or one End waits for).
	model string
}

// StartRequest opens the server span of a request that arrived at start,
// as a child of the client's traceparent when it sent a valid one.
func (t *Tracer) StartRequest(h *fasthttp.RequestHeader, path string, start time.Time) *Request {
	if t == nil {
		return nil
	}
	ctx := t.prop.Extract(context.Background(), headerCarrier{h})
	op := upstreams.Operation(path)
	ctx, span := t.tracer.Start(ctx, op, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithAttributes(keyOperation.String(op), keyPath.String(path)))
	return &Request{t: t, ctx: ctx, span: span, op: op}
}

// Model names the span after the GenAI conventions ("chat gpt-4o") once
// the body's model is read; route is the configured route that serves it.
func (r *Request) Model(model, route string) {
	if r == nil {
		return
	}
	r.span.SetName(r.op + " " + model)
	r.span.SetAttributes(keyRequestModel.String(model), keyRoute.String(route))
}

// Decision records the idempotency decision, made from start to now, as
// a child span; fence is the task's (0 when there is none).
func (r *Request) Decision(start time.Time, decision string, fence int64, err error) {
	if r == nil {
		return
	}
	r.fence = fence
	_, span := r.t.tracer.Start(r.ctx, "idempotency "+decision, trace.WithTimestamp(start),
		trace.WithAttributes(KeyIdempotencyOutcome.String(decision)))
	if fence > 0 {
		span.SetAttributes(KeyFence.Int64(fence))
	}
	if err != nil {
		span.SetStatus(codes.Error, decision)
	}
	span.End()
}

// Tracer is the request as the upstream chain's Tracer, or nil (an
// interface holding a nil *Request would not be nil).
func (r *Request) Tracer() upstreams.Tracer {
	if r == nil {
		return nil
	}
	return r
}

// StartAttempt implements upstreams.Tracer.
func (r *Request) StartAttempt(n int, a *upstreams.Attempt) upstreams.AttemptSpan {
	_, span := r.t.tracer.Start(r.ctx, r.op+" "+a.Model, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(a.Start),
		trace.WithAttributes(keyOperation.String(r.op), keyProvider.String(a.Provider), keyRequestModel.String(a.Model),
			KeyAttemptNumber.Int(n)))
	if r.fence > 0 {
		span.SetAttributes(KeyFence.Int64(r.fence))
	}
	return &attemptSpan{r: r, span: span}
}

type attemptSpan struct {
	r    *Request
	span trace.Span
}

// Traceparent implements upstreams.AttemptSpan.
func (s *attemptSpan) Traceparent() (parent, state string) {
	var c pairCarrier
	s.r.t.prop.Inject(trace.ContextWithSpan(context.Background(), s.span), &c)
	return c.parent, c.state
}

// End implements upstreams.AttemptSpan.
func (s *attemptSpan) End(a *upstreams.Attempt, responseModel string) {
	span := s.span
	span.SetAttributes(KeyAttemptOutcome.String(string(a.Outcome)))
	if a.HTTPStatus > 0 {
		span.SetAttributes(keyStatus.Int(a.HTTPStatus))
	}
	if responseModel != "" {
		span.SetAttributes(keyResponseModel.String(responseModel))
		if a.Outcome == upstreams.OutcomeSuccess {
			s.r.model = responseModel
		}
	}
	setUsage(span, keyInputTokens, keyOutputTokens, a.Usage.PromptTokens, a.Usage.CompletionTokens)
	switch a.Outcome {
	case upstreams.OutcomeSuccess, upstreams.OutcomeSkipped:
	default:
		span.SetAttributes(keyErrorType.String(string(a.Outcome)))
		span.SetStatus(codes.Error, a.Error)
	}
	span.End(trace.WithTimestamp(a.Start.Add(a.Duration)))
}

// End closes the request span.
func (r *Request) End(e End) {
	if r == nil {
		return
	}
	span := r.span
	span.SetAttributes(keyStatus.Int(e.Status), KeyIdempotencyOutcome.String(e.Decision), keyAttempts.Int(e.Attempts))
	if r.fence > 0 {
		span.SetAttributes(KeyFence.Int64(r.fence))
	}
	if e.Provider != "" {
		span.SetAttributes(keyProvider.String(e.Provider))
	}
	if r.model != "" {
		span.SetAttributes(keyResponseModel.String(r.model))
	}
	if e.Led {
		setUsage(span, keyInputTokens, keyOutputTokens, e.InputTokens, e.OutputTokens)
	} else {
		setUsage(span, keySavedInput, keySavedOutput, e.InputTokens, e.OutputTokens)
	}
	if e.Status >= 500 {
		span.SetAttributes(keyErrorType.Int(e.Status))
		span.SetStatus(codes.Error, e.Error)
	}
	span.End()
}

func setUsage(span trace.Span, in, out attribute.Key, input, output int64) {
	if input > 0 {
		span.SetAttributes(in.Int64(input))
	}
	if output > 0 {
		span.SetAttributes(out.Int64(output))
	}
}

// headerCarrier reads the client's traceparent and tracestate.
type headerCarrier struct{ h *fasthttp.RequestHeader }

func (c headerCarrier) Get(key string) string { return string(c.h.Peek(key)) }
func (c headerCarrier) Set(string, string)    {}
func (c headerCarrier) Keys() []string        { return []string{"traceparent", "tracestate"} }

// pairCarrier receives the traceparent and tracestate of an attempt.
type pairCarrier struct{ parent, state string }

func (c *pairCarrier) Get(string) string { return "" }
func (c *pairCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.parent = value
	case "tracestate":
		c.state = value
	}
}
func (c *pairCarrier) Keys() []string { return nil }
