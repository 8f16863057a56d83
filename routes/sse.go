package routes

import (
	"bufio"
	"strconv"
	"strings"

	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/upstreams"
	"github.com/idemgw/gateway/upstreams/dialect"
)

// sseWriter writes the event stream of one answer. It owns the event
// numbering, the "id: fence.n" line of a recorded stream (so that
// Last-Event-ID can resume it), the error event that ends a broken
// stream, and flushing: every event is flushed as soon as it is written,
// as httputil.ReverseProxy does for text/event-stream. A write error means
// the client went away.
type sseWriter struct {
	w *bufio.Writer
	// fence is the task generation the ids count in; 0 for a stream that
	// is not recorded, whose events carry no id.
	fence int64
	// n is the number of the last event written, or skipped (Last-Event-ID).
	n  int
	id []byte // the id line, built without allocating per event
	// anthropic: the client speaks Anthropic's stream, whose errors are
	// an "event: error" with Anthropic's error body.
	anthropic bool
}

// newSSEWriter writes after event from of generation fence (0: no ids),
// to a client of dialect d.
func newSSEWriter(w *bufio.Writer, fence int64, from int, d upstreams.Dialect) *sseWriter {
	return &sseWriter{w: w, fence: fence, n: from, anthropic: d == upstreams.DialectAnthropic}
}

// event writes one event (without the blank line that ends it) and
// flushes it.
func (s *sseWriter) event(data []byte) error {
	s.n++
	_, _ = s.w.Write(data)
	if s.fence > 0 {
		s.id = append(s.id[:0], "\nid: "...)
		s.id = appendEventID(s.id, s.fence, s.n)
		_, _ = s.w.Write(s.id)
	}
	_, _ = s.w.WriteString("\n\n")
	return s.w.Flush()
}

// live writes one event of a live stream; its end marker ends the
// stream, with the error event when the stream failed.
func (s *sseWriter) live(ev dedupe.LiveEvent) error {
	switch {
	case !ev.End:
		return s.event(ev.Data)
	case ev.Err != "":
		return s.fail("the stream failed: " + ev.Err)
	}
	return s.w.Flush()
}

// fail ends the stream with an error event, the way OpenAI (or
// Anthropic) reports errors inside a stream, so SDKs raise instead of
// seeing a clean end. The status line is long gone: this is the only way
// left to say it.
func (s *sseWriter) fail(message string) error {
	if s.anthropic {
		_, _ = s.w.WriteString("event: error\ndata: ")
		_, _ = s.w.Write(dialect.AnthropicError(0, dialect.TypeAPI, message))
		_, _ = s.w.WriteString("\n\n")
		return s.w.Flush()
	}
	_, _ = s.w.WriteString("data: ")
	_, _ = s.w.Write(errorBody(&APIError{Type: "api_error", Code: "stream_interrupted", Message: message}))
	_, _ = s.w.WriteString("\n\n")
	return s.w.Flush()
}

// appendEventID appends the SSE id of event n (1-based) of a task's
// generation fence: "fence.n", so a resume can tell generations apart.
func appendEventID(b []byte, fence int64, n int) []byte {
	b = strconv.AppendInt(b, fence, 10)
	b = append(b, '.')
	return strconv.AppendInt(b, int64(n), 10)
}

// parseEventID reads an id made by appendEventID.
func parseEventID(id string) (fence int64, n int, ok bool) {
	f, rest, found := strings.Cut(id, ".")
	if !found {
		return 0, 0, false
	}
	fence, err1 := strconv.ParseInt(f, 10, 64)
	n, err2 := strconv.Atoi(rest)
	if err1 != nil || err2 != nil || fence < 1 || n < 0 {
		return 0, 0, false
	}
	return fence, n, true
}
