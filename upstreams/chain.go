package upstreams

import (
	"mime"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/upstreams/breaker"
)

// Target is one provider of a route, with the model sent to it ("" keeps
// the client's model).
type Target struct {
	Provider *Provider
	Model    string
	key      breaker.Target // its breaker
}

// Chain tries the targets of one route in order (DESIGN.md section 7):
// tiers and weights decide the order, breakers skip the targets that are
// failing, retries and fallbacks share one attempt budget.
type Chain struct {
	Route   *config.Route
	Targets []Target
	metrics *Metrics
	pricing map[string]config.Price
	breaker *breaker.Breaker
	// maxAttempts is the top-level resilience.max_attempts: a request-wide
	// budget, whatever providers it reaches.
	maxAttempts int
	// fixed is the order of a route without tiers, shared by its requests
	// (read only), so that they draw and allocate nothing.
	fixed []int
}

// price returns the pricing of a model label, or nil.
func (c *Chain) price(model string) *config.Price {
	if p, ok := c.pricing[model]; ok {
		return &p
	}
	return nil
}

// SavedPrice is the pricing used for what a replay or join saved: the
// route model's own price, else its first target model's.
func (c *Chain) SavedPrice() *config.Price {
	if p := c.price(c.Route.Model); p != nil {
		return p
	}
	if len(c.Targets) > 0 {
		return c.price(c.Targets[0].Model)
	}
	return nil
}

// Request is what the chain sends; Body is the client's bytes, of which
// only "model" is rewritten per target.
type Request struct {
	Path           string
	Body           []byte
	Model          string
	Stream         bool
	IdempotencyKey string
	// Ledger, when set, records each attempt before its call goes out and
	// when it ends (the dedupe record of the task, DESIGN.md section 3).
	Ledger Ledger
	// Order is the order of Plan in which to try the targets, so that the
	// first attempt a ledger recorded ahead (FirstAttempt) is the one
	// made; nil draws one.
	Order []int
	// MaxAttempts, when above 0, lowers the route's max_attempts for this
	// request (what its idempotency key has left of key_attempts).
	MaxAttempts int
}

// Result is the answer of the target that answered. For a final upstream
// 4xx, Status and Body are the upstream's and the chain stops. For a
// stream, Stream yields the events; the last attempt record is completed
// when the stream ends, so read Attempts after that.
type Result struct {
	Provider    string
	Model       string
	Status      int
	ContentType string
	Body        []byte
	Stream      *Stream
	Usage       Usage
	Attempts    []Attempt
}

// Plan draws the order in which one request tries the targets (indexes
// into Targets): tiers keep their order, weights pick within a tier.
// The slice must not be modified.
func (c *Chain) Plan() []int {
	if c.fixed != nil {
		return c.fixed
	}
	return Order(make([]int, 0, len(c.Route.Targets)), c.Route.Targets, nil)
}

// FirstAttempt is the attempt the chain makes first for a client's model
// under order (nil: the configured order): the provider and the model sent
// to it, so that a ledger can record it before the chain runs; zero when
// the route has no targets. Breakers are not consulted: a skipped first
// target rewrites the row.
func (c *Chain) FirstAttempt(model string, order []int) Attempt {
	if len(c.Targets) == 0 {
		return Attempt{}
	}
	t := c.Targets[0]
	if len(order) > 0 {
		t = c.Targets[order[0]]
	}
	if t.Model != "" {
		model = t.Model
	}
	return Attempt{Provider: t.Provider.Name, Model: model, Outcome: OutcomeStarted}
}

// CountBudgetExhausted counts a request refused because its idempotency
// key spent its key_attempts (gateway_attempt_budget_exhausted_total).
func (c *Chain) CountBudgetExhausted() { c.metrics.budgetCounter(c.Route.Model).Inc() }

// isEventStream reports an SSE content type. Media types are case
// insensitive and may carry parameters (RFC 9110 section 8.3.1); a
// malformed parameter still leaves the type readable, which is all that
// matters here.
func isEventStream(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "text/event-stream"
}
