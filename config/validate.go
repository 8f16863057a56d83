package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// validator collects every problem of a config; each names the line (when
// the config came from a file) and the key path.
type validator struct {
	file     string
	lines    map[string]int
	problems []problem
	// bad holds paths that already have a decoding error.
	bad map[string]bool
}

type problem struct {
	line int
	err  error
}

func (v *validator) errorf(path, format string, args ...any) {
	for p := path; p != ""; p = parentPath(p) {
		if v.bad[p] {
			return
		}
	}
	line := v.lineOf(path)
	v.problems = append(v.problems, problem{line, lineError(v.file, line, path, fmt.Sprintf(format, args...))})
}

// err returns the problems in file order, joined.
func (v *validator) err() error {
	sort.SliceStable(v.problems, func(i, j int) bool { return v.problems[i].line < v.problems[j].line })
	errs := make([]error, len(v.problems))
	for i, p := range v.problems {
		errs[i] = p.err
	}
	return errors.Join(errs...)
}

// lineOf returns the line of path or, when the key is absent (a default or a
// missing key), of its closest parent that is in the file.
func (v *validator) lineOf(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if line, ok := v.lines[p]; ok {
			return line
		}
	}
	return 0
}

func parentPath(p string) string {
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i]
	}
	return ""
}

// oneOf reports value unless it is one of allowed, the constants of its
// mode type.
func oneOf[T ~string](v *validator, path string, value T, allowed ...T) {
	names := make([]string, len(allowed))
	for i, a := range allowed {
		if value == a {
			return
		}
		names[i] = string(a)
	}
	v.errorf(path, "must be one of %s, got %q", strings.Join(names, ", "), value)
}

func (v *validator) positive(path string, d time.Duration) {
	if d <= 0 {
		v.errorf(path, "must be a positive duration, got %s", d)
	}
}

func (v *validator) positiveInt(path string, n int) {
	if n <= 0 {
		v.errorf(path, "must be a positive number, got %d", n)
	}
}

// Validate checks c after defaults were applied and returns every problem
// joined with errors.Join, or nil.
func (c *Config) Validate() error {
	v := &validator{file: c.Path, lines: c.lines}
	c.validate(v)
	return v.err()
}

func (c *Config) validate(v *validator) {
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		v.errorf("listen", "must be host:port, got %q", c.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.errorf("listen", "invalid port %q", port)
	}
	v.positiveInt("max_body_bytes", c.MaxBodyBytes)
	v.positive("shutdown_timeout", c.ShutdownTimeout)
	v.positive("read_header_timeout", c.ReadHeaderTimeout)
	v.positive("read_timeout", c.ReadTimeout)
	v.positive("write_timeout", c.WriteTimeout)
	if c.ShutdownDelay < 0 {
		v.errorf("shutdown_delay", "must not be negative, got %v", c.ShutdownDelay)
	}
	c.validateTLS(v)
	c.validateTracing(v)
	c.validateAuth(v)
	c.validateStore(v)
	c.validateDedupe(v)
	oneOf(v, "log.level", c.Log.Level, LogDebug, LogInfo, LogWarn, LogError)
	oneOf(v, "log.format", c.Log.Format, LogJSON, LogText)
	v.validateResilience("resilience", c.Resilience, nil)
	c.validateProviders(v)
	c.validateRoutes(v)
	for model, p := range c.Pricing {
		path := "pricing." + model
		if model == "" {
			v.errorf(path, "model name must not be empty")
		}
		if p.PromptPer1M < 0 {
			v.errorf(path+".prompt_per_1m", "must not be negative, got %v", p.PromptPer1M)
		}
		if p.CompletionPer1M < 0 {
			v.errorf(path+".completion_per_1m", "must not be negative, got %v", p.CompletionPer1M)
		}
	}
}

var hexRe = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

