package config

import (
	"fmt"
	"time"
)

// Resilience is how the gateway treats failing providers (DESIGN.md
// section 7): breakers, cooldowns, retries and attempt budgets. The
// top-level block holds the defaults; a provider's own block overrides any
// of its keys, and after loading Provider.Resilience holds the merged,
// effective values, so nobody merges again at request time.
type Resilience struct {
	Breaker Breaker `yaml:"breaker"`
	// RateLimitCooldown is how long a 429 cools the target when the
	// provider sends no Retry-After or retry-after-ms; both are capped by
	// breaker.max_cooldown. Default 10s.
	RateLimitCooldown time.Duration `yaml:"rate_limit_cooldown"`
	// AuthCooldown is how long a 401, 402 or 403 cools every target of the
	// provider: its key is wrong or out of credit, so no model of it will
	// answer. Default 5m.
	AuthCooldown time.Duration `yaml:"auth_cooldown"`
	// Retries is how many extra tries of the same target are made before
	// falling back, for connect errors, 429 and 5xx only. Default 0.
	Retries int `yaml:"retries"`
	// RetryBackoff is the base of the full-jitter exponential backoff
	// between retries (doubling per retry, capped by max_retry_wait).
	// 0 retries at once. Default 200ms.
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// MaxRetryWait caps one wait between retries; a Retry-After longer
	// than this is not waited for (the chain falls back instead). Default 5s.
	MaxRetryWait time.Duration `yaml:"max_retry_wait"`
	// MaxAttempts caps the attempts of one request, across retries and
	// targets. A request-wide budget: the top-level value is the one that
	// bounds a request. Default 6.
	MaxAttempts int `yaml:"max_attempts"`
	// KeyAttempts caps the attempts of one idempotency key within
	// key_attempts_window, all its retries together, so that SDK retries
	// times gateway fallbacks cannot multiply. Default 12.
	KeyAttempts int `yaml:"key_attempts"`
	// KeyAttemptsWindow is the window of key_attempts. Default 10m.
	KeyAttemptsWindow time.Duration `yaml:"key_attempts_window"`
}

// Breaker configures the circuit breaker of each target (provider,
// upstream model).
type Breaker struct {
	// Failures is how many consecutive failed attempts (connect, timeout,
	// 5xx, cut stream) open a target. Default 5.
	Failures int `yaml:"failures"`
	// Cooldown is how long an opened target is not called; then exactly
	// one request of the cluster probes it (half-open). Default 30s.
	Cooldown time.Duration `yaml:"cooldown"`
	// MaxCooldown caps the cooldown, which each failed probe doubles, and
	// any rate-limit cooldown. Default 5m.
	MaxCooldown time.Duration `yaml:"max_cooldown"`
}

// Defaults of the resilience block (see the field comments).
const (
	DefaultBreakerFailures    = 5
	DefaultBreakerCooldown    = 30 * time.Second
	DefaultBreakerMaxCooldown = 5 * time.Minute
	DefaultRateLimitCooldown  = 10 * time.Second
	DefaultAuthCooldown       = 5 * time.Minute
	DefaultRetries            = 0
	DefaultRetryBackoff       = 200 * time.Millisecond
	DefaultMaxRetryWait       = 5 * time.Second
	DefaultMaxAttempts        = 6
	DefaultKeyAttempts        = 12
	DefaultKeyAttemptsWindow  = 10 * time.Minute
	// DefaultWeight is a route target's weight within its tier.
	DefaultWeight = 1
	// MaxWeight bounds a target's weight, so that the sum of a tier's
	// weights can never overflow.
	MaxWeight = 1_000_000
)

// DefaultResilience returns the resilience block with every default.
func DefaultResilience() Resilience {
	return Resilience{
		Breaker: Breaker{
			Failures:    DefaultBreakerFailures,
			Cooldown:    DefaultBreakerCooldown,
			MaxCooldown: DefaultBreakerMaxCooldown,
		},
		RateLimitCooldown: DefaultRateLimitCooldown,
		AuthCooldown:      DefaultAuthCooldown,
		Retries:           DefaultRetries,
		RetryBackoff:      DefaultRetryBackoff,
		MaxRetryWait:      DefaultMaxRetryWait,
		MaxAttempts:       DefaultMaxAttempts,
		KeyAttempts:       DefaultKeyAttempts,
		KeyAttemptsWindow: DefaultKeyAttemptsWindow,
	}
}

