package upstreams

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
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
	usage     Usage
	ended     bool
	buf       bytes.Buffer
}

// Next returns the next SSE event without the blank line that ends it.
// It returns io.EOF after a clean end, and an *Error when the upstream
// cut the stream or timed out.
func (s *Stream) Next() ([]byte, error) {
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
				return s.event(), nil
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
				return s.event(), nil
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
func (s *Stream) event() []byte {
	ev := bytes.Clone(bytes.TrimRight(s.buf.Bytes(), "\r\n"))
	data := SSEData(ev)
	if bytes.Equal(data, doneData) {
		s.sawDone = true
		return ev
	}
	if isTerminalResponseEvent(data) {
		s.sawDone = true
	}
	if u, ok := ParseUsage(data); ok {
		s.usage = u
	}
	return ev
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

// Usage is the usage reported so far (the final chunk's, once ended).
func (s *Stream) Usage() Usage { return s.usage }

// Close abandons the stream (its attempt is recorded as an error).
func (s *Stream) Close() {
	if !s.ended {
		_ = s.end(&Error{Provider: s.provider, Err: ErrStreamAbandoned})
	}
}

// terminalTypes end a Responses API stream, which has no [DONE].
var terminalTypes = [][]byte{
	[]byte(`"type":"response.completed"`), []byte(`"type":"response.incomplete"`),
	[]byte(`"type":"response.failed"`), []byte(`"type":"error"`),
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
