package upstreams

import (
	"encoding/json"
	"strings"
	"testing"
)

// The seam (issue 15): how much of a continuation's start repeats the end
// of the text already sent, and whether that can be known yet.
func TestOverlap(t *testing.T) {
	f := func(sent, next string, final bool, wantTrim int, wantDecided bool) {
		t.Helper()
		trim, decided := overlap(sent, next, final)
		if trim != wantTrim || decided != wantDecided {
			t.Errorf("overlap(%q, %q, final %v) = %d, %v; want %d, %v", sent, next, final, trim, decided, wantTrim, wantDecided)
		}
	}
	// No repeat: nothing trimmed, decided as soon as next cannot start one.
	f("The quick brown fox", " jumps over", false, 0, true)
	f("The quick brown fox", "es are quick", false, 0, true)
	f("The quick brown fox ", "jumps over", false, 0, true)
	// The last words repeated, with the same or other whitespace.
	f("The quick brown fox", "brown fox jumps", false, len("brown fox"), true)
	f("The quick brown fox", " brown fox jumps", false, len(" brown fox"), true)
	f("The quick brown fox ", "fox jumps", false, len("fox "), true)
	f("The quick brown\nfox", "brown  fox jumps", false, len("brown  fox"), true)
	f("The quick brown fox", "brown\n\nfox\tjumps", false, len("brown\n\nfox"), true)
	// A word cut short and restarted.
	f("The quick brown fox ju", "jumps over", false, len("ju"), true)
	// Only a space repeated.
	f("The quick brown fox ", " jumps", false, 1, true)
	// Not at a word boundary of the text sent: "a" ending "data" is no repeat.
	f("some data", "a bit more", false, 0, true)
	f("some data", "ata and more", false, 0, true)
	// While next may still be the start of a longer repeat, it is held.
	f("The quick brown fox", "brown f", false, 0, false)
	f("The quick brown fox", " ", false, 0, false)
	f("The quick brown fox", "", false, 0, false)
	f("The quick brown fox", "", true, 0, true)
	// ...unless no more comes: then the longest repeat that is whole wins.
	f("The quick brown fox", "brown f", true, 0, true)
	f("The quick brown fox", "fox", true, 3, true)
	// The longest repeat wins over a shorter one inside it.
	f("a b a b", "a b a b c", false, len("a b a b"), true)
	// Only the last seamTail bytes are compared.
	long := strings.Repeat("x", 2*seamTail) + " end"
	f(long, " end.", false, len(" end"), true)
	f(long, strings.Repeat("x", seamTail+10)+" end more", true, 0, true)
	// Multi-byte text is compared by runes, and trimmed on a rune boundary.
	f("Grüße aus Köln", "Köln und", false, len("Köln"), true)
	// Text without spaces has its boundaries at punctuation only.
	f("日本語の文", "文です", false, 0, true)
	f("日本語です。次の文", "次の文です", false, len("次の文"), true)
}

func TestContinuable(t *testing.T) {
	f := func(path, body string, want bool) {
		t.Helper()
		if got := continuable(path, []byte(body)); got != want {
			t.Errorf("continuable(%s, %s) = %v, want %v", path, body, got, want)
		}
	}
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	f("/v1/chat/completions", `{"model":"m",`+msgs+`,"stream":true}`, true)
	f("/v1/chat/completions", `{"model":"m",`+msgs+`,"n":1,"logprobs":false,"top_logprobs":null}`, true)
	f("/v1/chat/completions", `{"model":"m",`+msgs+`,"tools":[{"type":"function","function":{"name":"f"}}]}`, true)
	f("/v1/chat/completions", `{"model":"m",`+msgs+`,"n":2}`, false)
	f("/v1/chat/completions", `{"model":"m",`+msgs+`,"logprobs":true}`, false)
	f("/v1/chat/completions", `{"model":"m",`+msgs+`,"top_logprobs":3}`, false)
	f("/v1/chat/completions", `{"model":"m",`+msgs+`,"modalities":["text","audio"]}`, false)
	f("/v1/chat/completions", `{"model":"m","messages":[]}`, false)
	f("/v1/chat/completions", `{"model":"m","messages":"hi"}`, false)
	f("/v1/chat/completions", `{"model":"m"}`, false)
	f("/v1/completions", `{"model":"m","prompt":"hi","stream":true}`, false)
	f("/v1/responses", `{"model":"m","input":"hi","stream":true}`, false)
}

