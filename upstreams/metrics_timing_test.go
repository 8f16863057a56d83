package upstreams

import (
	"testing"
	"time"
)

// BenchmarkMetricsAttempt records one successful attempt: the counters and
// histograms every request updates.
func BenchmarkMetricsAttempt(b *testing.B) {
	m := NewMetrics()
	a := &Attempt{Provider: "fake", Model: "m", Outcome: OutcomeSuccess, Duration: 3 * time.Millisecond, TTFB: time.Millisecond,
		Usage: Usage{PromptTokens: 10, CompletionTokens: 9}}
	b.ReportAllocs()
	for b.Loop() {
		m.attempt(a, "m", nil)
	}
}
