package routes_test

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// event is one SSE event split into its data and id lines.
type event struct{ data, id string }

func parseEvent(t *testing.T, raw string) event {
	t.Helper()
	var ev event
	for line := range strings.SplitSeq(raw, "\n") {
		switch {
		case strings.HasPrefix(line, "data: "):
			if ev.data != "" {
				t.Fatalf("event %q has two data lines", raw)
			}
			ev.data = strings.TrimPrefix(line, "data: ")
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		default:
			t.Fatalf("event %q has an unexpected line %q", raw, line)
		}
	}
	return ev
}

func parseEvents(t *testing.T, raws []string) []event {
	t.Helper()
	evs := make([]event, len(raws))
	for i, r := range raws {
		evs[i] = parseEvent(t, r)
	}
	return evs
}

// streamText joins the delta contents of chat chunks.
func streamText(t *testing.T, evs []event) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range evs {
		if ev.data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct{ Content string }
			}
		}
		if err := json.Unmarshal([]byte(ev.data), &c); err != nil {
			t.Fatalf("event data %q: %v", ev.data, err)
		}
		for _, ch := range c.Choices {
			b.WriteString(ch.Delta.Content)
		}
	}
	return b.String()
}

// wantStreamError checks that raw is OpenAI's in-stream error event.
func wantStreamError(t *testing.T, raw, code string) {
	t.Helper()
	ev := parseEvent(t, raw)
	var e struct{ Error apiError }
	if err := json.Unmarshal([]byte(ev.data), &e); err != nil || e.Error.Type != "api_error" || str(e.Error.Code) != code || e.Error.Message == "" {
		t.Fatalf("event %q is not an error event with code %q (%v)", raw, code, err)
	}
}

func wantStreamHeaders(t *testing.T, s *sse) {
	t.Helper()
	wantStatus(t, &s.answer, 200)
	wantHeader(t, &s.answer, "Content-Type", "text/event-stream")
	wantHeader(t, &s.answer, "Cache-Control", "no-cache")
}

// A recorded stream numbers its events "fence.n" in SSE id lines; its
// replay has the same events and ids, and Last-Event-ID resumes after
// the given event. An id of another generation is refused.
func TestStreamEventIDs(t *testing.T) {
	g := startGW(t, gwOptions{})
	b := upstreamtest.Behavior{Chunks: 4}
	g.fake.SetBehavior("m", b)
	body := chat("m", "number my events", true)

	s := g.stream(body, "Idempotency-Key", "ids-1")
	wantStreamHeaders(t, s)
	wantHeader(t, &s.answer, "Idempotent-Replayed", "false")
	wantHeader(t, &s.answer, "Idempotency-Key", "ids-1")
	wantHeader(t, &s.answer, "X-Gateway-Provider", "fake")
	first := parseEvents(t, s.all(t))
	// 4 content chunks, the finish chunk, the usage chunk and [DONE].
	if len(first) != 7 || first[6].data != "[DONE]" {
		t.Fatalf("got %d events %+v, want 7 ending with [DONE]", len(first), first)
	}
	for i, ev := range first {
		if want := fmt.Sprintf("1.%d", i+1); ev.id != want {
			t.Fatalf("event %d has id %q, want %q", i, ev.id, want)
		}
	}
	if got := streamText(t, first); got != upstreamtest.StreamText(b) {
		t.Fatalf("stream text %q, want %q", got, upstreamtest.StreamText(b))
	}

	// The duplicate replays (or, while the record is being written,
	// joins): the same events either way.
	again := g.stream(body, "Idempotency-Key", "ids-1")
	wantStreamHeaders(t, again)
	wantHeader(t, &again.answer, "Idempotent-Replayed", "true")
	if got := parseEvents(t, again.all(t)); fmt.Sprint(got) != fmt.Sprint(first) {
		t.Fatalf("replayed events differ:\nfirst  %+v\nreplay %+v", first, got)
	}

	resumed := g.stream(body, "Idempotency-Key", "ids-1", "Last-Event-ID", "1.4")
	wantStreamHeaders(t, resumed)
	if got := parseEvents(t, resumed.all(t)); fmt.Sprint(got) != fmt.Sprint(first[4:]) {
		t.Fatalf("resumed events:\n%+v\nwant\n%+v", got, first[4:])
	}
	if n := g.fake.CallsForKey("ids-1"); n != 1 {
		t.Fatalf("%d upstream calls for the key, want 1", n)
	}

	a := g.post(body, "Idempotency-Key", "ids-1", "Last-Event-ID", "2.1")
	wantError(t, a, 409, "invalid_request_error", "stream_not_resumable", "")
	wantHeader(t, a, "x-should-retry", "false")
	// A key never seen has no events to resume.
	wantError(t, g.post(body, "Idempotency-Key", "ids-new", "Last-Event-ID", "1.3"), 409, "invalid_request_error", "stream_not_resumable", "")
}

