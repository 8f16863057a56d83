package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// sseReader reads SSE events from a raw response body.
type sseReader struct {
	br *bufio.Reader
}

// next returns the next event without its blank line, or an error.
func (r *sseReader) next() (string, error) {
	var ev strings.Builder
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			return ev.String(), err
		}
		if line == "\n" {
			if ev.Len() == 0 {
				continue
			}
			return strings.TrimSuffix(ev.String(), "\n"), nil
		}
		ev.WriteString(line)
	}
}

// deltaText extracts the chat delta text of one SSE event.
func deltaText(ev string) string {
	var out strings.Builder
	for _, line := range strings.Split(ev, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(data), &c) == nil && len(c.Choices) > 0 {
			out.WriteString(c.Choices[0].Delta.Content)
		}
	}
	return out.String()
}

// openStream starts a streamed chat request and returns its raw response.
func openStream(t *testing.T, url, body string, headers ...string) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(newPost(t, url+"/v1/chat/completions", body, headers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// sdkStreamText streams through the official SDK and returns the text.
func sdkStreamText(t *testing.T, url, model, prompt, key string) (string, error) {
	t.Helper()
	client := sdkClient(url, option.WithHeader("Idempotency-Key", key))
	s := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	})
	var text strings.Builder
	for s.Next() {
		if c := s.Current(); len(c.Choices) > 0 {
			text.WriteString(c.Choices[0].Delta.Content)
		}
	}
	return text.String(), s.Err()
}

