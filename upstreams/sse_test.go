package upstreams

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// streamOver builds a Stream over r and reports what its attempt record got.
type streamProbe struct {
	releases int
	finishes int
	err      *Error
	usage    Usage
}

func newTestStream(r io.Reader, size int, needsDone bool) (*Stream, *streamProbe) {
	p := &streamProbe{}
	s := &Stream{
		br:        bufio.NewReaderSize(r, size),
		release:   func() { p.releases++ },
		finish:    func(err *Error, u Usage) { p.finishes++; p.err, p.usage = err, u },
		provider:  "p",
		needsDone: needsDone,
	}
	return s, p
}

// readAll returns every event and the error that ended the stream.
func readAll(t *testing.T, s *Stream) ([]string, error) {
	t.Helper()
	var evs []string
	for range 1000 {
		ev, err := s.Next()
		if err != nil {
			return evs, err
		}
		evs = append(evs, string(ev))
	}
	t.Fatal("stream never ended")
	return nil, nil
}

func TestStreamFraming(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"lf", "data: a\n\ndata: b\n\ndata: [DONE]\n\n", []string{"data: a", "data: b", "data: [DONE]"}},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\ndata: [DONE]\r\n\r\n", []string{"data: a", "data: b", "data: [DONE]"}},
		{"multi-line data", "event: x\ndata: l1\ndata: l2\n\ndata: [DONE]\n\n", []string{"event: x\ndata: l1\ndata: l2", "data: [DONE]"}},
		{"multi-line crlf", "data: l1\r\ndata: l2\r\n\r\ndata: [DONE]\r\n\r\n", []string{"data: l1\r\ndata: l2", "data: [DONE]"}},
		{"stray blank lines", "\n\r\n\ndata: a\n\n\n\n: comment\n\ndata: [DONE]\n\n", []string{"data: a", ": comment", "data: [DONE]"}},
		{"no final blank line", "data: a\n\ndata: [DONE]\n", []string{"data: a", "data: [DONE]"}},
		{"no final newline", "data: a\n\ndata: [DONE]", []string{"data: a", "data: [DONE]"}},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			name := tt.name
			var r io.Reader = strings.NewReader(tt.in)
			if oneByte {
				// Events split across reads, as TCP delivers them.
				name += "/one byte reads"
				r = iotest.OneByteReader(r)
			}
			t.Run(name, func(t *testing.T) {
				s, p := newTestStream(r, 4096, true)
				evs, err := readAll(t, s)
				if err != io.EOF {
					t.Fatalf("stream ended with %v, want io.EOF", err)
				}
				if strings.Join(evs, "|") != strings.Join(tt.want, "|") {
					t.Fatalf("events = %q, want %q", evs, tt.want)
				}
				if p.releases != 1 || p.finishes != 1 || p.err != nil {
					t.Fatalf("releases %d, finishes %d, err %v; want 1, 1, nil", p.releases, p.finishes, p.err)
				}
				if _, err := s.Next(); err != io.EOF {
					t.Fatalf("Next after the end = %v, want io.EOF", err)
				}
				if p.finishes != 1 {
					t.Fatalf("attempt finished %d times", p.finishes)
				}
			})
		}
	}
}

func TestStreamCutBeforeDone(t *testing.T) {
	s, p := newTestStream(strings.NewReader("data: a\n\ndata: b\n\n"), 4096, true)
	evs, err := readAll(t, s)
	if len(evs) != 2 {
		t.Fatalf("events = %q, want 2", evs)
	}
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrStreamCut) {
		t.Fatalf("end = %v, want *Error wrapping ErrStreamCut", err)
	}
	if p.err == nil || p.finishes != 1 || p.releases != 1 {
		t.Fatalf("attempt: err %v finishes %d releases %d", p.err, p.finishes, p.releases)
	}

	// /v1/responses streams have no [DONE]: a plain end is clean.
	s, p = newTestStream(strings.NewReader("event: response.completed\ndata: {}\n\n"), 4096, false)
	if _, err := readAll(t, s); err != io.EOF || p.err != nil {
		t.Fatalf("responses stream ended with %v (attempt err %v), want io.EOF", err, p.err)
	}
}

