package dialect

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// checkAnthropicSequence verifies that events are a well-formed Anthropic
// stream, as far as it goes: message_start first; blocks started in
// index order, one open at a time, each delta of its block's kind;
// message_delta once every block is stopped; message_stop last. An error
// event may end the sequence at any point. complete says the sequence
// must have reached message_stop or an error.
func checkAnthropicSequence(events [][]byte, complete bool) error {
	started, ended := false, false
	open, openKind, next := -1, "", 0
	sawDelta := false
	for i, ev := range events {
		if ended {
			return fmt.Errorf("event %d after the end: %s", i, ev)
		}
		name, data := parseEvent(ev)
		if !bytes.HasPrefix(ev, []byte("event: "+name+"\ndata: ")) || bytes.Count(ev, []byte("\n")) != 1 {
			return fmt.Errorf("event %d is not one event line and one data line: %q", i, ev)
		}
		var e struct {
			Type         string          `json:"type"`
			Index        *int            `json:"index"`
			ContentBlock *block          `json:"content_block"`
			Message      json.RawMessage `json:"message"`
			Delta        *struct {
				Type        string  `json:"type"`
				Text        *string `json:"text"`
				PartialJSON *string `json:"partial_json"`
				StopReason  string  `json:"stop_reason"`
			} `json:"delta"`
			Usage *anthropicUsage `json:"usage"`
			Error *errorDetail    `json:"error"`
		}
		if err := json.Unmarshal(data, &e); err != nil {
			return fmt.Errorf("event %d: invalid JSON %s: %s", i, data, err)
		}
		if e.Type != name {
			return fmt.Errorf("event %d: event %q carries type %q", i, name, e.Type)
		}
		if name != "message_start" && name != "error" && !started {
			return fmt.Errorf("event %d: %s before message_start", i, name)
		}
		switch name {
		case "message_start":
			var m anthropicMessage
			if started || json.Unmarshal(e.Message, &m) != nil || m.Type != "message" || m.Role != "assistant" || m.ID == "" || m.Content == nil || m.Usage == nil {
				return fmt.Errorf("event %d: bad message_start %s", i, data)
			}
			started = true
		case "content_block_start":
			if open >= 0 || sawDelta || e.Index == nil || *e.Index != next || e.ContentBlock == nil {
				return fmt.Errorf("event %d: bad content_block_start %s (open %d, next %d)", i, data, open, next)
			}
			switch e.ContentBlock.Type {
			case "text":
				if !bytes.Contains(data, []byte(`"text":""`)) {
					return fmt.Errorf("event %d: a text block must start with empty text: %s", i, data)
				}
			case "tool_use":
				if e.ContentBlock.ID == "" || string(e.ContentBlock.Input) != "{}" || !isToolID(e.ContentBlock.ID) {
					return fmt.Errorf("event %d: bad tool_use start %s", i, data)
				}
			default:
				return fmt.Errorf("event %d: unexpected block type %s", i, data)
			}
			open, openKind = next, e.ContentBlock.Type
			next++
		case "content_block_delta":
			if e.Index == nil || *e.Index != open || e.Delta == nil {
				return fmt.Errorf("event %d: delta outside its open block %s (open %d)", i, data, open)
			}
			switch {
			case openKind == "text" && e.Delta.Type == "text_delta" && e.Delta.Text != nil:
			case openKind == "tool_use" && e.Delta.Type == "input_json_delta" && e.Delta.PartialJSON != nil:
			default:
				return fmt.Errorf("event %d: delta %s does not fit a %s block", i, data, openKind)
			}
		case "content_block_stop":
			if e.Index == nil || *e.Index != open {
				return fmt.Errorf("event %d: stop of a block that is not open %s (open %d)", i, data, open)
			}
			open = -1
		case "message_delta":
			if open >= 0 || sawDelta || e.Delta == nil || e.Delta.StopReason == "" || e.Usage == nil {
				return fmt.Errorf("event %d: bad message_delta %s", i, data)
			}
			sawDelta = true
		case "message_stop":
			if !sawDelta {
				return fmt.Errorf("event %d: message_stop without message_delta", i)
			}
			ended = true
		case "error":
			if e.Error == nil || e.Error.Type == "" || e.Error.Message == "" {
				return fmt.Errorf("event %d: bad error event %s", i, data)
			}
			ended = true
		default:
			return fmt.Errorf("event %d: unknown event %q", i, name)
		}
	}
	if complete && !ended {
		return fmt.Errorf("the sequence does not end with message_stop or error")
	}
	return nil
}

func isToolID(id string) bool {
	return id != "" && toolID(id) == id
}

// checkChatSequence verifies that events are a well-formed OpenAI chunk
// stream: data lines only, chunks of one id, the role chunk first, at
// most one finish_reason, a usage chunk with empty choices only after it,
// and [DONE] last; an error event may end it at any point.
func checkChatSequence(events [][]byte, complete bool) error {
	id, started, finished, usage, ended := "", false, false, false, false
	for i, ev := range events {
		if ended {
			return fmt.Errorf("event %d after the end: %s", i, ev)
		}
		if !bytes.HasPrefix(ev, []byte("data: ")) || bytes.IndexByte(ev, '\n') >= 0 {
			return fmt.Errorf("event %d is not one data line: %q", i, ev)
		}
		data := ev[len("data: "):]
		if bytes.Equal(data, doneData) {
			if !finished {
				return fmt.Errorf("event %d: [DONE] before finish_reason", i)
			}
			ended = true
			continue
		}
		var c struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Choices []struct {
				Index int `json:"index"`
				Delta struct {
					Role      string `json:"role"`
					ToolCalls []struct {
						Index    *int   `json:"index"`
						ID       string `json:"id"`
						Function *struct {
							Arguments *string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *chatUsage   `json:"usage"`
			Error *errorDetail `json:"error"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("event %d: invalid JSON %s: %s", i, data, err)
		}
		if c.Error != nil {
			if c.Error.Message == "" || c.Error.Type == "" {
				return fmt.Errorf("event %d: bad error event %s", i, data)
			}
			ended = true
			continue
		}
		if c.Object != "chat.completion.chunk" || c.ID == "" || (id != "" && c.ID != id) {
			return fmt.Errorf("event %d: bad chunk header %s", i, data)
		}
		id = c.ID
		if c.Usage != nil {
			if !finished || usage || len(c.Choices) != 0 || c.Usage.TotalTokens != c.Usage.PromptTokens+c.Usage.CompletionTokens {
				return fmt.Errorf("event %d: bad usage chunk %s", i, data)
			}
			usage = true
			continue
		}
		if len(c.Choices) != 1 || c.Choices[0].Index != 0 || usage {
			return fmt.Errorf("event %d: want one choice before the usage chunk: %s", i, data)
		}
		ch := c.Choices[0]
		if !started && ch.Delta.Role != "assistant" {
			return fmt.Errorf("event %d: the first chunk must name the role: %s", i, data)
		}
		started = true
		if finished {
			return fmt.Errorf("event %d: chunk after finish_reason: %s", i, data)
		}
		if ch.FinishReason != nil {
			finished = true
		}
		for _, tc := range ch.Delta.ToolCalls {
			if tc.Index == nil || tc.Function == nil || tc.Function.Arguments == nil {
				return fmt.Errorf("event %d: bad tool call delta %s", i, data)
			}
		}
	}
	if complete && !ended {
		return fmt.Errorf("the stream does not end with [DONE] or an error")
	}
	return nil
}
