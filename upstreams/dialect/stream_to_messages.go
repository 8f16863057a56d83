package dialect

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ChatToMessagesStream translates the SSE events of an OpenAI
// chat.completion.chunk stream into Anthropic's event sequence, one
// upstream event at a time. It is not safe for concurrent use.
//
// The first chunk gives message_start; content opens a text block
// (content_block_start, then a text_delta per chunk), each tool call a
// tool_use block whose argument fragments become input_json_delta; a
// block is stopped when the next one starts or the message ends. [DONE]
// gives message_delta, with the stop_reason of the finish_reason (or
// end_turn, tool_use when the upstream gave none) and the usage of the
// usage chunk (zeros when there was none), and message_stop. The
// sequence is well formed whatever the upstream leaves out; an upstream
// error event becomes Anthropic's error event.
type ChatToMessagesStream struct {
	model                      string
	id                         string
	started                    bool // message_start was sent
	done                       bool
	open                       int         // index of the open block, -1 when none
	openTool                   bool        // the open block is a tool_use
	blocks                     int         // blocks started so far, the next block's index
	tools                      map[int]int // OpenAI tool index -> Anthropic block index
	sawTool                    bool
	finish                     string
	prompt, cached, completion int64
}

// NewChatToMessagesStream returns a translator for one stream. model
// names the message's model ("" takes the upstream's from its first chunk).
func NewChatToMessagesStream(model string) *ChatToMessagesStream {
	return &ChatToMessagesStream{model: model, open: -1, tools: make(map[int]int)}
}

// chunkIn is the part of a chat.completion.chunk the translator reads.
type chunkIn struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content   *string `json:"content"`
			Refusal   *string `json:"refusal"`
			ToolCalls []struct {
				Index    *int   `json:"index"`
				ID       string `json:"id"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens        int64         `json:"prompt_tokens"`
		CompletionTokens    int64         `json:"completion_tokens"`
		PromptTokensDetails *promptDetail `json:"prompt_tokens_details"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// Translate turns one upstream event into the events to send the client,
// in order. A non-nil error ends the stream: send out first (an upstream
// error event gives Anthropic's error event, ErrStreamFailed), then end
// the client's stream as failed; a malformed event is ErrBadAnswer with
// nothing to send, and the caller ends the stream with Cut. Events after
// the end are ignored.
func (t *ChatToMessagesStream) Translate(event []byte) ([][]byte, error) {
	if t.done {
		return nil, nil
	}
	if len(event) > MaxEventBytes {
		return nil, badAnswerf("a stream event is over %d bytes", MaxEventBytes)
	}
	_, data := parseEvent(event)
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil
	}
	if bytes.Equal(data, doneData) {
		return t.end(nil), nil
	}
	if err := checkJSON(data, MaxEventBytes); err != nil {
		return nil, badAnswerf("%s", err)
	}
	var c chunkIn
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, badAnswerf("cannot decode a stream chunk: %s", describe(err))
	}
	if !isNull(c.Error) {
		t.done = true
		msg := openAIMessageOf(data)
		if msg == "" {
			msg = "the upstream stream failed"
		}
		return [][]byte{namedEvent("error", AnthropicError(0, TypeAPI, msg))}, fmt.Errorf("%w: %s", ErrStreamFailed, msg)
	}
	if t.id == "" {
		t.id = c.ID
	}
	if t.model == "" {
		t.model = c.Model
	}
	out := t.start(nil)
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue // the gateway never asks for n > 1
		}
		var err error
		if out, err = t.delta(out, ch.Delta.Content); err != nil {
			return nil, err
		}
		if out, err = t.delta(out, ch.Delta.Refusal); err != nil {
			return nil, err
		}
		for i, tc := range ch.Delta.ToolCalls {
			idx := i
			if tc.Index != nil {
				idx = *tc.Index
			}
			if out, err = t.toolDelta(out, idx, tc.ID, tc.Function.Name, tc.Function.Arguments); err != nil {
				return nil, err
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			t.finish = *ch.FinishReason
			out = t.closeBlock(out)
		}
	}
	if u := c.Usage; u != nil {
		t.prompt, t.completion = u.PromptTokens, u.CompletionTokens
		if u.PromptTokensDetails != nil {
			t.cached = u.PromptTokensDetails.CachedTokens
		}
	}
	return out, nil
}

// delta appends a text fragment to the open text block, opening one first.
func (t *ChatToMessagesStream) delta(out [][]byte, text *string) ([][]byte, error) {
	if text == nil || *text == "" {
		return out, nil
	}
	if t.open < 0 || t.openTool {
		var err error
		if out, err = t.openBlock(out, false); err != nil {
			return nil, err
		}
		out = append(out, t.blockStart(textStart{Type: "text"}))
	}
	return append(out, t.blockDelta(deltaOut{Type: "text_delta", Text: text})), nil
}

