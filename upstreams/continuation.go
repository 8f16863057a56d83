package upstreams

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// A chat stream cut after its first byte cannot fall back: the client has
// part of an answer. With on_stream_cut: continue (issue 15, DESIGN.md
// section 7) the next target is asked, in a new user turn, to continue the
// text where it stops, and its stream is stitched to what was sent: the
// seam is trimmed of text the continuation repeats, and every chunk keeps
// the first attempt's id, created and model, so that an SDK assembles one
// answer. This file holds what the seam needs; splice.go drives it.

// ContinuePrompt is the user turn that asks a target to continue a cut
// answer. It asks for no preamble: whatever the target writes is appended.
const ContinuePrompt = "Your previous message was cut off by a network error. Continue it exactly where it stops, " +
	"even in the middle of a word or sentence. Do not repeat any of it, do not add a preamble or a note: " +
	"your reply is appended to it as it is."

// seamTail is how many bytes of the text already sent are compared with
// the start of a continuation: a model that repeats itself repeats the
// last words or sentence, not a page.
const seamTail = 400

// continuable reports whether a request's stream may be continued on
// another target once cut: a chat completion stream of one choice, without
// logprobs or audio, or an Anthropic Messages stream, whose messages are
// an array. Anything else keeps
// on_stream_cut: error, because the seam could not be made exact (several
// choices, per-token logprobs of a text the gateway trims, audio bytes).
func continuable(path string, body []byte) bool {
	if path != chatPath && path != MessagesPath {
		return false
	}
	if s, _, ok, err := Field(body, "messages"); err != nil || !ok || body[s] != '[' || body[skipSpace(body, s+1)] == ']' {
		return false
	}
	if path == MessagesPath {
		return true // one message, no logprobs: what is left is checked as it streams
	}
	if s, e, ok, err := Field(body, "n"); err != nil || ok && string(body[s:e]) != "1" && string(body[s:e]) != "null" {
		return false
	}
	for _, name := range []string{"logprobs", "top_logprobs"} {
		if s, e, ok, err := Field(body, name); err != nil || ok && string(body[s:e]) != "false" && string(body[s:e]) != "null" {
			return false
		}
	}
	if s, e, ok, err := Field(body, "modalities"); err != nil || ok && bytes.Contains(body[s:e], []byte(`"audio"`)) {
		return false
	}
	return true
}

// continuationBody is the client's body with two turns appended to its
// messages: the text received so far as the assistant's, and the user's
// ContinuePrompt. With no text yet the body is the client's own: the next
// target simply answers the request.
func continuationBody(body []byte, text string) ([]byte, error) {
	if text == "" {
		return body, nil
	}
	s, e, ok, err := Field(body, "messages")
	if err != nil || !ok || body[s] != '[' {
		return nil, fmt.Errorf("cannot continue a request without a messages array: %v", err)
	}
	turns, err := json.Marshal([]struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}{{"assistant", text}, {"user", ContinuePrompt}})
	if err != nil {
		return nil, fmt.Errorf("cannot encode the continuation turns: %w", err)
	}
	msgs := bytes.TrimRight(body[s:e-1], " \t\r\n") // without its ']'
	out := make([]byte, 0, len(msgs)+len(turns)+1)
	out = append(out, msgs...)
	if msgs[len(msgs)-1] != '[' {
		out = append(out, ',')
	}
	out = append(out, turns[1:]...) // the turns without their '['
	return ReplaceField(body, "messages", out)
}

// overlap returns how many leading bytes of next repeat the end of sent,
// compared over the last seamTail bytes of sent with runs of whitespace
// taken as one space. A repeat starts at a word boundary of sent (so "a"
// at the end of "data" does not eat a continuation that starts with
// "a"), and the longest one wins. decided is false while next is short
// enough to be the start of a longer repeat: the caller holds it back
// until more arrives or final says no more will.
func overlap(sent, next string, final bool) (trim int, decided bool) {
	tail := sent[max(len(sent)-seamTail, 0):]
	for len(tail) > 0 && !utf8.RuneStart(tail[0]) {
		tail = tail[1:]
	}
	t, _ := normalize(tail)
	n, ends := normalize(next)
	if len(n) == 0 {
		return 0, final
	}
	if !final {
		// A suffix of the tail longer than next that starts with next: the
		// repeat may go on.
		for k := len(t); k > len(n); k-- {
			i := len(t) - k
			if wordBoundary(t, i) && equalRunes(t[i:i+len(n)], n) {
				return 0, false
			}
		}
	}
	for k := min(len(t), len(n)); k > 0; k-- {
		i := len(t) - k
		if wordBoundary(t, i) && equalRunes(t[i:], n[:k]) {
			return ends[k-1], true
		}
	}
	return 0, true
}

// normalize returns s's runes with each run of whitespace as one space,
// and for each rune the byte offset in s just past it (past the whole run
// for a space).
func normalize(s string) (runes []rune, ends []int) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if unicode.IsSpace(r) {
			for i < len(s) {
				r2, size2 := utf8.DecodeRuneInString(s[i:])
				if !unicode.IsSpace(r2) {
					break
				}
				i += size2
			}
			r = ' '
		}
		runes, ends = append(runes, r), append(ends, i)
	}
	return runes, ends
}

