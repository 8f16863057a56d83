package upstreams

import (
	"context"
	"fmt"
	"mime"

	"github.com/idemgw/gateway/config"
)

// Target is one provider of a route, with the model sent to it ("" keeps
// the client's model).
type Target struct {
	Provider *Provider
	Model    string
}

// Chain tries the targets of one route in order.
type Chain struct {
	Route   *config.Route
	Targets []Target
	metrics *Metrics
	pricing map[string]config.Price
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

// FirstAttempt is the attempt the chain makes first for a client's model
// (the provider and the model sent to it), so that a ledger can record it
// before the chain runs; zero when the route has no targets.
func (c *Chain) FirstAttempt(model string) Attempt {
	if len(c.Targets) == 0 {
		return Attempt{}
	}
	t := c.Targets[0]
	if t.Model != "" {
		model = t.Model
	}
	return Attempt{Provider: t.Provider.Name, Model: model, Outcome: OutcomeStarted}
}

// Do calls the targets in order until one answers with a 2xx or a
// failure that fallback_on does not cover. It returns the last *Error when
// every target failed; Result.Attempts is filled in every case.
func (c *Chain) Do(ctx context.Context, req Request) (*Result, error) {
	res := &Result{}
	var last *Error
	for i, t := range c.Targets {
		if err := ctx.Err(); err != nil {
			// Cancelled (client gone without detach, or the task was
			// taken over): calling the next target would pay for nothing.
			return res, &Error{Err: fmt.Errorf("cannot try target %d: %w", i+1, err)}
		}
		if i > 0 && last != nil {
			c.metrics.fallback(c.Route.Model, c.Targets[i-1].Provider.Name, t.Provider.Name)
		}
		next, e := c.try(ctx, t, req, res)
		if !next {
			if e != nil {
				return res, e
			}
			return res, nil
		}
		last = e
	}
	if last == nil {
		return res, &Error{Err: fmt.Errorf("route %q has no targets", c.Route.Model)}
	}
	return res, last
}

// isEventStream reports an SSE content type. Media types are case
// insensitive and may carry parameters (RFC 9110 section 8.3.1); a
// malformed parameter still leaves the type readable, which is all that
// matters here.
func isEventStream(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "text/event-stream"
}
