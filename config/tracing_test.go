package config

import (
	"strings"
	"testing"
)

func TestTracingValidation(t *testing.T) {
	f := func(block, want string) {
		t.Helper()
		data := minimal + block
		_, err := Parse("gateway.yaml", []byte(data), env())
		if err == nil {
			t.Fatalf("Parse(%q): expected an error containing %q", block, want)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("Parse(%q):\n got: %v\nwant: %s", block, err, want)
		}
	}
	f("tracing: {otlp_endpoint: \"grpc://h:4317\"}\n", `gateway.yaml:6: tracing.otlp_endpoint: must be an http or https URL with a host, got "grpc://h:4317"`)
	f("tracing:\n  otlp_endpoint: /v1/traces\n", `gateway.yaml:7: tracing.otlp_endpoint: must be an http or https URL with a host`)
	f("tracing:\n  otlp_endpoint: \"http://u:pw@h:4318\"\n", `gateway.yaml:7: tracing.otlp_endpoint: must not carry a query, fragment or user info (send credentials in tracing.headers), got "http://u:<redacted>@h:4318"`)
	f("tracing:\n  otlp_endpoint: http://h:4318\n  sample_ratio: 1.5\n", `gateway.yaml:8: tracing.sample_ratio: must be between 0 and 1, got 1.5`)
	f("tracing:\n  sample_ratio: -0.1\n", `gateway.yaml:7: tracing.sample_ratio: must be between 0 and 1, got -0.1`)
	f("tracing:\n  otlp_endpoint: http://h:4318\n  headers:\n    \"bad name\": x\n", `gateway.yaml:9: tracing.headers.bad name: header name "bad name" must be a token`)
	f("tracing:\n  otlp_endpoint: http://h:4318\n  headers:\n    Key: \"a\\r\\nX-Evil: 1\"\n", `gateway.yaml:9: tracing.headers.Key: header value must not contain control characters`)
	f("tracing: {otlp_endpoint: http://h:4318, sampel_ratio: 1}\n", `tracing.sampel_ratio: unknown key (did you mean "sample_ratio"?)`)
}

func TestTracingConfig(t *testing.T) {
	f := func(block, wantURL string, wantRatio float64) {
		t.Helper()
		cfg, err := Parse("gateway.yaml", []byte(minimal+block), env("COLLECTOR", "http://c:4318"))
		if err != nil {
			t.Fatalf("Parse(%q): %v", block, err)
		}
		tr := cfg.Tracing
		got := ""
		if tr.Enabled() {
			got = tr.ExportURL().String()
		}
		if got != wantURL || tr.SampleRatio != wantRatio {
			t.Fatalf("Parse(%q): export URL %q, ratio %v; want %q, %v", block, got, tr.SampleRatio, wantURL, wantRatio)
		}
	}
	f("", "", 1)
	f("tracing: {otlp_endpoint: \"${UNSET_COLLECTOR}\"}\n", "", 1) // off, with the unset-variable warning
	f("tracing: {otlp_endpoint: \"${COLLECTOR}\"}\n", "http://c:4318/v1/traces", 1)
	f("tracing: {otlp_endpoint: \"http://c:4318/\", sample_ratio: 0.1}\n", "http://c:4318/v1/traces", 0.1)
	f("tracing: {otlp_endpoint: \"https://otel.example/api/v2/spans\", sample_ratio: 0}\n", "https://otel.example/api/v2/spans", 0)
}

func TestTracingSecrets(t *testing.T) {
	cfg, err := Parse("gateway.yaml", []byte(minimal+"tracing:\n  otlp_endpoint: https://otel.example\n  headers: {Authorization: \"Bearer otel-Secret-77\"}\n"), env())
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "otel-Secret-77") || !strings.Contains(string(out), "Authorization: <redacted>") {
		t.Fatalf("gateway check printed a tracing header:\n%s", out)
	}
	if got := NewScrubber(cfg.Secrets()).String("export failed: Bearer otel-Secret-77"); strings.Contains(got, "otel-Secret-77") {
		t.Fatalf("the scrubber kept a tracing header value: %q", got)
	}
	w := mustParse(t, minimal+"tracing: {headers: {K: vvvvvvvvvv}}\n").Warnings()
	if !strings.Contains(strings.Join(w, "\n"), "tracing.otlp_endpoint is empty: tracing is off") {
		t.Fatalf("warnings %q: want the one about headers without an endpoint", w)
	}
}

func mustParse(t *testing.T, data string) *Config {
	t.Helper()
	cfg, err := Parse("gateway.yaml", []byte(data), env())
	if err != nil {
		t.Fatalf("Parse(%q): %v", data, err)
	}
	return cfg
}
