package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
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
	withAuth := func(auth string) string {
		return strings.Replace(minimal, "auth: {mode: none}\n", auth, 1)
	}
	const hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"

	f(minimal+"listen: 8080\n", `gateway.yaml:6: listen: must be host:port, got "8080"`)
	f(minimal+"shutdown_timeout: -1s\n", `shutdown_timeout: must be a positive duration, got -1s`)
	f(minimal+"shutdown_delay: -1s\n", `shutdown_delay: must not be negative, got -1s`)
	f(minimal+"read_header_timeout: 0s\n", `gateway.yaml:6: read_header_timeout: must be a positive duration, got 0s`)
	f(minimal+"read_timeout: -5s\n", `gateway.yaml:6: read_timeout: must be a positive duration, got -5s`)
	f(minimal+"write_timeout: 0s\n", `gateway.yaml:6: write_timeout: must be a positive duration, got 0s`)

	// auth
	f(withAuth("auth: {mode: open}\n"), `gateway.yaml:1: auth.mode: must be one of keys, none, got "open"`)
	f(withAuth(""), `gateway.yaml: auth.keys: at least one key is required when auth.mode is keys`)
	f(withAuth("auth:\n  keys:\n    - tenant: a\n"), `gateway.yaml:3: auth.keys[0]: needs key or sha256`)
	f(withAuth("auth:\n  keys:\n    - key: k\n"), `gateway.yaml:3: auth.keys[0].tenant: must not be empty`)
	f(withAuth("auth:\n  keys:\n    - {tenant: a, key: k, sha256: "+hash+"}\n"), `auth.keys[0]: set either key or sha256, not both`)
	f(withAuth("auth:\n  keys:\n    - {tenant: a, sha256: abc}\n"), `gateway.yaml:3: auth.keys[0].sha256: must be 64 hex characters`)
	f(withAuth("auth:\n  keys:\n    - {tenant: a, key: k}\n    - {tenant: a, key: k}\n"), `gateway.yaml:4: auth.keys[1]: duplicate key: same as auth.keys[0] (tenant "a")`)
	// A raw key and the hash of the same key are the same key.
	f(withAuth("auth:\n  keys:\n    - {tenant: a, key: password}\n    - {tenant: b, sha256: "+strings.ToUpper(hash)+"}\n"), `auth.keys[1]: duplicate key: same as auth.keys[0] (tenant "a")`)

	// store and lock
	f(minimal+"store: {kind: sqlite}\n", `store.kind: must be one of embedded, postgres, got "sqlite"`)
	f(minimal+"store: {kind: postgres}\n", `gateway.yaml:6: store.url: is required when store.kind is postgres`)
	f(minimal+"store: {kind: postgres, url: \"${DATABASE_URL}\"}\n", `store.url: is required`)
	f(minimal+"store: {migrate: yes}\n", `store.migrate: must be one of auto, manual, got "yes"`)
	f(minimal+"lock: {kind: etcd}\n", `lock.kind: must be one of local, redis, got "etcd"`)
	f(minimal+"lock: {kind: redis, redis: {addrs: []}}\n", `lock.redis.addrs: at least one address is required when lock.kind is redis`)
	f(minimal+"lock: {kind: redis, redis: {addrs: [localhost]}}\n", `lock.redis.addrs[0]: must be host:port, got "localhost"`)

	// dedupe
	f(minimal+"dedupe: {derive: always}\n", `dedupe.derive: must be one of body, retries, off, got "always"`)
	f(minimal+"dedupe: {on_store_error: ignore}\n", `dedupe.on_store_error: must be one of fail, open, got "ignore"`)
	f(minimal+"dedupe: {lease: 500us}\n", `dedupe.lease: must be at least 1ms, got 500µs`)
	f(minimal+"dedupe: {key_ttl: -1h}\n", `dedupe.key_ttl: must be a positive duration, got -1h0m0s`)
	f(minimal+"dedupe: {wait_timeout: 0s}\n", `dedupe.wait_timeout: must be a positive duration`)
	f(minimal+"dedupe: {reap_batch: -5}\n", `dedupe.reap_batch: must be a positive number, got -5`)

	// log
	f(minimal+"log: {level: trace}\n", `log.level: must be one of debug, info, warn, error, got "trace"`)
	f(minimal+"log: {format: xml}\n", `log.format: must be one of json, text, got "xml"`)

	// providers
	f(strings.Replace(minimal, "{base_url:", "{kind: claude, base_url:", 1), `gateway.yaml:3: providers.p.kind: must be one of openai, anthropic, got "claude"`)
	// kind anthropic (issue 12): its keys are checked, and are refused on
	// another kind, where they would be silently ignored.
	const anthropic = "auth: {mode: none}\nproviders:\n  a:\n    kind: anthropic\n    base_url: \"http://127.0.0.1:1\"\n"
	const anthropicRoute = "routes:\n  - {model: m, targets: [{provider: a}]}\n"
	f(anthropic+"    anthropic_version: \"2023\"\n"+anthropicRoute, `gateway.yaml:6: providers.a.anthropic_version: must be a date such as 2023-06-01, got "2023"`)
	f(anthropic+"    anthropic_version: \"\"\n"+anthropicRoute, `gateway.yaml:6: providers.a.anthropic_version: must be a date such as 2023-06-01, got ""`)
	f(anthropic+"    default_max_tokens: 0\n"+anthropicRoute, `gateway.yaml:6: providers.a.default_max_tokens: must be a positive number, got 0`)
	f(anthropic+"    default_max_tokens: -5\n"+anthropicRoute, `gateway.yaml:6: providers.a.default_max_tokens: must be a positive number, got -5`)
	f(anthropic+"    default_max_tokens: many\n"+anthropicRoute, `gateway.yaml:6: providers.a.default_max_tokens`)
	f(anthropic+"    anthropic-version: \"2023-06-01\"\n"+anthropicRoute, `gateway.yaml:6: providers.a.anthropic-version: unknown key`)
	f(strings.Replace(minimal, "{base_url:", "{anthropic_version: \"2023-06-01\", base_url:", 1), `gateway.yaml:3: providers.p.anthropic_version: is only for kind anthropic (kind is openai)`)
	f(strings.Replace(minimal, "{base_url:", "{default_max_tokens: 100, base_url:", 1), `gateway.yaml:3: providers.p.default_max_tokens: is only for kind anthropic (kind is openai)`)
	f(strings.Replace(minimal, `"http://127.0.0.1:1/v1"`, "ftp://h/x", 1), `gateway.yaml:3: providers.p.base_url: must be an http or https URL with a host, got "ftp://h/x"`)
	f(strings.Replace(minimal, `"http://127.0.0.1:1/v1"`, "/v1", 1), `providers.p.base_url: must be an http or https URL with a host`)
	f(strings.Replace(minimal, `{base_url: "http://127.0.0.1:1/v1"}`, "{}", 1), `providers.p.base_url: is required`)
	f(strings.Replace(minimal, `{base_url: "http://127.0.0.1:1/v1"}`, "", 1), `gateway.yaml:3: providers.p: is empty`)
	f(strings.Replace(minimal, "{base_url:", "{timeout: 0s, base_url:", 1), `providers.p.timeout: must be a positive duration`)
	f(strings.Replace(minimal, "{base_url:", "{max_conns: -1, base_url:", 1), `providers.p.max_conns: must be a positive number, got -1`)
	f(strings.Replace(minimal, "  p: {", "  \"a b\": {", 1), `providers.a b: provider names may contain only letters, digits, _ and -`)

	// routes
	f(strings.Replace(minimal, "  - {model: m, targets: [{provider: p}]}\n", "", 1), `routes: at least one route is required`)
	f(strings.Replace(minimal, "{model: m,", "{model: \"\",", 1), `gateway.yaml:5: routes[0].model: must not be empty`)
	f(strings.Replace(minimal, "{model: m,", "{model: 'a\"b',", 1), `routes[0].model: must not contain quotes`)
	f(minimal+"  - {model: m, targets: [{provider: p}]}\n", `gateway.yaml:6: routes[1].model: duplicate route for model "m" (first at routes[0])`)
	f(strings.Replace(minimal, "targets: [{provider: p}]", "targets: []", 1), `gateway.yaml:5: routes[0].targets: at least one target is required`)
	f(strings.Replace(minimal, "{model: m, targets: [{provider: p}]}", "{model: m}", 1), `gateway.yaml:5: routes[0].targets: at least one target is required`)
	f(strings.Replace(minimal, "{provider: p}", "{provider: q}", 1), `gateway.yaml:5: routes[0].targets[0].provider: unknown provider "q" (have: p)`)
	f(strings.Replace(minimal, "{provider: p}", "{model: x}", 1), `routes[0].targets[0].provider: must not be empty`)
	f(strings.Replace(minimal, "{model: m,", "{model: m, fallback_on: [connect, 6xx],", 1), `routes[0].fallback_on[1]: must be connect, timeout, 4xx, 5xx or an HTTP status such as 429, got "6xx"`)
	f(strings.Replace(minimal, "{model: m,", "{model: m, fallback_on: [4290],", 1), `routes[0].fallback_on[0]: must be connect`)
	f(strings.Replace(minimal, "{model: m,", "{model: m, fallback_on: [99],", 1), `routes[0].fallback_on[0]: must be connect`)
	f(strings.Replace(minimal, "  - {model", "  - null\n  - {model", 1), `gateway.yaml:5: routes[0]: is empty`)
	// on_stream_cut (issue 15) is a mode, not free text.
	f(strings.Replace(minimal, "{model: m,", "{model: m, on_stream_cut: retry,", 1), `gateway.yaml:5: routes[0].on_stream_cut: must be one of error, continue, got "retry"`)
	f(strings.Replace(minimal, "{model: m,", "{model: m, on_stream_cut: \"\",", 1), `gateway.yaml:5: routes[0].on_stream_cut: must be one of error, continue, got ""`)

	// pricing
	f(minimal+"pricing:\n  gpt-4o: {prompt_per_1m: -1, completion_per_1m: 2}\n", `gateway.yaml:7: pricing.gpt-4o.prompt_per_1m: must not be negative, got -1`)
}