func TestContinuationBody(t *testing.T) {
	body := []byte(`{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"tell"}] ,"stream":true}`)
	got, err := continuationBody(body, "Once upon a \"time\"")
	if err != nil {
		t.Fatal(err)
	}
	var req struct {
		Model    string
		Stream   bool
		Messages []struct{ Role, Content string }
	}
	if err := json.Unmarshal(got, &req); err != nil {
		t.Fatalf("%v: %s", err, got)
	}
	if req.Model != "m" || !req.Stream || len(req.Messages) != 4 {
		t.Fatalf("continuation body: %s", got)
	}
	if m := req.Messages[2]; m.Role != "assistant" || m.Content != `Once upon a "time"` {
		t.Fatalf("assistant turn: %+v", m)
	}
	if m := req.Messages[3]; m.Role != "user" || m.Content != ContinuePrompt {
		t.Fatalf("user turn: %+v", m)
	}
	// Nothing sent yet: the request as the client sent it.
	if got, _ := continuationBody(body, ""); string(got) != string(body) {
		t.Fatalf("no text: %s", got)
	}
	if _, err := continuationBody([]byte(`{"model":"m"}`), "x"); err == nil {
		t.Fatal("a body without messages was continued")
	}
}

// The edits a continued chunk goes through keep every other byte.
func TestChunkEdits(t *testing.T) {
	first := []byte(`{"id":"chatcmpl-A","object":"chat.completion.chunk","created":111,"model":"gpt-a","choices":[]}`)
	var id chunkIdentity
	id.capture(first)
	id.capture([]byte(`{"id":"other","created":5,"model":"x"}`)) // the first one stays
	chunk := []byte(`{"id":"chatcmpl-B","object":"chat.completion.chunk","created":222,"model":"gpt-b","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"brown fox"},"finish_reason":null}]}`)
	got, err := id.stamp(chunk)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"chatcmpl-A","object":"chat.completion.chunk","created":111,"model":"gpt-a","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"brown fox"},"finish_reason":null}]}`
	if string(got) != want {
		t.Fatalf("stamp:\n got %s\nwant %s", got, want)
	}
	got, err = withContent(got, " fox \"x\"")
	if err != nil {
		t.Fatal(err)
	}
	want = strings.Replace(want, `"content":"brown fox"`, `"content":" fox \"x\""`, 1)
	if string(got) != want {
		t.Fatalf("withContent:\n got %s\nwant %s", got, want)
	}
	usage := []byte(`{"id":"x","choices":[],"usage":{"prompt_tokens":30,"completion_tokens":7,"total_tokens":37,"prompt_tokens_details":{"cached_tokens":0}}}`)
	got, err = withUsage(usage, Usage{PromptTokens: 40, CompletionTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"x","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":10,"total_tokens":50,"prompt_tokens_details":{"cached_tokens":0}}}`; string(got) != want {
		t.Fatalf("withUsage:\n got %s\nwant %s", got, want)
	}
}

// What a chunk tells the seam: its text, and whether a stream that
// carried it may still be continued.
func TestChunkContent(t *testing.T) {
	f := func(data, wantText, wantBlocked string) {
		t.Helper()
		var c chatChunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatal(err)
		}
		text, blocked := c.content()
		if text != wantText || !strings.Contains(blocked, wantBlocked) || (wantBlocked == "") != (blocked == "") {
			t.Errorf("content(%s) = %q, %q; want %q, %q", data, text, blocked, wantText, wantBlocked)
		}
	}
	f(`{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`, "", "")
	f(`{"choices":[{"index":0,"delta":{"content":"hi","refusal":null,"tool_calls":null},"logprobs":null,"finish_reason":null}]}`, "hi", "")
	f(`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":""}}]}}]}`, "", "tool calls")
	f(`{"choices":[{"index":0,"delta":{"function_call":{"name":"f"}}}]}`, "", "tool calls")
	f(`{"choices":[{"index":1,"delta":{"content":"b"}}]}`, "", "more than one choice")
	f(`{"choices":[{"index":0,"delta":{"refusal":"no"}}]}`, "", "refusal")
	f(`{"choices":[{"index":0,"delta":{"content":"x"},"logprobs":{"content":[]}}]}`, "", "logprobs")
	f(`{"choices":[{"index":0,"delta":{"content":"end"},"finish_reason":"stop"}]}`, "end", "finished")
	f(`{"choices":[],"usage":{"prompt_tokens":1}}`, "", "")
}