// Last-Event-ID must be an id this gateway sent ("fence.n").
func TestLastEventIDMalformed(t *testing.T) {
	g := startGW(t, gwOptions{})
	f := func(id string) {
		t.Helper()
		a := g.post(chat("m", "resume", true), "Idempotency-Key", "lei-1", "Last-Event-ID", id)
		wantError(t, a, 400, "invalid_request_error", "invalid_last_event_id", "")
	}
	f("7")
	f("abc")
	f("1.")
	f(".1")
	f("0.1")
	f("-1.1")
	f("1.-1")
	f("1.2.3")
	f("1.x")
	f("99999999999999999999.1")
	if n := g.fake.Calls(); n != 0 {
		t.Fatalf("%d upstream calls for malformed ids", n)
	}
}

// Each event is flushed to the client as it arrives: the first is read
// while the upstream is still holding the second back. A cut upstream
// ends the stream with an error event, never a clean end.
func TestStreamFlushesEachEvent(t *testing.T) {
	for _, m := range dedupeModes {
		t.Run(m.name, func(t *testing.T) {
			g := startGW(t, gwOptions{yaml: m.yaml})
			// The second chunk would come an hour later.
			g.fake.SetBehavior("held", upstreamtest.Behavior{Chunks: 3, Interval: time.Hour})
			s := g.stream(chat("held", "flush", true))
			wantStreamHeaders(t, s)
			raw, err := s.next()
			if err != nil {
				t.Fatalf("first event: %v", err)
			}
			ev := parseEvent(t, raw)
			if !strings.Contains(ev.data, `"content":"tok0 "`) {
				t.Fatalf("first event %q", raw)
			}
			if m.yaml == "" && ev.id != "1.1" {
				t.Fatalf("first recorded event has id %q, want 1.1", ev.id)
			}
			if m.yaml != "" && ev.id != "" {
				t.Fatalf("an unrecorded stream has id %q; nothing could resume from it", ev.id)
			}
			_ = g.fake.Close()
			raw, err = s.next()
			if err != nil {
				t.Fatalf("after the cut: %v", err)
			}
			wantStreamError(t, raw, "stream_interrupted")
			if raw, err := s.next(); err != io.EOF {
				t.Fatalf("after the error event: %q, %v; want the end", raw, err)
			}
		})
	}
}

// A duplicate of a running stream joins it live: the events so far and
// the next ones, with the leader's ids.
func TestStreamJoin(t *testing.T) {
	g := startGW(t, gwOptions{})
	g.fake.SetBehavior("held", upstreamtest.Behavior{Chunks: 3, Interval: time.Hour})
	body := chat("held", "join me", true)
	leader := g.stream(body, "Idempotency-Key", "join-1")
	led, err := leader.next()
	if err != nil || parseEvent(t, led).id != "1.1" {
		t.Fatalf("leader's first event %q, %v", led, err)
	}
	joiner := g.stream(body, "Idempotency-Key", "join-1")
	wantStreamHeaders(t, joiner)
	wantHeader(t, &joiner.answer, "Idempotent-Replayed", "true")
	if joined, err := joiner.next(); err != nil || joined != led {
		t.Fatalf("joiner's first event %q, %v; want the leader's %q", joined, err, led)
	}
	_ = g.fake.Close()
	for name, s := range map[string]*sse{"leader": leader, "joiner": joiner} {
		raw, err := s.next()
		if err != nil {
			t.Fatalf("%s after the cut: %v", name, err)
		}
		wantStreamError(t, raw, "stream_interrupted")
	}
	if n := g.fake.CallsForKey("join-1"); n != 1 {
		t.Fatalf("%d upstream calls, want 1", n)
	}
}
