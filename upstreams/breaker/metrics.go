package breaker

import (
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// transition counts gateway_breaker_transitions_total{provider,to}. In a
// cluster each transition is counted once, by the node that made it: the
// one whose report opened or closed the target, or that took its probe
// (half_open). An auth cooling counts as the provider opening; its end
// counts as closed only when a call succeeded through it.
func (b *Breaker) transition(provider string, to State) {
	b.transitionCounter(provider, to).Inc()
}

func (b *Breaker) transitionCounter(provider string, to State) *metrics.Counter {
	return b.set.GetOrCreateCounter(fmt.Sprintf(`gateway_breaker_transitions_total{provider=%q,to=%q}`, provider, to.String()))
}

// logTransition logs a target opening (warn) or closing (info).
func (b *Breaker) logTransition(e *entry, to State, now time.Time) {
	e.mu.Lock()
	st := e.st
	e.mu.Unlock()
	if to == Open {
		b.log.Warn("breaker opened: the target is skipped until its cooldown ends",
			"provider", e.t.Provider, "model", e.t.Model, "reason", st.reason.String(),
			"consecutive_failures", st.failures, "last", st.last.String(),
			"until", st.until.UTC().Format(time.RFC3339), "cooldown", st.until.Sub(now).String())
		return
	}
	b.log.Info("breaker closed", "provider", e.t.Provider, "model", e.t.Model)
}
