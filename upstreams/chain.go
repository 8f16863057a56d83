package upstreams

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

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
		body := req.Body
		model := req.Model
		if t.Model != "" {
			var err error
			// json.Marshal, not strconv.Quote: Go's \x escapes are not JSON.
			quoted, err := json.Marshal(t.Model)
			if err == nil {
				body, err = ReplaceField(req.Body, "model", quoted)
			}
			if err != nil {
				return res, &Error{Provider: t.Provider.Name, Err: fmt.Errorf("cannot rewrite model: %w", err)}
			}
			model = t.Model
		}
		labelModel := t.Model
		if labelModel == "" {
			labelModel = c.Route.Model
		}
		start := time.Now()
		rep, e := t.Provider.do(ctx, Call{Path: req.Path, Body: body, Stream: req.Stream, IdempotencyKey: req.IdempotencyKey}, start)
		if e != nil {
			a := Attempt{Provider: t.Provider.Name, Model: model, Outcome: outcomeFor(e), HTTPStatus: e.Status, Error: e.Error(), Start: start, Duration: time.Since(start)}
			if e.Err == ErrNoAPIKey {
				a.Outcome = OutcomeSkipped
			}
			res.Attempts = append(res.Attempts, a)
			c.metrics.attempt(&a, labelModel, c.price(labelModel))
			last = e
			if a.Outcome == OutcomeSkipped || c.Route.FallsBackOn(e.Status, e.Connect, e.Timeout) {
				continue
			}
			// A failure that must not fall back: an upstream 4xx goes back
			// to the client as it is.
			if e.Status != 0 {
				res.Provider, res.Model = t.Provider.Name, model
				res.Status, res.ContentType, res.Body = e.Status, "application/json", e.Body
				return res, nil
			}
			return res, e
		}
		res.Provider, res.Model = t.Provider.Name, model
		res.Status, res.ContentType = rep.status, rep.contentType
		idx := len(res.Attempts)
		res.Attempts = append(res.Attempts, Attempt{Provider: t.Provider.Name, Model: model, Start: start, TTFB: rep.ttfb})
		finish := func(err *Error, u Usage) {
			a := &res.Attempts[idx]
			a.Outcome, a.Duration, a.Usage = outcomeFor(err), time.Since(start), u
			if err != nil {
				a.Error, a.HTTPStatus = err.Error(), rep.status
			} else {
				a.HTTPStatus = rep.status
			}
			c.metrics.attempt(a, labelModel, c.price(labelModel))
		}
		if req.Stream && isEventStream(rep.contentType) {
			res.Stream = &Stream{br: rep.body, release: rep.release, finish: finish, provider: t.Provider.Name, needsDone: true}
			return res, nil
		}
		b, err := io.ReadAll(io.LimitReader(rep.body, maxResponseBody))
		rep.release()
		if err != nil {
			e := &Error{Provider: t.Provider.Name, Status: rep.status, Err: fmt.Errorf("cannot read response: %w", err), Timeout: isTimeout(err)}
			finish(e, Usage{})
			// The upstream answered: assume it did the work, never retry elsewhere.
			return res, e
		}
		res.Body = b
		res.Usage, _ = ParseUsage(b)
		finish(nil, res.Usage)
		return res, nil
	}
	if last == nil {
		return res, &Error{Err: fmt.Errorf("route %q has no targets", c.Route.Model)}
	}
	return res, last
}

func isEventStream(ct string) bool {
	return len(ct) >= 17 && ct[:17] == "text/event-stream"
}

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
