package upstreams

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"

	"github.com/idemgw/gateway/config"
)

// Metrics are the upstream-side series of DESIGN.md section 6. Label
// values come from configuration (provider, route and target model names)
// and fixed outcome words only.
type Metrics struct {
	set *metrics.Set
}

// NewMetrics registers nothing globally; the caller exposes Set().
func NewMetrics() *Metrics { return &Metrics{set: metrics.NewSet()} }

// Set returns the metric set to register or scrape.
func (m *Metrics) Set() *metrics.Set { return m.set }

// attempt counts a finished attempt; modelLabel is the configured target
// model (or the route's model name), never the client's free text. price
// is nil when the model has no pricing.
func (m *Metrics) attempt(a *Attempt, modelLabel string, price *config.Price) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`gateway_upstream_attempts_total{provider=%q,outcome=%q}`, a.Provider, a.Outcome)).Inc()
	if a.Outcome == OutcomeSkipped {
		return
	}
	m.set.GetOrCreatePrometheusHistogram(fmt.Sprintf(`gateway_upstream_duration_seconds{provider=%q}`, a.Provider)).Update(a.Duration.Seconds())
	if a.TTFB > 0 {
		m.set.GetOrCreatePrometheusHistogram(fmt.Sprintf(`gateway_upstream_ttfb_seconds{provider=%q}`, a.Provider)).Update(a.TTFB.Seconds())
	}
	m.tokens(a.Provider, modelLabel, a.Usage)
	if cost := Cost(price, a.Usage); cost > 0 {
		m.set.GetOrCreateFloatCounter(fmt.Sprintf(`gateway_cost_usd_total{model=%q}`, modelLabel)).Add(cost)
	}
}

// Cost is the USD price of usage under price (0 without pricing).
func Cost(price *config.Price, u Usage) float64 {
	if price == nil {
		return 0
	}
	return (float64(u.PromptTokens)*price.PromptPer1M + float64(u.CompletionTokens)*price.CompletionPer1M) / 1e6
}

func (m *Metrics) tokens(provider, model string, u Usage) {
	if u.PromptTokens > 0 {
		m.set.GetOrCreateCounter(fmt.Sprintf(`gateway_tokens_total{provider=%q,model=%q,kind="prompt"}`, provider, model)).Add(int(u.PromptTokens))
	}
	if u.CompletionTokens > 0 {
		m.set.GetOrCreateCounter(fmt.Sprintf(`gateway_tokens_total{provider=%q,model=%q,kind="completion"}`, provider, model)).Add(int(u.CompletionTokens))
	}
}

func (m *Metrics) fallback(route, from, to string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`gateway_fallbacks_total{route=%q,from=%q,to=%q}`, route, from, to)).Inc()
}
