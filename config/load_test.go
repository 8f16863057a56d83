package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over the given name/value pairs.
func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// minimal is the smallest valid config; tests append sections to it.
const minimal = `auth: {mode: none}
providers:
  p: {base_url: "http://127.0.0.1:1/v1"}
routes:
  - {model: m, targets: [{provider: p}]}
`

func TestExpandEnv(t *testing.T) {
	getenv := env("A", "alpha", "EMPTY", "", "URL", "postgres://u:p@h/db")
	f := func(in, want string) {
		t.Helper()
		got, _, _, err := expandEnv("t.yaml", []byte(in), getenv)
		if err != nil {
			t.Fatalf("expandEnv(%q): unexpected error: %v", in, err)
		}
		if string(got) != want {
			t.Fatalf("expandEnv(%q) = %q, want %q", in, got, want)
		}
	}
	f("k: ${A}", "k: alpha")
	f("k: ${UNSET}", "k: ")
	f("k: ${EMPTY}", "k: ")
	f("k: ${UNSET:-dflt}", "k: dflt")
	f("k: ${EMPTY:-dflt}", "k: dflt")
	f("k: ${A:-dflt}", "k: alpha")
	f("k: ${UNSET:-}", "k: ")
	f("k: ${UNSET:-http://h:1/x}", "k: http://h:1/x")
	f("k: ${URL}", "k: postgres://u:p@h/db")
	f("k: ${A}-${A}", "k: alpha-alpha")
	f("k: {a: ${A}, b: ${UNSET:-1}}", "k: {a: alpha, b: 1}")
	f("k: $$", "k: $")
	f("k: $${A}", "k: ${A}")
	f("k: costs $5 and $A", "k: costs $5 and $A")
	f("k: a$", "k: a$")
	f("", "")
}

func TestExpandEnvErrors(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		_, _, _, err := expandEnv("t.yaml", []byte(in), env())
		if err == nil {
			t.Fatalf("expandEnv(%q): expected an error", in)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("expandEnv(%q) error = %q, want it to contain %q", in, err, want)
		}
	}
	f("a: 1\nk: ${A\n", "t.yaml:2: unterminated ${")
	f("k: ${A-b}", `t.yaml:1: invalid variable name "A-b"`)
	f("k: ${}", `t.yaml:1: invalid variable name ""`)
	f("k: ${1A}", `invalid variable name "1A"`)
}

// A value holding a newline must not shift the lines of later errors.
func TestExpandEnvKeepsLines(t *testing.T) {
	data := "listen: \"${V}\"\nbogus: 1\n"
	_, err := Parse("t.yaml", []byte(data), env("V", "a\nb\nc"))
	if err == nil {
		t.Fatal("expected an error for the unknown key")
	}
	if want := "t.yaml:2: bogus: unknown key"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %q, want it to contain %q", err, want)
	}
}

