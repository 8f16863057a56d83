package main

import (
	"testing"
	"time"
)

func TestLoopbackURL(t *testing.T) {
	f := func(target string, ok bool) {
		t.Helper()
		_, err := loopbackURL(target)
		if (err == nil) != ok {
			t.Fatalf("loopbackURL(%q) error = %v, want ok=%t", target, err, ok)
		}
	}
	f("http://127.0.0.1:8080", true)
	f("http://127.3.4.5:8080", true)
	f("http://[::1]:8080", true)
	f("http://localhost:8080", true)
	f("https://LOCALHOST", true)
	f("http://10.0.0.1:8080", false)
	f("http://[::2]:8080", false)
	f("http://api.openai.com", false)
	f("http://localhost.example.com", false)
	f("http://127.0.0.1.nip.io", false)
	f("ftp://127.0.0.1", false)
	f("127.0.0.1:8080", false)
	f("http://0.0.0.0:8080", false)
}

func TestParseFlagsBounds(t *testing.T) {
	f := func(ok bool, args ...string) {
		t.Helper()
		_, err := parseFlags(args, testWriter{t})
		if (err == nil) != ok {
			t.Fatalf("parseFlags(%q) error = %v, want ok=%t", args, err, ok)
		}
	}
	f(true)
	f(true, "-mode", "same-key", "-stream", "-duration", "1s", "-requests", "10")
	f(false, "-target", "http://192.168.1.1")
	f(false, "-mode", "other")
	f(false, "-duration", "11m")
	f(false, "-duration", "0s")
	f(false, "-concurrency", "0")
	f(false, "-requests", "-1")
	f(false, "extra")
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	f := func(q float64, want time.Duration) {
		t.Helper()
		if got := percentile(s, q); got != want {
			t.Fatalf("percentile(%v) = %v, want %v", q, got, want)
		}
	}
	f(50, 50)
	f(95, 95)
	f(99, 99)
	f(100, 100)
	f(0, 1)
	if got := percentile(nil, 50); got != 0 {
		t.Fatalf("percentile(nil) = %v, want 0", got)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
