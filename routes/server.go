package routes

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/routes/ledgerpage"
	"github.com/idemgw/gateway/routes/limit"
	"github.com/idemgw/gateway/routes/tracing"
	"github.com/idemgw/gateway/upstreams"
	"github.com/idemgw/gateway/upstreams/breaker"
)

// State is what a config reload replaces: the config and the clients and
// chains built from it. Requests take one State at their start and keep it.
type State struct {
	Config   *config.Config
	Registry *upstreams.Registry
	keys     []clientKey
	scrub    *config.Scrubber // the config's secrets, removed from error answers and logged errors
}

// NewState builds the request-path state of a validated config. br is
// the process's breakers (see upstreams.NewRegistry), nil for breakers of
// this state's own.
func NewState(cfg *config.Config, m *upstreams.Metrics, br *breaker.Breaker) (*State, error) {
	reg, err := upstreams.NewRegistry(cfg, m, br)
	if err != nil {
		return nil, err
	}
	return &State{Config: cfg, Registry: reg, keys: authKeys(cfg.Auth), scrub: config.NewScrubber(cfg.Secrets())}, nil
}

// Server serves the gateway's HTTP surface (DESIGN.md section 5).
type Server struct {
	state  atomic.Pointer[State]
	coord  *dedupe.Coordinator
	log    *slog.Logger
	set    *metrics.Set
	ready  func(ctx context.Context) Readiness
	now    func() time.Time
	active atomic.Int64
	limits *limit.Limiter
	tracer *tracing.Tracer // nil: tracing off
	// routeMetrics holds each route's request duration histogram and
	// gateway_requests_total counters, so that finish neither builds their
	// names nor looks them up in the set on every request (issue 14).
	routeMetrics sync.Map // route -> *routeMetrics
	// proxyHandler and modelsHandler are the API handlers behind auth,
	// built once: wrapping them per request cost two allocations.
	proxyHandler, modelsHandler handlerFunc
}

// Readiness is what /readyz reports (DESIGN.md section 5).
type Readiness struct {
	// Unready, when set, says why the node must get no traffic: the record
	// store does not answer, or the node is draining. /readyz answers 503.
	Unready string
	// Redis, when set, says why Redis does not answer. The node still
	// serves every request correctly through the record store alone, so
	// /readyz answers 200 "degraded": a Redis outage must not take every
	// node out of a load balancer at once.
	Redis string
}

// NewServer returns a server on its first state. coord may be nil when
// dedupe is disabled; ready checks the stores for /readyz.
func NewServer(st *State, coord *dedupe.Coordinator, log *slog.Logger, ready func(ctx context.Context) Readiness) *Server {
	s := &Server{coord: coord, log: log, set: metrics.NewSet(), ready: ready, now: time.Now}
	s.limits = limit.New(s.set)
	s.proxyHandler, s.modelsHandler = s.authed(s.proxy), s.authed(s.models)
	s.Swap(st)
	s.set.NewGauge(`gateway_inflight_requests`, func() float64 { return float64(s.active.Load()) })
	return s
}

// Swap installs a new state (config reload); requests already running
// keep the state they started with. Limits keep the buckets of the keys
// that are still configured.
func (s *Server) Swap(st *State) {
	s.limits.Update(limitRules(st.keys))
	s.state.Store(st)
}

// Trace makes the server trace its API requests with t (nil: off). Call
// it before serving.
func (s *Server) Trace(t *tracing.Tracer) { s.tracer = t }

// Metrics returns the request-level metric set.
func (s *Server) Metrics() *metrics.Set { return s.set }

// call is what the gateway knows about one request, for the response
// headers, the metrics and the one log line written when it ends.
type call struct {
	s         *Server
	st        *State
	id        string
	start     time.Time
	path      string
	tenant    string
	route     string
	keyHash   string
	idemKey   string // the idempotency key used, sent or derived ("" = none)
	dedupe    dedupe.Decision
	provider  string
	attempts  int
	status    int
	usage     dedupe.Usage
	err       error
	streaming bool             // the response is written later by a body stream writer
	slot      limit.Slot       // the client key's in-flight place, released by finish
	trace     *tracing.Request // the request's span; nil when tracing is off
	// chain is the route's chain once chosen; led is set once the chain
	// was called, for the GenAI series of the served provider and model
	// label (configuration values).
	chain       *upstreams.Chain
	led         bool
	servedBy    string
	servedModel string
}

type handlerFunc func(ctx *fasthttp.RequestCtx, c *call) error

