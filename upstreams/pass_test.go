package upstreams

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/idemgw/gateway/upstreams/breaker"
)

// What each way an attempt ends tells its breaker and its attempt row.
func TestAttemptClassification(t *testing.T) {
	f := func(name string, e *Error, status int, wantOutcome AttemptOutcome, wantClass breaker.Class, wantReport bool) {
		t.Helper()
		if got := outcomeFor(e, status); got != wantOutcome {
			t.Errorf("%s: outcome %s, want %s", name, got, wantOutcome)
		}
		r, ok := breakerResult(e, status)
		if ok != wantReport || (ok && r.Class != wantClass) {
			t.Errorf("%s: breaker %v (report %v), want %v (report %v)", name, r.Class, ok, wantClass, wantReport)
		}
	}
	f("success", nil, 200, OutcomeSuccess, breaker.Success, true)
	f("connect", &Error{Connect: true, Err: errors.New("connection refused")}, 0, OutcomeError, breaker.Connect, true)
	f("first byte timeout", &Error{Timeout: true, Err: ErrFirstByteTimeout}, 0, OutcomeTimeout, breaker.Timeout, true)
	f("503", &Error{Status: 503, Err: errors.New("503")}, 503, OutcomeError, breaker.ServerError, true)
	f("429", &Error{Status: 429, Err: errors.New("429")}, 429, OutcomeRateLimited, breaker.RateLimited, true)
	f("401", &Error{Status: 401, Err: errors.New("401")}, 401, OutcomeError, breaker.Auth, true)
	f("403", &Error{Status: 403, Err: errors.New("403")}, 403, OutcomeError, breaker.Auth, true)
	f("400: the target answered", &Error{Status: 400, Err: errors.New("400")}, 400, OutcomeError, breaker.Success, true)
	f("stream cut", &Error{Err: ErrStreamCut}, 200, OutcomeCut, breaker.Cut, true)
	f("stream timeout", &Error{Timeout: true, Err: ErrAttemptTimeout}, 200, OutcomeTimeout, breaker.Timeout, true)
	f("stream abandoned by the gateway", &Error{Err: ErrStreamAbandoned}, 200, OutcomeError, breaker.Success, true)
	f("reset before any status", &Error{Err: errors.New("connection reset by peer")}, 0, OutcomeError, breaker.ServerError, true)
	f("cancelled", &Error{Err: fmt.Errorf("cannot finish call: %w", context.Canceled)}, 0, OutcomeError, 0, false)
}

// A 429's Retry-After reaches the breaker; one of 0 still counts as sent.
func TestRateLimitResult(t *testing.T) {
	r, _ := breakerResult(&Error{Status: 429, RetryAfter: 3 * time.Second, HasRetryAfter: true}, 429)
	if r.RetryAfter != 3*time.Second {
		t.Fatalf("RetryAfter = %s, want 3s", r.RetryAfter)
	}
	if r, _ = breakerResult(&Error{Status: 429, HasRetryAfter: true}, 429); r.RetryAfter <= 0 {
		t.Fatalf("Retry-After: 0 reached the breaker as none sent")
	}
	if r, _ = breakerResult(&Error{Status: 429}, 429); r.RetryAfter != 0 {
		t.Fatalf("no Retry-After: RetryAfter = %s, want 0 (rate_limit_cooldown)", r.RetryAfter)
	}
}

func TestRetryable(t *testing.T) {
	f := func(e *Error, want bool) {
		t.Helper()
		if got := retryable(e); got != want {
			t.Errorf("retryable(%+v) = %v, want %v", e, got, want)
		}
	}
	f(&Error{Connect: true}, true)
	f(&Error{Status: 429}, true)
	f(&Error{Status: 500}, true)
	f(&Error{Status: 503}, true)
	f(&Error{Timeout: true}, false)
	f(&Error{Status: 400}, false)
	f(&Error{Status: 401}, false)
	f(&Error{Err: errors.New("reset")}, false)
}
