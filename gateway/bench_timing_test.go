package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// Benchmarks run the whole gateway in process over real loopback HTTP:
// client, gateway and fake upstream share the process, so allocs/op counts
// all three (the client and the fake are a small, fixed part of it).

// benchParallelism is how many client goroutines per GOMAXPROCS the
// benchmarks run: a gateway serves many clients at once, and their
// requests overlap on the store and the upstream connections. ns/op is
// therefore the inverse of throughput, not the latency of one request.
const benchParallelism = 8

// benchConfig is testConfig's gateway for load: request logs off (warn),
// enough upstream connections for the concurrency of the test, the
// embedded store in a temp dir and route "*" to the fake.
func benchConfig(t testing.TB, fakeURL string) string {
	t.Helper()
	return fmt.Sprintf(`listen: 127.0.0.1:0
auth:
  mode: keys
  keys:
    - {tenant: team-a, key: %s}
log: {level: warn, format: json}
store: {kind: embedded, path: %q}
providers:
  fake: {base_url: %q, api_key: upstream-secret-key, timeout: 30s, first_byte_timeout: 10s, max_conns: 2000}
routes:
  - model: "*"
    targets: [{provider: fake}]
`, testClientKey, t.TempDir()+"/gw.db", fakeURL)
}

// benchClient is a keep-alive client for conns concurrent connections.
func benchClient(conns int) *http.Client {
	return &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxConnsPerHost:     0,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			DisableCompression:  true,
		},
	}
}

// benchGateway starts a fake upstream (not recording requests) and a gateway in front of it.
func benchGateway(b *testing.B, behavior upstreamtest.Behavior) (*upstreamtest.Server, *gw) {
	b.Helper()
	f := startFake(b)
	f.SetMaxRequests(0)
	f.SetBehavior("", behavior)
	g := startGateway(b, benchConfig(b, f.URL))
	return f, g
}

// chatRequest builds a chat completion request with tenant A's key.
func chatRequest(url string, body []byte, idemKey string) *http.Request {
	req, err := http.NewRequest("POST", url+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		panic("BUG: " + err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	return req
}

// doChat sends one request and reads the whole answer; it returns the
// response (body closed) and the body bytes.
func doChat(c *http.Client, req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, body, fmt.Errorf("cannot read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp, body, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return resp, body, nil
}

// BenchmarkProxyNonStream: every request has a new body, so each one is a
// new derived key: Begin in the embedded store, one upstream call,
// Complete with the stored response.
func BenchmarkProxyNonStream(b *testing.B) {
	_, g := benchGateway(b, upstreamtest.Behavior{})
	c := benchClient(64)
	var seq atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := []byte(chatBody("bench-model", "unique prompt "+strconv.FormatInt(seq.Add(1), 10), false))
			resp, _, err := doChat(c, chatRequest(g.URL, body, ""))
			if err != nil {
				b.Error(err)
				return
			}
			if resp.Header.Get("Idempotent-Replayed") != "false" {
				b.Errorf("Idempotent-Replayed = %q, want false for a new body", resp.Header.Get("Idempotent-Replayed"))
				return
			}
		}
	})
}

// BenchmarkReplay: one Idempotency-Key and body, completed before the
// timer starts, so every request is answered from the store.
func BenchmarkReplay(b *testing.B) {
	f, g := benchGateway(b, upstreamtest.Behavior{})
	c := benchClient(64)
	body := []byte(chatBody("bench-model", "replayed prompt", false))
	_, want, err := doChat(c, chatRequest(g.URL, body, "bench-replay-key"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, got, err := doChat(c, chatRequest(g.URL, body, "bench-replay-key"))
			if err != nil {
				b.Error(err)
				return
			}
			if resp.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(got, want) {
				b.Errorf("replay: Idempotent-Replayed = %q, body equal = %t", resp.Header.Get("Idempotent-Replayed"), bytes.Equal(got, want))
				return
			}
		}
	})
	b.StopTimer()
	if n := f.Calls(); n != 1 {
		b.Fatalf("fake upstream calls = %d, want 1", n)
	}
}

// BenchmarkStream: every request is a new 5-chunk stream relayed while the
// gateway records its transcript.
func BenchmarkStream(b *testing.B) {
	behavior := upstreamtest.Behavior{Chunks: 5}
	_, g := benchGateway(b, behavior)
	c := benchClient(64)
	wantText := upstreamtest.StreamText(behavior)
	var seq atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := []byte(chatBody("bench-model", "stream prompt "+strconv.FormatInt(seq.Add(1), 10), true))
			resp, err := c.Do(chatRequest(g.URL, body, ""))
			if err != nil {
				b.Error(err)
				return
			}
			got, err := readSSE(resp)
			if err != nil {
				b.Error(err)
				return
			}
			if got.text != wantText || !got.done {
				b.Errorf("stream text = %q done = %t, want %q and [DONE]", got.text, got.done, wantText)
				return
			}
		}
	})
}

// sseResult is what a client read from a chat completion stream.
type sseResult struct {
	text   string // the concatenated delta contents
	chunks int    // content chunks (events with a non-empty delta content)
	done   bool   // saw "data: [DONE]"
}

// readSSE reads a chat completion stream to its end and closes the body.
// It extracts the delta contents with a byte search, which is enough for
// the fake upstream's fixed shape and keeps the client's cost low.
func readSSE(resp *http.Response) (sseResult, error) {
	defer resp.Body.Close()
	var r sseResult
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return r, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var text strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Bytes()
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue
		}
		if string(data) == "[DONE]" {
			r.done = true
			continue
		}
		_, rest, ok := bytes.Cut(data, []byte(`"content":"`))
		if !ok {
			continue
		}
		content, _, ok := bytes.Cut(rest, []byte(`"`))
		if !ok || len(content) == 0 {
			continue
		}
		r.chunks++
		text.Write(content)
	}
	r.text = text.String()
	if err := sc.Err(); err != nil {
		return r, fmt.Errorf("cannot read stream: %w", err)
	}
	return r, nil
}
