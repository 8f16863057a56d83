package dialect

import (
	"encoding/json"
	"fmt"
	"time"
)

// MessagesToChatStream translates the SSE events of an Anthropic Messages
// stream into an OpenAI chat.completion.chunk stream, one upstream event
// at a time. It is not safe for concurrent use.
//
// message_start gives the role chunk; text_delta content chunks;
// a tool_use block a tool_calls chunk with its index, id and name, and
// each input_json_delta an arguments fragment; message_delta the chunk
// with finish_reason; message_stop the usage chunk (when the client asked
// for include_usage) and data: [DONE]. ping, thinking and other blocks
// give nothing. An upstream error event becomes an OpenAI error event.
type MessagesToChatStream struct {
	model        string
	includeUsage bool
	id           string
	created      int64
	started      bool // the role chunk was sent
	finished     bool // the finish_reason chunk was sent
	done         bool
	blocks       map[int]*chatBlock // by Anthropic block index
	tools        int                // tool calls so far, the next OpenAI tool index
	stop         string
	usage        anthropicUsage
}

// chatBlock is what the stream knows of one Anthropic content block.
type chatBlock struct {
	tool  int  // OpenAI tool index; -1 for a text block
	skip  bool // a block OpenAI has no place for (thinking, server tools)
	input json.RawMessage
	delta bool // an input_json_delta arrived
}

// NewMessagesToChatStream returns a translator for one stream. model names
// the chunks' model ("" takes the upstream's from message_start);
// includeUsage is the client's stream_options.include_usage (see IncludeUsage).
func NewMessagesToChatStream(model string, includeUsage bool) *MessagesToChatStream {
	return &MessagesToChatStream{
		model:        model,
		includeUsage: includeUsage,
		created:      time.Now().Unix(),
		blocks:       make(map[int]*chatBlock),
	}
}

// streamEvent is the union of the Anthropic stream events' fields.
type streamEvent struct {
	Type         string            `json:"type"`
	Message      *anthropicMessage `json:"message"`
	Index        int               `json:"index"`
	ContentBlock *block            `json:"content_block"`
	Delta        *struct {
		Type        string  `json:"type"`
		Text        string  `json:"text"`
		PartialJSON string  `json:"partial_json"`
		StopReason  *string `json:"stop_reason"`
	} `json:"delta"`
	Usage *anthropicUsage `json:"usage"`
	Error *errorDetail    `json:"error"`
}

// Translate turns one upstream event into the events to send the client,
// in order (none for ping and the like). A non-nil error ends the stream:
// send out first (an upstream error event gives the client's error
// event, ErrStreamFailed), then end the client's stream as failed; a
// malformed event is ErrBadAnswer with nothing to send, and the caller
// ends the stream as it would a cut one (see Cut). Events after the end
// are ignored.
func (t *MessagesToChatStream) Translate(event []byte) ([][]byte, error) {
	if t.done {
		return nil, nil
	}
	if len(event) > MaxEventBytes {
		return nil, badAnswerf("a stream event is over %d bytes", MaxEventBytes)
	}
	name, data := parseEvent(event)
	if len(data) == 0 {
		return nil, nil
	}
	if err := checkJSON(data, MaxEventBytes); err != nil {
		return nil, badAnswerf("%s", err)
	}
	var ev streamEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, badAnswerf("cannot decode a stream event: %s", describe(err))
	}
	if ev.Type == "" {
		ev.Type = name
	}
	if t.finished && (ev.Type == "content_block_start" || ev.Type == "content_block_delta") {
		return nil, badAnswerf("%s after message_delta", ev.Type)
	}
	var out [][]byte
	switch ev.Type {
	case "message_start":
		if m := ev.Message; m != nil {
			if t.id == "" {
				t.id = m.ID
			}
			if t.model == "" {
				t.model = m.Model
			}
			if m.Usage != nil {
				t.usage.merge(*m.Usage)
			}
		}
		out = t.start(out)
	case "content_block_start":
		return t.blockStart(ev)
	case "content_block_delta":
		return t.blockDelta(ev)
	case "content_block_stop":
		if b := t.blocks[ev.Index]; b != nil && b.tool >= 0 && !b.delta && len(b.input) > 2 {
			// The whole input came with the block's start: send it now.
			out = t.start(out)
			out = append(out, t.chunk(chunkDelta{ToolCalls: []chunkToolCall{{Index: b.tool, Function: &chunkFunction{Arguments: string(b.input)}}}}, nil))
		}
	case "message_delta":
		if ev.Usage != nil {
			t.usage.merge(*ev.Usage)
		}
		if ev.Delta != nil && ev.Delta.StopReason != nil {
			t.stop = *ev.Delta.StopReason
			out = t.finish(out)
		}
	case "message_stop":
		out = t.end(out)
	case "error":
		t.done = true
		typ, msg := "", ""
		if ev.Error != nil {
			typ, msg = ev.Error.Type, clip(ev.Error.Message)
		}
		if msg == "" {
			msg = "the upstream stream failed"
		}
		return [][]byte{dataEvent(openAIError(openAITypeOf(typ, 0), typ, msg))}, fmt.Errorf("%w: %s: %s", ErrStreamFailed, typ, msg)
	}
	return out, nil
}

