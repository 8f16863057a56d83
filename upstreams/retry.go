package upstreams

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/idemgw/gateway/config"
)

// maxRetryAfter bounds a parsed Retry-After. Every cap the gateway applies
// (max_retry_wait, max_cooldown) is far shorter; this only keeps an absurd
// header from overflowing a time.Duration.
const maxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a provider's rate-limit hint: retry-after-ms
// (milliseconds, possibly fractional, as OpenAI sends it) when it is valid,
// else Retry-After as delay-seconds or an HTTP-date (RFC 9110 section
// 10.2.3), relative to now. ok is false when neither header holds a valid
// value; a date in the past is a wait of 0.
func ParseRetryAfter(retryAfterMs, retryAfter string, now time.Time) (wait time.Duration, ok bool) {
	if ms, err := strconv.ParseFloat(strings.TrimSpace(retryAfterMs), 64); err == nil && ms >= 0 && !math.IsInf(ms, 0) {
		return clampRetryAfter(ms * float64(time.Millisecond)), true
	}
	v := strings.TrimSpace(retryAfter)
	if v == "" {
		return 0, false
	}
	// RFC 9110 allows only digits; the OpenAI SDKs also read fractions.
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 || math.IsInf(s, 0) {
			return 0, false
		}
		return clampRetryAfter(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter), true
		}
		return 0, true
	}
	return 0, false
}

func clampRetryAfter(ns float64) time.Duration {
	if ns >= float64(maxRetryAfter) {
		return maxRetryAfter
	}
	return time.Duration(ns)
}

// Backoff is the full-jitter exponential backoff before retry number n
// (0 for the first retry): a uniformly random wait in [0, min(max, base *
// 2^n)], so that clients retrying together spread out ("Exponential
// Backoff And Jitter", AWS Architecture Blog, 2015). int63n draws in
// [0, n); nil means math/rand/v2's Int64N.
func Backoff(n int, base, max time.Duration, int63n func(int64) int64) time.Duration {
	if base <= 0 || max <= 0 {
		return 0
	}
	if int63n == nil {
		int63n = rand.Int64N
	}
	ceil := max
	if n < 62 && base <= max>>n {
		ceil = base << n
	}
	return time.Duration(int63n(int64(ceil) + 1))
}

// RetryDelay is how long to wait before retry number n (0 for the first)
// of the same target under r: the provider's Retry-After (retryAfter,
// hasRetryAfter) when it is within max_retry_wait, else the jittered
// backoff. ok is false when the provider asks for a longer wait than
// max_retry_wait, or when n is past r.Retries: then the chain falls back
// instead of retrying.
func RetryDelay(n int, r config.Resilience, retryAfter time.Duration, hasRetryAfter bool, int63n func(int64) int64) (wait time.Duration, ok bool) {
	if n < 0 || n >= r.Retries {
		return 0, false
	}
	if hasRetryAfter {
		if retryAfter > r.MaxRetryWait {
			return 0, false
		}
		return retryAfter, true
	}
	return Backoff(n, r.RetryBackoff, r.MaxRetryWait, int63n), true
}
