// Package tracing exports the gateway's OpenTelemetry spans over
// OTLP/HTTP (issue 16): one server span per API request, continuing the
// client's W3C traceparent, with a child for the idempotency decision and
// a client span for each upstream attempt, whose traceparent goes to the
// provider. Spans carry the GenAI semantic-convention attributes and the
// gateway's own (gateway.*).
//
// A nil *Tracer, and a nil *Request, is tracing off: every method returns
// at once and allocates nothing, so the request path pays nothing for it.
//
// The build tag notracing compiles the OpenTelemetry SDK and its exporter
// out (notracing.go): the binary is about half the size, and a configured
// tracing block refuses to start. This file holds what both builds share.
package tracing

// End is what the request span records when the answer is complete.
type End struct {
	Status   int
	Decision string // the idempotency outcome word
	Provider string // the provider that answered, "" for none
	Attempts int
	// Led is true when the request called upstream; its tokens were paid
	// (gen_ai.usage.*). Otherwise they are what a replay or join saved.
	Led                       bool
	InputTokens, OutputTokens int64
	// Error is the scrubbed error text of a failed request.
	Error string
}