// sdkBody is the body the SDK sends for one user prompt, for raw clients
// that must send the same request.
func sdkBody(model, prompt string) string {
	return `{"messages":[{"content":` + jsonString(prompt) + `,"role":"user"}],"model":` + jsonString(model) + `,"stream":true}`
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Acceptance (issue 4, #1): the client drops after 5 of 50 chunks; the
// upstream is read to the end; a retry through the SDK gets the full text
// from one upstream call.
func TestStreamDetachOnDisconnect(t *testing.T) {
	fake := startFake(t)
	b := upstreamtest.Behavior{Chunks: 50, Interval: 10 * time.Millisecond}
	fake.SetBehavior("m", b)
	g := startGateway(t, testConfig(t, fake.URL, newCluster(t).yaml(t, "")))
	resp := openStream(t, g.URL, sdkBody("m", "detach"), "Idempotency-Key", "s1")
	r := &sseReader{br: bufio.NewReader(resp.Body)}
	for i := 0; i < 5; i++ {
		if _, err := r.next(); err != nil {
			t.Fatal(err)
		}
	}
	resp.Body.Close()
	waitFor(t, 10*time.Second, "the detached stream to complete", func() bool {
		_, task := adminTask(t, g.URL, "s1", "team-a")
		return task["status"] == "completed"
	})
	text, err := sdkStreamText(t, g.URL, "m", "detach", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if want := upstreamtest.StreamText(b); text != want {
		t.Fatalf("retry text = %q, want %q", text, want)
	}
	if fake.Calls() != 1 {
		t.Fatalf("upstream calls = %d, want 1", fake.Calls())
	}
}

// Acceptance (issue 4, #2 and #4): client 2 joins client 1's stream on
// another node after 10 chunks; both get the full text from one upstream
// call, through Redis, and also with Redis down (wait, then replay).
func TestStreamJoinAcrossNodes(t *testing.T) {
	cl := newCluster(t)
	fake := startFake(t)
	b := upstreamtest.Behavior{Chunks: 30, Interval: 30 * time.Millisecond}
	fake.SetBehavior("m", b)
	for _, redisDown := range []bool{false, true} {
		name := "redis"
		if redisDown {
			name = "redis-down"
		}
		t.Run(name, func(t *testing.T) {
			fake.ResetCounters()
			proxy := startProxy(t, strings.TrimSuffix(strings.TrimPrefix(cl.redisURL, "redis://"), "/0"))
			cfg := testConfig(t, fake.URL, cl.yaml(t, proxy.Addr()))
			a, bnode := startGateway(t, cfg), startGateway(t, cfg)
			if redisDown {
				proxy.cut()
			}
			key := "join-" + name
			resp := openStream(t, a.URL, sdkBody("m", key), "Idempotency-Key", key)
			r := &sseReader{br: bufio.NewReader(resp.Body)}
			var text1 strings.Builder
			for i := 0; i < 10; i++ {
				ev, err := r.next()
				if err != nil {
					t.Fatal(err)
				}
				text1.WriteString(deltaText(ev))
			}
			var text2 string
			var err2 error
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				text2, err2 = sdkStreamText(t, bnode.URL, "m", key, key)
			}()
			for {
				ev, err := r.next()
				text1.WriteString(deltaText(ev))
				if err != nil {
					break
				}
			}
			wg.Wait()
			want := upstreamtest.StreamText(b)
			if err2 != nil || text1.String() != want || text2 != want {
				t.Fatalf("texts differ (err %v):\n1: %q\n2: %q\nwant %q", err2, text1.String(), text2, want)
			}
			if fake.Calls() != 1 {
				t.Fatalf("upstream calls = %d, want 1", fake.Calls())
			}
			// Node B joined the running stream, through Redis; it did
			// not replay a finished one. (Without Redis it may join and
			// fall back, or replay, depending on when it decides.)
			m := scrape(t, bnode.URL)
			joined := strings.Contains(m, `gateway_dedupe_total{outcome="joined"} 1`)
			replayed := strings.Contains(m, `gateway_dedupe_total{outcome="replayed"} 1`)
			if !redisDown && (!joined || replayed) || redisDown && joined == replayed {
				t.Fatalf("node B: joined %v replayed %v\n%s", joined, replayed, m)
			}
		})
	}
}

// Acceptance (issue 4, #3): a replay of a completed stream is
// byte-identical to the original transcript; Last-Event-ID resumes.
func TestStreamReplayBytes(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("m", upstreamtest.Behavior{Chunks: 8})
	g := startGateway(t, testConfig(t, fake.URL, ""))
	body := sdkBody("m", "replay bytes")
	r1 := openStream(t, g.URL, body, "Idempotency-Key", "rb")
	orig, _ := io.ReadAll(r1.Body)
	r2 := openStream(t, g.URL, body, "Idempotency-Key", "rb")
	replay, _ := io.ReadAll(r2.Body)
	if !bytes.Equal(orig, replay) || len(orig) == 0 {
		t.Fatalf("replay differs:\n%s\n---\n%s", orig, replay)
	}
	if r2.Header.Get("Idempotent-Replayed") != "true" || r2.Header.Get("Content-Type") != r1.Header.Get("Content-Type") {
		t.Fatalf("replay headers: %v", r2.Header)
	}
	if !bytes.Contains(orig, []byte("data: [DONE]")) || fake.Calls() != 1 {
		t.Fatalf("original lacks [DONE] or paid twice (%d)", fake.Calls())
	}
	// Resume after the third event (id "fence.n"): only the events after it.
	events := strings.SplitAfter(string(orig), "\n\n")
	if !strings.HasSuffix(events[2], "\nid: 1.3\n\n") {
		t.Fatalf("third event has no id 1.3: %q", events[2])
	}
	r3 := openStream(t, g.URL, body, "Idempotency-Key", "rb", "Last-Event-ID", "1.3")
	rest, _ := io.ReadAll(r3.Body)
	if string(rest) != strings.Join(events[3:], "") {
		t.Fatalf("resume from 3:\n%s\nwant\n%s", rest, strings.Join(events[3:], ""))
	}
	// An id of another generation cannot be continued: 409, not a splice.
	r4 := openStream(t, g.URL, body, "Idempotency-Key", "rb", "Last-Event-ID", "2.3")
	if b, _ := io.ReadAll(r4.Body); r4.StatusCode != 409 || !strings.Contains(string(b), "stream_not_resumable") {
		t.Fatalf("resume of another generation: %d %s", r4.StatusCode, b)
	}
	// Resuming a key that has no answer yet would start a new one.
	r5 := openStream(t, g.URL, body, "Idempotency-Key", "rb-new", "Last-Event-ID", "1.3")
	if b, _ := io.ReadAll(r5.Body); r5.StatusCode != 409 || fake.Calls() != 1 {
		t.Fatalf("resume of a new key: %d %s calls %d", r5.StatusCode, b, fake.Calls())
	}
}

// Acceptance (issue 4, #5): the upstream cuts after 3 chunks; the leader's
// client and a joiner get an error event, and a retry makes a new attempt.
func TestStreamCutReachesEveryone(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("m", upstreamtest.Behavior{Chunks: 10, Interval: 100 * time.Millisecond, DropAfter: 3})
	g := startGateway(t, testConfig(t, fake.URL, ""))
	body := sdkBody("m", "cut")
	leader := openStream(t, g.URL, body, "Idempotency-Key", "cut")
	r := &sseReader{br: bufio.NewReader(leader.Body)}
	if _, err := r.next(); err != nil {
		t.Fatal(err)
	}
	joiner := openStream(t, g.URL, body, "Idempotency-Key", "cut")
	if joiner.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("second request did not join: %v", joiner.Header)
	}
	rest, _ := io.ReadAll(leader.Body)
	joined, _ := io.ReadAll(joiner.Body)
	for name, got := range map[string][]byte{"leader": rest, "joiner": joined} {
		if !bytes.Contains(got, []byte(`data: {"error":`)) || bytes.Contains(got, []byte("[DONE]")) {
			t.Fatalf("%s did not end with an error event:\n%s", name, got)
		}
	}
	if !bytes.Contains(joined, []byte("tok0")) {
		t.Fatalf("joiner missed the events before it joined:\n%s", joined)
	}
	fake.SetBehavior("m", upstreamtest.Behavior{Chunks: 10})
	retry := openStream(t, g.URL, body, "Idempotency-Key", "cut")
	all, _ := io.ReadAll(retry.Body)
	if retry.Header.Get("Idempotent-Replayed") != "false" || !bytes.Contains(all, []byte("[DONE]")) || fake.Calls() != 2 {
		t.Fatalf("retry after cut: replayed %q calls %d\n%s", retry.Header.Get("Idempotent-Replayed"), fake.Calls(), all)
	}
}
