//go:build notracing

package main

import (
	"strings"
	"testing"

	"github.com/idemgw/gateway/config"
)

// A gateway built with -tags notracing does not start on a config with a
// tracing block: the operator asked for spans this binary cannot send.
func TestNotracingRefusesToStart(t *testing.T) {
	fake := startFake(t)
	yamlText := testConfig(t, fake.URL, "tracing: {otlp_endpoint: \"http://127.0.0.1:4318\"}\n")
	cfg, err := config.Parse("test.yaml", []byte(yamlText), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(cfg, &syncBuffer{})
	if err == nil {
		a.close()
		t.Fatal("the gateway started with a tracing block in a notracing build")
	}
	if !strings.Contains(err.Error(), "this binary was built without tracing (-tags notracing)") {
		t.Fatalf("start-up error %q does not name the build tag", err)
	}
}
