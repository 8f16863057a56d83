package upstreams

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

// benchTranscript is a 5-chunk chat completion stream with a usage chunk,
// as the fake upstream (and OpenAI with include_usage) sends it.
func benchTranscript() []byte {
	var b strings.Builder
	b.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n")
	for i := range 5 {
		b.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok` +
			string(rune('0'+i)) + ` "},"finish_reason":null}]}` + "\n\n")
	}
	b.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n")
	b.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}` + "\n\n")
	b.WriteString("data: [DONE]\n\n")
	return []byte(b.String())
}

// BenchmarkStreamNext splits one upstream stream into events (the relay's
// read side: framing, [DONE], usage).
func BenchmarkStreamNext(b *testing.B) {
	transcript := benchTranscript()
	r := bytes.NewReader(transcript)
	br := bufio.NewReaderSize(r, 4<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(transcript)))
	for b.Loop() {
		r.Reset(transcript)
		br.Reset(r)
		s := &Stream{br: br, release: func() {}, finish: func(*Error, Usage) {}, needsDone: true}
		n := 0
		for {
			_, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 9 || s.Usage().CompletionTokens != 5 {
			b.Fatalf("%d events, usage %+v", n, s.Usage())
		}
	}
}

// BenchmarkParseUsage reads the usage of a non-stream answer (every
// request) and looks for it in a chunk that has none (every stream event).
func BenchmarkParseUsage(b *testing.B) {
	answer := []byte(`{"id":"chatcmpl-fake-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"fake reply from m: tok0 tok1 tok2 tok3 tok4"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":9,"total_tokens":19}}`)
	chunk := []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok1 "},"finish_reason":null}]}`)
	b.Run("answer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if u, ok := ParseUsage(answer); !ok || u.CompletionTokens != 9 {
				b.Fatalf("usage %+v %t", u, ok)
			}
		}
	})
	b.Run("chunk-without", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := ParseUsage(chunk); ok {
				b.Fatal("usage found in a chunk without one")
			}
		}
	})
}
