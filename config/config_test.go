package config

import "testing"

func TestRouteFor(t *testing.T) {
	c := &Config{Routes: []*Route{
		{Model: "*", Targets: []Target{{Provider: "any"}}},
		{Model: "content-writer", Targets: []Target{{Provider: "gemini"}}},
		{Model: "gpt-4o", Targets: []Target{{Provider: "openai"}}},
	}}
	f := func(model, want string) {
		t.Helper()
		r := c.RouteFor(model)
		got := ""
		if r != nil {
			got = r.Model
		}
		if got != want {
			t.Fatalf("RouteFor(%q) = %q, want %q", model, got, want)
		}
	}
	// An exact match wins over "*" even when "*" comes first.
	f("content-writer", "content-writer")
	f("gpt-4o", "gpt-4o")
	f("gpt-4o-mini", "*")
	f("", "*")

	noWildcard := &Config{Routes: []*Route{{Model: "m"}}}
	if r := noWildcard.RouteFor("other"); r != nil {
		t.Fatalf("RouteFor without a \"*\" route = %+v, want nil", r)
	}
}

func TestFallsBackOn(t *testing.T) {
	f := func(on []string, status int, connectErr, timeout, want bool) {
		t.Helper()
		r := &Route{FallbackOn: on}
		if got := r.FallsBackOn(status, connectErr, timeout); got != want {
			t.Fatalf("FallsBackOn(%v; status %d, connect %v, timeout %v) = %v, want %v", on, status, connectErr, timeout, got, want)
		}
	}
	def := []string{"connect", "timeout", "429", "5xx"}
	f(def, 0, true, false, true)
	f(def, 0, false, true, true)
	f(def, 429, false, false, true)
	f(def, 500, false, false, true)
	f(def, 503, false, false, true)
	f(def, 599, false, false, true)
	f(def, 400, false, false, false)
	f(def, 404, false, false, false)
	f(def, 200, false, false, false)
	f(def, 0, false, false, false)
	// nil means the default list.
	f(nil, 0, true, false, true)
	f(nil, 502, false, false, true)
	f(nil, 401, false, false, false)
	// An empty list never falls back.
	f([]string{}, 0, true, true, false)
	f([]string{}, 503, false, false, false)
	// Only what is listed.
	f([]string{"timeout"}, 0, true, false, false)
	f([]string{"connect"}, 0, false, true, false)
	f([]string{"4xx"}, 400, false, false, true)
	f([]string{"4xx"}, 499, false, false, true)
	f([]string{"4xx"}, 500, false, false, false)
	f([]string{"503"}, 503, false, false, true)
	f([]string{"503"}, 502, false, false, false)
	f([]string{"5XX"}, 504, false, false, true)
	f([]string{"5xx"}, 600, false, false, false)
}

func TestDedupeFlags(t *testing.T) {
	yes, no := true, false
	f := func(d Dedupe, enabled, detach bool) {
		t.Helper()
		if d.IsEnabled() != enabled || d.Detach() != detach {
			t.Fatalf("%+v: IsEnabled %v Detach %v, want %v %v", d, d.IsEnabled(), d.Detach(), enabled, detach)
		}
	}
	f(Dedupe{}, true, true)
	f(Dedupe{Enabled: &no, DetachOnDisconnect: &no}, false, false)
	f(Dedupe{Enabled: &yes, DetachOnDisconnect: &no}, true, false)
}

func TestClientKeyHash(t *testing.T) {
	const hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8" // sha256("password")
	f := func(k ClientKey, want string) {
		t.Helper()
		if got := k.Hash(); got != want {
			t.Fatalf("%+v.Hash() = %q, want %q", k, got, want)
		}
	}
	f(ClientKey{Key: "password"}, hash)
	f(ClientKey{SHA256: hash}, hash)
	f(ClientKey{SHA256: "5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8"}, hash)
}
