package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfigFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Acceptance (issue 2, #7): check reports every mistake with its line.
func TestCheckReportsEveryMistakeWithItsLine(t *testing.T) {
	path := writeConfigFile(t, `listen: 127.0.0.1:8080
auth:
  mode: keys
  keys:
    - {tenant: a, key: sk-client-secret}
  admin_key: admin-secret
lisen: 127.0.0.1:9090
providers:
  p1: {base_url: "http://127.0.0.1:9/v1", api_key: sk-upstream-secret}
dedupe:
  derive: sometimes
routes:
  - model: m
    targets: [{provider: nope}]
store: {kind: embedded, path: ./gw.db}
`)
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-config", path}, &out, &errOut); code != 1 {
		t.Fatalf("check exit code = %d, want 1\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	msg := errOut.String()
	for _, want := range []string{
		path + `:7: lisen: unknown key`,
		path + `:11: dedupe.derive: must be one of body, retries, off, got "sometimes"`,
		path + `:14: routes[0].targets[0].provider: unknown provider "nope"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("check output lacks %q:\n%s", want, msg)
		}
	}
	if out.Len() != 0 {
		t.Errorf("check printed a config for an invalid file:\n%s", out.String())
	}
}

func TestCheckPrintsValidConfigWithoutSecrets(t *testing.T) {
	secrets := []string{"sk-client-secret-123", "admin-secret-456", "sk-upstream-secret-789", "redis-pass-000"}
	path := writeConfigFile(t, `listen: 127.0.0.1:8080
auth:
  mode: keys
  keys:
    - {tenant: team-a, key: `+secrets[0]+`}
  admin_key: `+secrets[1]+`
lock:
  kind: redis
  redis: {addrs: [127.0.0.1:6379], password: `+secrets[3]+`}
providers:
  p1: {base_url: "http://127.0.0.1:9/v1", api_key: `+secrets[2]+`}
routes:
  - model: writer
    targets: [{provider: p1, model: real-model}]
store: {kind: embedded, path: ./gw.db}
`)
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-config", path}, &out, &errOut); code != 0 {
		t.Fatalf("check exit code = %d, want 0\nstderr: %s", code, errOut.String())
	}
	all := out.String() + errOut.String()
	for _, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("check output shows the secret %q:\n%s", s, all)
		}
	}
	// The printed config is the real one, not an empty document.
	for _, want := range []string{"writer", "real-model", "team-a", "http://127.0.0.1:9/v1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCheckMissingFile(t *testing.T) {
	var out, errOut bytes.Buffer
	missing := filepath.Join(t.TempDir(), "absent.yaml")
	if code := run([]string{"check", "-config", missing}, &out, &errOut); code != 1 {
		t.Fatalf("exit code = %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), missing) {
		t.Fatalf("error does not name the file: %s", errOut.String())
	}
}

func TestVersionCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit code = %d, want 0", code)
	}
	if got := strings.TrimSpace(out.String()); got != "gateway "+version || version == "" {
		t.Fatalf("version output = %q, want %q", got, "gateway "+version)
	}
	out.Reset()
	if code := run([]string{"no-such-command"}, &out, &errOut); code != 2 {
		t.Fatalf("unknown command exit code = %d, want 2", code)
	}
}

// `listen: ${UNSET}` used to pass check silently with the built-in default
// (issue 9): check names the variable and its key, and still succeeds.
func TestCheckWarnsAboutUnsetVariables(t *testing.T) {
	const name = "GATEWAY_TEST_SURELY_UNSET_LISTEN"
	if _, ok := os.LookupEnv(name); ok {
		t.Fatalf("%s must not be set for this test", name)
	}
	path := writeConfigFile(t, `# ${`+name+`} in a comment is no mistake
listen: ${`+name+`}
auth: {mode: none}
providers:
  p: {base_url: "http://127.0.0.1:9/v1", api_key: k}
routes:
  - {model: m, targets: [{provider: p}]}
`)
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-config", path}, &out, &errOut); code != 0 {
		t.Fatalf("check exit code = %d, want 0\nstderr: %s", code, errOut.String())
	}
	want := "warning: " + path + ":2: listen: ${" + name + "} is not set and has no default"
	if got := errOut.String(); !strings.Contains(got, want) || strings.Count(got, "is not set") != 1 {
		t.Fatalf("check stderr lacks %q (once: the comment is no mistake):\n%s", want, got)
	}
	if !strings.Contains(out.String(), "listen: 127.0.0.1:8080") {
		t.Fatalf("check does not print the effective listen:\n%s", out.String())
	}
}

// Acceptance (issue 12, #2): check accepts kind anthropic with its keys,
// prints them with the defaults filled in, and rejects their mistakes
// with line numbers.
func TestCheckAnthropicProviders(t *testing.T) {
	good := writeConfigFile(t, `auth: {mode: none}
providers:
  claude:
    kind: anthropic
    base_url: https://api.anthropic.com
    api_key: sk-ant-secret-1
  claude-pinned:
    kind: anthropic
    base_url: https://api.anthropic.com
    api_key: sk-ant-secret-2
    anthropic_version: "2024-10-22"
    default_max_tokens: 1024
  openai: {base_url: "https://api.openai.com/v1", api_key: sk-openai-secret}
routes:
  - model: writer
    targets: [{provider: claude, model: claude-sonnet-4-5}, {provider: claude-pinned}, {provider: openai, model: gpt-4o-mini}]
store: {kind: embedded, path: ./gw.db}
`)
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-config", good}, &out, &errOut); code != 0 {
		t.Fatalf("check exit code = %d, want 0\nstderr: %s", code, errOut.String())
	}
	for _, want := range []string{"kind: anthropic", `anthropic_version: "2023-06-01"`, "default_max_tokens: 4096", `anthropic_version: "2024-10-22"`, "default_max_tokens: 1024"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed config lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String()+errOut.String(), "sk-ant-secret") {
		t.Errorf("check printed an anthropic key:\n%s%s", out.String(), errOut.String())
	}

	bad := writeConfigFile(t, `auth: {mode: none}
providers:
  claude:
    kind: anthropic
    base_url: https://api.anthropic.com
    anthropic_version: june
    default_max_tokens: -1
  openai:
    kind: openai
    base_url: "https://api.openai.com/v1"
    default_max_tokens: 100
  other: {kind: antropic, base_url: "https://h"}
routes:
  - model: writer
    targets: [{provider: claude}, {provider: openai}, {provider: other}]
store: {kind: embedded, path: ./gw.db}
`)
	out.Reset()
	errOut.Reset()
	if code := run([]string{"check", "-config", bad}, &out, &errOut); code != 1 {
		t.Fatalf("check exit code = %d, want 1\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	for _, want := range []string{
		bad + `:6: providers.claude.anthropic_version: must be a date such as 2023-06-01, got "june"`,
		bad + `:7: providers.claude.default_max_tokens: must be a positive number, got -1`,
		bad + `:11: providers.openai.default_max_tokens: is only for kind anthropic (kind is openai)`,
		bad + `:12: providers.other.kind: must be one of openai, anthropic, got "antropic"`,
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, errOut.String())
		}
	}
}

// The tracing block (issue 16): every mistake with its line, and the
// exporter's headers printed redacted.
func TestCheckTracing(t *testing.T) {
	const base = `auth: {mode: none}
providers:
  p: {base_url: "http://127.0.0.1:9/v1", api_key: sk-upstream-secret}
routes:
  - {model: m, targets: [{provider: p}]}
store: {kind: embedded, path: ./gw.db}
`
	path := writeConfigFile(t, base+`tracing:
  otlp_endpoint: "collector:4318"
  sample_ratio: 2
  headers: {"X Key": v}
`)
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-config", path}, &out, &errOut); code != 1 {
		t.Fatalf("check exit code = %d, want 1\nstderr: %s", code, errOut.String())
	}
	for _, want := range []string{
		path + `:8: tracing.otlp_endpoint: must be an http or https URL with a host, got "collector:4318"`,
		path + `:9: tracing.sample_ratio: must be between 0 and 1, got 2`,
		path + `:10: tracing.headers.X Key: header name "X Key" must be a token`,
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, errOut.String())
		}
	}
	path = writeConfigFile(t, base+"tracing: {otlp_endpoint: \"http://127.0.0.1:4318\", sample_ratio: 0.1, headers: {Authorization: \"Bearer otel-key-secret-1\"}}\n")
	out.Reset()
	errOut.Reset()
	if code := run([]string{"check", "-config", path}, &out, &errOut); code != 0 {
		t.Fatalf("check exit code = %d, want 0\nstderr: %s", code, errOut.String())
	}
	if s := out.String(); strings.Contains(s, "otel-key-secret-1") || !strings.Contains(s, "sample_ratio: 0.1") || !strings.Contains(s, "Authorization: <redacted>") {
		t.Fatalf("check printed:\n%s", s)
	}
}
