package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// A response over max_record_bytes still reaches its client in full, but
// a duplicate gets a clear 409 instead of a truncated replay (issue 4).
func TestTooLargeToRecord(t *testing.T) {
	fake := startFake(t)
	b := upstreamtest.Behavior{Chunks: 60}
	fake.SetBehavior("m", b)
	g := startGateway(t, testConfig(t, fake.URL, "dedupe: {max_record_bytes: 2000}\n"))
	for _, stream := range []bool{true, false} {
		body := chatBody("m", "big", stream)
		key := "big-" + map[bool]string{true: "stream", false: "plain"}[stream]
		if !stream {
			fake.SetBehavior("m", upstreamtest.Behavior{Content: string(bytes.Repeat([]byte("x"), 5000))})
		}
		r1, b1 := post(t, g.URL, "/v1/chat/completions", body, "Idempotency-Key", key)
		if r1.StatusCode != 200 {
			t.Fatalf("stream=%v: %d %s", stream, r1.StatusCode, b1)
		}
		if stream && (!bytes.Contains(b1, []byte("[DONE]")) || deltaTextAll(string(b1)) != upstreamtest.StreamText(b)) {
			t.Fatalf("the leader's client did not get the whole stream:\n%s", b1)
		}
		r2, b2 := post(t, g.URL, "/v1/chat/completions", body, "Idempotency-Key", key)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if r2.StatusCode != 409 || json.Unmarshal(b2, &e) != nil || e.Error.Code != "idempotency_response_too_large" {
			t.Fatalf("stream=%v duplicate: %d %s", stream, r2.StatusCode, b2)
		}
	}
	if fake.Calls() != 2 {
		t.Fatalf("upstream calls = %d, want 2", fake.Calls())
	}
}

func deltaTextAll(transcript string) string {
	var s string
	for _, ev := range bytes.Split([]byte(transcript), []byte("\n\n")) {
		s += deltaText(string(ev))
	}
	return s
}

// With detach_on_disconnect: false a client that leaves cancels the
// upstream call and the task fails retryably (issue 4).
func TestNoDetachCancelsUpstream(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("m", upstreamtest.Behavior{Chunks: 50, Interval: 20 * time.Millisecond})
	g := startGateway(t, testConfig(t, fake.URL, "dedupe: {detach_on_disconnect: false}\n"))
	body := sdkBody("m", "no detach")
	resp := openStream(t, g.URL, body, "Idempotency-Key", "nd")
	r := &sseReader{br: bufio.NewReader(resp.Body)}
	for i := 0; i < 3; i++ {
		if _, err := r.next(); err != nil {
			t.Fatal(err)
		}
	}
	resp.Body.Close()
	waitFor(t, 5*time.Second, "the task to fail", func() bool {
		_, task := adminTask(t, g.URL, "nd", "team-a")
		return task["status"] == "failed"
	})
	retry := openStream(t, g.URL, body, "Idempotency-Key", "nd")
	all, _ := io.ReadAll(retry.Body)
	if retry.Header.Get("Idempotent-Replayed") != "false" || !bytes.Contains(all, []byte("[DONE]")) || fake.Calls() != 2 {
		t.Fatalf("retry: replayed %q calls %d", retry.Header.Get("Idempotent-Replayed"), fake.Calls())
	}
}
