package main

import (
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/idemgw/gateway/config"
)

// What the secret scrubbing adds to the one log line of a request: the
// same line through the plain JSON handler and through scrubHandler with
// six secrets configured (a clean line, the usual case).
func BenchmarkRequestLogLine(b *testing.B) {
	var p atomic.Pointer[config.Scrubber]
	p.Store(config.NewScrubber([]string{"sk-client-aaaaaaaa", "sk-client-bbbbbbbb", "admin-key-cccccccc",
		"sk-provider-dddddddd", "sk-provider-eeeeeeee", "redis-pass-ffffffff"}))
	plain := slog.NewJSONHandler(io.Discard, nil)
	for _, h := range []struct {
		name string
		h    slog.Handler
	}{{"plain", plain}, {"scrubbed", scrubHandler{inner: plain, scrub: &p}}} {
		log := slog.New(h.h)
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				log.LogAttrs(b.Context(), slog.LevelInfo, "request",
					slog.String("request_id", "3f2a9c0d1e2b4a5c6d7e8f90"), slog.String("path", "/v1/chat/completions"),
					slog.String("tenant", "content-pipeline"), slog.String("route", "content-writer"),
					slog.String("key_hash", "9f86d081884c7d65"), slog.String("dedupe", "new"),
					slog.String("provider", "gemini"), slog.Int("attempts", 1), slog.Int("status", 200),
					slog.Float64("duration_ms", 412.5), slog.Int64("prompt_tokens", 120), slog.Int64("completion_tokens", 300))
			}
		})
	}
}
