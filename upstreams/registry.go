package upstreams

import (
	"fmt"
	"sort"

	"github.com/idemgw/gateway/config"
)

// Registry holds the providers and route chains of one configuration; a
// reload builds a new one and swaps it in.
type Registry struct {
	providers map[string]*Provider
	chains    map[string]*Chain
	wildcard  *Chain
	models    []string
}

// NewRegistry builds clients and chains for a validated config.
func NewRegistry(cfg *config.Config, m *Metrics) (*Registry, error) {
	r := &Registry{providers: map[string]*Provider{}, chains: map[string]*Chain{}}
	for name, pc := range cfg.Providers {
		p, err := NewProvider(pc)
		if err != nil {
			return nil, err
		}
		r.providers[name] = p
	}
	for _, rc := range cfg.Routes {
		ch := &Chain{Route: rc, metrics: m, pricing: cfg.Pricing}
		for _, t := range rc.Targets {
			p := r.providers[t.Provider]
			if p == nil {
				return nil, fmt.Errorf("cannot build route %q: unknown provider %q", rc.Model, t.Provider)
			}
			ch.Targets = append(ch.Targets, Target{Provider: p, Model: t.Model})
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