func TestValidateAccepts(t *testing.T) {
	f := func(data string) {
		t.Helper()
		if _, err := Parse("gateway.yaml", []byte(data), env()); err != nil {
			t.Fatalf("Parse(%q): unexpected error: %v", data, err)
		}
	}
	f(minimal)
	f(minimal + "listen: :8080\n")
	f(strings.Replace(minimal, "auth: {mode: none}", "auth: {keys: [{tenant: a, sha256: 5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8}, {tenant: a, key: other}]}", 1))
	f(minimal + "store: {kind: postgres, url: \"postgres://u@h/db\"}\nlock: {kind: redis}\n")
	f(strings.Replace(minimal, "{model: m,", "{model: m, fallback_on: [CONNECT, 4XX, 503, 400],", 1))
	f(minimal + "pricing:\n  gpt-4o: {prompt_per_1m: 2.5, completion_per_1m: 10}\n")
	f(minimal + "dedupe: {derive: off, derive_fields: [model, messages], enabled: false}\n")
	f(strings.Replace(minimal, "{model: m,", "{model: m, on_stream_cut: continue,", 1))
	f(strings.Replace(minimal, "{model: m,", "{model: m, on_stream_cut: error,", 1))
	// kind anthropic with its defaults, and with every key written out.
	f(strings.Replace(minimal, "{base_url: \"http://127.0.0.1:1/v1\"}", "{kind: anthropic, base_url: \"https://api.anthropic.com\"}", 1))
	f(strings.Replace(minimal, "{base_url: \"http://127.0.0.1:1/v1\"}", "{kind: anthropic, base_url: \"https://api.anthropic.com\", anthropic_version: \"2024-10-22\", default_max_tokens: 1024}", 1))
	f(strings.Replace(minimal, "{base_url:", "{kind: openai, base_url:", 1))
	// YAML anchors and merge keys are followed like plain mappings.
	f(strings.Replace(minimal, "  p: {", "  base: &base {timeout: 5s, base_url: \"http://127.0.0.1:2\"}\n  q: {<<: *base}\n  p: {", 1) + "  - {model: n, targets: [{provider: q}, {provider: base}]}\n")
}

