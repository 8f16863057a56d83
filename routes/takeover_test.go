package routes_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// takeOverMidCall waits until the leader's call for key reached the fake,
// then fails its task in the store as the reaper does with a leader whose
// lease ran out (a store outage longer than the lease, in the chaos run),
// bumping the fence: the leader's Complete is refused from then on.
func takeOverMidCall(t *testing.T, g *testGW, key string) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for g.fake.CallsForKey(key) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the leader's call never reached the fake")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	rec, err := g.store.ReclaimZombies(ctx, time.Nanosecond, 10)
	if err != nil || rec.Tasks != 1 {
		t.Fatalf("reclaim: %+v, %v; want the one running task", rec, err)
	}
}

// Issue 13 (chaos run): a leader whose task was taken over while its
// upstream answered must not hand that answer to its client, which would
// then hold an answer the record does not: its retry got the take-over's
// answer, a second, different success for one key. It answers 503
// answer_not_recorded, and the retry's answer is the key's only one.
func TestTakenOverLeaderKeepsItsAnswer(t *testing.T) {
	g := startGW(t, gwOptions{})
	g.fake.SetSequence("m", upstreamtest.Behavior{FirstByteDelay: 300 * time.Millisecond}, upstreamtest.Behavior{})
	body := chat("m", "taken over", false)
	got := make(chan *answer, 1)
	go func() { got <- g.post(body, "Idempotency-Key", "lost-1") }()
	takeOverMidCall(t, g, "lost-1")
	a := <-got
	wantError(t, a, 503, "api_error", "answer_not_recorded", "")
	wantHeader(t, a, "x-should-retry", "true")

	retry := g.post(body, "Idempotency-Key", "lost-1")
	wantStatus(t, retry, 200)
	again := g.post(body, "Idempotency-Key", "lost-1")
	wantHeader(t, again, "Idempotent-Replayed", "true")
	if string(again.body) != string(retry.body) {
		t.Fatalf("replay %s differs from the recorded answer %s", again.body, retry.body)
	}
}

// The same for a stream: its client has the events as they come, but not
// the end. The leader holds its last event (data: [DONE]) until the
// record holds the stream; taken over, it ends the stream with an error
// event instead, so the client retries and gets the key's one answer.
func TestTakenOverLeaderEndsItsStreamWithAnError(t *testing.T) {
	g := startGW(t, gwOptions{})
	g.fake.SetSequence("m", upstreamtest.Behavior{Chunks: 3, Interval: 150 * time.Millisecond}, upstreamtest.Behavior{Chunks: 3})
	body := chat("m", "taken over", true)
	s := g.stream(body, "Idempotency-Key", "lost-2")
	wantStreamHeaders(t, s)
	takeOverMidCall(t, g, "lost-2")
	evs := s.all(t)
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	for _, ev := range evs {
		if strings.HasPrefix(ev, "data: [DONE]") {
			t.Fatalf("the taken-over leader ended its stream cleanly: %q", evs)
		}
	}
	wantStreamError(t, evs[len(evs)-1], "stream_interrupted")

	retry := g.stream(body, "Idempotency-Key", "lost-2").all(t)
	if !strings.HasPrefix(retry[len(retry)-1], "data: [DONE]") {
		t.Fatalf("the retry did not end with [DONE]: %q", retry)
	}
	replay := g.stream(body, "Idempotency-Key", "lost-2").all(t)
	if strings.Join(replay, "\n") != strings.Join(retry, "\n") {
		t.Fatalf("replay %q differs from the recorded stream %q", replay, retry)
	}
}

// For an Anthropic client the final event is message_stop, held back the
// same way, whether the target speaks Anthropic (c) or is translated (o).
func TestTakenOverLeaderEndsItsMessagesStreamWithAnError(t *testing.T) {
	g := startGW(t, gwOptions{yaml: claudeRoutes})
	for _, model := range []string{"c", "o"} {
		g.fake.SetSequence(model, upstreamtest.Behavior{Chunks: 3, Interval: 150 * time.Millisecond}, upstreamtest.Behavior{Chunks: 3})
		body := messages(model, "taken over", true)
		key := "lost-msg-" + model
		s := g.streamAt("/v1/messages", body, "Idempotency-Key", key)
		takeOverMidCall(t, g, key)
		evs := s.all(t)
		for _, ev := range evs {
			if strings.Contains(ev, "message_stop") {
				t.Fatalf("%s: the taken-over leader ended its stream cleanly: %q", model, evs)
			}
		}
		if last := evs[len(evs)-1]; !strings.HasPrefix(last, "event: error\n") {
			t.Fatalf("%s: the taken-over stream ended with %q, want an error event", model, last)
		}
		retry := g.streamAt("/v1/messages", body, "Idempotency-Key", key).all(t)
		if !strings.HasPrefix(retry[len(retry)-1], "event: message_stop") {
			t.Fatalf("%s: the retry did not end with message_stop: %q", model, retry)
		}
	}
}