// fillResilience replaces every key of r under path that is absent from
// the file (present false) and zero with its value in def. The top level
// is filled from DefaultResilience, each provider from the filled top
// level; an explicit zero (retries: 0 under a provider) is kept.
func fillResilience(r *Resilience, path string, def Resilience, present func(string) bool) {
	absent := func(key string) bool { return !present(path + "." + key) }
	setDefault(&r.Breaker.Failures, def.Breaker.Failures, absent("breaker.failures"))
	setDefault(&r.Breaker.Cooldown, def.Breaker.Cooldown, absent("breaker.cooldown"))
	setDefault(&r.Breaker.MaxCooldown, def.Breaker.MaxCooldown, absent("breaker.max_cooldown"))
	setDefault(&r.RateLimitCooldown, def.RateLimitCooldown, absent("rate_limit_cooldown"))
	setDefault(&r.AuthCooldown, def.AuthCooldown, absent("auth_cooldown"))
	setDefault(&r.Retries, def.Retries, absent("retries"))
	setDefault(&r.RetryBackoff, def.RetryBackoff, absent("retry_backoff"))
	setDefault(&r.MaxRetryWait, def.MaxRetryWait, absent("max_retry_wait"))
	setDefault(&r.MaxAttempts, def.MaxAttempts, absent("max_attempts"))
	setDefault(&r.KeyAttempts, def.KeyAttempts, absent("key_attempts"))
	setDefault(&r.KeyAttemptsWindow, def.KeyAttemptsWindow, absent("key_attempts_window"))
}

// validateResilience checks the block at path. For a provider, base is
// the top-level block it was merged over, and only the values that differ
// from it are checked: an inherited mistake is reported once, at the top
// level, where it was made.
func (v *validator) validateResilience(path string, r Resilience, base *Resilience) {
	check := func(key string, differs bool, fn func(p string)) {
		if base == nil || differs {
			fn(path + "." + key)
		}
	}
	b, bb := r.Breaker, Breaker{}
	var rb Resilience
	if base != nil {
		bb, rb = base.Breaker, *base
	}
	check("breaker.failures", b.Failures != bb.Failures, func(p string) { v.positiveInt(p, b.Failures) })
	check("breaker.cooldown", b.Cooldown != bb.Cooldown, func(p string) { v.positive(p, b.Cooldown) })
	check("breaker.max_cooldown", b.MaxCooldown != bb.MaxCooldown || b.Cooldown != bb.Cooldown, func(p string) {
		switch {
		case b.MaxCooldown <= 0:
			v.positive(p, b.MaxCooldown)
		case b.Cooldown > 0 && b.MaxCooldown < b.Cooldown:
			v.errorf(p, "must be at least breaker.cooldown (%s), got %s", b.Cooldown, b.MaxCooldown)
		}
	})
	check("rate_limit_cooldown", r.RateLimitCooldown != rb.RateLimitCooldown, func(p string) { v.positive(p, r.RateLimitCooldown) })
	check("auth_cooldown", r.AuthCooldown != rb.AuthCooldown, func(p string) { v.positive(p, r.AuthCooldown) })
	check("retries", r.Retries != rb.Retries, func(p string) { v.notNegative(p, r.Retries) })
	check("retry_backoff", r.RetryBackoff != rb.RetryBackoff, func(p string) { v.notNegativeDuration(p, r.RetryBackoff) })
	check("max_retry_wait", r.MaxRetryWait != rb.MaxRetryWait, func(p string) { v.notNegativeDuration(p, r.MaxRetryWait) })
	check("max_attempts", r.MaxAttempts != rb.MaxAttempts, func(p string) { v.positiveInt(p, r.MaxAttempts) })
	check("key_attempts", r.KeyAttempts != rb.KeyAttempts, func(p string) { v.positiveInt(p, r.KeyAttempts) })
	check("key_attempts_window", r.KeyAttemptsWindow != rb.KeyAttemptsWindow, func(p string) { v.positive(p, r.KeyAttemptsWindow) })
}

func (v *validator) notNegative(path string, n int) {
	if n < 0 {
		v.errorf(path, "must not be negative, got %d", n)
	}
}

func (v *validator) notNegativeDuration(path string, d time.Duration) {
	if d < 0 {
		v.errorf(path, "must not be negative, got %s", d)
	}
}

// validateTiers checks the tier and weight of a route's targets. A tier
// or weight written in the file must be at least 1: 0 would silently mean
// "no tier" or "never picked first".
func (v *validator) validateTiers(path string, targets []Target) {
	for j, t := range targets {
		tp := fmt.Sprintf("%s.targets[%d]", path, j)
		if t.Tier < 0 || (t.Tier == 0 && v.has(tp+".tier")) {
			v.errorf(tp+".tier", "must be at least 1 (omit it for a target of its own), got %d", t.Tier)
		}
		switch {
		case t.Weight < 1:
			v.errorf(tp+".weight", "must be at least 1, got %d", t.Weight)
		case t.Weight > MaxWeight:
			v.errorf(tp+".weight", "must be at most %d, got %d", MaxWeight, t.Weight)
		}
	}
}

// has reports whether path is a key written in the file (with a non-null
// value or not).
func (v *validator) has(path string) bool {
	_, ok := v.lines[path]
	return ok
}
