package upstreams

import (
	"fmt"
	"sort"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/upstreams/breaker"
)

// Registry holds the providers and route chains of one configuration; a
// reload builds a new one and swaps it in.
type Registry struct {
	providers map[string]*Provider
	chains    map[string]*Chain
	wildcard  *Chain
	models    []string
	breaker   *breaker.Breaker
}

// NewRegistry builds clients and chains for a validated config. br holds
// the breakers of the targets; it belongs to the process, not to one
// configuration, so that breaker state survives a reload (the caller
// Reloads it with cfg first). nil gives the registry breakers of its own,
// in process (tests and tools).
func NewRegistry(cfg *config.Config, m *Metrics, br *breaker.Breaker) (*Registry, error) {
	if br == nil {
		br = breaker.New(cfg, breaker.Options{})
	}
	r := &Registry{providers: map[string]*Provider{}, chains: map[string]*Chain{}, breaker: br}
	for name, pc := range cfg.Providers {
		p, err := NewProvider(pc)
		if err != nil {
			return nil, err
		}
		r.providers[name] = p
		// Zero from the start, so that increase() sees the first retry.
		m.retryCounter(name)
	}
	maxAttempts := cfg.Resilience.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = config.DefaultMaxAttempts
	}
	for _, rc := range cfg.Routes {
		ch := &Chain{Route: rc, metrics: m, pricing: cfg.Pricing, breaker: br, maxAttempts: maxAttempts}
		for _, t := range rc.Targets {
			p := r.providers[t.Provider]
			if p == nil {
				return nil, fmt.Errorf("cannot build route %q: unknown provider %q", rc.Model, t.Provider)
			}
			ch.Targets = append(ch.Targets, Target{Provider: p, Model: t.Model, key: breaker.Target{Provider: p.Name, Model: t.Model}})
		}
		m.budgetCounter(rc.Model)
		if !tiered(rc.Targets) {
			ch.fixed = Order(nil, rc.Targets, nil)
		}
		if rc.Model == "*" {
			r.wildcard = ch
			continue
		}
		r.chains[rc.Model] = ch
		r.models = append(r.models, rc.Model)
	}
	sort.Strings(r.models)
	return r, nil
}

// ChainFor returns the chain of a client model (exact route first, then
// "*"), or nil.
func (r *Registry) ChainFor(model string) *Chain {
	if ch := r.chains[model]; ch != nil {
		return ch
	}
	return r.wildcard
}

// Models lists the configured route models, sorted, without "*".
func (r *Registry) Models() []string { return r.models }

// Breaker returns the breakers the chains consult.
func (r *Registry) Breaker() *breaker.Breaker { return r.breaker }

// tiered reports a route with at least one tier, whose order is drawn per
// request.
func tiered(ts []config.Target) bool {
	for _, t := range ts {
		if t.Tier != 0 {
			return true
		}
	}
	return false
}
