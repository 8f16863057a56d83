package config

import (
	"strings"
	"testing"
)

func TestRestartOnlyChanges(t *testing.T) {
	parse := func(extra string) *Config {
		t.Helper()
		cfg, err := Parse("gateway.yaml", []byte(minimal+extra), env())
		if err != nil {
			t.Fatalf("Parse(%q): %v", extra, err)
		}
		return cfg
	}
	f := func(running, reloaded string, want ...string) {
		t.Helper()
		got := RestartOnlyChanges(parse(running), parse(reloaded))
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("RestartOnlyChanges(%q -> %q) = %q, want %q", running, reloaded, got, want)
		}
	}
	f("", "")
	// Keys a reload applies are not reported.
	f("", "dedupe: {derive: retries, derive_window: 1m, require_key: true, on_store_error: open, detach_on_disconnect: false, derive_fields: [model]}\n")
	f("", "pricing:\n  m: {prompt_per_1m: 1, completion_per_1m: 2}\n")
	f("", "debug: {pprof: true}\n")
	f("", "  - {model: n, fallback_on: [], targets: [{provider: p}]}\n")
	// A default written out is no change.
	f("", "listen: 127.0.0.1:8080\ndedupe: {lease: 30s, enabled: true}\nlog: {level: info}\n")
	f("listen: 127.0.0.1:9000\n", "listen: 127.0.0.1:9000\n")

	f("", "listen: 127.0.0.1:9000\n", "listen")
	f("", "max_body_bytes: 1024\nshutdown_timeout: 5s\n", "max_body_bytes", "shutdown_timeout")
	f("", "read_header_timeout: 1s\nread_timeout: 2s\nwrite_timeout: 3s\n", "read_header_timeout", "read_timeout", "write_timeout")
	f("", "dedupe: {enabled: false}\n", "dedupe.enabled")
	f("dedupe: {enabled: false}\n", "", "dedupe.enabled")
	f("", "dedupe: {lease: 10s, key_ttl: 1h, max_processing: 1m, on_in_progress: reject, wait_timeout: 10s, max_record_bytes: 10, reap_interval: 5s, reap_batch: 10}\n",
		"dedupe.key_ttl", "dedupe.lease", "dedupe.max_processing", "dedupe.on_in_progress", "dedupe.wait_timeout",
		"dedupe.max_record_bytes", "dedupe.reap_interval", "dedupe.reap_batch")
	f("", "store: {kind: postgres, url: \"postgres://u:secret@h/db\", migrate: manual}\n", "store.kind", "store.url", "store.migrate")
	f("", "store: {path: ./other.db}\n", "store.path")
	f("", "lock: {kind: redis, redis: {addrs: [h:6379], master_name: mm, password: pw, db: 2, key_prefix: x}}\n",
		"lock.kind", "lock.redis.addrs", "lock.redis.master_name", "lock.redis.password", "lock.redis.db", "lock.redis.key_prefix")
	f("", "log: {level: debug, format: text}\n", "log.level", "log.format")
	f("", "tracing: {otlp_endpoint: http://c:4318, sample_ratio: 0.5, headers: {K: v}}\n",
		"tracing.otlp_endpoint", "tracing.sample_ratio", "tracing.headers")
	// Both kinds at once: only the restart-only ones are named.
	f("", "listen: 127.0.0.1:9000\ndedupe: {derive: off, lease: 5s}\n", "listen", "dedupe.lease")
}

// Every config key is either applied by a reload or listed as restart-only,
// so that a new key cannot silently miss the warning.
func TestRestartOnlyCoversEveryKey(t *testing.T) {
	listed := map[string]bool{}
	for _, k := range restartOnly {
		listed[k.key] = true
	}
	reloadable := map[string]bool{
		"auth": true, "providers": true, "routes": true, "pricing": true, "resilience": true,
		"dedupe.derive": true, "dedupe.derive_fields": true, "dedupe.derive_window": true,
		"dedupe.require_key": true, "dedupe.on_store_error": true, "dedupe.detach_on_disconnect": true,
		"debug.pprof": true,
	}
	cfg, err := Parse("gateway.yaml", []byte(minimal), env())
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	// The printed config has every key; walk its paths down to the
	// sections that reload or restart as a whole.
	var stack []string
	for _, line := range strings.Split(string(out), "\n") {
		trimmed := strings.TrimLeft(line, " ")
		key, _, ok := strings.Cut(trimmed, ":")
		if !ok || strings.HasPrefix(trimmed, "-") {
			continue
		}
		depth := (len(line) - len(trimmed)) / 2
		if depth > len(stack) {
			continue // inside a list item
		}
		stack = append(stack[:depth], key)
		path := strings.Join(stack, ".")
		covered := false
		for p := path; p != ""; p = parentPath(p) {
			if listed[p] || reloadable[p] {
				covered = true
			}
		}
		if !covered && !strings.HasSuffix(trimmed, ":") {
			t.Errorf("key %s is neither reloadable nor in restartOnly", path)
		}
	}
}
