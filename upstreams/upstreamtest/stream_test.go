package upstreamtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// sseData returns the payloads of the complete "data:" events in an SSE body.
func sseData(body []byte) []string {
	var out []string
	for {
		event, rest, ok := bytes.Cut(body, []byte("\n\n"))
		if !ok {
			return out
		}
		if payload, ok := bytes.CutPrefix(event, []byte("data: ")); ok {
			out = append(out, string(payload))
		}
		body = rest
	}
}

type chatChunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

// readStream checks the shape of a complete chat stream and returns its
// concatenated deltas, its content chunk count and its usage.
func readStream(t *testing.T, body []byte, model string) (text string, chunks int, u usage) {
	t.Helper()
	events := sseData(body)
	if len(events) < 3 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("want content, finish, usage and [DONE] events, got %q", events)
	}
	var id string
	var sb strings.Builder
	for i, ev := range events[:len(events)-1] {
		var c chatChunk
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatalf("cannot parse event %d %q: %s", i, ev, err)
		}
		if i == 0 {
			id = c.ID
		}
		if c.ID != id || !strings.HasPrefix(id, "chatcmpl-fake-") || c.Object != "chat.completion.chunk" || c.Model != model || c.Created == 0 {
			t.Fatalf("unexpected chunk header in event %d: %s", i, ev)
		}
		switch last := len(events) - 2; {
		case i == last: // usage
			if len(c.Choices) != 0 || c.Usage == nil {
				t.Fatalf("want a usage chunk with no choices, got %s", ev)
			}
			u = *c.Usage
		case i == last-1: // finish
			if len(c.Choices) != 1 || c.Choices[0].FinishReason == nil || *c.Choices[0].FinishReason != "stop" || c.Choices[0].Delta.Content != nil {
				t.Fatalf("want a finish chunk with an empty delta, got %s", ev)
			}
		default:
			if len(c.Choices) != 1 || c.Choices[0].FinishReason != nil || c.Choices[0].Delta.Content == nil {
				t.Fatalf("want a content chunk, got %s", ev)
			}
			if wantRole := map[bool]string{true: "assistant"}[i == 0]; c.Choices[0].Delta.Role != wantRole {
				t.Fatalf("event %d: want role %q, got %s", i, wantRole, ev)
			}
			sb.WriteString(*c.Choices[0].Delta.Content)
			chunks++
		}
	}
	return sb.String(), chunks, u
}