// adminTasksPrefix starts the path of GET /admin/tasks/{key}.
const adminTasksPrefix = "/admin/tasks/"

// adminUpstreamsPath is GET /admin/upstreams, the breakers' state.
const adminUpstreamsPath = "/admin/upstreams"

// Handler is the server's one fasthttp.RequestHandler.
func (s *Server) Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		c := &call{s: s, st: s.state.Load(), id: requestID(ctx), start: s.now(), path: string(ctx.Path()), route: "none"}
		ctx.Response.Header.Set("X-Request-Id", c.id)
		h := s.route(ctx, c)
		if h == nil {
			// Served inline; an error answer (a 503 /readyz) was written
			// after a reset of the headers, so the id is set again.
			ctx.Response.Header.Set("X-Request-Id", c.id)
			return
		}
		s.active.Add(1)
		err := h(ctx, c)
		if err != nil {
			var ae *APIError
			if !errors.As(err, &ae) {
				ae = &APIError{Status: 500, Type: "api_error", Code: "internal_error", Message: "internal error", Cause: err}
			}
			c.err = err
			writeError(ctx, ae)
			ctx.Response.Header.Set("X-Request-Id", c.id)
		}
		c.dedupeHeaders(&ctx.Response.Header)
		if !c.streaming {
			c.status = ctx.Response.StatusCode()
			if c.status >= 400 {
				scrubBody(ctx, c.st.scrub)
			}
			c.finish()
		}
	}
}

// route picks the handler; unmetered endpoints are served inline.
func (s *Server) route(ctx *fasthttp.RequestCtx, c *call) handlerFunc {
	path := c.path
	switch path {
	case "/healthz":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
		return nil
	case "/readyz":
		s.readyz(ctx)
		return nil
	case "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses",
		upstreams.MessagesPath, upstreams.CountTokensPath:
		if !ctx.IsPost() {
			return methodNotAllowed("POST")
		}
		return s.proxyHandler
	case "/v1/models":
		if !ctx.IsGet() {
			return methodNotAllowed("GET")
		}
		return s.modelsHandler
	}
	if c.st.Config.Debug.Pprof && strings.HasPrefix(path, debugPrefix) {
		s.pprof(ctx, c)
		return nil
	}
	if path == adminTaskListPath {
		if !ctx.IsGet() {
			return methodNotAllowed("GET")
		}
		return s.adminTaskList
	}
	if path == adminUpstreamsPath {
		if !ctx.IsGet() {
			return methodNotAllowed("GET")
		}
		return s.adminUpstreams
	}
	if len(path) > len(adminTasksPrefix) && strings.HasPrefix(path, adminTasksPrefix) {
		if !ctx.IsGet() {
			return methodNotAllowed("GET")
		}
		return s.adminTask
	}
	if path == "/admin" {
		ctx.Redirect(ledgerpage.Prefix, fasthttp.StatusMovedPermanently)
		return nil
	}
	if isPagePath(path) && string(ctx.URI().PathOriginal()) == path {
		// Only the page's own paths spelt plainly: /admin/tasks/%2e%2e
		// folds to /admin/ but is a (refused) task key, not the page.
		return s.ledgerPage
	}
	return func(ctx *fasthttp.RequestCtx, c *call) error {
		return errorf(404, "not_found", "unknown path %q", c.path)
	}
}

func methodNotAllowed(allow string) handlerFunc {
	return func(ctx *fasthttp.RequestCtx, c *call) error {
		e := errorf(405, "method_not_allowed", "method %s is not allowed on %s; use %s", ctx.Method(), c.path, allow)
		e.Headers = map[string]string{"Allow": allow}
		return e
	}
}

// authed resolves the tenant before h runs.
func (s *Server) authed(h handlerFunc) handlerFunc {
	return func(ctx *fasthttp.RequestCtx, c *call) error {
		if c.st.Config.Auth.Open() {
			c.tenant = "default"
			return h(ctx, c)
		}
		k := keyFor(ctx, c.st.keys)
		if k == nil {
			return errorf(401, "invalid_api_key", "missing or invalid API key: send Authorization: Bearer <key> or x-api-key: <key>")
		}
		c.tenant = k.tenant
		if err := s.admit(ctx, c, k); err != nil {
			return err
		}
		return h(ctx, c)
	}
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	var r Readiness
	if s.ready != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r = s.ready(rctx)
		cancel()
	}
	if r.Unready != "" {
		writeError(ctx, errorf(503, "not_ready", "not ready: %s", r.Unready))
		return
	}
	ctx.SetContentType("application/json")
	if r.Redis == "" {
		ctx.SetBodyString(`{"status":"ok"}`)
		return
	}
	b, _ := json.Marshal(struct {
		Status string `json:"status"`
		Redis  string `json:"redis"`
	}{"degraded", r.Redis})
	ctx.SetBody(b)
}

