package upstreamtest

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// continuation is the content of a Continue answer to a request with the
// given messages (see Behavior.Continue).
func continuation(b Behavior, messages json.RawMessage) (string, error) {
	var msgs []struct {
		Role    string      `json:"role"`
		Content textContent `json:"content"`
	}
	if err := json.Unmarshal(messages, &msgs); err != nil {
		return "", fmt.Errorf("fake upstream cannot read the messages of a continuation: %s", err)
	}
	last := -1
	for i, m := range msgs {
		if m.Role == "assistant" {
			last = i
		}
	}
	if last < 0 {
		return b.Content, nil
	}
	if last+1 >= len(msgs) || msgs[last+1].Role != "user" || strings.TrimSpace(string(msgs[last+1].Content)) == "" {
		return "", fmt.Errorf("fake upstream: a continuation must ask in a user turn after the assistant's")
	}
	sent := string(msgs[last].Content)
	if !strings.HasPrefix(b.Content, sent) {
		return "", fmt.Errorf("fake upstream: the assistant text %q is not the start of the scripted content", sent)
	}
	return b.Content[repeatStart(sent, b.RepeatWords):], nil
}

// repeatStart is where the last n words of text start (len(text) for 0).
func repeatStart(text string, n int) int {
	i := len(text)
	for ; n > 0 && i > 0; n-- {
		for i > 0 && unicode.IsSpace(rune(text[i-1])) {
			i--
		}
		for i > 0 && !unicode.IsSpace(rune(text[i-1])) {
			i--
		}
	}
	return i
}

// textContent is a message's content, a string or (as Anthropic's and
// OpenAI's content parts) an array of text blocks, joined.
type textContent string

func (t *textContent) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*t = textContent(s)
		return nil
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return err
	}
	var sb strings.Builder
	for _, p := range parts {
		sb.WriteString(p.Text)
	}
	*t = textContent(sb.String())
	return nil
}
