package upstreams

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/idemgw/gateway/upstreams/dialect"
)

// maxEventBytes caps one SSE event, so a broken upstream cannot make the
// gateway buffer without bound.
const maxEventBytes = 4 << 20

var doneData = []byte("[DONE]")

// Stream is a streamed upstream answer, read event by event. Its attempt
// record is finished when the stream ends.
type Stream struct {
	br       *bufio.Reader
	release  func()
	finish   func(err *Error, usage Usage)
	provider string
	// needsDone: the stream must end with data: [DONE] (chat and
	// completions) or a terminal Responses event; ending without one
	// means the stream was cut, even when the connection closed cleanly.
	needsDone bool
	sawDone   bool
	// anthropic: the upstream speaks Anthropic's stream, which ends with
	// message_stop (no [DONE]) and counts usage its own way.
	anthropic bool
	// tr, when set, translates the upstream's events into the client's
	// dialect (DESIGN.md section 7); pending holds those not yet returned.
	tr      translator
	pending [][]byte
	usage   Usage
	ended   bool
	buf     bytes.Buffer
	// row is the attempt's index in Result.Attempts.
	row int
	// splice, when set, continues the stream on other targets once it is
	// cut (on_stream_cut: continue); Next, Usage and Close go through it.
	splice *splice
}

// Next returns the next SSE event without the blank line that ends it,
// in the client's dialect. It returns io.EOF after a clean end, and an
// *Error when the upstream cut the stream, timed out, reported an error
// or sent an event that does not translate (and, with on_stream_cut:
// continue, no other target could continue it).
func (s *Stream) Next() ([]byte, error) {
	if s.splice != nil {
		return s.splice.next()
	}
	return s.segment()
}

// segment is Next for one attempt's stream.
func (s *Stream) segment() ([]byte, error) {
	for {
		if len(s.pending) > 0 {
			ev := s.pending[0]
			s.pending = s.pending[1:]
			return ev, nil
		}
		ev, err := s.read()
		if err != nil || s.tr == nil {
			return ev, err
		}
		out, terr := s.tr.Translate(ev)
		prompt, completion := s.tr.Usage()
		s.usage = Usage{PromptTokens: prompt, CompletionTokens: completion}
		if terr != nil {
			// One error event ends the client's stream, written by the
			// caller in the client's dialect, as for a cut stream.
			return nil, s.end(&Error{Provider: s.provider, Err: fmt.Errorf("cannot relay the stream: %w", terr)})
		}
		s.sawDone = s.tr.Done()
		s.pending = out
	}
}

// read returns the next upstream event as it came.
func (s *Stream) read() ([]byte, error) {
	if s.ended {
		return nil, io.EOF
	}
	s.buf.Reset()
	// midLine: the last read filled the buffer without reaching a newline,
	// so what follows continues that line; a lone "\n" (or "\r\n" split
	// after its "\r") there ends the line, not the event.
	midLine := false
	for {
		line, err := s.br.ReadSlice('\n')
		if len(line) > 0 {
			if !midLine && isBlank(line) {
				if s.buf.Len() == 0 {
					continue // stray separators between events
				}
				return s.event()
			}
			if s.buf.Len()+len(line) > maxEventBytes {
				return nil, s.end(&Error{Provider: s.provider, Err: fmt.Errorf("cannot relay event over %d bytes", maxEventBytes)})
			}
			s.buf.Write(line)
		}
		midLine = errors.Is(err, bufio.ErrBufferFull)
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			if s.buf.Len() > 0 {
				// A last event without its blank line: keep it, the end follows.
				return s.event()
			}
			if s.needsDone && !s.sawDone {
				return nil, s.end(&Error{Provider: s.provider, Err: ErrStreamCut})
			}
			return nil, s.end(nil)
		default:
			e := &Error{Provider: s.provider, Err: fmt.Errorf("stream interrupted: %w", err)}
			if errors.Is(err, ErrAttemptTimeout) || isTimeout(err) {
				e.Timeout = true
			}
			return nil, s.end(e)
		}
	}
}

// event copies the buffered event without its final newline and notes
// [DONE] and usage.
func (s *Stream) event() ([]byte, error) {
	ev := bytes.Clone(bytes.TrimRight(s.buf.Bytes(), "\r\n"))
	if s.tr != nil {
		return ev, nil // the translator reads ends and usage
	}
	data := SSEData(ev)
	if s.anthropic {
		if err := s.anthropicEvent(data); err != nil {
			return nil, err
		}
		return ev, nil
	}
	if bytes.Equal(data, doneData) {
		s.sawDone = true
		return ev, nil
	}
	if isTerminalResponseEvent(data) {
		s.sawDone = true
	}
	if u, ok := ParseUsage(data); ok {
		s.usage = u
	}
	return ev, nil
}

// anthropicEvent notes the end and the usage of an Anthropic event
// relayed as it is. An error event (overloaded mid-stream) ends the
// attempt as failed, so that it is neither recorded as complete nor
// replayed; the caller ends the client's stream with its error event.
func (s *Stream) anthropicEvent(data []byte) error {
	end, failed := anthropicEnd(data)
	if failed {
		return s.end(&Error{Provider: s.provider, Err: fmt.Errorf("%w: %s", dialect.ErrStreamFailed, anthropicErrorMessage(data))})
	}
	s.sawDone = s.sawDone || end
	// message_start carries the prompt side, message_delta the final
	// output count: keep the last non-zero of each.
	if prompt, completion, ok := dialect.MessagesUsage(data); ok {
		if prompt > 0 {
			s.usage.PromptTokens = prompt
		}
		if completion > 0 {
			s.usage.CompletionTokens = completion
		}
	}
	return nil
}

// end finishes the attempt once and releases the connection.
func (s *Stream) end(err *Error) error {
	if s.ended {
		return io.EOF
	}
	s.ended = true
	s.release()
	s.finish(err, s.usage)
	if err != nil {
		return err
	}
	return io.EOF
}

// Usage is the usage reported so far (the final chunk's, once ended);
// for a continued stream, the sum of its attempts'.
func (s *Stream) Usage() Usage {
	if s.splice != nil {
		return s.splice.usage()
	}
	return s.usage
}

// Close abandons the stream (its attempt is recorded as an error).
func (s *Stream) Close() {
	if s.splice != nil && s.splice.cur != s {
		s.splice.cur.Close()
		return
	}
	if !s.ended {
		_ = s.end(&Error{Provider: s.provider, Err: ErrStreamAbandoned})
	}
}

// terminalTypes end a Responses API stream, which has no [DONE].
var terminalTypes = [][]byte{
	[]byte(`"type":"response.completed"`), []byte(`"type":"response.incomplete"`),
	[]byte(`"type":"response.failed"`), []byte(`"type":"error"`),
}

// IsFinalEvent reports an event that ends a stream for the client (data:
// [DONE], a terminal Responses event, or an Anthropic message_stop): a
// recorded stream holds it back until the record holds the stream
// (routes' pump).
func IsFinalEvent(ev []byte) bool {
	data := SSEData(ev)
	return bytes.Equal(data, doneData) || isTerminalResponseEvent(data) || dialect.MessagesStreamEnd(data)
}

// isTerminalResponseEvent reports a Responses API event that ends its stream.
func isTerminalResponseEvent(data []byte) bool {
	head := data[:min(len(data), 64)] // "type" leads every Responses event
	for _, t := range terminalTypes {
		if bytes.Contains(head, t) {
			return true
		}
	}
	return false
}

func isBlank(line []byte) bool {
	return line[len(line)-1] == '\n' && (len(line) == 1 || (len(line) == 2 && line[0] == '\r'))
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
