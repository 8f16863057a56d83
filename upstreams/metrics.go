package upstreams

import (
	"fmt"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/idemgw/gateway/config"
)

// Metrics are the upstream-side series of DESIGN.md section 6. Label
// values come from configuration (provider, route and target model names)
// and fixed outcome words only.
//
// Every request updates a few of them, so each series is looked up once by
// its labels and kept: formatting its name per request cost a dozen
// allocations. The maps stay as small as the configuration's label space.
type Metrics struct {
	set *metrics.Set

	mu        sync.RWMutex
	attempts  map[[2]string]*metrics.Counter // provider, outcome
	durations map[string]*metrics.PrometheusHistogram
	ttfbs     map[string]*metrics.PrometheusHistogram
	tokenC    map[[3]string]*metrics.Counter // provider, model, kind
	costs     map[string]*metrics.FloatCounter
	retries   map[string]*metrics.Counter // provider
	budgets   map[string]*metrics.Counter // route
	// genaiSeries are the OpenTelemetry GenAI histograms (genai.go).
	genaiSeries map[genaiKey]*metrics.PrometheusHistogram
}

// NewMetrics registers nothing globally; the caller exposes Set().
func NewMetrics() *Metrics {
	return &Metrics{
		set:       metrics.NewSet(),
		attempts:  map[[2]string]*metrics.Counter{},
		durations: map[string]*metrics.PrometheusHistogram{},
		ttfbs:     map[string]*metrics.PrometheusHistogram{},
		tokenC:    map[[3]string]*metrics.Counter{},
		costs:     map[string]*metrics.FloatCounter{},
		retries:   map[string]*metrics.Counter{},
		budgets:   map[string]*metrics.Counter{},

		genaiSeries: map[genaiKey]*metrics.PrometheusHistogram{},
	}
}

// streamCut counts a cut stream of a route with on_stream_cut: continue,
// continued or not. Cuts are rare, so the series is looked up each time.
func (m *Metrics) streamCut(route string, continued bool) {
	outcome := "not_continued"
	if continued {
		outcome = "continued"
	}
	m.set.GetOrCreateCounter(fmt.Sprintf(`gateway_stream_continuations_total{route=%q,outcome=%q}`, route, outcome)).Inc()
}

// Set returns the metric set to register or scrape.
func (m *Metrics) Set() *metrics.Set { return m.set }

// series returns the value of k in cache, creating it with create (under
// the write lock) the first time.
func series[K comparable, V any](m *Metrics, cache map[K]V, k K, create func() V) V {
	m.mu.RLock()
	v, ok := cache[k]
	m.mu.RUnlock()
	if ok {
		return v
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok = cache[k]; !ok {
		v = create()
		cache[k] = v
	}
	return v
}

// attempt counts a finished attempt; modelLabel is the configured target
// model (or the route's model name), never the client's free text. price
// is nil when the model has no pricing.
func (m *Metrics) attempt(a *Attempt, modelLabel string, price *config.Price) {
	provider, outcome := a.Provider, string(a.Outcome)
	series(m, m.attempts, [2]string{provider, outcome}, func() *metrics.Counter {
		return m.set.GetOrCreateCounter(fmt.Sprintf(`gateway_upstream_attempts_total{provider=%q,outcome=%q}`, provider, outcome))
	}).Inc()
	if a.Outcome == OutcomeSkipped {
		return
	}
	series(m, m.durations, provider, func() *metrics.PrometheusHistogram {
		return m.set.GetOrCreatePrometheusHistogram(fmt.Sprintf(`gateway_upstream_duration_seconds{provider=%q}`, provider))
	}).Update(a.Duration.Seconds())
	if a.TTFB > 0 {
		series(m, m.ttfbs, provider, func() *metrics.PrometheusHistogram {
			return m.set.GetOrCreatePrometheusHistogram(fmt.Sprintf(`gateway_upstream_ttfb_seconds{provider=%q}`, provider))
		}).Update(a.TTFB.Seconds())
	}
	m.tokens(provider, modelLabel, a.Usage)
	if cost := Cost(price, a.Usage); cost > 0 {
		series(m, m.costs, modelLabel, func() *metrics.FloatCounter {
			return m.set.GetOrCreateFloatCounter(fmt.Sprintf(`gateway_cost_usd_total{model=%q}`, modelLabel))
		}).Add(cost)
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
		m.tokenCounter(provider, model, "prompt").Add(int(u.PromptTokens))
	}
	if u.CompletionTokens > 0 {
		m.tokenCounter(provider, model, "completion").Add(int(u.CompletionTokens))
	}
}

func (m *Metrics) tokenCounter(provider, model, kind string) *metrics.Counter {
	return series(m, m.tokenC, [3]string{provider, model, kind}, func() *metrics.Counter {
		return m.set.GetOrCreateCounter(fmt.Sprintf(`gateway_tokens_total{provider=%q,model=%q,kind=%q}`, provider, model, kind))
	})
}

// fallback counts a move to the next target; rare, so not cached.
func (m *Metrics) fallback(route, from, to string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`gateway_fallbacks_total{route=%q,from=%q,to=%q}`, route, from, to)).Inc()
}

// retryCounter is gateway_retries_total{provider}: tries of the same
// target after a failure (DESIGN.md section 7).
func (m *Metrics) retryCounter(provider string) *metrics.Counter {
	return series(m, m.retries, provider, func() *metrics.Counter {
		return m.set.GetOrCreateCounter(fmt.Sprintf(`gateway_retries_total{provider=%q}`, provider))
	})
}

// budgetCounter is gateway_attempt_budget_exhausted_total{route}: requests
// refused because their idempotency key spent key_attempts.
func (m *Metrics) budgetCounter(route string) *metrics.Counter {
	return series(m, m.budgets, route, func() *metrics.Counter {
		return m.set.GetOrCreateCounter(fmt.Sprintf(`gateway_attempt_budget_exhausted_total{route=%q}`, route))
	})
}
