package limit

import (
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/idemgw/gateway/dedupe/dedupetest"
)

// The cost a limited key adds to each request: the node's bucket and
// in-flight count, and a round trip to Redis for the shared bucket.
func BenchmarkAcquireLocal(b *testing.B) {
	l := New(metrics.NewSet())
	l.Update([]Rule{{ID: "k", Tenant: "a", MaxInflight: 1 << 30, PerMinute: 1 << 30}})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, s := l.Acquire("k")
			s.Release()
		}
	})
}

func BenchmarkAcquireShared(b *testing.B) {
	client := testRedis(b)
	l := New(metrics.NewSet())
	l.Share(client, dedupetest.KeyPrefix(b), func(err error) { b.Error(err) })
	l.Update([]Rule{{ID: "k", Tenant: "a", PerMinute: 1 << 30}})
	b.ReportAllocs()
	for b.Loop() {
		_, s := l.Acquire("k")
		s.Release()
	}
}