func TestParseEnv(t *testing.T) {
	data := minimal + "auth: {mode: keys, keys: [{tenant: t, key: ${K:-fallback}}], admin_key: ${ADMIN}}\n"
	data = strings.Replace(data, "auth: {mode: none}\n", "", 1)
	cfg, err := Parse("t.yaml", []byte(data), env("ADMIN", "adm"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := cfg.Auth.Keys[0].Key; got != "fallback" {
		t.Fatalf("key = %q, want the default %q", got, "fallback")
	}
	if cfg.Auth.AdminKey != "adm" {
		t.Fatalf("admin_key = %q, want %q", cfg.Auth.AdminKey, "adm")
	}
}

func TestParseErrors(t *testing.T) {
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
	// Unknown keys, at every depth.
	f(minimal+"dedupe:\n  lease: 30s\n  lease_tim: 1s\n", `gateway.yaml:8: dedupe.lease_tim: unknown key`)
	f(minimal+"listn: 1\n", `gateway.yaml:6: listn: unknown key (did you mean "listen"?)`)
	f("auth: {mode: none}\nproviders:\n  p: {base_ur: x}\nroutes: []\n", `gateway.yaml:3: providers.p.base_ur: unknown key`)
	f(minimal+"log:\n  level: info\n  level: debug\n", `gateway.yaml:8: log.level: duplicate key (first set at line 7)`)
	f(strings.Replace(minimal, "{provider: p}", "{provider: p, modle: x}", 1), `gateway.yaml:5: routes[0].targets[0].modle: unknown key (did you mean "model"?)`)

	// Values of the wrong type.
	f(minimal+"dedupe:\n  lease: 30\n", `gateway.yaml:7: dedupe.lease: expected a duration such as 30s or 10m, got "30"`)
	f(minimal+"max_body_bytes: 1.5\n", `gateway.yaml:6: max_body_bytes: expected an integer, got "1.5"`)
	f(minimal+"max_body_bytes: \"100\"\n", `max_body_bytes: expected an integer`)
	f(minimal+"dedupe: {enabled: yes}\n", `gateway.yaml:6: dedupe.enabled: expected true or false, got "yes"`)
	f(minimal+"dedupe: true\n", `gateway.yaml:6: dedupe: expected a mapping, got "true"`)
	f(minimal+"debug: {pprof: on}\n", `gateway.yaml:6: debug.pprof: expected true or false, got "on"`)
	f(minimal+"debug:\n  prof: true\n", `gateway.yaml:7: debug.prof: unknown key (did you mean "pprof"?)`)
	f(minimal+"lock: {redis: {addrs: 127.0.0.1:6379}}\n", `lock.redis.addrs: expected a list, got "127.0.0.1:6379"`)
	f("- a\n", `gateway.yaml:1: (top level): expected a mapping, got a list`)

	// Syntax errors keep their line.
	f(minimal+"dedupe: [\n", `gateway.yaml:6: did not find expected node content`)
	f(minimal+"listen: ${X\n", `gateway.yaml:6: unterminated ${`)

	// An explicit zero is reported, not replaced by the default.
	f(minimal+"dedupe:\n  lease: 0s\n", `gateway.yaml:7: dedupe.lease: must be at least 1ms, got 0s`)
	f(minimal+"max_body_bytes: 0\n", `gateway.yaml:6: max_body_bytes: must be a positive number, got 0`)
	f("", `gateway.yaml: routes: at least one route is required`)
}

// A mistyped value is reported once, not also by validation.
func TestParseTypeErrorReportedOnce(t *testing.T) {
	_, err := Parse("gateway.yaml", []byte(minimal+"dedupe: {lease: 30, derive: [x]}\n"), env())
	if err == nil {
		t.Fatal("expected errors")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 {
		t.Fatalf("want exactly 2 problems, got %d:\n%v", len(lines), err)
	}
}

func TestParseReportsEveryMistake(t *testing.T) {
	data := `listen: 127.0.0.1:8080
auth:
  mode: none
dedupe:
  lease_tim: 10s
  on_in_progress: hold
providers:
  gemini: {base_url: "https://g.example/v1"}
  groq: {base_url: "https://q.example/v1"}
  openrouter: {base_url: "https://o.example/v1"}
routes:
  - model: content-writer
    targets:
      - provider: gemini
      - provider: grok
`
	_, err := Parse("gateway.yaml", []byte(data), env())
	if err == nil {
		t.Fatal("expected errors")
	}
	want := []string{
		`gateway.yaml:5: dedupe.lease_tim: unknown key`,
		`gateway.yaml:6: dedupe.on_in_progress: must be one of wait, reject, got "hold"`,
		`gateway.yaml:15: routes[0].targets[1].provider: unknown provider "grok" (have: gemini, groq, openrouter)`,
	}
	got := strings.Split(err.Error(), "\n")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("errors:\n got: %q\nwant: %q", got, want)
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse("min.yaml", []byte(minimal), env())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	yes := true
	want := &Config{
		Listen:            "127.0.0.1:8080",
		MaxBodyBytes:      8388608,
		ShutdownTimeout:   30 * time.Second,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      30 * time.Second,
		Auth:              Auth{Mode: "none"},
		Store:             Store{Kind: "embedded", Path: "./data/gateway.db", Migrate: "auto"},
		Lock:              Lock{Kind: "local", Redis: Redis{Addrs: []string{"127.0.0.1:6379"}, KeyPrefix: "gw:"}},
		Dedupe: Dedupe{
			Enabled:            &yes,
			Derive:             "body",
			DeriveWindow:       10 * time.Minute,
			KeyTTL:             24 * time.Hour,
			Lease:              30 * time.Second,
			MaxProcessing:      10 * time.Minute,
			OnInProgress:       "wait",
			WaitTimeout:        120 * time.Second,
			OnStoreError:       "fail",
			DetachOnDisconnect: &yes,
			MaxRecordBytes:     4 << 20,
			ReapInterval:       time.Minute,
			ReapBatch:          500,
		},
		Log: Log{Level: "info", Format: "json"},
		Providers: map[string]*Provider{"p": {
			Name:             "p",
			Kind:             "openai",
			BaseURL:          "http://127.0.0.1:1/v1",
			Timeout:          60 * time.Second,
			FirstByteTimeout: 30 * time.Second,
			MaxConns:         512,
			Resilience:       DefaultResilience(),
		}},
		Routes: []*Route{{
			Model:       "m",
			FallbackOn:  []string{"connect", "timeout", "429", "5xx"},
			Fallback:    compileFallback(nil),
			Targets:     []Target{{Provider: "p", Weight: 1}},
			OnStreamCut: StreamCutError,
		}},
		Resilience: DefaultResilience(),
		Tracing:    Tracing{SampleRatio: 1},
		Path:       "min.yaml",
	}
	cfg.lines = nil
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("defaults:\n got: %+v\nwant: %+v", cfg, want)
	}

	// ApplyDefaults on a config built in code gives the same result.
	built := &Config{
		Auth:      Auth{Mode: "none"},
		Providers: map[string]*Provider{"p": {BaseURL: "http://127.0.0.1:1/v1"}},
		Routes:    []*Route{{Model: "m", Targets: []Target{{Provider: "p"}}}},
		Path:      "min.yaml",
	}
	built.ApplyDefaults()
	if !reflect.DeepEqual(built, want) {
		t.Fatalf("ApplyDefaults:\n got: %+v\nwant: %+v", built, want)
	}
	if err := built.Validate(); err != nil {
		t.Fatalf("Validate after ApplyDefaults: %v", err)
	}
}

// An explicit empty fallback_on means "never fall back" and is kept.
func TestParseEmptyFallbackOn(t *testing.T) {
	data := strings.Replace(minimal, "{model: m,", "{model: m, fallback_on: [],", 1)
	cfg, err := Parse("t.yaml", []byte(data), env())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if fo := cfg.Routes[0].FallbackOn; fo == nil || len(fo) != 0 {
		t.Fatalf("fallback_on = %#v, want an empty non-nil list", fo)
	}
	if cfg.Routes[0].Fallback.Covers(503, true, true) {
		t.Fatal("a route with empty fallback_on must never fall back")
	}
}

func TestRootConfig(t *testing.T) {
	data, err := os.ReadFile("../gateway.yaml")
	if err != nil {
		t.Fatalf("cannot read the root gateway.yaml: %v", err)
	}
	cfg, err := Parse("gateway.yaml", data, env())
	if err != nil {
		t.Fatalf("the root gateway.yaml must parse with an empty environment:\n%v", err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.Store.Kind != "embedded" || cfg.Lock.Kind != "local" {
		t.Fatalf("unexpected listen/store/lock: %q %q %q", cfg.Listen, cfg.Store.Kind, cfg.Lock.Kind)
	}
	if len(cfg.Auth.Keys) != 1 || cfg.Auth.Keys[0].Key != "sk-local-dev" || cfg.Auth.Keys[0].Tenant != "local" {
		t.Fatalf("auth.keys = %+v, want tenant local with the dev key", cfg.Auth.Keys)
	}
	if len(cfg.Routes) != 3 {
		t.Fatalf("routes = %+v, want content-writer, claude-writer and *", cfg.Routes)
	}
	if r := cfg.Routes[0]; r.Model != "content-writer" || len(r.Targets) != 3 || r.Targets[0].Provider != "gemini" || r.Targets[2].Provider != "groq" {
		t.Fatalf("content-writer route = %+v", r)
	}
	if r := cfg.Routes[1]; r.Model != "claude-writer" || len(r.Targets) != 2 || r.Targets[0].Provider != "anthropic" || r.Targets[1].Provider != "openrouter" {
		t.Fatalf("claude-writer route = %+v, want anthropic then openrouter", r)
	}
	if r := cfg.Routes[2]; r.Model != "*" || r.Targets[0].Provider != "openai" {
		t.Fatalf("wildcard route = %+v, want openai", r)
	}
	warnings := strings.Join(cfg.Warnings(), "\n")
	for _, p := range []string{"openai", "gemini", "openrouter", "groq", "anthropic"} {
		want := "providers." + p + ".api_key is empty: requests skip " + p + " (a route with no other target answers 502 no_usable_target)"
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q; got:\n%s", want, warnings)
		}
	}

	// With the variables set, the keys come from the environment.
	cfg, err = Parse("gateway.yaml", data, env("GEMINI_API_KEY", "g-key", "GATEWAY_CLIENT_KEY", "client"))
	if err != nil {
		t.Fatalf("Parse with env: %v", err)
	}
	if cfg.Providers["gemini"].APIKey != "g-key" || cfg.Auth.Keys[0].Key != "client" {
		t.Fatalf("env not applied: gemini key %q, client key %q", cfg.Providers["gemini"].APIKey, cfg.Auth.Keys[0].Key)
	}
}

func TestLoad(t *testing.T) {
	path := t.TempDir() + "/gw.yaml"
	if err := os.WriteFile(path, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Path != path || cfg.Providers["p"].Name != "p" {
		t.Fatalf("Path = %q, provider name = %q", cfg.Path, cfg.Providers["p"].Name)
	}
	_, err = Load(path + ".missing")
	if err == nil || !strings.Contains(err.Error(), "cannot read config") {
		t.Fatalf("Load of a missing file: err = %v", err)
	}
}

// designSample is the example of DESIGN.md section 4, which users copy.
const designSample = `listen: 127.0.0.1:8080
max_body_bytes: 8388608
auth:                      # omit or ` + "`keys: []`" + ` only when mode: none
  mode: keys               # keys | none
  keys:
    - tenant: content-pipeline
      key: ${PIPELINE_KEY}         # or sha256: <hex of the key>
  admin_key: ${GATEWAY_ADMIN_KEY}  # for /admin/*
store:
  kind: embedded           # embedded | postgres
  path: ./data/gateway.db  # embedded
  url: ${DATABASE_URL}     # postgres
  migrate: auto            # auto | manual
lock:
  kind: local              # local | redis
  redis:
    addrs: [127.0.0.1:6379]
    password: ${REDIS_PASSWORD:-}
    db: 0
    key_prefix: "gw:"
dedupe:
  enabled: true
  derive: body             # body | retries | off
  derive_fields: []        # e.g. [model, messages, temperature]; empty = whole body
  derive_window: 10m
  require_key: false
  key_ttl: 24h
  lease: 30s
  max_processing: 10m
  on_in_progress: wait     # wait | reject
  wait_timeout: 120s
  on_store_error: fail     # fail | open
  detach_on_disconnect: true
providers:
  gemini:
    kind: openai           # any OpenAI-compatible API
    base_url: https://generativelanguage.googleapis.com/v1beta/openai
    api_key: ${GEMINI_API_KEY}
    timeout: 60s           # whole attempt
    first_byte_timeout: 30s
  openrouter: {kind: openai, base_url: https://openrouter.ai/api/v1, api_key: ${OPENROUTER_API_KEY}}
  groq: {kind: openai, base_url: https://api.groq.com/openai/v1, api_key: ${GROQ_API_KEY}}
routes:
  - model: content-writer          # what clients send as "model"
    fallback_on: [connect, timeout, 429, 5xx]
    targets:
      - {provider: gemini, model: gemini-2.0-flash}
      - {provider: openrouter, model: google/gemini-2.0-flash-001}
      - {provider: groq, model: llama-3.3-70b-versatile}
  - model: "*"                      # any other model name: passed through unchanged
    targets: [{provider: openrouter}]
`

func TestDesignSample(t *testing.T) {
	cfg, err := Parse("gateway.yaml", []byte(designSample), env("PIPELINE_KEY", "pk", "OPENROUTER_API_KEY", "or-key"))
	if err != nil {
		t.Fatalf("the DESIGN.md sample must parse: %v", err)
	}
	if got := cfg.Providers["openrouter"].APIKey; got != "or-key" {
		t.Fatalf("openrouter api_key = %q, want %q (expanded inside a flow mapping)", got, "or-key")
	}
	if got := cfg.Providers["groq"].BaseURL; got != "https://api.groq.com/openai/v1" {
		t.Fatalf("groq base_url = %q", got)
	}
	if cfg.Providers["groq"].APIKey != "" || cfg.Auth.Keys[0].Key != "pk" {
		t.Fatalf("groq api_key = %q, client key = %q", cfg.Providers["groq"].APIKey, cfg.Auth.Keys[0].Key)
	}

	// Without PIPELINE_KEY the missing client key is an error naming its line.
	_, err = Parse("gateway.yaml", []byte(designSample), env())
	if err == nil || !strings.Contains(err.Error(), "gateway.yaml:6: auth.keys[0]: needs key or sha256") {
		t.Fatalf("missing PIPELINE_KEY: err = %v", err)
	}
}

// An unset ${VAR} without default silently expands to "": Warnings name it
// with its line and key (issue 9). Comments, defaults and variables set to
// "" are no mistake.
func TestUnsetVarWarnings(t *testing.T) {
	f := func(data string, getenv func(string) (string, bool), want ...string) {
		t.Helper()
		cfg, err := Parse("gateway.yaml", []byte(data), getenv)
		if err != nil {
			t.Fatalf("Parse(%q): %v", data, err)
		}
		var got []string
		for _, w := range cfg.Warnings() {
			if strings.Contains(w, "is not set") {
				got = append(got, w)
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("Parse(%q) unset warnings:\n got: %q\nwant: %q", data, got, want)
		}
	}
	msg := func(name string) string {
		return "${" + name + "} is not set and has no default: it expands to an empty string (set " + name + ", or write ${" + name + ":-default})"
	}
	withProvider := func(p string) string {
		return strings.Replace(minimal, `{base_url: "http://127.0.0.1:1/v1"}`, p, 1)
	}

	f(minimal+"listen: ${UNSET}\n", env(), "gateway.yaml:6: listen: "+msg("UNSET"))
	f(minimal+"listen: ${UNSET}\n", env("UNSET", "127.0.0.1:1"))
	f(minimal+"listen: ${UNSET}\n", env("UNSET", ""))
	f(minimal+"listen: ${UNSET:-127.0.0.1:1}\n", env())
	f(minimal+"listen: ${UNSET:-}\n", env())
	// Comments are expanded too, but are not values.
	f("# set ${VAR} in the environment\n"+minimal, env())
	f(minimal+"listen: 127.0.0.1:1   # was ${OLD}\n", env())
	f(minimal+"  # - {model: n, targets: [{provider: ${P}}]}\n", env())
	// A # inside quotes or a word is no comment.
	f(withProvider(`{base_url: "http://127.0.0.1:1/v1", api_key: "a #${K}"}`), env(), "gateway.yaml:3: providers.p.api_key: "+msg("K"))
	f(withProvider(`{base_url: "http://127.0.0.1:1/v1", api_key: a#${K}}`), env(), "gateway.yaml:3: providers.p.api_key: "+msg("K"))
	// In a flow mapping: the key before the variable, counted after the
	// expansions before it on the line.
	f(withProvider(`{base_url: "${U:-http://127.0.0.1:1/v1}", api_key: ${K}}`), env(), "gateway.yaml:3: providers.p.api_key: "+msg("K"))
	f(withProvider(`{base_url: "http://127.0.0.1:1/v1", api_key: "${A}${B}"}`), env(),
		"gateway.yaml:3: providers.p.api_key: "+msg("A"), "gateway.yaml:3: providers.p.api_key: "+msg("B"))
	// Inside a longer value, on its own line, in a list.
	f(minimal+"store:\n  kind: postgres\n  url: \"postgres://${PGUSER}@h/db\"\n", env(), "gateway.yaml:8: store.url: "+msg("PGUSER"))
	f(minimal+"dedupe:\n  derive_fields:\n    - model\n    - x${F}\n", env(), "gateway.yaml:9: dedupe.derive_fields[1]: "+msg("F"))
	f(strings.Replace(minimal, "auth: {mode: none}", "auth: {mode: keys, keys: [{tenant: t, key: \"k${K}\"}]}", 1), env(), "gateway.yaml:1: auth.keys[0].key: "+msg("K"))
	// In a block scalar the key is lines above: the line alone.
	f(minimal+"store:\n  path: |-\n    ./d${D}.db\n", env(), "gateway.yaml:8: "+msg("D"))
}

// kind anthropic gets anthropic-version 2023-06-01 and max_tokens 4096
// when the file gives none (issue 12); kind openai gets neither.
func TestAnthropicDefaults(t *testing.T) {
	data := strings.Replace(minimal, "providers:\n", "providers:\n  a: {kind: anthropic, base_url: \"https://api.anthropic.com\"}\n  b: {kind: anthropic, base_url: \"https://api.anthropic.com\", anthropic_version: \"2024-01-01\", default_max_tokens: 99}\n", 1)
	cfg, err := Parse("gateway.yaml", []byte(data), env())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	f := func(name string, kind ProviderKind, version string, maxTokens int) {
		t.Helper()
		p := cfg.Providers[name]
		if p.Kind != kind || p.AnthropicVersion != version || p.DefaultMaxTokens != maxTokens {
			t.Fatalf("provider %s: kind %q, anthropic_version %q, default_max_tokens %d; want %q, %q, %d",
				name, p.Kind, p.AnthropicVersion, p.DefaultMaxTokens, kind, version, maxTokens)
		}
	}
	f("a", ProviderAnthropic, "2023-06-01", 4096)
	f("b", ProviderAnthropic, "2024-01-01", 99)
	f("p", ProviderOpenAI, "", 0)
}
