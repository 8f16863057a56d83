package routes

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/upstreams"
	"github.com/idemgw/gateway/upstreams/dialect"
)

// sseWriter writes the event stream of one answer. It owns the event
// numbering, the "id: fence.n" line of a recorded stream (so that
// Last-Event-ID can resume it), the error event that ends a broken
// stream, and flushing: every event goes out in one Write, which the
// stream body (streamBody) sends as one flushed chunk, as
// httputil.ReverseProxy does for text/event-stream. A write error means
// the client went away.
type sseWriter struct {
	w io.Writer
	// err is the first write error: the client left, later writes fail too.
	err error
	// fence is the task generation the ids count in; 0 for a stream that
	// is not recorded, whose events carry no id.
	fence int64
	// n is the number of the last event written, or skipped (Last-Event-ID).
	n int
	// buf holds one event while it is written: it grows to the largest
	// event of the stream, not to a fixed per-connection buffer.
	buf []byte
	// anthropic: the client speaks Anthropic's stream, whose errors are
	// an "event: error" with Anthropic's error body.
	anthropic bool
}

// newSSEWriter writes after event from of generation fence (0: no ids),
// to a client of dialect d.
func newSSEWriter(w io.Writer, fence int64, from int, d upstreams.Dialect) *sseWriter {
	return &sseWriter{w: w, fence: fence, n: from, anthropic: d == upstreams.DialectAnthropic}
}

// event writes one event (without the blank line that ends it) and
// flushes it.
func (s *sseWriter) event(data []byte) error {
	s.n++
	s.buf = append(s.buf[:0], data...)
	if s.fence > 0 {
		s.buf = append(s.buf, "\nid: "...)
		s.buf = appendEventID(s.buf, s.fence, s.n)
	}
	s.buf = append(s.buf, "\n\n"...)
	return s.flush()
}

// flush writes buf out as one piece.
func (s *sseWriter) flush() error {
	if s.err == nil {
		_, s.err = s.w.Write(s.buf)
	}
	return s.err
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
	return s.err
}

// fail ends the stream with an error event, the way OpenAI (or
// Anthropic) reports errors inside a stream, so SDKs raise instead of
// seeing a clean end. The status line is long gone: this is the only way
// left to say it.
func (s *sseWriter) fail(message string) error {
	if s.anthropic {
		s.buf = append(s.buf[:0], "event: error\ndata: "...)
		s.buf = append(s.buf, dialect.AnthropicError(0, dialect.TypeAPI, message)...)
	} else {
		s.buf = append(s.buf[:0], "data: "...)
		s.buf = append(s.buf, errorBody(&APIError{Type: "api_error", Code: "stream_interrupted", Message: message})...)
	}
	s.buf = append(s.buf, "\n\n"...)
	return s.flush()
}

// streamBody is a response body written by fn in the connection's own
// goroutine: fasthttp frames each Write as one chunk and flushes it
// (fasthttp.BodyWriterTo). SetBodyStreamWriter would run fn in a goroutine
// of its own, behind a pipe and a 4 KiB bufio.Writer, for every open
// stream (issue 14).
type streamBody struct {
	fn  func(w io.Writer)
	ran bool
	// rest is what Read has still to hand out.
	rest []byte
}

// setStreamBody makes fn the response body, a chunked stream.
func setStreamBody(ctx *fasthttp.RequestCtx, fn func(w io.Writer)) {
	ctx.Response.SetBodyStream(&streamBody{fn: fn}, -1)
}

// WriteTo implements io.WriterTo: fasthttp calls it once, with a writer
// that sends every Write as a flushed chunk.
func (b *streamBody) WriteTo(w io.Writer) (int64, error) {
	cw := countingWriter{w: w}
	b.run(&cw)
	return cw.n, nil
}

// SupportsBodyWriteTo implements fasthttp.BodyWriterTo: fasthttp may call
// WriteTo instead of Read.
func (b *streamBody) SupportsBodyWriteTo() bool { return true }

// Read implements io.Reader, for a body that fasthttp copies rather than
// frames (none of the gateway's): fn runs to its end into memory first.
func (b *streamBody) Read(p []byte) (int, error) {
	if !b.ran {
		var buf bytes.Buffer
		b.run(&buf)
		b.rest = buf.Bytes()
	}
	if len(b.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.rest)
	b.rest = b.rest[n:]
	return n, nil
}

// Close implements io.Closer; fasthttp calls it when the response is done
// or dropped. A body never written (the client left before the headers
// went out) still runs fn, to a writer that fails, so that what fn owns
// (the follow, the log line) ends the way it ends for a client that left.
func (b *streamBody) Close() error {
	b.run(goneWriter{})
	return nil
}

func (b *streamBody) run(w io.Writer) {
	if b.ran {
		return
	}
	b.ran = true
	b.fn(w)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// errClientGone is the write error of a stream whose body was dropped.
var errClientGone = errors.New("the client is gone")

type goneWriter struct{}

func (goneWriter) Write([]byte) (int, error) { return 0, errClientGone }

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