func (t *MessagesToChatStream) blockStart(ev streamEvent) ([][]byte, error) {
	if _, seen := t.blocks[ev.Index]; !seen && len(t.blocks) >= MaxBlocks {
		return nil, badAnswerf("the stream has over %d content blocks", MaxBlocks)
	}
	cb := ev.ContentBlock
	if cb == nil {
		return nil, badAnswerf("content_block_start without content_block")
	}
	var out [][]byte
	switch cb.Type {
	case "text":
		t.blocks[ev.Index] = &chatBlock{tool: -1}
		if cb.Text != "" {
			out = t.start(out)
			out = append(out, t.chunk(chunkDelta{Content: &cb.Text}, nil))
		}
	case "tool_use":
		b := &chatBlock{tool: t.tools}
		if in, ok := compactObject(cb.Input); ok {
			b.input = in
		}
		t.blocks[ev.Index] = b
		t.tools++
		id := cb.ID
		if id == "" {
			id = newID("toolu_")
		}
		out = t.start(out)
		out = append(out, t.chunk(chunkDelta{ToolCalls: []chunkToolCall{{
			Index: b.tool, ID: id, Type: "function", Function: &chunkFunction{Name: cb.Name},
		}}}, nil))
	default:
		t.blocks[ev.Index] = &chatBlock{tool: -1, skip: true}
	}
	return out, nil
}

func (t *MessagesToChatStream) blockDelta(ev streamEvent) ([][]byte, error) {
	if ev.Delta == nil {
		return nil, badAnswerf("content_block_delta without delta")
	}
	b := t.blocks[ev.Index]
	if b == nil {
		// A delta without its block start: the text it carries is still
		// the answer; anything else cannot be placed.
		if ev.Delta.Type != "text_delta" {
			return nil, nil
		}
		if len(t.blocks) >= MaxBlocks {
			return nil, badAnswerf("the stream has over %d content blocks", MaxBlocks)
		}
		b = &chatBlock{tool: -1}
		t.blocks[ev.Index] = b
	}
	if b.skip {
		return nil, nil
	}
	var out [][]byte
	switch ev.Delta.Type {
	case "text_delta":
		if b.tool >= 0 || ev.Delta.Text == "" {
			return nil, nil
		}
		out = t.start(out)
		out = append(out, t.chunk(chunkDelta{Content: &ev.Delta.Text}, nil))
	case "input_json_delta":
		if b.tool < 0 || ev.Delta.PartialJSON == "" {
			return nil, nil
		}
		b.delta = true
		out = t.start(out)
		out = append(out, t.chunk(chunkDelta{ToolCalls: []chunkToolCall{{
			Index: b.tool, Function: &chunkFunction{Arguments: ev.Delta.PartialJSON},
		}}}, nil))
	}
	return out, nil
}

// start sends the role chunk once, before anything else.
func (t *MessagesToChatStream) start(out [][]byte) [][]byte {
	if t.started {
		return out
	}
	t.started = true
	if t.id == "" {
		t.id = newID("msg_")
	}
	empty := ""
	return append(out, t.chunk(chunkDelta{Role: "assistant", Content: &empty}, nil))
}

// finish sends the finish_reason chunk once.
func (t *MessagesToChatStream) finish(out [][]byte) [][]byte {
	out = t.start(out)
	if t.finished {
		return out
	}
	t.finished = true
	reason := finishReason(t.stop)
	return append(out, t.chunk(chunkDelta{}, &reason))
}

// end completes the client's stream: finish, usage, [DONE].
func (t *MessagesToChatStream) end(out [][]byte) [][]byte {
	out = t.finish(out)
	t.done = true
	if t.includeUsage {
		u := chatUsageFrom(t.usage)
		out = append(out, dataEvent(mustMarshal(chunk{ID: t.id, Object: "chat.completion.chunk", Created: t.created, Model: t.model, Choices: []chunkChoice{}, Usage: &u})))
	}
	return append(out, dataEvent(doneData))
}

// Finish ends the client's stream normally when the upstream ended
// cleanly without message_stop: the events still owed (finish_reason,
// usage, [DONE]); none once the stream is over. Whether such an upstream
// is complete is the caller's call; one that was cut wants Cut.
func (t *MessagesToChatStream) Finish() [][]byte {
	if t.done {
		return nil
	}
	return t.end(nil)
}

// Cut returns the event that ends the client's stream when the upstream
// broke off: an OpenAI error event with message, so that SDKs raise
// rather than see a short answer as complete; nil once the stream is over.
func (t *MessagesToChatStream) Cut(message string) []byte {
	if t.done {
		return nil
	}
	t.done = true
	return dataEvent(openAIError(TypeAPI, "stream_interrupted", message))
}

// Done reports whether the stream is over: message_stop, an error event,
// Finish or Cut.
func (t *MessagesToChatStream) Done() bool { return t.done }

// Usage returns the tokens reported so far, as the gateway counts them
// (see MessagesUsage).
func (t *MessagesToChatStream) Usage() (prompt, completion int64) {
	return t.usage.prompt(), t.usage.OutputTokens
}

// chunk is an OpenAI chat.completion.chunk.
type chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *chatUsage    `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int             `json:"index"`
	Delta        chunkDelta      `json:"delta"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type chunkDelta struct {
	Role      string          `json:"role,omitempty"`
	Content   *string         `json:"content,omitempty"`
	ToolCalls []chunkToolCall `json:"tool_calls,omitempty"`
}

type chunkToolCall struct {
	Index    int            `json:"index"`
	ID       string         `json:"id,omitempty"`
	Type     string         `json:"type,omitempty"`
	Function *chunkFunction `json:"function,omitempty"`
}

type chunkFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

func (t *MessagesToChatStream) chunk(d chunkDelta, finish *string) []byte {
	return dataEvent(mustMarshal(chunk{
		ID: t.id, Object: "chat.completion.chunk", Created: t.created, Model: t.model,
		Choices: []chunkChoice{{Delta: d, Logprobs: jsonNull, FinishReason: finish}},
	}))
}
