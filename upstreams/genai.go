package upstreams

import (
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// The OpenTelemetry GenAI metrics (semantic conventions, gen-ai-metrics),
// in the Prometheus form that OTel's Prometheus exporter gives them and
// that dashboards built for Envoy's AI gateway query (issue 16): dots
// become underscores, the unit a suffix ("s" -> _seconds; "{token}" has
// none). Their buckets are the conventions' advice. They sit beside the
// gateway_ series, which stay the contract of our own dashboard; their
// labels come from configuration and fixed words only.
const (
	genaiTokenUsage     = "gen_ai_client_token_usage"
	genaiClientDuration = "gen_ai_client_operation_duration_seconds"
	genaiServerDuration = "gen_ai_server_request_duration_seconds"
	genaiTimeToFirst    = "gen_ai_server_time_to_first_token_seconds"
)

var (
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	ttftBuckets     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
)

// Operation is the gen_ai.operation.name of an endpoint: a fixed word.
func Operation(path string) string {
	switch path {
	case "/v1/completions":
		return "text_completion"
	case "/v1/embeddings":
		return "embeddings"
	}
	return "chat" // chat completions, responses, messages
}

// genaiKey names one GenAI series: extra is the token type, or the error
// type ("" on success).
type genaiKey struct {
	name, op, provider, requestModel, responseModel, extra string
}

// genai returns the histogram of k, created the first time.
func (m *Metrics) genai(k genaiKey) *metrics.PrometheusHistogram {
	return series(m, m.genaiSeries, k, func() *metrics.PrometheusHistogram {
		var b strings.Builder
		b.WriteString(k.name)
		b.WriteString(`{gen_ai_operation_name=`)
		b.WriteString(strconv.Quote(k.op))
		if k.provider != "" {
			b.WriteString(`,gen_ai_provider_name=`)
			b.WriteString(strconv.Quote(k.provider))
		}
		b.WriteString(`,gen_ai_request_model=`)
		b.WriteString(strconv.Quote(k.requestModel))
		b.WriteString(`,gen_ai_response_model=`)
		b.WriteString(strconv.Quote(k.responseModel))
		buckets := durationBuckets
		switch {
		case k.name == genaiTokenUsage:
			b.WriteString(`,gen_ai_token_type=`)
			b.WriteString(strconv.Quote(k.extra))
			buckets = tokenBuckets
		case k.extra != "":
			b.WriteString(`,error_type=`)
			b.WriteString(strconv.Quote(k.extra))
		}
		if k.name == genaiTimeToFirst {
			buckets = ttftBuckets
		}
		b.WriteString(`}`)
		return m.set.GetOrCreatePrometheusHistogramExt(b.String(), buckets)
	})
}

// genaiAttempt records a call's client-side GenAI series: its duration
// (error_type is its outcome when it failed) and the tokens it reported.
func (m *Metrics) genaiAttempt(op, routeModel, label string, a *Attempt) {
	if a.Outcome == OutcomeSkipped {
		return // no call
	}
	k := genaiKey{name: genaiClientDuration, op: op, provider: a.Provider, requestModel: routeModel, responseModel: label}
	if a.Outcome != OutcomeSuccess {
		k.extra = string(a.Outcome)
	}
	m.genai(k).Update(a.Duration.Seconds())
	k.name = genaiTokenUsage
	if a.Usage.PromptTokens > 0 {
		k.extra = "input"
		m.genai(k).Update(float64(a.Usage.PromptTokens))
	}
	if a.Usage.CompletionTokens > 0 {
		k.extra = "output"
		m.genai(k).Update(float64(a.Usage.CompletionTokens))
	}
}

// Served names, for the GenAI series, the provider and model label of the
// target that answered a request, else of its last attempt: configuration
// values, never the client's model text.
func (c *Chain) Served(res *Result) (provider, model string) {
	provider, sent := res.Provider, res.Model
	if provider == "" && len(res.Attempts) > 0 {
		last := res.Attempts[len(res.Attempts)-1]
		provider, sent = last.Provider, last.Model
	}
	for _, t := range c.Targets {
		if t.Model != "" && t.Provider.Name == provider && t.Model == sent {
			return provider, t.Model
		}
	}
	return provider, c.Route.Model
}

// ObserveRequest records gen_ai_server_request_duration_seconds of a
// request that went through the chain; error_type is its HTTP status when
// it is 400 or more (a bounded set of codes, as in gateway_requests_total).
func (c *Chain) ObserveRequest(path, provider, model string, status int, d time.Duration) {
	k := genaiKey{name: genaiServerDuration, op: Operation(path), provider: provider, requestModel: c.Route.Model, responseModel: model}
	if status >= 400 {
		k.extra = strconv.Itoa(status)
	}
	c.metrics.genai(k).Update(d.Seconds())
}

// ObserveFirstToken records gen_ai_server_time_to_first_token_seconds: from
// a streamed request's arrival to its upstream's first byte.
func (c *Chain) ObserveFirstToken(path, provider, model string, d time.Duration) {
	k := genaiKey{name: genaiTimeToFirst, op: Operation(path), provider: provider, requestModel: c.Route.Model, responseModel: model}
	c.metrics.genai(k).Update(d.Seconds())
}
