package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// designResilience is the example of DESIGN.md section 7 (on_stream_cut
// left out: it belongs to another change), with the providers it names.
const designResilience = `auth: {mode: none}
resilience:                  # defaults for every provider; a provider may override any of them under its own ` + "`resilience:`" + `
  breaker:
    failures: 5              # consecutive failed attempts (connect, timeout, 5xx, cut) that open a target
    cooldown: 30s            # open this long, then one probe request, cluster-wide (half-open)
    max_cooldown: 5m         # each failed probe doubles the cooldown, up to this
  rate_limit_cooldown: 10s   # a 429 cools the target for its Retry-After / retry-after-ms, else this (capped by max_cooldown)
  auth_cooldown: 5m          # 401, 402, 403: the provider key is wrong or out of credit; the whole provider cools
  retries: 0                 # extra tries of the same target before falling back (connect, 429, 5xx only)
  retry_backoff: 200ms       # full jitter, doubling; a Retry-After shorter than max_retry_wait is honoured
  max_retry_wait: 5s
  max_attempts: 6            # per request, across retries and targets
  key_attempts: 12           # per idempotency key within key_attempts_window, all its retries together
  key_attempts_window: 10m
providers:
  gemini: {base_url: "https://g.example/v1"}
  vertex: {base_url: "https://v.example/v1"}
  groq: {base_url: "https://q.example/v1"}
routes:
  - model: content-writer
    targets:
      - {provider: gemini, model: gemini-2.0-flash, tier: 1, weight: 3}
      - {provider: vertex, model: gemini-2.0-flash, tier: 1, weight: 1}
      - {provider: groq, model: llama-3.3-70b-versatile}
`

func TestResilienceDefaults(t *testing.T) {
	want := Resilience{
		Breaker:           Breaker{Failures: 5, Cooldown: 30 * time.Second, MaxCooldown: 5 * time.Minute},
		RateLimitCooldown: 10 * time.Second,
		AuthCooldown:      5 * time.Minute,
		Retries:           0,
		RetryBackoff:      200 * time.Millisecond,
		MaxRetryWait:      5 * time.Second,
		MaxAttempts:       6,
		KeyAttempts:       12,
		KeyAttemptsWindow: 10 * time.Minute,
	}
	if got := DefaultResilience(); got != want {
		t.Fatalf("DefaultResilience() = %+v, want %+v", got, want)
	}
	f := func(data string) {
		t.Helper()
		cfg, err := Parse("gateway.yaml", []byte(data), env())
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if cfg.Resilience != want {
			t.Fatalf("resilience = %+v, want %+v", cfg.Resilience, want)
		}
		for name, p := range cfg.Providers {
			if p.Resilience != want {
				t.Fatalf("providers.%s.resilience = %+v, want the defaults %+v", name, p.Resilience, want)
			}
		}
	}
	f(minimal)
	f(minimal + "resilience: {}\n")
	f(minimal + "resilience: {breaker: {}}\n")
	f(strings.Replace(minimal, "{base_url:", "{resilience: {}, base_url:", 1))
	// The DESIGN.md sample spells out the defaults.
	f(designResilience)
}

