package upstreams

import (
	"fmt"

	"github.com/idemgw/gateway/upstreams/breaker"
)

// Plan is how one request will go through a chain, decided before its
// ledger opens (DESIGN.md sections 3 and 7): the order of the targets,
// the targets it skips before its first call, and that call. A ledger
// records the skipped rows and the first call's started row in one write
// (Begin's), so a request whose first target is open pays no commit more
// than one whose first target answers.
type Plan struct {
	// Order indexes Chain.Targets in the order they are tried; it may be
	// shared by requests and must not be modified.
	Order []int
	// Skipped are the rows of the targets skipped before First (outcome
	// skipped, Error the reason), in order.
	Skipped []Attempt
	// First is the first call (outcome started); zero when none will be
	// made (no target can be called for a reason no retry changes).
	First Attempt

	skips []plannedSkip
}

// plannedSkip is why Plan skips a target: its breaker's decision, or a
// reason that is not the breaker's (no api_key, a kind that cannot serve
// the endpoint).
type plannedSkip struct {
	t        Target
	d        breaker.Decision
	unusable string
}

// order draws the order in which one request tries the targets: tiers
// keep their order, weights pick within a tier.
func (c *Chain) order() []int {
	if c.fixed != nil {
		return c.fixed
	}
	return Order(make([]int, 0, len(c.Route.Targets)), c.Route.Targets, nil)
}

// Plan draws a request's order and reads, from this node's copy of the
// breakers (no Redis, no probe taken), which leading targets it skips.
// path is the client's, whose endpoint a target's kind may not serve;
// model is the client's model, sent to pass-through targets. The breakers
// may change before Do runs: Do then records what it does instead, at the
// cost of a ledger write.
func (c *Chain) Plan(path, model string) Plan {
	pl := Plan{Order: c.order()}
	for _, i := range pl.Order {
		t := c.Targets[i]
		if _, ok := t.Provider.serves(path); !ok {
			pl.skip(t, breaker.Decision{}, t.Provider.cannotServe(path), model)
			continue
		}
		if !t.Provider.hasKey() {
			pl.skip(t, breaker.Decision{}, fmt.Sprintf("provider %q has no api_key configured", t.Provider.Name), model)
			continue
		}
		d := c.breaker.Peek(t.key)
		if !d.Call {
			pl.skip(t, d, "", model)
			continue
		}
		pl.First = t.started(model)
		return pl
	}
	// Nothing callable: Do forces the breaker-skipped target that closes
	// first (it was recorded skipped, then called).
	ds := make([]breaker.Decision, 0, len(pl.skips))
	var ts []Target
	for _, s := range pl.skips {
		if s.unusable == "" {
			ds, ts = append(ds, s.d), append(ts, s.t)
		}
	}
	if k := breaker.Soonest(ds); k >= 0 {
		pl.First = ts[k].started(model)
	}
	return pl
}

func (pl *Plan) skip(t Target, d breaker.Decision, unusable, model string) {
	reason := unusable
	if reason == "" {
		reason = d.String()
	}
	a := t.started(model)
	a.Outcome, a.Error = OutcomeSkipped, reason
	pl.Skipped = append(pl.Skipped, a)
	pl.skips = append(pl.skips, plannedSkip{t: t, d: d, unusable: unusable})
}

// started is the started row of a call of t for the client's model.
func (t Target) started(model string) Attempt {
	if t.Model != "" {
		model = t.Model
	}
	return Attempt{Provider: t.Provider.Name, Model: model, Outcome: OutcomeStarted}
}
