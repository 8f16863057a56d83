package upstreams

import (
	"testing"

	"github.com/idemgw/gateway/config"
)

// ChainFor is how requests find their route: the exact model first, then
// "*", whatever the order in the file.
func TestRegistryChainFor(t *testing.T) {
	registry := func(routes string) *Registry {
		t.Helper()
		cfg, err := config.Parse("t.yaml", []byte("auth: {mode: none}\nproviders:\n"+
			"  any: {base_url: \"http://127.0.0.1:1/v1\"}\n  gemini: {base_url: \"http://127.0.0.1:1/v1\"}\n  openai: {base_url: \"http://127.0.0.1:1/v1\"}\n"+
			"routes:\n"+routes), nil)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		r, err := NewRegistry(cfg, NewMetrics(), nil)
		if err != nil {
			t.Fatalf("NewRegistry: %v", err)
		}
		return r
	}
	r := registry("  - {model: \"*\", targets: [{provider: any}]}\n" +
		"  - {model: content-writer, targets: [{provider: gemini}]}\n" +
		"  - {model: gpt-4o, targets: [{provider: openai}]}\n")
	f := func(model, wantRoute, wantProvider string) {
		t.Helper()
		ch := r.ChainFor(model)
		if ch == nil || ch.Route.Model != wantRoute || ch.Targets[0].Provider.Name != wantProvider {
			t.Fatalf("ChainFor(%q) = %+v, want route %q to %s", model, ch, wantRoute, wantProvider)
		}
	}
	// An exact match wins over "*" even when "*" comes first.
	f("content-writer", "content-writer", "gemini")
	f("gpt-4o", "gpt-4o", "openai")
	f("gpt-4o-mini", "*", "any")
	f("", "*", "any")
	if got := r.Models(); len(got) != 2 || got[0] != "content-writer" || got[1] != "gpt-4o" {
		t.Fatalf("Models() = %q, want the two named routes, sorted, without *", got)
	}

	if ch := registry("  - {model: m, targets: [{provider: any}]}\n").ChainFor("other"); ch != nil {
		t.Fatalf("ChainFor without a \"*\" route = %+v, want nil", ch)
	}
}
