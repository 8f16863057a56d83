package upstreamtest

import (
	"encoding/json"
	"strings"
	"testing"
)

// Continue answers with the rest of Content after the assistant's text,
// starting RepeatWords words early.
func TestContinuation(t *testing.T) {
	const content = "The quick brown fox jumps over the lazy dog."
	f := func(messages string, repeat int, want, wantErr string) {
		t.Helper()
		got, err := continuation(Behavior{Content: content, Continue: true, RepeatWords: repeat}, json.RawMessage(messages))
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("continuation(%s): err %v, want %q", messages, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Fatalf("continuation(%s, %d) = %q, %v; want %q", messages, repeat, got, err, want)
		}
	}
	turns := func(sent string) string {
		return `[{"role":"user","content":"go"},{"role":"assistant","content":` + jsonQuote(sent) + `},{"role":"user","content":"continue"}]`
	}
	f(turns("The quick brown fox ju"), 0, "mps over the lazy dog.", "")
	f(turns("The quick brown fox ju"), 2, "fox jumps over the lazy dog.", "")
	f(turns("The quick brown fox "), 1, "fox jumps over the lazy dog.", "")
	f(turns("The quick"), 9, content, "")
	f(`[{"role":"user","content":"go"}]`, 2, content, "")
	f(turns("Another text"), 0, "", "not the start of the scripted content")
	f(`[{"role":"user","content":"go"},{"role":"assistant","content":"The"}]`, 0, "", "user turn after the assistant's")
	f(`"go"`, 0, "", "cannot read the messages")
	// Content as text blocks, as Anthropic's messages and OpenAI's parts.
	f(`[{"role":"user","content":"go"},{"role":"assistant","content":[{"type":"text","text":"The quick "},{"type":"text","text":"brown"}]},{"role":"user","content":[{"type":"text","text":"continue"}]}]`, 1, "brown fox jumps over the lazy dog.", "")
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