// toolDelta handles a tool call fragment: the first of an OpenAI tool
// index opens its tool_use block, the rest extend its input.
func (t *ChatToMessagesStream) toolDelta(out [][]byte, idx int, id, name, args string) ([][]byte, error) {
	blk, seen := t.tools[idx]
	if !seen {
		if len(t.tools) >= MaxBlocks {
			return nil, badAnswerf("the stream has over %d tool calls", MaxBlocks)
		}
		var err error
		if out, err = t.openBlock(out, true); err != nil {
			return nil, err
		}
		t.tools[idx] = t.open
		t.sawTool = true
		if id == "" {
			id = newID("toolu_")
		}
		out = append(out, t.blockStart(block{Type: "tool_use", ID: toolID(id), Name: name, Input: json.RawMessage(`{}`)}))
	} else if blk != t.open {
		// Anthropic blocks are sequential: a fragment of a call whose
		// block was closed cannot be placed without corrupting its input.
		return nil, badAnswerf("tool call %d continued after another block began", idx)
	}
	if args == "" {
		return out, nil
	}
	return append(out, t.blockDelta(deltaOut{Type: "input_json_delta", PartialJSON: &args})), nil
}

// openBlock closes the open block and makes the next index the open one.
func (t *ChatToMessagesStream) openBlock(out [][]byte, tool bool) ([][]byte, error) {
	if t.blocks >= MaxBlocks {
		return nil, badAnswerf("the stream has over %d content blocks", MaxBlocks)
	}
	out = t.closeBlock(out)
	t.open, t.openTool = t.blocks, tool
	t.blocks++
	return out, nil
}

func (t *ChatToMessagesStream) closeBlock(out [][]byte) [][]byte {
	if t.open < 0 {
		return out
	}
	out = append(out, namedEvent("content_block_stop", mustMarshal(struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}{"content_block_stop", t.open})))
	t.open = -1
	return out
}

// textStart is a text block as content_block_start announces it: empty,
// its text present.
type textStart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type blockStartEvent struct {
	Type         string `json:"type"`
	Index        int    `json:"index"`
	ContentBlock any    `json:"content_block"`
}

func (t *ChatToMessagesStream) blockStart(b any) []byte {
	return namedEvent("content_block_start", mustMarshal(blockStartEvent{"content_block_start", t.open, b}))
}

type messageDelta struct {
	Type  string `json:"type"`
	Delta struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	} `json:"delta"`
	Usage anthropicUsage `json:"usage"`
}

type deltaOut struct {
	Type        string  `json:"type"`
	Text        *string `json:"text,omitempty"`
	PartialJSON *string `json:"partial_json,omitempty"`
}

func (t *ChatToMessagesStream) blockDelta(d deltaOut) []byte {
	return namedEvent("content_block_delta", mustMarshal(struct {
		Type  string   `json:"type"`
		Index int      `json:"index"`
		Delta deltaOut `json:"delta"`
	}{"content_block_delta", t.open, d}))
}

// start sends message_start once. OpenAI streams report usage only at
// their end, so its usage is zero and message_delta carries the counts.
func (t *ChatToMessagesStream) start(out [][]byte) [][]byte {
	if t.started {
		return out
	}
	t.started = true
	if t.id == "" {
		t.id = newID("msg_")
	}
	return append(out, namedEvent("message_start", mustMarshal(struct {
		Type    string           `json:"type"`
		Message anthropicMessage `json:"message"`
	}{"message_start", anthropicMessage{
		ID: t.id, Type: "message", Role: "assistant", Model: t.model, Content: []block{},
		Usage: &anthropicUsage{},
	}})))
}

// end completes the sequence: the open block's stop, message_delta and message_stop.
func (t *ChatToMessagesStream) end(out [][]byte) [][]byte {
	out = t.start(out)
	out = t.closeBlock(out)
	t.done = true
	var md messageDelta
	md.Type = "message_delta"
	md.Delta.StopReason = stopReason(t.finish, t.sawTool)
	md.Usage = anthropicUsageFrom(t.prompt, t.cached, t.completion)
	out = append(out, namedEvent("message_delta", mustMarshal(md)))
	return append(out, namedEvent("message_stop", []byte(`{"type":"message_stop"}`)))
}

// Finish ends the client's stream normally when the upstream ended
// cleanly without data: [DONE]: the events still owed (block stop,
// message_delta, message_stop); none once the stream is over. Whether such
// an upstream is complete is the caller's call; one that was cut wants Cut.
func (t *ChatToMessagesStream) Finish() [][]byte {
	if t.done {
		return nil
	}
	return t.end(nil)
}

// Cut returns the event that ends the client's stream when the upstream
// broke off: Anthropic's error event (api_error) with message, which the
// SDKs raise, since a message without message_stop is incomplete; nil
// once the stream is over.
func (t *ChatToMessagesStream) Cut(message string) []byte {
	if t.done {
		return nil
	}
	t.done = true
	return namedEvent("error", AnthropicError(0, TypeAPI, message))
}

// Done reports whether the stream is over: [DONE], an error event, Finish or Cut.
func (t *ChatToMessagesStream) Done() bool { return t.done }

// Usage returns the tokens of the usage chunk, zero before it came.
func (t *ChatToMessagesStream) Usage() (prompt, completion int64) {
	return t.prompt, t.completion
}