func (c *Config) validateAuth(v *validator) {
	oneOf(v, "auth.mode", c.Auth.Mode, AuthKeys, AuthNone)
	if c.Auth.Mode != AuthKeys {
		return
	}
	if len(c.Auth.Keys) == 0 {
		v.errorf("auth.keys", "at least one key is required when auth.mode is keys (or set auth.mode: none)")
	}
	seen := map[string]int{}
	for i, k := range c.Auth.Keys {
		path := fmt.Sprintf("auth.keys[%d]", i)
		if k.Tenant == "" {
			v.errorf(path+".tenant", "must not be empty")
		}
		validateClientKeyLimits(v, path, k)
		switch {
		case k.Key == "" && k.SHA256 == "":
			v.errorf(path, "needs key or sha256 (is the environment variable set?)")
			continue
		case k.Key != "" && k.SHA256 != "":
			v.errorf(path, "set either key or sha256, not both")
			continue
		case k.SHA256 != "" && !hexRe.MatchString(k.SHA256):
			v.errorf(path+".sha256", "must be 64 hex characters (the sha256 of the key)")
			continue
		}
		h := k.Hash()
		if prev, ok := seen[h]; ok {
			v.errorf(path, "duplicate key: same as auth.keys[%d] (tenant %q)", prev, c.Auth.Keys[prev].Tenant)
			continue
		}
		seen[h] = i
	}
}

func (c *Config) validateStore(v *validator) {
	oneOf(v, "store.kind", c.Store.Kind, StoreEmbedded, StorePostgres)
	switch c.Store.Kind {
	case StoreEmbedded:
		if c.Store.Path == "" {
			v.errorf("store.path", "must not be empty when store.kind is embedded")
		}
	case StorePostgres:
		if c.Store.URL == "" {
			v.errorf("store.url", "is required when store.kind is postgres (is the environment variable set?)")
		}
	}
	oneOf(v, "store.migrate", c.Store.Migrate, MigrateAuto, MigrateManual)
	c.validateEncryptionKeys(v)

	oneOf(v, "lock.kind", c.Lock.Kind, LockLocal, LockRedis)
	r := c.Lock.Redis
	if c.Lock.Kind == LockRedis && len(r.Addrs) == 0 {
		v.errorf("lock.redis.addrs", "at least one address is required when lock.kind is redis")
	}
	for i, a := range r.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			v.errorf(fmt.Sprintf("lock.redis.addrs[%d]", i), "must be host:port, got %q", redactURL(a))
		}
	}
	if r.DB < 0 {
		v.errorf("lock.redis.db", "must not be negative, got %d", r.DB)
	}
}

func (c *Config) validateDedupe(v *validator) {
	d := c.Dedupe
	oneOf(v, "dedupe.derive", d.Derive, DeriveBody, DeriveRetries, DeriveOff)
	for i, f := range d.DeriveFields {
		if f == "" {
			v.errorf(fmt.Sprintf("dedupe.derive_fields[%d]", i), "must not be empty")
		}
	}
	v.positive("dedupe.derive_window", d.DeriveWindow)
	v.positive("dedupe.key_ttl", d.KeyTTL)
	// The lease is renewed every lease/3, and timers below a millisecond
	// would spin.
	if d.Lease < time.Millisecond {
		v.errorf("dedupe.lease", "must be at least 1ms, got %s", d.Lease)
	}
	v.positive("dedupe.max_processing", d.MaxProcessing)
	oneOf(v, "dedupe.on_in_progress", d.OnInProgress, InProgressWait, InProgressReject)
	v.positive("dedupe.wait_timeout", d.WaitTimeout)
	oneOf(v, "dedupe.on_store_error", d.OnStoreError, StoreErrorFail, StoreErrorOpen)
	v.positiveInt("dedupe.max_record_bytes", d.MaxRecordBytes)
	v.positive("dedupe.reap_interval", d.ReapInterval)
	v.positiveInt("dedupe.reap_batch", d.ReapBatch)
}

// nameRe restricts provider names: they become metric label values and
// appear in headers and logs.
var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

