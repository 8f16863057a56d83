package upstreams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// splice reads a chat stream across the attempts that continue it
// (on_stream_cut: continue, see continuation.go). The Stream the caller
// holds delegates to it; each attempt is a segment Stream of its own,
// finished (and its ledger row closed) when it ends, so the cut attempt
// is recorded cut and the one that finished success.
type splice struct {
	cur *Stream // the segment being read
	// resume asks the next target to continue text; it returns the new
	// segment, or the reason none could.
	resume func(text string, cut *Stream) (*Stream, error)
	// counted counts a cut, continued or not.
	counted func(continued bool)
	id      chunkIdentity
	// text is every content byte handed out so far, the assistant turn of
	// a continuation.
	text strings.Builder
	// blocked says why the stream can no longer be continued.
	blocked string
	// prior is the usage of the segments before cur.
	prior Usage
	// continued is true once cur is a continuation.
	continued bool
	// held are a continuation's first events, kept back while its start
	// may still repeat the text sent (see overlap); heldText is their text.
	held     []heldEvent
	heldText strings.Builder
	decided  bool
	out      [][]byte // events ready to hand out, in order
	err      error    // returned once out is empty
	// messages: the client speaks Anthropic's Messages stream
	// (splice_messages.go), whose blocks it numbers.
	messages bool
	blocks   messagesBlocks
}

// heldEvent is one continued event kept back at the seam: its data
// (stamped) and its text.
type heldEvent struct {
	name string // the SSE event name ("" for OpenAI's data-only events)
	data []byte
	text string
	keep bool // it carries more than text (finish_reason, usage)
}

func (sp *splice) next() ([]byte, error) {
	for {
		if len(sp.out) > 0 {
			ev := sp.out[0]
			sp.out = sp.out[1:]
			return ev, nil
		}
		if sp.err != nil {
			return nil, sp.err
		}
		ev, err := sp.cur.segment()
		if err == nil {
			sp.add(ev)
			continue
		}
		sp.release()
		if err == io.EOF {
			sp.err = io.EOF
			continue
		}
		sp.err = sp.cut(err)
	}
}

// cut moves on to a continuation of the segment that broke with err, or
// returns the error that ends the stream.
func (sp *splice) cut(err error) error {
	var e *Error
	switch {
	case !errors.As(err, &e), errors.Is(err, ErrStreamAbandoned), canceled(e):
		return err
	case sp.cur.sawDone:
		return err // the answer was whole; only its connection broke
	case sp.blocked != "":
		sp.counted(false)
		return &Error{Provider: e.Provider, Timeout: e.Timeout, Err: fmt.Errorf("%w (not continued: %s)", e.Err, sp.blocked)}
	}
	next, cerr := sp.resume(sp.text.String(), sp.cur)
	sp.counted(cerr == nil)
	if cerr != nil {
		return &Error{Provider: e.Provider, Timeout: e.Timeout, Err: fmt.Errorf("%w (not continued: %v)", e.Err, cerr)}
	}
	sp.prior = sp.prior.add(sp.cur.usage)
	sp.cur, sp.continued, sp.decided = next, true, false
	sp.blocks.renumber = map[int]int{}
	return nil
}

// add takes one event of the current segment.
func (sp *splice) add(ev []byte) {
	if sp.messages {
		sp.addMessages(ev)
		return
	}
	data := SSEData(ev)
	var c chatChunk
	if data == nil || bytes.Equal(data, doneData) || json.Unmarshal(data, &c) != nil || present(c.Error) {
		// [DONE], comments, an upstream error event: nothing to stitch.
		sp.release()
		sp.out = append(sp.out, ev)
		return
	}
	text, blocked := c.content()
	if sp.blocked == "" {
		sp.blocked = blocked
	}
	if !sp.continued {
		sp.id.capture(data)
		sp.text.WriteString(text)
		sp.out = append(sp.out, ev)
		return
	}
	stamped, err := sp.id.stamp(data)
	if err == nil && present(c.Usage) {
		stamped, err = withUsage(stamped, sp.prior.add(sp.cur.usage))
	}
	if err != nil {
		// Not a chunk the seam can edit: hand it out as it came.
		sp.release()
		sp.out = append(sp.out, ev)
		return
	}
	if sp.decided {
		sp.text.WriteString(text)
		sp.out = append(sp.out, dataEvent(stamped))
		return
	}
	sp.hold(heldEvent{data: stamped, text: text, keep: c.finishes() || blocked != ""})
}

// hold keeps back a continued event with text until the seam is known.
func (sp *splice) hold(h heldEvent) {
	sp.held = append(sp.held, h)
	sp.heldText.WriteString(h.text)
	if trim, ok := overlap(sp.text.String(), sp.heldText.String(), h.keep); ok {
		sp.emit(trim)
	}
}

// release hands out the held events as they are: the continuation ends,
// or sends something the seam does not read, before its start was
// decided.
func (sp *splice) release() {
	if sp.continued && !sp.decided {
		trim, _ := overlap(sp.text.String(), sp.heldText.String(), true)
		sp.emit(trim)
	}
}

// emit hands out the held events without their first trim bytes of text.
// An event left without text is dropped, unless it carries more.
func (sp *splice) emit(trim int) {
	for _, h := range sp.held {
		cut := min(trim, len(h.text))
		trim -= cut
		data, text := h.data, h.text[cut:]
		if cut > 0 {
			if text == "" && !h.keep {
				continue
			}
			set := withContent
			if sp.messages {
				set = withDeltaText
			}
			d, err := set(data, text)
			if err != nil {
				continue // cannot be: the text was read from it
			}
			data = d
		}
		sp.text.WriteString(text)
		if h.name != "" {
			sp.out = append(sp.out, namedEvent(h.name, data))
			continue
		}
		sp.out = append(sp.out, dataEvent(data))
	}
	sp.held, sp.decided = nil, true
	sp.heldText.Reset()
}

// usage is the sum of every segment's usage.
func (sp *splice) usage() Usage { return sp.prior.add(sp.cur.usage) }

func (u Usage) add(v Usage) Usage {
	return Usage{PromptTokens: u.PromptTokens + v.PromptTokens, CompletionTokens: u.CompletionTokens + v.CompletionTokens}
}
