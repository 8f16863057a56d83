package dialect

import (
	"errors"
	"testing"
)

// streamTranslator is what both stream translators offer the gateway.
type streamTranslator interface {
	Translate(event []byte) ([][]byte, error)
	Finish() [][]byte
	Cut(message string) []byte
	Done() bool
	Usage() (prompt, completion int64)
}

var (
	_ streamTranslator = (*MessagesToChatStream)(nil)
	_ streamTranslator = (*ChatToMessagesStream)(nil)
)

// streamCase feeds the events of testdata/<dir>/<in>.sse to a translator
// and compares what it sends with <want>.want.sse.
type streamCase struct {
	in, want string
	wantErr  error // the error of the last event, if any
	end      string
	// The translator's usage once the stream is over.
	prompt, completion int64
}

func runStream(t *testing.T, dir string, tc streamCase, tr streamTranslator) {
	t.Helper()
	var out [][]byte
	var err error
	for _, ev := range splitEvents(readFixture(t, fixture(dir, tc.in, ".sse"))) {
		if err != nil {
			t.Fatalf("event %q after the error %v", ev, err)
		}
		var evs [][]byte
		evs, err = tr.Translate(ev)
		out = append(out, evs...)
	}
	if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
		t.Fatalf("want error %v, got %v", tc.wantErr, err)
	}
	switch tc.end {
	case "finish":
		out = append(out, tr.Finish()...)
	case "cut":
		out = append(out, tr.Cut("the upstream stream was interrupted"))
	}
	if !tr.Done() {
		t.Fatalf("the stream is not over after %s", tc.in)
	}
	if evs, _ := tr.Translate([]byte(`data: {"type":"ping"}`)); evs != nil || tr.Finish() != nil || tr.Cut("x") != nil {
		t.Fatalf("a stream that is over must send nothing more")
	}
	if p, c := tr.Usage(); p != tc.prompt || c != tc.completion {
		t.Fatalf("want usage %d/%d, got %d/%d", tc.prompt, tc.completion, p, c)
	}
	checkSSEFixture(t, fixture(dir, tc.want, ".want.sse"), out)
	check := checkChatSequence
	if _, ok := tr.(*ChatToMessagesStream); ok {
		check = checkAnthropicSequence
	}
	if err := check(out, true); err != nil {
		t.Fatalf("the translated stream is not well formed: %s", err)
	}
}

func TestMessagesToChatStreamFixtures(t *testing.T) {
	for _, tc := range []struct {
		streamCase
		model        string
		includeUsage bool
	}{
		{streamCase{in: "text", want: "text", prompt: 25, completion: 15}, "content-writer", true},
		{streamCase{in: "tool_use", want: "tool_use", prompt: 849, completion: 47}, "content-writer", false},
		{streamCase{in: "thinking", want: "thinking", prompt: 4312, completion: 120}, "", true},
		{streamCase{in: "error", want: "error", wantErr: ErrStreamFailed, prompt: 10, completion: 1}, "content-writer", true},
		{streamCase{in: "no_stop", want: "no_stop.finish", end: "finish", prompt: 10, completion: 1}, "content-writer", true},
		{streamCase{in: "no_stop", want: "no_stop.cut", end: "cut", prompt: 10, completion: 1}, "content-writer", true},
	} {
		t.Run(tc.want, func(t *testing.T) {
			runStream(t, "messages_to_chat_stream", tc.streamCase, NewMessagesToChatStream(tc.model, tc.includeUsage))
		})
	}
}

func TestChatToMessagesStreamFixtures(t *testing.T) {
	for _, tc := range []struct {
		streamCase
		model string
	}{
		{streamCase{in: "text", want: "text", prompt: 1033, completion: 12}, "claude-sonnet-4-5"},
		{streamCase{in: "tools", want: "tools", prompt: 80, completion: 40}, "claude-sonnet-4-5"},
		{streamCase{in: "text_then_tool", want: "text_then_tool"}, ""},
		{streamCase{in: "bare", want: "bare"}, "claude-sonnet-4-5"},
		{streamCase{in: "error", want: "error", wantErr: ErrStreamFailed}, "claude-sonnet-4-5"},
		{streamCase{in: "no_done", want: "no_done.finish", end: "finish"}, "claude-sonnet-4-5"},
		{streamCase{in: "no_done", want: "no_done.cut", end: "cut"}, "claude-sonnet-4-5"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			runStream(t, "chat_to_messages_stream", tc.streamCase, NewChatToMessagesStream(tc.model))
		})
	}
}
