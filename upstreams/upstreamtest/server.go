// Package upstreamtest is a fake OpenAI-compatible upstream served over real
// HTTP on loopback, for the gateway's tests, demo and benchmarks. It also
// speaks Anthropic's Messages API (POST /v1/messages and
// /v1/messages/count_tokens, see AnthropicURL), scripted the same way.
//
// Each upstream model can be scripted with a Behavior: error statuses,
// first-byte delays, hangs, streams with pauses and connections dropped
// mid-stream. Every completion-like call is counted by model, by
// Idempotency-Key and by body, so that tests can prove that a request was
// paid for once. It uses net/http rather than fasthttp because
// panic(http.ErrAbortHandler) is the simplest faithful way to cut a
// connection in the middle of a chunked response.
package upstreamtest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxRequests is how many received requests a Server keeps for
// Requests unless SetMaxRequests says otherwise. The cap keeps long
// benchmarks and demos from growing without bound.
const DefaultMaxRequests = 10000

// Request is a copy of a completion-like request received by the Server.
type Request struct {
	// Path is the URL path, e.g. "/v1/chat/completions".
	Path string
	// Model is the "model" field of the body.
	Model string
	// Stream is the "stream" field of the body.
	Stream bool
	// Body is the raw request body.
	Body []byte
	// Authorization is the Authorization header, to check that the upstream key was forwarded.
	Authorization string
	// IdempotencyKey is the Idempotency-Key header.
	IdempotencyKey string
	// Header holds all request headers.
	Header http.Header
}

// Server is a fake OpenAI-compatible upstream listening on a TCP address.
type Server struct {
	// URL is the base URL to configure as a provider's base_url, e.g. "http://127.0.0.1:PORT/v1".
	URL string

	ln  net.Listener
	srv *http.Server

	// closed is closed by Close to release handlers that hang or sleep.
	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error
	handlers  sync.WaitGroup

	// seq numbers the calls for response ids; unlike the counters it is
	// never reset, so two calls never produce identical bodies.
	seq atomic.Int64

	// mu guards the fields below. It is held only to read or update them,
	// never while a handler sleeps or writes.
	mu          sync.Mutex
	behaviors   map[string]Behavior
	sequences   map[string][]Behavior // SetSequence: what is left, the last one repeating
	defaultB    Behavior
	seen        map[string]struct{}
	calls       int
	byModel     map[string]int
	byKey       map[string]int
	byBody      map[[sha256.Size]byte]int
	requests    []Request
	maxRequests int
}

// Start starts a Server on a random loopback port.
func Start() (*Server, error) {
	return Listen("127.0.0.1:0")
}

// Listen starts a Server on addr, e.g. "127.0.0.1:8081".
func Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %q: %w", addr, err)
	}
	s := &Server{
		URL:         "http://" + ln.Addr().String() + "/v1",
		ln:          ln,
		closed:      make(chan struct{}),
		behaviors:   make(map[string]Behavior),
		sequences:   make(map[string][]Behavior),
		seen:        make(map[string]struct{}),
		byModel:     make(map[string]int),
		byKey:       make(map[string]int),
		byBody:      make(map[[sha256.Size]byte]int),
		maxRequests: DefaultMaxRequests,
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() {
		// Serve returns ErrServerClosed after Close; any other error also
		// means the listener is gone, and Close reports nothing more useful.
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr returns the host:port the Server listens on.
func (s *Server) Addr() string {
	return s.ln.Addr().String()
}

// Close stops the Server, drops open connections, releases hung and
// sleeping handlers and waits for them to return. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		// Closing under mu orders it with ServeHTTP's handlers.Add, so no
		// handler starts after Wait begins.
		s.mu.Lock()
		close(s.closed)
		s.mu.Unlock()
		if err := s.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = fmt.Errorf("cannot close fake upstream %q: %w", s.Addr(), err)
		}
		s.handlers.Wait()
	})
	return s.closeErr
}

// enter registers a starting handler; it reports false once Close began.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return false
	default:
		s.handlers.Add(1)
		return true
	}
}

// SetBehavior scripts the answers for calls whose body names the upstream
// model; model "" sets the default for models without a behavior of their
// own and without a model-name convention.
func (s *Server) SetBehavior(model string, b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if model == "" {
		s.defaultB = b
		return
	}
	s.behaviors[model] = b
	delete(s.sequences, model)
	s.seen[model] = struct{}{}
}

