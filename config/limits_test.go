package config

import (
	"strings"
	"testing"
)

// Per-key limits are validated with their line; 0 means unlimited.
func TestClientKeyLimits(t *testing.T) {
	keys := func(item string) string {
		return strings.Replace(minimal, "auth: {mode: none}\n", "auth:\n  keys:\n    - "+item+"\n", 1)
	}
	bad := func(data, want string) {
		t.Helper()
		_, err := Parse("gateway.yaml", []byte(data), env())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Parse(%q):\n got: %v\nwant: %s", data, err, want)
		}
	}
	bad(keys("{tenant: a, key: k1, max_inflight: -1}"), `gateway.yaml:3: auth.keys[0].max_inflight: must not be negative (0 = unlimited), got -1`)
	bad(keys("{tenant: a, key: k1, requests_per_minute: -5}"), `gateway.yaml:3: auth.keys[0].requests_per_minute: must not be negative (0 = unlimited), got -5`)
	bad(keys("{tenant: a, key: k1, requests_per_minute: 1.5}"), `gateway.yaml:3: auth.keys[0].requests_per_minute: expected an integer, got "1.5"`)
	bad(keys("{tenant: a, key: k1, max_inflight: many}"), `auth.keys[0].max_inflight: expected an integer`)
	bad(keys(`{tenant: "a\"b", key: k1}`), `gateway.yaml:3: auth.keys[0].tenant: must not contain quotes, backslashes or control characters`)
	bad(keys("{tenant: a, key: k1, max_inflght: 3}"), `auth.keys[0].max_inflght: unknown key (did you mean "max_inflight"?)`)

	cfg, err := Parse("gateway.yaml", []byte(keys("{tenant: a, key: k1, max_inflight: 4, requests_per_minute: 600}\n    - {tenant: b, key: k2}")), env())
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Auth.Keys[0], cfg.Auth.Keys[1]
	if a.MaxInflight != 4 || a.RequestsPerMinute != 600 || b.MaxInflight != 0 || b.RequestsPerMinute != 0 {
		t.Fatalf("keys = %+v", cfg.Auth.Keys)
	}
	// `gateway check` shows the limits next to the redacted key.
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); !strings.Contains(s, "max_inflight: 4") || !strings.Contains(s, "requests_per_minute: 600") || strings.Contains(s, "k1") {
		t.Fatalf("Redacted:\n%s", s)
	}
}
