package upstreams

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// The seam of an Anthropic Messages stream (a /v1/messages client,
// whatever the targets speak): the continuation's message_start and pings
// are dropped, its text block goes on as the block the cut left open (or
// as the next block, when the cut fell between blocks), every index is
// renumbered in the client's count, its text is trimmed as in a chat
// stream, and its message_delta carries the summed usage. The only
// message_stop is the continuation's.

// messagesBlocks is the client's view of the content blocks so far.
type messagesBlocks struct {
	open int // the index of the block started and not stopped, or -1
	next int // the index of the next block
	// renumber maps the current continuation's block indexes to the
	// client's.
	renumber map[int]int
}

// messagesEvent is what the seam reads of one Messages stream event.
type messagesEvent struct {
	Type         string `json:"type"`
	Index        int    `json:"index"`
	ContentBlock *struct {
		Type string `json:"type"`
	} `json:"content_block"`
	Delta *struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"delta"`
}

// addMessages is add for a Messages stream.
func (sp *splice) addMessages(ev []byte) {
	var e messagesEvent
	data := SSEData(ev)
	if data == nil || json.Unmarshal(data, &e) != nil {
		sp.release()
		sp.out = append(sp.out, ev)
		return
	}
	if !sp.continued {
		sp.firstMessages(&e)
		sp.out = append(sp.out, ev)
		return
	}
	switch e.Type {
	case "message_start", "ping":
		return // the client has its message_start; pings say nothing
	case "content_block_delta":
		if e.Delta != nil && e.Delta.Type == "text_delta" {
			if d, err := sp.renumbered(data, e.Index); err == nil {
				sp.hold(heldEvent{name: e.Type, data: d, text: e.Delta.Text})
				return
			}
		}
		sp.blocked = "a block other than text started"
	case "content_block_start":
		if e.ContentBlock != nil && e.ContentBlock.Type == "text" && sp.blocks.open >= 0 {
			// The block the cut left open goes on.
			sp.blocks.renumber[e.Index] = sp.blocks.open
			return
		}
		if e.ContentBlock == nil || e.ContentBlock.Type != "text" {
			sp.blocked = "a block other than text started"
		}
		sp.blocks.renumber[e.Index] = sp.blocks.next
		sp.blocks.open = sp.blocks.next
		sp.blocks.next++
	case "content_block_stop":
		sp.blocks.open = -1
	case "message_delta":
		sp.blocked = "the answer had finished"
	}
	sp.release()
	sp.out = append(sp.out, sp.messagesEvent(e, data, ev))
}

// firstMessages notes what the first attempt's event tells the seam.
func (sp *splice) firstMessages(e *messagesEvent) {
	switch e.Type {
	case "content_block_start":
		sp.blocks.open, sp.blocks.next = e.Index, e.Index+1
		if e.ContentBlock == nil || e.ContentBlock.Type != "text" {
			sp.blocked = "a block other than text started"
		}
	case "content_block_delta":
		if e.Delta == nil || e.Delta.Type != "text_delta" {
			sp.blocked = "a block other than text started"
			return
		}
		sp.text.WriteString(e.Delta.Text)
	case "content_block_stop":
		sp.blocks.open = -1
	case "message_delta":
		sp.blocked = "the answer had finished"
	}
}

// messagesEvent is a continued event in the client's numbering, with
// the summed usage on message_delta; ev as it came when it cannot be.
func (sp *splice) messagesEvent(e messagesEvent, data, ev []byte) []byte {
	var err error
	switch e.Type {
	case "content_block_start", "content_block_delta", "content_block_stop":
		data, err = sp.renumbered(data, e.Index)
	case "message_delta":
		data, err = withMessagesUsage(data, sp.prior.add(sp.cur.usage))
	default:
		return ev
	}
	if err != nil {
		return ev
	}
	return namedEvent(e.Type, data)
}

// renumbered gives a continued event its block's index in the client's
// count.
func (sp *splice) renumbered(data []byte, index int) ([]byte, error) {
	n, ok := sp.blocks.renumber[index]
	if !ok {
		return nil, fmt.Errorf("block %d was never started", index)
	}
	return ReplaceField(data, "index", strconv.AppendInt(nil, int64(n), 10))
}

// withDeltaText returns a content_block_delta whose text is text instead.
func withDeltaText(data []byte, text string) ([]byte, error) {
	s, e, ok, err := Field(data, "delta")
	if err != nil || !ok || data[s] != '{' {
		return nil, fmt.Errorf("cannot find the delta of an event: %v", err)
	}
	quoted, _ := json.Marshal(text)
	delta, err := ReplaceField(data[s:e], "text", quoted)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(data)+len(quoted))
	out = append(out, data[:s]...)
	out = append(out, delta...)
	return append(out, data[e:]...), nil
}

// withMessagesUsage returns a message_delta whose usage counts are u's:
// output_tokens, and input_tokens when it has one.
func withMessagesUsage(data []byte, u Usage) ([]byte, error) {
	s, e, ok, err := Field(data, "usage")
	if err != nil || !ok || data[s] != '{' {
		return data, err
	}
	usage := data[s:e]
	if usage, err = ReplaceField(usage, "output_tokens", strconv.AppendInt(nil, u.CompletionTokens, 10)); err != nil {
		return nil, err
	}
	if usage, err = ReplaceField(usage, "input_tokens", strconv.AppendInt(nil, u.PromptTokens, 10)); err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(data)+16)
	out = append(out, data[:s]...)
	out = append(out, usage...)
	return append(out, data[e:]...), nil
}

// namedEvent is an Anthropic stream event: the event line names the type
// its data repeats.
func namedEvent(name string, data []byte) []byte {
	out := make([]byte, 0, len(name)+len(data)+14)
	out = append(out, "event: "...)
	out = append(out, name...)
	out = append(out, "\ndata: "...)
	return append(out, data...)
}
