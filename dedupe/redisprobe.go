package dedupe

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// redisProbeEvery is how often a Redis that failed is probed in the
// background. Requests stay off Redis until a probe succeeds, so a dead
// Redis costs them nothing; the probe pays the dial timeout instead.
const redisProbeEvery = time.Second

// redisHealth tracks whether Redis answers (issue 10): the first failure
// marks it down and starts one background prober; every Redis call on the
// request path checks down first and goes straight to the record store
// while it is set. One warning is logged on each transition, not one per
// failed request.
type redisHealth struct {
	ping func(ctx context.Context) error
	log  *slog.Logger
	// timeout bounds one probe.
	timeout time.Duration

	down atomic.Bool

	mu      sync.Mutex
	reason  string // why Redis is down (the last error)
	stopped bool
	stop    chan struct{}
	probing sync.WaitGroup
}

func newRedisHealth(ping func(ctx context.Context) error, log *slog.Logger, timeout time.Duration) *redisHealth {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &redisHealth{ping: ping, log: log, timeout: timeout, stop: make(chan struct{})}
}

// isDown reports whether requests must keep off Redis.
func (h *redisHealth) isDown() bool { return h.down.Load() }

// failed marks Redis down after err; the first failure logs and starts
// the prober.
func (h *redisHealth) failed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.reason = redisCause(err)
	}
	if h.stopped || !h.down.CompareAndSwap(false, true) {
		return
	}
	h.log.Warn("redis is unreachable; deduplicating through the record store alone until it answers again",
		"error", h.reason)
	h.probing.Add(1)
	go h.probe()
}

// redisCause is the part of a backend error worth showing in /readyz and
// the log: the cause wrapped by lockUnavailable, without the lock name.
func redisCause(err error) string {
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := multi.Unwrap(); len(errs) == 2 && errs[0] == ErrLockUnavailable {
			return errs[1].Error()
		}
	}
	return err.Error()
}

// probe pings Redis until it answers, then lets requests use it again.
func (h *redisHealth) probe() {
	defer h.probing.Done()
	t := time.NewTicker(redisProbeEvery)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
		err := h.ping(ctx)
		cancel()
		h.mu.Lock()
		if err != nil {
			h.reason = redisCause(err)
			h.mu.Unlock()
			continue
		}
		h.reason = ""
		h.down.Store(false)
		h.mu.Unlock()
		h.log.Warn("redis answers again; using it for locks, wake-ups and live streams")
		return
	}
}

// check probes Redis once now (at start-up, and for /readyz while it is
// believed up) and returns why it is down, or "".
func (h *redisHealth) check(ctx context.Context) string {
	if !h.isDown() {
		if err := h.ping(ctx); err != nil {
			h.failed(err)
		}
	}
	return h.status()
}

// status returns why Redis is down, or "" while it answers.
func (h *redisHealth) status() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down.Load() {
		return ""
	}
	if h.reason == "" {
		return "unreachable"
	}
	return h.reason
}

// close stops the prober.
func (h *redisHealth) close() {
	h.mu.Lock()
	if !h.stopped {
		h.stopped = true
		close(h.stop)
	}
	h.mu.Unlock()
	h.probing.Wait()
}