func (c *Config) validateProviders(v *validator) {
	for _, name := range c.providerNames() {
		p := c.Providers[name]
		path := "providers." + name
		if !nameRe.MatchString(name) {
			v.errorf(path, "provider names may contain only letters, digits, _ and -")
		}
		if p == nil {
			v.errorf(path, "is empty (base_url is required)")
			continue
		}
		oneOf(v, path+".kind", p.Kind, ProviderOpenAI, ProviderAnthropic)
		v.validateAnthropic(path, p)
		if p.BaseURL == "" {
			v.errorf(path+".base_url", "is required")
		} else if u, err := url.Parse(p.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errorf(path+".base_url", "must be an http or https URL with a host, got %q", redactURL(p.BaseURL))
		}
		v.positive(path+".timeout", p.Timeout)
		v.positive(path+".first_byte_timeout", p.FirstByteTimeout)
		v.positiveInt(path+".max_conns", p.MaxConns)
		v.validateResilience(path+".resilience", p.Resilience, &c.Resilience)
	}
}

// versionRe is the form of Anthropic's API versions, a date.
var versionRe = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)

// validateAnthropic checks the keys of kind anthropic, and that a provider
// of another kind does not carry them: they would be silently ignored.
func (v *validator) validateAnthropic(path string, p *Provider) {
	if p.Kind != ProviderAnthropic {
		if p.AnthropicVersion != "" {
			v.errorf(path+".anthropic_version", "is only for kind anthropic (kind is %s)", p.Kind)
		}
		if p.DefaultMaxTokens != 0 {
			v.errorf(path+".default_max_tokens", "is only for kind anthropic (kind is %s)", p.Kind)
		}
		return
	}
	if !versionRe.MatchString(p.AnthropicVersion) {
		v.errorf(path+".anthropic_version", "must be a date such as %s, got %q", DefaultAnthropicVersion, p.AnthropicVersion)
	}
	v.positiveInt(path+".default_max_tokens", p.DefaultMaxTokens)
}

