package routes

import (
	"bytes"
	"errors"
	"testing"

	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/upstreams"
)

func TestSSEWriterNumbersEvents(t *testing.T) {
	f := func(fence int64, from int, events []dedupe.LiveEvent, want string) {
		t.Helper()
		var out bytes.Buffer
		sw := newSSEWriter(&out, fence, from, upstreams.DialectOpenAI)
		for _, ev := range events {
			if err := sw.live(ev); err != nil {
				t.Fatalf("live(%+v): %v", ev, err)
			}
		}
		if out.String() != want {
			t.Errorf("fence %d from %d wrote\n%q, want\n%q", fence, from, out.String(), want)
		}
	}
	a, b := dedupe.LiveEvent{Data: []byte("data: a")}, dedupe.LiveEvent{Data: []byte("event: x\ndata: b")}
	end := dedupe.LiveEvent{End: true}
	f(0, 0, []dedupe.LiveEvent{a, b, end}, "data: a\n\nevent: x\ndata: b\n\n")
	f(3, 0, []dedupe.LiveEvent{a, b, end}, "data: a\nid: 3.1\n\nevent: x\ndata: b\nid: 3.2\n\n")
	f(12, 40, []dedupe.LiveEvent{a}, "data: a\nid: 12.41\n\n")
	f(1, 0, []dedupe.LiveEvent{a, {End: true, Err: "boom"}}, "data: a\nid: 1.1\n\n"+
		`data: {"error":{"message":"the stream failed: boom","type":"api_error","param":null,"code":"stream_interrupted"}}`+"\n\n")
}

// Every event reaches the client as soon as it is written, and a client
// that left is reported.
func TestSSEWriterFlushesEachEvent(t *testing.T) {
	var out bytes.Buffer
	sw := newSSEWriter(&out, 1, 0, upstreams.DialectOpenAI)
	if err := sw.event([]byte("data: a")); err != nil || out.String() != "data: a\nid: 1.1\n\n" {
		t.Fatalf("after one event: %q, %v", out.String(), err)
	}
	gone := newSSEWriter(failingWriter{}, 1, 0, upstreams.DialectOpenAI)
	if gone.event([]byte("data: a")) == nil || gone.fail("x") == nil {
		t.Fatal("a write to a client that left reported no error")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("client gone") }

func TestEventIDRoundTrip(t *testing.T) {
	f := func(id string, fence int64, n int, ok bool) {
		t.Helper()
		gf, gn, gok := parseEventID(id)
		if gf != fence || gn != n || gok != ok {
			t.Errorf("parseEventID(%q) = %d, %d, %t; want %d, %d, %t", id, gf, gn, gok, fence, n, ok)
		}
		if ok {
			if back := string(appendEventID(nil, fence, n)); back != id {
				t.Errorf("appendEventID(%d, %d) = %q, want %q", fence, n, back, id)
			}
		}
	}
	f("1.0", 1, 0, true)
	f("7.42", 7, 42, true)
	f("0.1", 0, 0, false)
	f("1.-1", 0, 0, false)
	f("1", 0, 0, false)
	f("a.b", 0, 0, false)
	f("", 0, 0, false)
}
