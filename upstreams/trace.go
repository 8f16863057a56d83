package upstreams

// Tracer opens the span of each attempt of one request; routes/tracing
// implements it with OpenTelemetry (issue 16). Request.Tracer nil, the
// default, traces nothing and costs nothing on the request path.
type Tracer interface {
	// StartAttempt opens the span of the n-th ledger row of the request
	// (from 1), whose record a holds its provider, model and start.
	StartAttempt(n int, a *Attempt) AttemptSpan
}

// AttemptSpan is the span of one attempt.
type AttemptSpan interface {
	// Traceparent is the W3C traceparent, and the tracestate ("" for
	// none), that the call carries: the provider's spans become this
	// span's children.
	Traceparent() (parent, state string)
	// End closes the span with the attempt's final record; responseModel
	// is the model the upstream named in its answer, "" when unknown.
	End(a *Attempt, responseModel string)
}

// traceSkipped records a ledger row that made no call (skipped) as a
// span of its own, so a trace shows why the next target answered.
func traceSkipped(tr Tracer, n int, a *Attempt) {
	if tr == nil {
		return
	}
	tr.StartAttempt(n, a).End(a, "")
}

// answerModel is the top-level "model" of an upstream answer, for the
// span's gen_ai.response.model; read only when the attempt is traced.
func answerModel(body []byte) string {
	in, err := Inspect(body)
	if err != nil || !in.ModelIsString {
		return ""
	}
	return in.Model
}