func TestStreamInterrupted(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("data: a\n\n"), iotest.ErrReader(boom))
	s, p := newTestStream(r, 4096, true)
	evs, err := readAll(t, s)
	if len(evs) != 1 || !errors.Is(err, boom) {
		t.Fatalf("events %q, end %v; want 1 event and the read error", evs, err)
	}
	if p.err == nil || p.err.Timeout {
		t.Fatalf("attempt error = %+v, want a non-timeout error", p.err)
	}

	r = io.MultiReader(strings.NewReader("data: a\n\n"), iotest.ErrReader(ErrAttemptTimeout))
	s, p = newTestStream(r, 4096, true)
	if _, err := readAll(t, s); !errors.Is(err, ErrAttemptTimeout) || p.err == nil || !p.err.Timeout {
		t.Fatalf("end %v, attempt %+v; want a timeout", err, p.err)
	}
}

// Lines longer than the read buffer arrive in pieces; a piece that ends
// in "\r" followed by a piece "\n" ends a line, not the event.
func TestStreamLongLines(t *testing.T) {
	const size = 16
	long := strings.Repeat("x", size-len("data: ")-1) // "data: xxx\r" fills the buffer exactly
	in := "data: " + long + "\r\ndata: second\r\n\r\ndata: " + strings.Repeat("y", 100) + "\n\ndata: [DONE]\n\n"
	s, _ := newTestStream(strings.NewReader(in), size, true)
	evs, err := readAll(t, s)
	if err != io.EOF {
		t.Fatalf("end = %v", err)
	}
	want := []string{"data: " + long + "\r\ndata: second", "data: " + strings.Repeat("y", 100), "data: [DONE]"}
	if strings.Join(evs, "|") != strings.Join(want, "|") {
		t.Fatalf("events = %q, want %q", evs, want)
	}
}

func TestStreamEventLimit(t *testing.T) {
	in := "data: " + strings.Repeat("x", maxEventBytes+10) + "\n\ndata: [DONE]\n\n"
	s, p := newTestStream(strings.NewReader(in), 16<<10, true)
	_, err := readAll(t, s)
	var e *Error
	if !errors.As(err, &e) || p.err == nil {
		t.Fatalf("end = %v, want an *Error for an oversize event", err)
	}
}

func TestStreamUsageAndClose(t *testing.T) {
	in := "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n" +
		"data: [DONE]\n\n"
	s, p := newTestStream(strings.NewReader(in), 4096, true)
	if _, err := readAll(t, s); err != io.EOF {
		t.Fatal(err)
	}
	want := Usage{PromptTokens: 7, CompletionTokens: 3}
	if s.Usage() != want || p.usage != want {
		t.Fatalf("usage = %+v (attempt %+v), want %+v", s.Usage(), p.usage, want)
	}
	s.Close() // after the end: no second finish
	if p.finishes != 1 || p.releases != 1 {
		t.Fatalf("finishes %d releases %d after Close, want 1 and 1", p.finishes, p.releases)
	}

	s, p = newTestStream(strings.NewReader(in), 4096, true)
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	if p.finishes != 1 || p.releases != 1 || p.err == nil {
		t.Fatalf("abandoned stream: finishes %d releases %d err %v", p.finishes, p.releases, p.err)
	}
	if _, err := s.Next(); err != io.EOF {
		t.Fatalf("Next after Close = %v, want io.EOF", err)
	}
}

// The events that end a stream for its client: what a recorded stream
// holds back until its record is written.
func TestIsFinalEvent(t *testing.T) {
	f := func(ev string, want bool) {
		t.Helper()
		if got := IsFinalEvent([]byte(ev)); got != want {
			t.Fatalf("IsFinalEvent(%q) = %v, want %v", ev, got, want)
		}
	}
	f("data: [DONE]", true)
	f("data:[DONE]", true)
	f(`event: response.completed`+"\n"+`data: {"type":"response.completed","response":{}}`, true)
	f(`data: {"type":"response.output_text.delta","delta":"hi"}`, false)
	f(`data: {"id":"c1","choices":[{"delta":{"content":"[DONE]"}}]}`, false)
	f("event: message_stop\ndata: {\"type\":\"message_stop\"}", true)
	f(`event: content_block_delta`+"\n"+`data: {"type":"content_block_delta","delta":{"text":"message_stop"}}`, false)
	f(": keep-alive", false)
}
