package upstreams

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/idemgw/gateway/config"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f := func(ms, ra string, want time.Duration, wantOK bool) {
		t.Helper()
		got, ok := ParseRetryAfter(ms, ra, now)
		if got != want || ok != wantOK {
			t.Fatalf("ParseRetryAfter(%q, %q) = %v, %v; want %v, %v", ms, ra, got, ok, want, wantOK)
		}
	}
	f("", "", 0, false)
	f("1500", "", 1500*time.Millisecond, true)
	f("1.5", "", 1500*time.Microsecond, true)
	f(" 20 ", "", 20*time.Millisecond, true)
	f("0", "", 0, true)
	// retry-after-ms wins; an invalid one falls back to Retry-After.
	f("250", "7", 250*time.Millisecond, true)
	f("-1", "7", 7*time.Second, true)
	f("soon", "7", 7*time.Second, true)
	f("NaN", "7", 7*time.Second, true)
	f("", "7", 7*time.Second, true)
	f("", "0", 0, true)
	f("", "2.5", 2500*time.Millisecond, true)
	f("", "-3", 0, false)
	f("", "Inf", 0, false)
	f("", "abc", 0, false)
	// HTTP-date, in the three formats of RFC 9110, relative to now.
	f("", "Fri, 27 Nov 2026 12:00:30 GMT", 30*time.Second, true)
	f("", "Friday, 27-Nov-26 12:01:00 GMT", time.Minute, true)
	f("", "Fri Nov 27 12:00:05 2026", 5*time.Second, true)
	f("", "Fri, 27 Nov 2026 11:59:00 GMT", 0, true)
	// Absurd values are clamped, not overflowed.
	f("1e300", "", 24*time.Hour, true)
	f("", "99999999999999999999", 24*time.Hour, true)
	f("", "Fri, 27 Nov 2099 12:00:00 GMT", 24*time.Hour, true)
}

func TestBackoff(t *testing.T) {
	// The largest draw shows the ceiling of each retry.
	top := func(n int64) int64 { return n - 1 }
	f := func(n int, base, max, want time.Duration) {
		t.Helper()
		if got := Backoff(n, base, max, top); got != want {
			t.Fatalf("Backoff(%d, %v, %v) ceiling = %v, want %v", n, base, max, got, want)
		}
	}
	ms := time.Millisecond
	f(0, 200*ms, 5*time.Second, 200*ms)
	f(1, 200*ms, 5*time.Second, 400*ms)
	f(4, 200*ms, 5*time.Second, 3200*ms)
	f(5, 200*ms, 5*time.Second, 5*time.Second)
	f(62, 200*ms, 5*time.Second, 5*time.Second)
	f(1000, 200*ms, 5*time.Second, 5*time.Second)
	f(0, 0, 5*time.Second, 0)
	f(0, 200*ms, 0, 0)
	if got := Backoff(3, 200*ms, 5*time.Second, func(int64) int64 { return 0 }); got != 0 {
		t.Fatalf("full jitter starts at 0, got %v", got)
	}
	// Full jitter: uniform over [0, ceiling], mean near half of it.
	rnd := rand.New(rand.NewPCG(1, 2))
	var sum time.Duration
	const n = 4000
	for i := 0; i < n; i++ {
		d := Backoff(2, 100*ms, time.Second, rnd.Int64N)
		if d < 0 || d > 400*ms {
			t.Fatalf("Backoff(2, 100ms, 1s) = %v, outside [0, 400ms]", d)
		}
		sum += d
	}
	if mean := sum / n; mean < 190*ms || mean > 210*ms {
		t.Fatalf("mean backoff %v, want about 200ms", mean)
	}
}

func TestRetryDelay(t *testing.T) {
	r := config.DefaultResilience()
	r.Retries = 2
	top := func(n int64) int64 { return n - 1 }
	f := func(n int, ra time.Duration, hasRA bool, want time.Duration, wantOK bool) {
		t.Helper()
		got, ok := RetryDelay(n, r, ra, hasRA, top)
		if got != want || ok != wantOK {
			t.Fatalf("RetryDelay(%d, %v, %v) = %v, %v; want %v, %v", n, ra, hasRA, got, ok, want, wantOK)
		}
	}
	f(0, 0, false, 200*time.Millisecond, true)
	f(1, 0, false, 400*time.Millisecond, true)
	f(2, 0, false, 0, false) // past retries: fall back
	f(-1, 0, false, 0, false)
	f(0, 3*time.Second, true, 3*time.Second, true)
	f(0, 5*time.Second, true, 5*time.Second, true)
	f(0, 6*time.Second, true, 0, false) // longer than max_retry_wait: fall back
	f(0, 0, true, 0, true)
	r.Retries = 0
	f(0, 0, false, 0, false)
}
