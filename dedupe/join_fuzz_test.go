package dedupe

import (
	"bytes"
	"testing"
)

// FuzzSplitEvents checks the recorder's transcript format from the
// dedupe side: events recorded as Ticket.Publish does (each followed by a
// blank line) split back into the same events, whatever bytes they hold,
// as long as an event neither contains a blank line nor ends with a
// newline. upstreams/sse_fuzz_test.go (FuzzStreamEvents) checks the other
// half: every event the SSE parser returns is such an event. The two
// packages never import each other, so the contract is checked on both
// sides instead of in one test. SplitEvents also never panics on an
// arbitrary transcript, and loses none of its bytes.
func FuzzSplitEvents(f *testing.F) {
	f.Fuzz(func(t *testing.T, packed []byte, sep byte) {
		// The fuzzer's bytes, cut into events at sep.
		var evs [][]byte
		for _, ev := range bytes.Split(packed, []byte{sep}) {
			if bytes.Contains(ev, eventSep) || bytes.HasSuffix(ev, []byte("\n")) {
				continue // not an event the SSE parser returns
			}
			evs = append(evs, ev)
		}
		var transcript []byte
		for _, ev := range evs {
			transcript = append(transcript, ev...)
			transcript = append(transcript, '\n', '\n')
		}
		got := SplitEvents(transcript)
		if len(got) != len(evs) {
			t.Fatalf("SplitEvents(%q) = %q, want %q", transcript, got, evs)
		}
		for i := range evs {
			if !bytes.Equal(got[i], evs[i]) {
				t.Fatalf("SplitEvents(%q)[%d] = %q, want %q", transcript, i, got[i], evs[i])
			}
		}

		// Any transcript: the pieces and the separators between them
		// rebuild it.
		pieces := SplitEvents(packed)
		rebuilt := bytes.Join(pieces, eventSep)
		if len(rebuilt) < len(packed) {
			rebuilt = append(rebuilt, eventSep...) // the last piece's blank line
		}
		if !bytes.Equal(rebuilt, packed) {
			t.Fatalf("SplitEvents(%q) = %q loses bytes (rebuilt %q)", packed, pieces, rebuilt)
		}
	})
}
