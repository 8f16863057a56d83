package upstreams

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// benchBody returns a chat request of about n bytes whose "model" and
// "stream" come after the messages, as the OpenAI Python SDK orders them:
// the inspection must skip the whole prompt to find them.
func benchBody(n int) []byte {
	content := strings.Repeat("Answer briefly and cite the source of every fact. ", max(n/51, 1))
	return []byte(`{"messages":[{"role":"system","content":"You are a careful assistant."},{"role":"user","content":"` +
		content + `"}],"model":"content-writer","temperature":0.2,"max_tokens":256,"stream":false}`)
}

// BenchmarkInspect is what the hot path reads of every body: one pass
// that validates it and finds model and stream.
func BenchmarkInspect(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		body := benchBody(size)
		b.Run(byteSize(len(body)), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if in, err := Inspect(body); err != nil || in.Model != "content-writer" || in.Stream {
					b.Fatalf("inspection %+v, %v", in, err)
				}
			}
		})
	}
}

// BenchmarkFields is the member walk of Field, once for model and once
// for stream, without validation.
func BenchmarkFields(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		body := benchBody(size)
		b.Run(byteSize(len(body)), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if m, ok, isStr, err := StringField(body, "model"); err != nil || !ok || !isStr || m != "content-writer" {
					b.Fatalf("model = %q, %t, %v", m, ok, err)
				}
				if s, err := BoolField(body, "stream"); err != nil || s {
					b.Fatalf("stream = %t, %v", s, err)
				}
			}
		})
	}
}

// BenchmarkJSONValid is a whole-body validation pass, for comparison with
// the member walk above.
func BenchmarkJSONValid(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		body := benchBody(size)
		b.Run(byteSize(len(body)), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if !json.Valid(body) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

// BenchmarkReplaceField rewrites "model" for a target, as a route with a
// target model does on every request.
func BenchmarkReplaceField(b *testing.B) {
	body := benchBody(1 << 10)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ReplaceField(body, "model", []byte(`"gemini-2.0-flash"`)); err != nil {
			b.Fatal(err)
		}
	}
}

func byteSize(n int) string { return strconv.Itoa(n>>10) + "KiB" }
