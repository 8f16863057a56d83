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
	// Plan is how the request goes through the chain, drawn by Chain.Plan
	// before its Ledger opened: its Skipped rows and First are taken as
	// recorded already. Zero plans at once, and every row goes through
	// the Ledger.
	Plan Plan
	// MaxAttempts, when above 0, lowers the route's max_attempts for this
	// request (what its idempotency key has left of key_attempts).
	MaxAttempts int
	// Tracer, when set, opens a span per ledger row (upstreams/trace.go).
	Tracer Tracer
	// continues is the attempt number a continuation's calls continue
	// (Attempt.Continues); set by the chain only.
	continues int
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
