package upstreams

import "testing"

func TestIsEventStream(t *testing.T) {
	f := func(ct string, want bool) {
		t.Helper()
		if got := isEventStream(ct); got != want {
			t.Errorf("isEventStream(%q) = %t, want %t", ct, got, want)
		}
	}
	f("text/event-stream", true)
	f("text/event-stream; charset=utf-8", true)
	f("Text/Event-Stream", true)
	f("TEXT/EVENT-STREAM;charset=UTF-8", true)
	f("text/event-stream; charset=", true) // a broken parameter does not hide the type
	f("text/event-streams", false)
	f("text/event", false)
	f("application/json", false)
	f("", false)
}
