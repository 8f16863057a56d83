package config

import (
	"strings"
	"testing"
)

func TestFallbackCovers(t *testing.T) {
	f := func(on []string, status int, connect, timeout, want bool) {
		t.Helper()
		fb := compileFallback(on)
		if got := fb.Covers(status, connect, timeout); got != want {
			t.Fatalf("fallback_on %v: Covers(status %d, connect %v, timeout %v) = %v, want %v", on, status, connect, timeout, got, want)
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
	f(def, 428, false, false, false)
	f(def, 430, false, false, false)
	f(def, 200, false, false, false)
	f(def, 0, false, false, false)
	// A timeout after the status line still counts as a timeout.
	f(def, 200, false, true, true)
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
	f([]string{"4xx"}, 399, false, false, false)
	f([]string{"503"}, 503, false, false, true)
	f([]string{"503"}, 502, false, false, false)
	f([]string{"5XX"}, 504, false, false, true)
	f([]string{"CONNECT", "Timeout"}, 0, true, false, true)
	f([]string{"CONNECT", "Timeout"}, 0, false, true, true)
	// Statuses outside 100..599 are never covered, and never panic.
	f([]string{"5xx"}, 600, false, false, false)
	f([]string{"5xx"}, -1, false, false, false)
	f([]string{"5xx"}, 1<<20, false, false, false)
	f([]string{"100"}, 100, false, false, true)
	f([]string{"599"}, 599, false, false, true)
	// Invalid entries (reported by validation) add nothing.
	f([]string{"99", "600", "5x", "42x", "0429"}, 429, false, false, false)
	f([]string{"99", "600", "5x"}, 599, false, false, false)
	// The zero value never falls back.
	var zero Fallback
	if zero.Covers(503, true, true) {
		t.Fatal("the zero Fallback falls back")
	}
}

func TestValidFallback(t *testing.T) {
	f := func(s string, want bool) {
		t.Helper()
		if got := validFallback(s); got != want {
			t.Fatalf("validFallback(%q) = %v, want %v", s, got, want)
		}
	}
	f("connect", true)
	f("TIMEOUT", true)
	f("4xx", true)
	f("5Xx", true)
	f("429", true)
	f("100", true)
	f("599", true)
	f("099", false)
	f("600", false)
	f("3xx", false)
	f("+42", false)
	f("", false)
	f("conect", false)
}

// Parse compiles fallback_on once: the route carries the matcher.
func TestParseCompilesFallback(t *testing.T) {
	f := func(fallbackOn string, status int, connect, want bool) {
		t.Helper()
		data := minimal
		if fallbackOn != "" {
			data = strings.Replace(minimal, "{model: m,", "{model: m, fallback_on: "+fallbackOn+",", 1)
		}
		cfg, err := Parse("t.yaml", []byte(data), env())
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if got := cfg.Routes[0].Fallback.Covers(status, connect, false); got != want {
			t.Fatalf("fallback_on %q: Covers(%d, connect %v) = %v, want %v", fallbackOn, status, connect, got, want)
		}
	}
	f("", 503, false, true) // absent: the default
	f("", 0, true, true)
	f("", 404, false, false)
	f("[]", 503, false, false)
	f("[]", 0, true, false)
	f("[404]", 404, false, true)
	f("[404]", 503, false, false)
}
