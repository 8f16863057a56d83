package dialect

import (
	"errors"
	"strings"
	"testing"
)

func TestMessageToChatCompletionFixtures(t *testing.T) {
	for _, tc := range []struct{ name, model string }{
		{"text", "content-writer"},
		{"tool_use", "content-writer"},
		{"tool_only", ""},
		{"max_tokens", "content-writer"},
		{"stop_sequence", "content-writer"},
		{"refusal", "content-writer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := readFixture(t, fixture("message_to_chat_completion", tc.name, ".json"))
			got, err := MessageToChatCompletion(in, tc.model)
			if err != nil {
				t.Fatalf("cannot translate: %s", err)
			}
			checkJSONFixture(t, fixture("message_to_chat_completion", tc.name, ".want.json"), got)
		})
	}
}

func TestChatCompletionToMessageFixtures(t *testing.T) {
	for _, tc := range []struct{ name, model string }{
		{"text", "claude-sonnet-4-5"},
		{"tool_calls", "claude-sonnet-4-5"},
		{"length", ""},
		{"refusal", "claude-sonnet-4-5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := readFixture(t, fixture("chat_completion_to_message", tc.name, ".json"))
			got, err := ChatCompletionToMessage(in, tc.model)
			if err != nil {
				t.Fatalf("cannot translate: %s", err)
			}
			checkJSONFixture(t, fixture("chat_completion_to_message", tc.name, ".want.json"), got)
		})
	}
}

// An answer without an id and usage still makes a valid Message: a
// fresh id, zero usage, and array content joined into one text block.
func TestChatCompletionToMessageGaps(t *testing.T) {
	in := readFixture(t, fixture("chat_completion_to_message", "parts_no_usage", ".json"))
	got, err := ChatCompletionToMessage(in, "claude")
	if err != nil {
		t.Fatalf("cannot translate: %s", err)
	}
	want := `,"type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Part one. Part two."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}`
	if !strings.HasPrefix(string(got), `{"id":"msg_`) || !strings.HasSuffix(string(got), want) {
		t.Fatalf("unexpected message %s", got)
	}
}

func TestAnswerErrors(t *testing.T) {
	f := func(translate func([]byte, string) ([]byte, error), body, want string) {
		t.Helper()
		got, err := translate([]byte(body), "m")
		if !errors.Is(err, ErrBadAnswer) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: want ErrBadAnswer with %q, got %s (%v)", body, want, got, err)
		}
	}
	f(MessageToChatCompletion, ``, "cannot decode")
	f(MessageToChatCompletion, `<html>502 Bad Gateway</html>`, "cannot decode")
	f(MessageToChatCompletion, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, `type "error"`)
	f(MessageToChatCompletion, `{"type":"message","content":"text"}`, "must be an array")
	f(MessageToChatCompletion, `{"type":"message","content":[{"type":"tool_use","id":"t","name":"f","input":"x"}]}`, "not a JSON object")
	f(MessageToChatCompletion, `{"type":"message","content":`+strings.Repeat("[", 65)+strings.Repeat("]", 65)+`}`, "nested deeper")
	f(ChatCompletionToMessage, `{"choices":[]}`, "no choices")
	f(ChatCompletionToMessage, `{"error":{"message":"bad"}}`, "no choices")
	f(ChatCompletionToMessage, `[1]`, "cannot decode")
	f(ChatCompletionToMessage, `{"choices":[{"message":{"content":5}}]}`, "neither a string nor null")
	f(ChatCompletionToMessage, `{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{\"a\":"}}]}}]}`, "not a JSON object")
	f(ChatCompletionToMessage, `{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"42"}}]}}]}`, "not a JSON object")
}
