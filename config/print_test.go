package config

import (
	"strings"
	"testing"
)

func TestRedactedHidesSecrets(t *testing.T) {
	data := `auth:
  keys:
    - {tenant: a, key: "${CLIENT_KEY}"}
    - {tenant: b, sha256: ${CLIENT_HASH}}
  admin_key: ${ADMIN_KEY}
store:
  kind: postgres
  url: ${DATABASE_URL}
lock:
  kind: redis
  redis: {addrs: [127.0.0.1:6379], password: "${REDIS_PASSWORD}"}
providers:
  p: {base_url: "https://proxyuser:S3cretProxyPass@h.example/v1", api_key: "${API_KEY}"}
routes:
  - {model: m, targets: [{provider: p}]}
`
	secrets := map[string]string{
		"CLIENT_KEY":     "sk-client-Zq81",
		"CLIENT_HASH":    "aaaabbbbccccddddeeeeffff00001111222233334444555566667777888899aa",
		"ADMIN_KEY":      "adm-Xy77",
		"DATABASE_URL":   "postgres://gw:PgPass-91@db.example:5432/gw?sslmode=require",
		"REDIS_PASSWORD": "rd-Pw-42",
		"API_KEY":        "sk-upstream-Lk09",
	}
	var kv []string
	for k, v := range secrets {
		kv = append(kv, k, v)
	}
	cfg, err := Parse("gateway.yaml", []byte(data), env(kv...))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatalf("Redacted: %v", err)
	}
	s := string(out)
	for _, secret := range []string{"sk-client-Zq81", "aaaabbbbcccc", "adm-Xy77", "PgPass-91", "rd-Pw-42", "sk-upstream-Lk09", "S3cretProxyPass"} {
		if strings.Contains(s, secret) {
			t.Errorf("Redacted output leaks %q:\n%s", secret, s)
		}
	}
	for _, want := range []string{
		"admin_key: <redacted>",
		"key: <redacted>",
		"sha256: <redacted>",
		"password: <redacted>",
		"api_key: <redacted>",
		"url: postgres://gw:<redacted>@db.example:5432/gw?sslmode=require",
		"base_url: https://proxyuser:<redacted>@h.example/v1",
		"lease: 30s",
		"key_prefix: 'gw:'",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Redacted output lacks %q:\n%s", want, s)
		}
	}
	// The config itself keeps its secrets.
	if cfg.Providers["p"].APIKey != "sk-upstream-Lk09" || cfg.Auth.Keys[0].Key != "sk-client-Zq81" || cfg.Store.URL != secrets["DATABASE_URL"] {
		t.Fatal("Redacted modified the config")
	}
}

// The printed config uses the same keys as the input, so it parses back.
func TestRedactedRoundTrip(t *testing.T) {
	data := strings.Replace(minimal, "auth: {mode: none}", "auth: {keys: [{tenant: a, key: secret}], admin_key: adm}", 1) +
		"pricing:\n  gpt-4o: {prompt_per_1m: 2.5, completion_per_1m: 10}\n"
	cfg, err := Parse("gateway.yaml", []byte(data), env())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatalf("Redacted: %v", err)
	}
	back, err := Parse("printed.yaml", out, env())
	if err != nil {
		t.Fatalf("the printed config does not parse back: %v\n%s", err, out)
	}
	if back.Dedupe.Lease != cfg.Dedupe.Lease || back.Routes[0].Targets[0].Provider != "p" || back.Pricing["gpt-4o"].CompletionPer1M != 10 {
		t.Fatalf("round trip changed the config:\n%s", out)
	}
}

func TestRedactURL(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := redactURL(in); got != want {
			t.Fatalf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
	f("https://api.openai.com/v1", "https://api.openai.com/v1")
	f("https://u:p@h/v1", "https://u:<redacted>@h/v1")
	f("https://token@h/v1", "https://<redacted>@h/v1")
	f("https://h/v1?key=abc&alt=sse", "https://h/v1?alt=sse&key=<redacted>")
	f("postgres://h/db?password=abc", "postgres://h/db?password=<redacted>")
	f("127.0.0.1:6379", "127.0.0.1:6379")
	f("", "")
}

func TestRedactDSN(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := redactDSN(in); got != want {
			t.Fatalf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
	f("", "")
	f("postgres://u:p@h:5432/db", "postgres://u:<redacted>@h:5432/db")
	f("postgres://h/db?sslmode=disable", "postgres://h/db?sslmode=disable")
	f("host=h user=u password=secret dbname=d", "host=h user=u password=<redacted> dbname=d")
	f("host=h password = 'se cret\\' x' dbname=d", "host=h password = <redacted> dbname=d")
	f("host=h sslpassword=abc", "host=h sslpassword=<redacted>")
	// A URL that cannot be parsed but holds userinfo is hidden entirely.
	f("postgres://u:p%zz@h/db", "<redacted>")
}
