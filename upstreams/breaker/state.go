package breaker

import (
	"fmt"
	"time"
)

// State is a target's breaker state, as in gateway_breaker_state.
type State uint8

// Breaker states; the values are those of the gateway_breaker_state gauge.
const (
	// Closed: the target is called.
	Closed State = 0
	// Open: the target is not called until its cooldown ends.
	Open State = 1
	// HalfOpen: the cooldown ended; one request of the cluster probes it.
	HalfOpen State = 2
)

var stateNames = [...]string{Closed: "closed", Open: "open", HalfOpen: "half_open"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

// MarshalText writes closed, open or half_open (the admin JSON and the
// transitions metric's "to" label).
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Class is what one attempt did to the target, as far as its breaker is
// concerned.
type Class uint8

// Failure classes. Success also stands for an upstream answer that proves
// the target healthy although it refused the request (400, 404, 422...).
const (
	Success Class = iota
	// Connect: the connection failed; nothing reached the upstream.
	Connect
	// Timeout: no first byte, or no end, within the provider's timeouts.
	Timeout
	// ServerError: a 5xx answer.
	ServerError
	// Cut: a stream ended before its terminating event.
	Cut
	// RateLimited: a 429; the target cools for Result.RetryAfter.
	RateLimited
	// Auth: a 401, 402 or 403; the provider's key is wrong or out of
	// credit, and every target of the provider cools.
	Auth
)

var classNames = [...]string{
	Success: "success", Connect: "connect", Timeout: "timeout", ServerError: "server_error",
	Cut: "cut", RateLimited: "rate_limited", Auth: "auth",
}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", c)
}

// MarshalText writes the class name (success, connect, timeout,
// server_error, cut, rate_limited, auth).
func (c Class) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// parseClass reads a class name as stored in Redis; unknown names (a
// newer node's) read as Success, which changes nothing.
func parseClass(s string) Class {
	for i, n := range classNames {
		if n == s {
			return Class(i)
		}
	}
	return Success
}

// counts reports whether the class is one of the consecutive failures
// that open a breaker.
func (c Class) counts() bool {
	switch c {
	case Connect, Timeout, ServerError, Cut:
		return true
	}
	return false
}

// ClassOf classifies an upstream HTTP status: 401, 402 and 403 are Auth,
// 429 RateLimited, 408 Timeout, 5xx ServerError, and any other answer
// Success (the target answered, so it is up).
func ClassOf(status int) Class {
	switch {
	case status == 401 || status == 402 || status == 403:
		return Auth
	case status == 429:
		return RateLimited
	case status == 408:
		return Timeout
	case status >= 500 && status <= 599:
		return ServerError
	}
	return Success
}

// Reason says why a target is open or skipped.
type Reason uint8

// Reasons.
const (
	ReasonNone Reason = iota
	// ReasonFailures: consecutive failures opened the breaker.
	ReasonFailures
	// ReasonRateLimited: a 429 cools the target.
	ReasonRateLimited
	// ReasonAuth: a 401/402/403 cools the whole provider.
	ReasonAuth
	// ReasonProbing: half-open, and another request is probing it.
	ReasonProbing
)

var reasonNames = [...]string{ReasonNone: "", ReasonFailures: "failures", ReasonRateLimited: "rate_limited", ReasonAuth: "auth", ReasonProbing: "probing"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", r)
}

// MarshalText writes failures, rate_limited, auth or probing.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

func parseReason(s string) Reason {
	for i, n := range reasonNames {
		if n == s && i != 0 {
			return Reason(i)
		}
	}
	return ReasonNone
}

// Result is what the chain reports after calling a target.
type Result struct {
	Class Class
	// RetryAfter is the provider's Retry-After for a RateLimited result;
	// 0 means none was sent and rate_limit_cooldown applies. It is capped
	// by max_cooldown.
	RetryAfter time.Duration
}

// settings are one provider's breaker parameters.
type settings struct {
	failures          int
	cooldown          time.Duration
	maxCooldown       time.Duration
	rateLimitCooldown time.Duration
	authCooldown      time.Duration
	// probeTTL is how long a probe grant lasts when its holder never
	// reports (it crashed): the provider's whole-attempt timeout plus a
	// margin, so a slow but live probe is never doubled.
	probeTTL time.Duration
}

// rateLimitCool is how long a 429 cools the target.
func (s *settings) rateLimitCool(retryAfter time.Duration) time.Duration {
	d := s.rateLimitCooldown
	if retryAfter > 0 {
		d = retryAfter
	}
	return min(d, s.maxCooldown)
}

// state is a target's breaker, the same fields as its Redis hash.
type state struct {
	open     bool
	failures int
	// until is when an open target becomes half-open.
	until time.Time
	// cooldown is the last failure cooldown, which a failed probe doubles.
	cooldown time.Duration
	reason   Reason
	last     Class
	lastAt   time.Time
}

// effective is the state at now: an open target whose cooldown ended is
// half-open.
func (st *state) effective(now time.Time) State {
	switch {
	case !st.open:
		return Closed
	case now.Before(st.until):
		return Open
	}
	return HalfOpen
}

// report applies one result at now and returns the state it moved to
// (Open or Closed) when that is a transition. probe is true when the
// caller held the probe. This is the in-process twin of reportScript in
// redis.go: both must make the same decisions.
func (st *state) report(now time.Time, r Result, probe bool, s *settings) (to State, moved bool) {
	wasOpen := st.effective(now) == Open
	switch {
	case r.Class == Success:
		moved = st.open
		*st = state{last: st.last, lastAt: st.lastAt}
		return Closed, moved
	case r.Class == RateLimited:
		st.last, st.lastAt = r.Class, now
		st.open = true
		if u := now.Add(s.rateLimitCool(r.RetryAfter)); u.After(st.until) {
			st.until, st.reason = u, ReasonRateLimited
		}
	case r.Class == Auth:
		// The provider cools (Breaker.coolProvider); the target itself
		// only remembers why.
		st.last, st.lastAt = r.Class, now
	case r.Class.counts():
		st.last, st.lastAt = r.Class, now
		st.failures++
		switch {
		case probe:
			next := s.cooldown
			if st.cooldown > 0 {
				next = min(st.cooldown*2, s.maxCooldown)
			}
			st.open, st.cooldown, st.until, st.reason = true, next, now.Add(next), ReasonFailures
		case !st.open && st.failures >= s.failures:
			st.open, st.cooldown, st.until, st.reason = true, s.cooldown, now.Add(s.cooldown), ReasonFailures
		}
	}
	if !wasOpen && st.effective(now) == Open {
		return Open, true
	}
	return Closed, false
}