func TestResilienceOverrides(t *testing.T) {
	// f parses data and checks provider p's effective resilience: the
	// defaults with change applied.
	f := func(data string, change func(r *Resilience)) {
		t.Helper()
		cfg, err := Parse("gateway.yaml", []byte(data), env())
		if err != nil {
			t.Fatalf("Parse(%q): %v", data, err)
		}
		want := DefaultResilience()
		change(&want)
		if got := cfg.Providers["p"].Resilience; got != want {
			t.Fatalf("Parse(%q): providers.p.resilience =\n %+v\nwant\n %+v", data, got, want)
		}
	}
	withP := func(res string) string {
		return strings.Replace(minimal, "{base_url:", "{resilience: "+res+", base_url:", 1)
	}
	f(withP("{retries: 2}"), func(r *Resilience) { r.Retries = 2 })
	f(withP("{breaker: {failures: 2}}"), func(r *Resilience) { r.Breaker.Failures = 2 })
	f(withP("{breaker: {cooldown: 1m, max_cooldown: 1h}, auth_cooldown: 1h}"), func(r *Resilience) {
		r.Breaker.Cooldown, r.Breaker.MaxCooldown, r.AuthCooldown = time.Minute, time.Hour, time.Hour
	})
	f(withP("{rate_limit_cooldown: 1s, retry_backoff: 50ms, max_retry_wait: 1s}"), func(r *Resilience) {
		r.RateLimitCooldown, r.RetryBackoff, r.MaxRetryWait = time.Second, 50*time.Millisecond, time.Second
	})
	f(withP("{max_attempts: 2, key_attempts: 3, key_attempts_window: 1m}"), func(r *Resilience) {
		r.MaxAttempts, r.KeyAttempts, r.KeyAttemptsWindow = 2, 3, time.Minute
	})
	// The top level is every provider's default...
	f(minimal+"resilience: {retries: 3, breaker: {failures: 9}}\n", func(r *Resilience) {
		r.Retries, r.Breaker.Failures = 3, 9
	})
	// ...and a provider's own key wins over it, even an explicit zero.
	f(withP("{retries: 0, retry_backoff: 0s}")+"resilience: {retries: 3, retry_backoff: 1s, breaker: {failures: 9}}\n", func(r *Resilience) {
		r.Retries, r.RetryBackoff, r.Breaker.Failures = 0, 0, 9
	})

	// Other providers keep the top level.
	cfg, err := Parse("gateway.yaml", []byte(strings.Replace(withP("{retries: 1}"), "routes:", "  q: {base_url: \"http://127.0.0.1:2/v1\"}\nroutes:", 1)+"resilience: {retries: 4}\n"), env())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if p, q := cfg.Providers["p"].Resilience.Retries, cfg.Providers["q"].Resilience.Retries; p != 1 || q != 4 {
		t.Fatalf("retries: p %d (want 1), q %d (want 4)", p, q)
	}

	// A config built in code inherits the top level it sets.
	built := &Config{
		Auth:       Auth{Mode: "none"},
		Resilience: Resilience{Retries: 2},
		Providers:  map[string]*Provider{"p": {BaseURL: "http://127.0.0.1:1/v1", Resilience: Resilience{Breaker: Breaker{Failures: 1}}}},
		Routes:     []*Route{{Model: "m", Targets: []Target{{Provider: "p"}}}},
	}
	built.ApplyDefaults()
	want := DefaultResilience()
	want.Retries, want.Breaker.Failures = 2, 1
	if got := built.Providers["p"].Resilience; got != want {
		t.Fatalf("built: providers.p.resilience = %+v, want %+v", got, want)
	}
	if err := built.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestTiersAndWeights(t *testing.T) {
	cfg, err := Parse("gateway.yaml", []byte(designResilience), env())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	got := cfg.Routes[0].Targets
	want := []Target{
		{Provider: "gemini", Model: "gemini-2.0-flash", Tier: 1, Weight: 3},
		{Provider: "vertex", Model: "gemini-2.0-flash", Tier: 1, Weight: 1},
		{Provider: "groq", Model: "llama-3.3-70b-versatile", Weight: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("targets = %+v, want %+v", got, want)
	}
	// A weighted tier is not the "weight without tier" mistake.
	if w := strings.Join(cfg.Warnings(), "\n"); strings.Contains(w, "weight") {
		t.Fatalf("unexpected weight warning: %s", w)
	}
}

func TestResilienceValidate(t *testing.T) {
	f := func(data, want string) {
		t.Helper()
		_, err := Parse("gateway.yaml", []byte(data), env())
		if err == nil {
			t.Fatalf("Parse(%q): expected an error containing %q", data, want)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("Parse(%q):\n got: %v\nwant: %s", data, err, want)
		}
	}
	top := func(block string) string { return minimal + "resilience:\n" + block }
	f(top("  breaker:\n    failures: 0\n"), `gateway.yaml:8: resilience.breaker.failures: must be a positive number, got 0`)
	f(top("  breaker:\n    cooldown: 0s\n"), `gateway.yaml:8: resilience.breaker.cooldown: must be a positive duration, got 0s`)
	f(top("  breaker:\n    max_cooldown: -1s\n"), `gateway.yaml:8: resilience.breaker.max_cooldown: must be a positive duration, got -1s`)
	f(top("  breaker:\n    cooldown: 10m\n"), `gateway.yaml:7: resilience.breaker.max_cooldown: must be at least breaker.cooldown (10m0s), got 5m0s`)
	f(top("  breaker: {cooldown: 1m, max_cooldown: 30s}\n"), `gateway.yaml:7: resilience.breaker.max_cooldown: must be at least breaker.cooldown (1m0s), got 30s`)
	f(top("  rate_limit_cooldown: 0s\n"), `gateway.yaml:7: resilience.rate_limit_cooldown: must be a positive duration, got 0s`)
	f(top("  auth_cooldown: -5m\n"), `gateway.yaml:7: resilience.auth_cooldown: must be a positive duration, got -5m0s`)
	f(top("  retries: -1\n"), `gateway.yaml:7: resilience.retries: must not be negative, got -1`)
	f(top("  retry_backoff: -1ms\n"), `gateway.yaml:7: resilience.retry_backoff: must not be negative, got -1ms`)
	f(top("  max_retry_wait: -1s\n"), `gateway.yaml:7: resilience.max_retry_wait: must not be negative, got -1s`)
	f(top("  max_attempts: 0\n"), `gateway.yaml:7: resilience.max_attempts: must be a positive number, got 0`)
	f(top("  key_attempts: -3\n"), `gateway.yaml:7: resilience.key_attempts: must be a positive number, got -3`)
	f(top("  key_attempts_window: 0s\n"), `gateway.yaml:7: resilience.key_attempts_window: must be a positive duration, got 0s`)
	// Strict decoding: unknown keys and wrong types name their line.
	f(top("  retrys: 1\n"), `gateway.yaml:7: resilience.retrys: unknown key (did you mean "retries"?)`)
	f(top("  breaker:\n    failure: 1\n"), `gateway.yaml:8: resilience.breaker.failure: unknown key (did you mean "failures"?)`)
	f(top("  breaker:\n    cooldown: 30\n"), `gateway.yaml:8: resilience.breaker.cooldown: expected a duration such as 30s or 10m, got "30"`)
	f(top("  retries: 1.5\n"), `gateway.yaml:7: resilience.retries: expected an integer, got "1.5"`)
	f(top("  breaker: 5\n"), `gateway.yaml:7: resilience.breaker: expected a mapping, got "5"`)

	// A provider's override is checked at its own path and line.
	prov := func(block string) string {
		return strings.Replace(minimal, "  p: {base_url: \"http://127.0.0.1:1/v1\"}\n", "  p:\n    base_url: \"http://127.0.0.1:1/v1\"\n    resilience:\n"+block, 1)
	}
	f(prov("      breaker: {failures: -2}\n"), `gateway.yaml:6: providers.p.resilience.breaker.failures: must be a positive number, got -2`)
	f(prov("      breaker:\n        cooldown: 10m\n"), `gateway.yaml:6: providers.p.resilience.breaker.max_cooldown: must be at least breaker.cooldown (10m0s), got 5m0s`)
	f(prov("      retries: -1\n"), `gateway.yaml:6: providers.p.resilience.retries: must not be negative, got -1`)
	f(prov("      auth_cooldown: 0s\n"), `gateway.yaml:6: providers.p.resilience.auth_cooldown: must be a positive duration, got 0s`)
	f(prov("      max_attempts: 0\n"), `gateway.yaml:6: providers.p.resilience.max_attempts: must be a positive number, got 0`)
	f(prov("      key_attempts_window: 0s\n"), `gateway.yaml:6: providers.p.resilience.key_attempts_window: must be a positive duration, got 0s`)
	f(prov("      retry_wait: 1s\n"), `gateway.yaml:6: providers.p.resilience.retry_wait: unknown key`)

	// Tiers and weights.
	tgt := func(fields string) string {
		return strings.Replace(minimal, "{provider: p}", "{provider: p, "+fields+"}", 1)
	}
	f(tgt("tier: 0"), `gateway.yaml:5: routes[0].targets[0].tier: must be at least 1 (omit it for a target of its own), got 0`)
	f(tgt("tier: -1"), `gateway.yaml:5: routes[0].targets[0].tier: must be at least 1`)
	f(tgt("tier: 1, weight: 0"), `gateway.yaml:5: routes[0].targets[0].weight: must be at least 1, got 0`)
	f(tgt("weight: -2"), `gateway.yaml:5: routes[0].targets[0].weight: must be at least 1, got -2`)
	f(tgt("tier: 1, weight: 1000001"), `gateway.yaml:5: routes[0].targets[0].weight: must be at most 1000000, got 1000001`)
	f(tgt("tier: first"), `gateway.yaml:5: routes[0].targets[0].tier: expected an integer, got "first"`)
	f(tgt("wieght: 2"), `gateway.yaml:5: routes[0].targets[0].wieght: unknown key (did you mean "weight"?)`)
}

// An inherited mistake is reported once, at the top level where it was
// made, not again under every provider.
func TestResilienceErrorReportedOnce(t *testing.T) {
	data := strings.Replace(minimal, "routes:", "  q: {base_url: \"http://127.0.0.1:2/v1\"}\nroutes:", 1) + "resilience: {retries: -1}\n"
	_, err := Parse("gateway.yaml", []byte(data), env())
	if err == nil {
		t.Fatal("expected an error")
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "gateway.yaml:7: resilience.retries: must not be negative") {
		t.Fatalf("want one problem at resilience.retries, got:\n%v", err)
	}
}

func TestWeightWithoutTierWarns(t *testing.T) {
	cfg, err := Parse("gateway.yaml", []byte(strings.Replace(minimal, "{provider: p}", "{provider: p, weight: 3}", 1)), env())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := "routes[0].targets[0].weight has no effect without a tier: the target is a group of its own"
	if w := cfg.Warnings(); !strings.Contains(strings.Join(w, "\n"), want) {
		t.Fatalf("warnings %q lack %q", w, want)
	}
}

// gateway check prints the effective resilience of every provider, and
// the printed config parses back to the same values.
func TestResiliencePrinted(t *testing.T) {
	data := strings.Replace(designResilience, "  groq: {base_url: \"https://q.example/v1\"}\n",
		"  groq: {base_url: \"https://q.example/v1\", resilience: {retries: 2, breaker: {cooldown: 1m}}}\n", 1)
	cfg, err := Parse("gateway.yaml", []byte(data), env())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatalf("Redacted: %v", err)
	}
	s := string(out)
	for _, want := range []string{
		"resilience:\n  breaker:\n    failures: 5\n    cooldown: 30s\n    max_cooldown: 5m0s\n  rate_limit_cooldown: 10s\n  auth_cooldown: 5m0s\n  retries: 0\n  retry_backoff: 200ms\n  max_retry_wait: 5s\n  max_attempts: 6\n  key_attempts: 12\n  key_attempts_window: 10m0s\n",
		"      cooldown: 1m0s\n",
		"    retries: 2\n",
		"tier: 1\n",
		"weight: 3\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("printed config lacks %q:\n%s", want, s)
		}
	}
	back, err := Parse("printed.yaml", out, env())
	if err != nil {
		t.Fatalf("the printed config does not parse back: %v\n%s", err, out)
	}
	for name, p := range cfg.Providers {
		if back.Providers[name].Resilience != p.Resilience {
			t.Errorf("round trip changed providers.%s.resilience: %+v, want %+v", name, back.Providers[name].Resilience, p.Resilience)
		}
	}
	if !reflect.DeepEqual(back.Routes[0].Targets, cfg.Routes[0].Targets) {
		t.Errorf("round trip changed the targets: %+v, want %+v", back.Routes[0].Targets, cfg.Routes[0].Targets)
	}
}