// SetSequence scripts successive calls for model: the first call is
// answered with bs[0], the next with bs[1], and so on; the last behavior
// answers every call after it. A later SetBehavior or SetSequence for the
// model replaces it.
func (s *Server) SetSequence(model string, bs ...Behavior) {
	if len(bs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sequences[model] = append([]Behavior(nil), bs...)
	s.behaviors[model] = bs[len(bs)-1]
	s.seen[model] = struct{}{}
}

// SetMaxRequests sets how many of the most recent requests Requests keeps;
// 0 stops recording, which benchmarks want. The default is DefaultMaxRequests.
func (s *Server) SetMaxRequests(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxRequests = max(n, 0)
	s.trimRequestsLocked()
}

// behaviorFor resolves the behavior of a model: its own, then the
// model-name convention, then the default.
func (s *Server) behaviorFor(model string) Behavior {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq := s.sequences[model]; len(seq) > 1 {
		s.sequences[model] = seq[1:]
		return seq[0]
	}
	if b, ok := s.behaviors[model]; ok {
		return b
	}
	if b, ok := conventionFor(model); ok {
		return b
	}
	return s.defaultB
}

// record counts a call at its arrival and keeps a copy of it.
func (s *Server) record(r *http.Request, body []byte, fields requestFields) {
	key := r.Header.Get("Idempotency-Key")
	sum := sha256.Sum256(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.byModel[fields.Model]++
	if key != "" {
		s.byKey[key]++
	}
	s.byBody[sum]++
	if fields.Model != "" {
		s.seen[fields.Model] = struct{}{}
	}
	if s.maxRequests == 0 {
		return
	}
	s.requests = append(s.requests, Request{
		Path:           r.URL.Path,
		Model:          fields.Model,
		Stream:         fields.Stream,
		Body:           body,
		Authorization:  r.Header.Get("Authorization"),
		IdempotencyKey: key,
		Header:         r.Header.Clone(),
	})
	// Trim in batches so that recording stays amortised O(1) per request.
	if len(s.requests) >= 2*s.maxRequests {
		s.trimRequestsLocked()
	}
}

func (s *Server) trimRequestsLocked() {
	if n := len(s.requests) - s.maxRequests; n > 0 {
		kept := copy(s.requests, s.requests[n:])
		clear(s.requests[kept:])
		s.requests = s.requests[:kept]
	}
}

// Calls returns the number of completion-like calls (POST /v1/*) received.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// CallsForModel returns the number of calls whose body named model.
func (s *Server) CallsForModel(model string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byModel[model]
}

// CallsForKey returns the number of calls carrying the Idempotency-Key header idempotencyKey.
func (s *Server) CallsForKey(idempotencyKey string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byKey[idempotencyKey]
}

// CallsForBody returns the number of calls whose body was exactly body.
func (s *Server) CallsForBody(body []byte) int {
	sum := sha256.Sum256(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byBody[sum]
}

// Requests returns copies of the received requests in arrival order (the
// most recent ones, see SetMaxRequests).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	// record trims in batches, so there may be more than maxRequests.
	kept := s.requests[max(len(s.requests)-s.maxRequests, 0):]
	out := make([]Request, len(kept))
	for i, r := range kept {
		r.Body = bytes.Clone(r.Body)
		r.Header = r.Header.Clone()
		out[i] = r
	}
	return out
}

// ResetCounters forgets the calls counted and the requests recorded so far.
// Response ids keep increasing, so bodies stay unique across resets.
func (s *Server) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = 0
	clear(s.byModel)
	clear(s.byKey)
	clear(s.byBody)
	clear(s.requests)
	s.requests = s.requests[:0]
}

// models returns the configured and seen model names, sorted.
func (s *Server) models() []string {
	s.mu.Lock()
	names := make([]string, 0, len(s.seen))
	for name := range s.seen {
		names = append(names, name)
	}
	s.mu.Unlock()
	sort.Strings(names)
	return names
}

// wait sleeps for d, and reports false when the client went away or the
// server closed first.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.closed:
		return false
	}
}

// hang blocks until the client goes away or the server closes.
func (s *Server) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.closed:
	}
}