func (c *Config) providerNames() []string {
	names := make([]string, 0, len(c.Providers))
	for name := range c.Providers {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func (c *Config) validateRoutes(v *validator) {
	if len(c.Routes) == 0 {
		v.errorf("routes", "at least one route is required")
	}
	have := strings.Join(c.providerNames(), ", ")
	seen := map[string]int{}
	for i, r := range c.Routes {
		path := fmt.Sprintf("routes[%d]", i)
		if r == nil {
			v.errorf(path, "is empty (model and targets are required)")
			continue
		}
		switch {
		case r.Model == "":
			v.errorf(path+".model", "must not be empty")
		case strings.ContainsAny(r.Model, "\"\\") || strings.ContainsFunc(r.Model, isControl):
			// The model is the route metric label.
			v.errorf(path+".model", "must not contain quotes, backslashes or control characters")
		}
		if prev, ok := seen[r.Model]; ok && r.Model != "" {
			v.errorf(path+".model", "duplicate route for model %q (first at routes[%d])", r.Model, prev)
		} else {
			seen[r.Model] = i
		}
		for j, f := range r.FallbackOn {
			if !validFallback(f) {
				v.errorf(fmt.Sprintf("%s.fallback_on[%d]", path, j), "must be connect, timeout, 4xx, 5xx or an HTTP status such as 429, got %q", f)
			}
		}
		oneOf(v, path+".on_stream_cut", r.OnStreamCut, StreamCutError, StreamCutContinue)
		if len(r.Targets) == 0 {
			v.errorf(path+".targets", "at least one target is required")
		}
		for j, t := range r.Targets {
			tp := fmt.Sprintf("%s.targets[%d].provider", path, j)
			if t.Provider == "" {
				v.errorf(tp, "must not be empty")
			} else if _, ok := c.Providers[t.Provider]; !ok {
				if have == "" {
					have = "none"
				}
				v.errorf(tp, "unknown provider %q (have: %s)", t.Provider, have)
			}
		}
		v.validateTiers(path, r.Targets)
	}
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Warnings returns problems that do not stop the gateway from starting but
// will make some requests fail or are likely mistakes. The first ones name
// each ${VAR} without default whose variable is not set, with its line: it
// expands to "" and the key silently takes its built-in default.
func (c *Config) Warnings() []string {
	w := append([]string(nil), c.envWarnings...)
	if c.Auth.Open() {
		if len(c.Auth.Keys) > 0 {
			w = append(w, "auth.keys are ignored because auth.mode is none")
		}
		if host, _, err := net.SplitHostPort(c.Listen); err == nil && !isLoopback(host) {
			w = append(w, fmt.Sprintf("auth.mode is none and listen %s is not a loopback address: anyone who reaches it spends your provider credits", c.Listen))
		}
	}
	if c.Auth.AdminKey == "" {
		w = append(w, "auth.admin_key is empty: the admin API is disabled")
		if c.Debug.Pprof {
			w = append(w, "debug.pprof is on without auth.admin_key: /debug/pprof/ answers loopback clients only")
		}
	} else if c.Debug.Pprof {
		w = append(w, "debug.pprof is on: /debug/pprof/ serves profiles to the admin key (profiling costs CPU while it runs)")
	}
	w = append(w, c.routeTimeWarnings()...)
	w = append(w, c.tracingWarnings()...)
	used := map[string]bool{}
	for i, r := range c.Routes {
		if r == nil {
			continue
		}
		for _, t := range r.Targets {
			used[t.Provider] = true
		}
		if len(r.Targets) > 1 && r.FallbackOn != nil && len(r.FallbackOn) == 0 {
			w = append(w, fmt.Sprintf("routes[%d].fallback_on is empty: only the first of %d targets is ever used", i, len(r.Targets)))
		}
		for j, t := range r.Targets {
			if t.Tier == 0 && t.Weight != DefaultWeight {
				w = append(w, fmt.Sprintf("routes[%d].targets[%d].weight has no effect without a tier: the target is a group of its own", i, j))
			}
		}
	}
	for _, name := range c.providerNames() {
		p := c.Providers[name]
		if p == nil {
			continue
		}
		path := "providers." + name
		if p.APIKey == "" {
			w = append(w, fmt.Sprintf("%s.api_key is empty: requests skip %s (a route with no other target answers 502 no_usable_target)", path, name))
		}
		if !used[name] {
			w = append(w, fmt.Sprintf("%s is not used by any route", path))
		}
		if u, err := url.Parse(p.BaseURL); err == nil && u.Scheme == "http" && p.APIKey != "" && !isLoopback(u.Hostname()) {
			w = append(w, fmt.Sprintf("%s.base_url uses http: the api key is sent unencrypted", path))
		}
		if u, err := url.Parse(p.BaseURL); err == nil && p.Kind == ProviderAnthropic && strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/v1") {
			w = append(w, fmt.Sprintf("%s.base_url ends in /v1: kind anthropic calls {base_url}/v1/messages, so requests go to .../v1/v1/messages", path))
		}
		if p.FirstByteTimeout > p.Timeout {
			w = append(w, fmt.Sprintf("%s.first_byte_timeout (%s) exceeds timeout (%s): timeout applies first", path, p.FirstByteTimeout, p.Timeout))
		}
	}
	if c.Dedupe.WaitTimeout > c.Dedupe.MaxProcessing {
		w = append(w, fmt.Sprintf("dedupe.wait_timeout (%s) exceeds dedupe.max_processing (%s): no task lives that long", c.Dedupe.WaitTimeout, c.Dedupe.MaxProcessing))
	}
	return w
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// routeTimeWarnings flags routes whose worst case (every target timing
// out) outlives dedupe.max_processing: the task would be taken over while
// its leader still calls upstream, and the leader would be cancelled.
func (c *Config) routeTimeWarnings() []string {
	var w []string
	for i, r := range c.Routes {
		if r == nil {
			continue
		}
		var total time.Duration
		for _, t := range r.Targets {
			if p := c.Providers[t.Provider]; p != nil {
				total += p.Timeout
			}
		}
		if c.Dedupe.MaxProcessing > 0 && total+c.Dedupe.Lease > c.Dedupe.MaxProcessing {
			w = append(w, fmt.Sprintf("routes[%d] (%s): its targets' timeouts add up to %s, past dedupe.max_processing (%s) minus the lease: a slow chain is cut at max_processing", i, r.Model, total, c.Dedupe.MaxProcessing))
		}
	}
	return w
}