func TestChatStream(t *testing.T) {
	s := startServer(t)
	f := func(b Behavior, wantChunks int, wantUsage usage) {
		t.Helper()
		s.SetBehavior("m", b)
		resp, err := doPost(nil, s.URL+"/chat/completions", `{"model":"m","stream":true}`)
		if err != nil {
			t.Fatalf("cannot POST: %s", err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
			t.Fatalf("want 200 text/event-stream, got %d %q", resp.StatusCode, ct)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("cannot read stream: %s", err)
		}
		text, chunks, u := readStream(t, body, "m")
		if text != StreamText(b) || chunks != wantChunks || u != wantUsage {
			t.Fatalf("%+v: want %d chunks of %q with usage %+v, got %d chunks of %q with %+v",
				b, wantChunks, StreamText(b), wantUsage, chunks, text, u)
		}
	}
	f(Behavior{}, 5, usage{10, 5, 15})
	f(Behavior{Chunks: 1}, 1, usage{10, 1, 11})
	f(Behavior{Chunks: 8, Interval: time.Millisecond}, 8, usage{10, 8, 18})
	f(Behavior{Chunks: 3, Content: "héllo wörld, \"quoted\"\n", PromptTokens: 4, CompletionTokens: 9}, 3, usage{4, 9, 13})
	// More chunks than runes: some deltas are empty, the text is still exact.
	f(Behavior{Chunks: 4, Content: "ab"}, 4, usage{10, 4, 14})

	if got := StreamText(Behavior{Chunks: 3}); got != "tok0 tok1 tok2 " {
		t.Fatalf("unexpected default stream text %q", got)
	}
}

func TestStreamPiecesAreNearlyEqual(t *testing.T) {
	pieces := streamPieces(Behavior{Chunks: 4, Content: "0123456789"})
	if strings.Join(pieces, "") != "0123456789" {
		t.Fatalf("pieces %q do not rebuild the content", pieces)
	}
	for _, p := range pieces {
		if len(p) < 2 || len(p) > 3 {
			t.Fatalf("pieces %q are not nearly equal", pieces)
		}
	}
}

func TestStreamDropAfter(t *testing.T) {
	s := startServer(t)
	f := func(b Behavior, wantEvents int) {
		t.Helper()
		s.SetBehavior("m", b)
		resp, err := doPost(nil, s.URL+"/chat/completions", `{"model":"m","stream":true}`)
		if err != nil {
			t.Fatalf("cannot POST: %s", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%+v: want an unexpected EOF, got %v after %q", b, err, body)
		}
		events := sseData(body)
		if len(events) != wantEvents || bytes.Contains(body, []byte("[DONE]")) || bytes.Contains(body, []byte(`"usage"`)) {
			t.Fatalf("%+v: want %d content events and nothing else, got %q", b, wantEvents, events)
		}
		for i, ev := range events {
			var c chatChunk
			if err := json.Unmarshal([]byte(ev), &c); err != nil || *c.Choices[0].Delta.Content != streamPieces(b)[i] {
				t.Fatalf("unexpected event %d %q (%v)", i, ev, err)
			}
		}
	}
	f(Behavior{DropAfter: 2}, 2)
	f(Behavior{DropAfter: 1, Chunks: 3, Interval: time.Millisecond}, 1)
	f(Behavior{DropAfter: 9, Chunks: 3}, 3)
}

func TestNonStreamDropAfter(t *testing.T) {
	s := startServer(t)
	s.SetBehavior("m", Behavior{DropAfter: 1})
	resp, err := doPost(nil, s.URL+"/chat/completions", `{"model":"m"}`)
	if err != nil {
		t.Fatalf("cannot POST: %s", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) || json.Valid(body) {
		t.Fatalf("want a truncated body and an unexpected EOF, got %v after %q", err, body)
	}
}

func TestCompletionsStream(t *testing.T) {
	s := startServer(t)
	b := Behavior{Chunks: 3}
	s.SetBehavior("m", b)
	_, body := post(t, nil, s.URL+"/completions", `{"model":"m","prompt":"x","stream":true}`)
	events := sseData(body)
	if len(events) != 6 || events[5] != "[DONE]" {
		t.Fatalf("want 3 content, finish, usage and [DONE] events, got %q", events)
	}
	var sb strings.Builder
	for i, ev := range events[:5] {
		var c struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Choices []struct {
				Text         string  `json:"text"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *usage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(ev), &c); err != nil || c.Object != "text_completion" || !strings.HasPrefix(c.ID, "cmpl-fake-") {
			t.Fatalf("unexpected event %q (%v)", ev, err)
		}
		switch {
		case i < 3:
			sb.WriteString(c.Choices[0].Text)
		case i == 3:
			if *c.Choices[0].FinishReason != "stop" {
				t.Fatalf("want a finish event, got %q", ev)
			}
		case i == 4:
			if len(c.Choices) != 0 || c.Usage == nil || *c.Usage != (usage{10, 3, 13}) {
				t.Fatalf("want a usage event, got %q", ev)
			}
		}
	}
	if sb.String() != StreamText(b) {
		t.Fatalf("want text %q, got %q", StreamText(b), sb.String())
	}
}

// TestConcurrentStreams holds many streams open at once in the pause between
// their chunks: if a lock were held while sleeping, or handlers were
// serialised, not every client would receive its first chunk and the test
// would time out. Close must then cut them all.
func TestConcurrentStreams(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	s, err := Start()
	if err != nil {
		t.Fatalf("cannot start: %s", err)
	}
	defer s.Close()
	s.SetMaxRequests(0)
	s.SetBehavior("m", Behavior{Chunks: 2, Interval: time.Hour})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
	defer client.CloseIdleConnections()

	var first, done sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		first.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			resp, err := doPost(client, s.URL+"/chat/completions", `{"model":"m","stream":true}`)
			if err != nil {
				first.Done()
				errs <- err
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			line, err := br.ReadString('\n')
			first.Done()
			if err != nil || !strings.HasPrefix(line, "data: ") {
				errs <- errors.New("no first chunk: " + line)
				return
			}
			if _, err := io.ReadAll(br); err == nil {
				errs <- errors.New("the stream completed despite Close")
			}
		}()
	}
	first.Wait()
	if s.Calls() != n {
		t.Fatalf("want %d calls, got %d", n, s.Calls())
	}
	if err := s.Close(); err != nil {
		t.Fatalf("cannot close: %s", err)
	}
	done.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
