package dedupe

import (
	"testing"
	"time"
)

// BenchmarkKey is the key work of one deduplicated request: parse the
// header, hash the key into its tenant, fingerprint the canonical body
// (and, without a header, derive the key from it).
func BenchmarkKey(b *testing.B) {
	canon, err := Canonical(nil, []byte(benchChatRequest), nil)
	if err != nil {
		b.Fatal(err)
	}
	header := []byte("req-2b7f0c4e-9a61-4f5e-8c1d-3e2a9b7c6d5f")
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseKey(header); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hash", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = HashKey("content-pipeline", "req-2b7f0c4e-9a61-4f5e-8c1d-3e2a9b7c6d5f")
		}
	})
	b.Run("fingerprint", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(canon)))
		for b.Loop() {
			_ = Fingerprint(canon)
		}
	})
	b.Run("derive", func(b *testing.B) {
		now := time.Now()
		b.ReportAllocs()
		b.SetBytes(int64(len(canon)))
		for b.Loop() {
			_ = DeriveKey("/v1/chat/completions", canon, 0, now)
		}
	})
}

// BenchmarkLocalLive is the in-process half of recording a stream: the
// leader appends each event to its live stream, its own client follows it.
func BenchmarkLocalLive(b *testing.B) {
	ev := []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok1 "},"finish_reason":null}]}`)
	l := NewLocal()
	ctx := b.Context()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		// A stream of 8 events, as a short answer has, followed to its end.
		name := "bench-" + string(rune('a'+n%26))
		n++
		l.Open(name)
		evs, _ := l.Follow(ctx, name, 0, time.Second)
		for range 8 {
			if err := l.Append(ctx, name, LiveEvent{Data: ev}); err != nil {
				b.Fatal(err)
			}
		}
		if err := l.Append(ctx, name, LiveEvent{End: true}); err != nil {
			b.Fatal(err)
		}
		got := 0
		for e := range evs {
			if e.End {
				break
			}
			got++
		}
		if got != 8 {
			b.Fatalf("followed %d events, want 8", got)
		}
		_ = l.Expire(ctx, name, 0)
	}
}