func TestWarnings(t *testing.T) {
	f := func(data string, want ...string) {
		t.Helper()
		cfg, err := Parse("gateway.yaml", []byte(data), env())
		if err != nil {
			t.Fatalf("Parse(%q): %v", data, err)
		}
		got := cfg.Warnings()
		if len(got) != len(want) {
			t.Fatalf("Warnings(%q):\n got: %q\nwant: %q", data, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("Warnings(%q)[%d]:\n got: %q\nwant: %q", data, i, got[i], want[i])
			}
		}
	}
	const keyed = "auth: {keys: [{tenant: a, key: k}], admin_key: adm}\n" +
		"providers:\n  p: {base_url: \"https://h/v1\", api_key: sk}\n" +
		"routes:\n  - {model: m, targets: [{provider: p}]}\n"
	f(keyed)
	f(strings.Replace(keyed, ", api_key: sk", "", 1),
		"providers.p.api_key is empty: requests skip p (a route with no other target answers 502 no_usable_target)")
	f(strings.Replace(keyed, ", admin_key: adm", "", 1),
		"auth.admin_key is empty: the admin API is disabled")
	f(keyed+"debug: {pprof: true}\n",
		"debug.pprof is on: /debug/pprof/ serves profiles to the admin key (profiling costs CPU while it runs)")
	f(strings.Replace(keyed, ", admin_key: adm", "", 1)+"debug: {pprof: true}\n",
		"auth.admin_key is empty: the admin API is disabled",
		"debug.pprof is on without auth.admin_key: /debug/pprof/ answers loopback clients only")
	f(keyed+"  - {model: n, fallback_on: [], targets: [{provider: p}, {provider: p}]}\n",
		"routes[1].fallback_on is empty: only the first of 2 targets is ever used")
	f(strings.Replace(keyed, "providers:\n", "providers:\n  unused: {base_url: \"https://u/v1\", api_key: x}\n", 1),
		"providers.unused is not used by any route")
	f(strings.Replace(keyed, "https://h/v1", "http://h/v1", 1),
		"providers.p.base_url uses http: the api key is sent unencrypted")
	f(strings.Replace(keyed, "https://h/v1", "http://127.0.0.1:9/v1", 1))
	f(strings.Replace(keyed, "{base_url: \"https://h/v1\"", "{kind: anthropic, base_url: \"https://h/v1/\"", 1),
		"providers.p.base_url ends in /v1: kind anthropic calls {base_url}/v1/messages, so requests go to .../v1/v1/messages")
	f(strings.Replace(keyed, "{base_url: \"https://h/v1\"", "{kind: anthropic, base_url: \"https://h\"", 1))
	f(strings.Replace(keyed, "api_key: sk}", "api_key: sk, timeout: 10s, first_byte_timeout: 30s}", 1),
		"providers.p.first_byte_timeout (30s) exceeds timeout (10s): timeout applies first")
	f(keyed+"dedupe: {wait_timeout: 1h}\n",
		"dedupe.wait_timeout (1h0m0s) exceeds dedupe.max_processing (10m0s): no task lives that long")
	f(strings.Replace(keyed, "auth: {keys: [{tenant: a, key: k}], admin_key: adm}", "auth: {mode: none, keys: [{tenant: a}], admin_key: adm}", 1)+"listen: 0.0.0.0:8080\n",
		"auth.keys are ignored because auth.mode is none",
		"auth.mode is none and listen 0.0.0.0:8080 is not a loopback address: anyone who reaches it spends your provider credits")
}

