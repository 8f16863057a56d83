package upstreamtest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// benchPost sends body in parallel loops over one shared client, the way a
// gateway benchmark would, and fails on any non-200 or unreadable answer.
func benchPost(b *testing.B, body string) {
	s := startServer(b)
	s.SetMaxRequests(0)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	url := s.URL + "/chat/completions"
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				b.Errorf("status %d, error %v", resp.StatusCode, err)
				return
			}
		}
	})
}

func BenchmarkChatNonStream(b *testing.B) {
	benchPost(b, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
}

func BenchmarkChatStream(b *testing.B) {
	benchPost(b, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
}

func BenchmarkAppendChunk(b *testing.B) {
	c := &call{n: 12345, created: 1700000000, model: "gpt-4o-mini"}
	prefix := chatChunks{}.prefix(nil, c)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = append(buf[:0], prefix...)
		buf = chatChunks{}.delta(buf, 1, "some \"token\" text ")
		buf = append(buf, "}\n\n"...)
	}
}
