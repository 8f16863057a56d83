package dialect

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// translateAll feeds events and returns what was sent and the first error.
func translateAll(tr streamTranslator, events ...string) ([][]byte, error) {
	var out [][]byte
	for _, ev := range events {
		evs, err := tr.Translate([]byte(ev))
		out = append(out, evs...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func TestMessagesToChatStreamLenient(t *testing.T) {
	// No message_start: the role chunk still leads, with an id of our own;
	// the type may come from the event line alone.
	tr := NewMessagesToChatStream("m", false)
	out, err := translateAll(tr,
		"event: content_block_delta\ndata: {\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}",
		"event: unknown_future_event\ndata: {\"type\":\"unknown_future_event\"}",
		": keep-alive comment",
		"event: message_stop\ndata: {\"type\":\"message_stop\"}",
	)
	if err != nil || len(out) != 4 || !strings.Contains(string(out[0]), `"id":"msg_`) || !strings.Contains(string(out[1]), `"content":"hi"`) ||
		!strings.Contains(string(out[2]), `"finish_reason":"stop"`) || string(out[3]) != "data: [DONE]" {
		t.Fatalf("unexpected translation (%v):\n%s", err, joinEvents(out))
	}
	if err := checkChatSequence(out, true); err != nil {
		t.Fatal(err)
	}

	// A tool_use whose whole input came with its start (no deltas) sends it at its stop.
	tr = NewMessagesToChatStream("m", false)
	out, err = translateAll(tr,
		`data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}`,
		`data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{"a": 1}}}`,
		`data: {"type":"content_block_stop","index":0}`,
		`data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}`,
		`data: {"type":"message_stop"}`,
	)
	if err != nil || len(out) != 5 || !strings.Contains(string(out[2]), `"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]`) ||
		!strings.Contains(string(out[3]), `"finish_reason":"tool_calls"`) {
		t.Fatalf("unexpected translation (%v):\n%s", err, joinEvents(out))
	}
}

func TestMessagesToChatStreamRefuses(t *testing.T) {
	f := func(events ...string) {
		t.Helper()
		tr := NewMessagesToChatStream("m", true)
		out, err := translateAll(tr, events...)
		if !errors.Is(err, ErrBadAnswer) {
			t.Fatalf("want ErrBadAnswer, got %v:\n%s", err, joinEvents(out))
		}
		cut := tr.Cut("cut")
		if !strings.Contains(string(cut), `"code":"stream_interrupted"`) {
			t.Fatalf("want the cut event after a bad event, got %s", cut)
		}
		if err := checkChatSequence(append(out, cut), true); err != nil {
			t.Fatal(err)
		}
	}
	f(`data: {"type":"message_start"`)
	f(`data: [1,2]`)
	f(`data: {"type":"content_block_start","index":0}`)
	f(`data: {"type":"content_block_delta","index":0}`)
	f(`data: {"type":"content_block_delta","index":"zero","delta":{}}`)
	f(`data: {"type":"message_delta","delta":{"stop_reason":"end_turn"}}`,
		`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"late"}}`)
	f(`data: ` + strings.Repeat(`{"a":`, MaxDepth+1) + `1` + strings.Repeat(`}`, MaxDepth+1))
	f(`data: "` + strings.Repeat("x", MaxEventBytes) + `"`)
	many := make([]string, 0, MaxBlocks+1)
	for i := range MaxBlocks + 1 {
		many = append(many, `data: {"type":"content_block_start","index":`+strconv.Itoa(i)+`,"content_block":{"type":"text","text":""}}`)
	}
	f(many...)
}

func TestChatToMessagesStreamLenient(t *testing.T) {
	// [DONE] at once still makes a whole message, with no content.
	tr := NewChatToMessagesStream("claude")
	out, err := translateAll(tr, "data: [DONE]")
	if err != nil || len(out) != 3 || !strings.Contains(string(out[0]), `"id":"msg_`) || !strings.Contains(string(out[1]), `"stop_reason":"end_turn"`) {
		t.Fatalf("unexpected translation (%v):\n%s", err, joinEvents(out))
	}
	if err := checkAnthropicSequence(out, true); err != nil {
		t.Fatal(err)
	}

	// Finish with nothing received is the same whole, empty message.
	tr = NewChatToMessagesStream("claude")
	if out := tr.Finish(); len(out) != 3 || checkAnthropicSequence(out, true) != nil {
		t.Fatalf("unexpected Finish:\n%s", joinEvents(out))
	}

	// A tool call without an id gets one Anthropic accepts; one with
	// characters Anthropic refuses is made acceptable; content after the
	// finish_reason opens a new block rather than breaking the sequence.
	tr = NewChatToMessagesStream("claude")
	out, err = translateAll(tr,
		`data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{}"}}]}}]}`,
		`data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call:1/2","function":{"name":"g"}}]}}]}`,
		`data: {"id":"c","choices":[{"index":1,"delta":{"content":"another choice, ignored"}}]}`,
		`data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		`data: {"id":"c","choices":[{"index":0,"delta":{"content":"late"}}]}`,
		`data: [DONE]`,
	)
	if err != nil {
		t.Fatal(err)
	}
	all := string(joinEvents(out))
	if !strings.Contains(all, `"id":"toolu_`) || !strings.Contains(all, `"id":"call_1_2"`) || strings.Contains(all, "ignored") ||
		!strings.Contains(all, `"text":"late"`) || !strings.Contains(all, `"stop_reason":"tool_use"`) {
		t.Fatalf("unexpected translation:\n%s", all)
	}
	if err := checkAnthropicSequence(out, true); err != nil {
		t.Fatal(err)
	}

	// Cut before anything: only the error event, which the SDKs raise.
	tr = NewChatToMessagesStream("claude")
	if cut := string(tr.Cut("gone")); cut != "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"gone\"}}" {
		t.Fatalf("unexpected cut %q", cut)
	}
}

func TestChatToMessagesStreamRefuses(t *testing.T) {
	f := func(events ...string) {
		t.Helper()
		tr := NewChatToMessagesStream("claude")
		out, err := translateAll(tr, events...)
		if !errors.Is(err, ErrBadAnswer) {
			t.Fatalf("want ErrBadAnswer, got %v:\n%s", err, joinEvents(out))
		}
		if err := checkAnthropicSequence(append(out, tr.Cut("cut")), true); err != nil {
			t.Fatal(err)
		}
	}
	f(`data: {"id":`)
	f(`data: 42`)
	f(`data: {"choices":[{"delta":{"content":7}}]}`)
	// Anthropic blocks are sequential: a call resumed after another began cannot be placed.
	f(`data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{"}}]}}]}`,
		`data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}`,
		`data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"}"}}]}}]}`)
	many := make([]string, 0, MaxBlocks+1)
	for i := range MaxBlocks + 1 {
		many = append(many, `data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":`+strconv.Itoa(i)+`,"id":"t","function":{"name":"f"}}]}}]}`)
	}
	f(many...)
}

func joinEvents(evs [][]byte) []byte {
	var b []byte
	for _, ev := range evs {
		b = append(b, ev...)
		b = append(b, "\n\n"...)
	}
	return b
}

func TestMessagesStreamEnd(t *testing.T) {
	f := func(data string, want bool) {
		t.Helper()
		if got := MessagesStreamEnd([]byte(data)); got != want {
			t.Fatalf("%s: want %v, got %v", data, want, got)
		}
	}
	f(`{"type":"message_stop"}`, true)
	f(`{ "type" : "error", "error": {"type":"overloaded_error","message":"Overloaded"}}`, true)
	f(`{"index":0,"type":"content_block_delta","delta":{"type":"text_delta","text":"\"type\":\"message_stop\" error"}}`, false)
	f(`{"type":"message_delta","delta":{"stop_reason":"end_turn"}}`, false)
	f(`{"type":"message_stop"`, false)
	f(`[DONE]`, false)
}
