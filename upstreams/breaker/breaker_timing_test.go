package breaker

import (
	"context"
	"testing"
	"time"
)

// BenchmarkAllowReport is the cost the breaker adds to an attempt on a
// healthy target (Allow, then Report of a success), in process and with
// the state in Redis: both read only the node's copy.
func BenchmarkAllowReport(b *testing.B) {
	bench := func(b *testing.B, m mode) {
		// The real clock, as in production.
		br := New(testConfig(b, testYAML), Options{Redis: m.redis, Prefix: m.prefix, RefreshInterval: -1})
		defer br.Close()
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			d := br.Allow(ctx, pa)
			if !d.Call {
				b.Fatal("closed target skipped")
			}
			br.Report(d, Result{Class: Success})
		}
	}
	b.Run("local", func(b *testing.B) { bench(b, mode{name: "local"}) })
	b.Run("redis", func(b *testing.B) {
		client, prefix := redisForTest(b)
		bench(b, mode{name: "redis", redis: client, prefix: prefix})
	})
}

// BenchmarkAllowReportParallel is the closed path under concurrency
// (GOMAXPROCS goroutines on one target).
func BenchmarkAllowReportParallel(b *testing.B) {
	br := New(testConfig(b, testYAML), Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			br.Report(br.Allow(ctx, pa), Result{Class: Success})
		}
	})
}

// BenchmarkSkipOpen is what a request whose first target is open pays
// before reaching the second one: Allow skips the first, then Allow and
// Report on the second.
func BenchmarkSkipOpen(b *testing.B) {
	bench := func(b *testing.B, m mode) {
		clk := newClock()
		br := m.new(b, clk, testYAML)
		fail(br, pa, 3, Timeout)
		clk.Advance(time.Second)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if br.Allow(ctx, pa).Call {
				b.Fatal("open target called")
			}
			d := br.Allow(ctx, pb)
			br.Report(d, Result{Class: Success})
		}
	}
	b.Run("local", func(b *testing.B) { bench(b, mode{name: "local"}) })
	b.Run("redis", func(b *testing.B) {
		client, prefix := redisForTest(b)
		bench(b, mode{name: "redis", redis: client, prefix: prefix})
	})
}
