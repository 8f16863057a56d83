package upstreams

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzStreamEvents feeds arbitrary upstream bytes to the SSE parser, read
// through buffers of any size and one byte at a time, as TCP may deliver
// them. The parser never panics and always ends, finishing its attempt and
// releasing its connection exactly once; every event it returns can be
// recorded: it holds no blank line and does not end with a newline, which
// is what dedupe.SplitEvents needs to split the recorded transcript (each
// event followed by "\n\n") back into the same events (the dedupe side is
// FuzzSplitEvents; the two packages never import each other). Without
// carriage returns, the events' lines are exactly the input's non-blank
// lines. A stream that needs [DONE] and has none ends as cut.
func FuzzStreamEvents(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, bufSize uint16, oneByte, needsDone bool) {
		var r io.Reader = bytes.NewReader(data)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		s, p := newTestStream(r, 16+int(bufSize%4096), needsDone)
		var evs [][]byte
		var end error
		for {
			ev, err := s.Next()
			if err != nil {
				end = err
				break
			}
			if len(evs) > len(data) {
				t.Fatalf("more events than input bytes: %q", data)
			}
			if bytes.Contains(ev, []byte("\n\n")) || bytes.HasSuffix(ev, []byte("\n")) {
				t.Fatalf("event %q of %q would not split back out of a transcript", ev, data)
			}
			evs = append(evs, ev)
		}
		if _, err := s.Next(); err != io.EOF {
			t.Fatalf("Next after the end = %v, want io.EOF", err)
		}
		s.Close()
		if p.finishes != 1 || p.releases != 1 {
			t.Fatalf("finished %d and released %d times, want once each", p.finishes, p.releases)
		}
		sawDone := false
		for _, ev := range evs {
			d := SSEData(ev)
			sawDone = sawDone || bytes.Equal(d, doneData) || isTerminalResponseEvent(d)
		}
		switch {
		case needsDone && !sawDone:
			if !errors.Is(end, ErrStreamCut) || p.err == nil {
				t.Fatalf("stream without [DONE] ended with %v (attempt %v), want ErrStreamCut", end, p.err)
			}
		case end != io.EOF || p.err != nil:
			t.Fatalf("stream ended with %v (attempt %v), want io.EOF", end, p.err)
		}
		if bytes.IndexByte(data, '\r') < 0 {
			var want [][]byte
			for _, line := range bytes.Split(data, []byte("\n")) {
				if len(line) > 0 {
					want = append(want, line)
				}
			}
			var got [][]byte
			for _, ev := range evs {
				got = append(got, bytes.Split(ev, []byte("\n"))...)
			}
			if !equalLines(got, want) {
				t.Fatalf("events %q do not hold the lines %q of %q", evs, want, data)
			}
		}
	})
}

func equalLines(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