// wordBoundary reports whether a repeat may start at t[i]: at the start of
// the window, or where a word starts or ends.
func wordBoundary(t []rune, i int) bool {
	return i == 0 || !isWordRune(t[i-1]) || !isWordRune(t[i])
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }

func equalRunes(a, b []rune) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// chatChunk is what the seam reads of one chat.completion.chunk.
type chatChunk struct {
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content      *string         `json:"content"`
			Refusal      *string         `json:"refusal"`
			ToolCalls    json.RawMessage `json:"tool_calls"`
			FunctionCall json.RawMessage `json:"function_call"`
		} `json:"delta"`
		FinishReason *string         `json:"finish_reason"`
		Logprobs     json.RawMessage `json:"logprobs"`
	} `json:"choices"`
	Usage json.RawMessage `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// content is the chunk's text, and why a stream that carries it cannot be
// continued ("" when it can).
func (c *chatChunk) content() (text, blocked string) {
	for _, ch := range c.Choices {
		d := ch.Delta
		switch {
		case ch.Index != 0:
			return "", "more than one choice"
		case present(d.ToolCalls) || present(d.FunctionCall):
			return "", "tool calls started"
		case d.Refusal != nil && *d.Refusal != "":
			return "", "a refusal started"
		case present(ch.Logprobs):
			return "", "logprobs"
		}
		if d.Content != nil {
			text += *d.Content
		}
		if ch.FinishReason != nil {
			// The answer is whole; what is missing is its end, which no
			// other target can send.
			return text, "the answer had finished (finish_reason " + strconv.Quote(*ch.FinishReason) + ")"
		}
	}
	return text, ""
}

// finishes reports a chunk after which no more text comes: the one with
// finish_reason, or the usage chunk (no choices).
func (c *chatChunk) finishes() bool {
	if len(c.Choices) == 0 {
		return present(c.Usage)
	}
	for _, ch := range c.Choices {
		if ch.FinishReason != nil {
			return true
		}
	}
	return false
}

func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// chunkIdentity is the first attempt's id, created and model (raw JSON
// values), which every continued chunk carries.
type chunkIdentity struct{ id, created, model []byte }

// capture takes the identity of the first chunk that has one.
func (ci *chunkIdentity) capture(data []byte) {
	if ci.id != nil {
		return
	}
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{"id", &ci.id}, {"created", &ci.created}, {"model", &ci.model}} {
		if s, e, ok, err := Field(data, f.name); err == nil && ok {
			*f.dst = bytes.Clone(data[s:e])
		}
	}
}

// stamp gives a continued chunk the first attempt's identity.
func (ci *chunkIdentity) stamp(data []byte) ([]byte, error) {
	var err error
	for _, f := range []struct {
		name string
		raw  []byte
	}{{"id", ci.id}, {"created", ci.created}, {"model", ci.model}} {
		if f.raw == nil {
			continue
		}
		if data, err = ReplaceField(data, f.name, f.raw); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// withContent returns chunk data whose first choice's delta content is
// text instead.
func withContent(data []byte, text string) ([]byte, error) {
	s, e, ok, err := Field(data, "choices")
	if err != nil || !ok || data[s] != '[' {
		return nil, fmt.Errorf("cannot find the choices of a chunk: %v", err)
	}
	i := skipSpace(data, s+1)
	end, err := skipValue(data, i)
	if err != nil || i >= e || data[i] != '{' {
		return nil, fmt.Errorf("cannot find the first choice of a chunk: %v", err)
	}
	choice := data[i:end]
	ds, de, ok, err := Field(choice, "delta")
	if err != nil || !ok || choice[ds] != '{' {
		return nil, fmt.Errorf("cannot find the delta of a chunk: %v", err)
	}
	quoted, _ := json.Marshal(text)
	delta, err := ReplaceField(choice[ds:de], "content", quoted)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(data)+len(quoted))
	out = append(out, data[:i+ds]...)
	out = append(out, delta...)
	return append(out, data[i+de:]...), nil
}

// withUsage returns chunk data whose usage counts are u (and their total).
func withUsage(data []byte, u Usage) ([]byte, error) {
	s, e, ok, err := Field(data, "usage")
	if err != nil || !ok || data[s] != '{' {
		return data, err
	}
	usage := data[s:e]
	for _, c := range []struct {
		name string
		n    int64
	}{{"prompt_tokens", u.PromptTokens}, {"completion_tokens", u.CompletionTokens}, {"total_tokens", u.PromptTokens + u.CompletionTokens}} {
		if usage, err = ReplaceField(usage, c.name, strconv.AppendInt(nil, c.n, 10)); err != nil {
			return nil, err
		}
	}
	out := make([]byte, 0, len(data)+16)
	out = append(out, data[:s]...)
	out = append(out, usage...)
	return append(out, data[e:]...), nil
}

// dataEvent is an SSE event of one data line.
func dataEvent(data []byte) []byte {
	return append([]byte("data: "), data...)
}