// first_byte_timeout defaults from timeout; a bad timeout is reported once,
// on its own line, never as a first_byte_timeout the file does not contain
// (issue 9).
func TestFirstByteTimeoutDefault(t *testing.T) {
	f := func(provider, wantErr string, want time.Duration) {
		t.Helper()
		data := strings.Replace(minimal, `{base_url: "http://127.0.0.1:1/v1"}`, provider, 1)
		cfg, err := Parse("gateway.yaml", []byte(data), env())
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("Parse(%q) = %v, want an error containing %q", provider, err, wantErr)
			}
			if strings.Contains(err.Error(), "first_byte_timeout") {
				t.Fatalf("Parse(%q) reports a first_byte_timeout the file does not have:\n%v", provider, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Parse(%q): %v", provider, err)
		}
		if got := cfg.Providers["p"].FirstByteTimeout; got != want {
			t.Fatalf("Parse(%q): first_byte_timeout = %s, want %s", provider, got, want)
		}
	}
	const url = `base_url: "http://127.0.0.1:1/v1"`
	f("{"+url+"}", "", 30*time.Second)
	f("{"+url+", timeout: 10s}", "", 10*time.Second)
	f("{"+url+", timeout: 2m}", "", 30*time.Second)
	f("{"+url+", timeout: 10s, first_byte_timeout: 5s}", "", 5*time.Second)
	f("{"+url+", timeout: 0s}", "gateway.yaml:3: providers.p.timeout: must be a positive duration, got 0s", 0)
	f("{"+url+", timeout: -5s}", "gateway.yaml:3: providers.p.timeout: must be a positive duration, got -5s", 0)
	f("{"+url+", timeout: 30}", `gateway.yaml:3: providers.p.timeout: expected a duration`, 0)
}
