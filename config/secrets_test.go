package config

import (
	"strings"
	"testing"
)

func TestScrubber(t *testing.T) {
	cfg, err := Parse("gateway.yaml", []byte(`auth:
  keys:
    - {tenant: a, key: sk-client-aaaa}
    - {tenant: b, sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8}
  admin_key: admin-bbbb-cccc
providers:
  p: {base_url: "http://127.0.0.1:1/v1", api_key: sk-provider-dddd}
  q: {base_url: "http://127.0.0.1:1/v1", api_key: short}
store: {kind: postgres, url: "postgres://u:pg-pass-eeee@h/db"}
lock: {kind: redis, redis: {password: redis-pass-ffff}}
routes:
  - {model: m, targets: [{provider: p}, {provider: q}]}
`), env())
	if err != nil {
		t.Fatal(err)
	}
	s := NewScrubber(cfg.Secrets())
	f := func(in, want string) {
		t.Helper()
		if got := s.String(in); got != want {
			t.Fatalf("String(%q) = %q, want %q", in, got, want)
		}
		if got, changed := s.Bytes([]byte(in)); string(got) != want || changed != (in != want) {
			t.Fatalf("Bytes(%q) = %q, %v; want %q", in, got, changed, want)
		}
	}
	f("nothing secret here, short", "nothing secret here, short")
	f(`{"error":{"message":"bad key Bearer sk-provider-dddd"}}`, `{"error":{"message":"bad key Bearer [redacted]"}}`)
	f("sk-client-aaaa sk-client-aaaa admin-bbbb-cccc", "[redacted] [redacted] [redacted]")
	f("pw pg-pass-eeee and redis-pass-ffff", "pw [redacted] and [redacted]")
	f("hash 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8", "hash [redacted]")
	// Clean input is returned as is, without a copy.
	in := "a clean log line"
	if out := s.String(in); out != in || strings.Contains(out, RedactedSecret) {
		t.Fatal(out)
	}
	var none *Scrubber
	if none.String("sk-provider-dddd") != "sk-provider-dddd" {
		t.Fatal("a nil scrubber changed its input")
	}
	// A key that contains another is removed whole.
	nested := NewScrubber([]string{"sk-abcdefgh", "sk-abcdefgh-longer"})
	if got := nested.String("x sk-abcdefgh-longer y"); got != "x [redacted] y" {
		t.Fatal(got)
	}
}