// routeMetrics are the request metrics of one route.
type routeMetrics struct {
	duration *metrics.PrometheusHistogram
	// requests holds gateway_requests_total by status code, filled as
	// codes are seen; codes out of its range are looked up in the set.
	requests [600]atomic.Pointer[metrics.Counter]
}

// metricsOf returns route's request metrics.
func (s *Server) metricsOf(route string) *routeMetrics {
	if m, ok := s.routeMetrics.Load(route); ok {
		return m.(*routeMetrics)
	}
	m := &routeMetrics{duration: s.set.GetOrCreatePrometheusHistogram(`gateway_request_duration_seconds{route=` + strconv.Quote(route) + `}`)}
	m2, _ := s.routeMetrics.LoadOrStore(route, m)
	return m2.(*routeMetrics)
}

// countRequest adds one to gateway_requests_total of route and code.
func (s *Server) countRequest(m *routeMetrics, route string, code int) {
	if code < 0 || code >= len(m.requests) {
		s.requestsCounter(route, code).Inc()
		return
	}
	c := m.requests[code].Load()
	if c == nil {
		c = s.requestsCounter(route, code)
		m.requests[code].Store(c)
	}
	c.Inc()
}

func (s *Server) requestsCounter(route string, code int) *metrics.Counter {
	return s.set.GetOrCreateCounter(`gateway_requests_total{route=` + strconv.Quote(route) + `,code="` + strconv.Itoa(code) + `"}`)
}

// finish writes the metrics and the one log line of the request.
func (c *call) finish() {
	s := c.s
	s.active.Add(-1)
	c.slot.Release()
	d := time.Since(c.start)
	m := s.metricsOf(c.route)
	s.countRequest(m, c.route, c.status)
	m.duration.Update(d.Seconds())
	if c.led {
		c.chain.ObserveRequest(c.path, c.servedBy, c.servedModel, c.status, d)
	}
	c.endTrace()
	level := slog.LevelInfo
	if c.status >= 500 {
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("request_id", c.id),
		slog.String("path", logPath(c.path)),
		slog.String("tenant", c.tenant),
		slog.String("route", c.route),
		slog.String("key_hash", shortHash(c.keyHash)),
		slog.String("dedupe", c.dedupe.String()),
		slog.String("provider", c.provider),
		slog.Int("attempts", c.attempts),
		slog.Int("status", c.status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.Int64("prompt_tokens", c.usage.PromptTokens),
		slog.Int64("completion_tokens", c.usage.CompletionTokens),
	}
	if c.err != nil {
		attrs = append(attrs, slog.String("error", c.st.scrub.String(c.err.Error())))
	}
	s.log.LogAttrs(context.Background(), level, "request", attrs...)
}

// endTrace closes the request's span (tracing on).
func (c *call) endTrace() {
	if c.trace == nil {
		return
	}
	e := tracing.End{Status: c.status, Decision: c.dedupe.String(), Provider: c.provider, Attempts: c.attempts,
		Led: c.led, InputTokens: c.usage.PromptTokens, OutputTokens: c.usage.CompletionTokens}
	if c.err != nil {
		e.Error = c.st.scrub.String(c.err.Error())
	}
	c.trace.End(e)
}

// logPath keeps idempotency keys out of the log: admin lookups carry
// the raw key in their path.
func logPath(path string) string {
	if strings.HasPrefix(path, adminTasksPrefix) {
		return adminTasksPrefix + "{key}"
	}
	return path
}

// shortHash logs a prefix of the key hash: enough to correlate with
// /admin/tasks, nothing that helps guess the key.
func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

// requestID reuses a sane client X-Request-Id or makes one.
func requestID(ctx *fasthttp.RequestCtx) string {
	if id := ctx.Request.Header.Peek("X-Request-Id"); len(id) > 0 && len(id) <= 128 && printable(id) {
		return string(id)
	}
	// An id correlates, it guards nothing: the runtime's per-thread
	// generator is enough, and unlike crypto/rand costs no system call
	// per request (issue 14).
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint32(b[8:], rand.Uint32())
	var id [24]byte
	hex.Encode(id[:], b[:])
	return string(id[:])
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
