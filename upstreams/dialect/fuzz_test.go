package dialect

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The fuzz targets prove that the translators never panic on malformed
// input and that what they send is always well formed. Seeds are the
// fixtures plus the committed corpus in testdata/fuzz/<target>.

func addFixtures(f *testing.F, glob string) {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", glob))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no fixtures match %s (%v)", glob, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// feed translates a raw SSE body event by event and ends the stream the
// way the gateway would: Cut after a bad event, Finish after a clean end.
func feed(tr streamTranslator, body []byte) ([][]byte, error) {
	var out [][]byte
	for _, ev := range splitEvents(body) {
		evs, err := tr.Translate(ev)
		out = append(out, evs...)
		if err != nil {
			if !errors.Is(err, ErrBadAnswer) && !errors.Is(err, ErrStreamFailed) {
				return out, err
			}
			if cut := tr.Cut("cut"); cut != nil {
				out = append(out, cut)
			}
			return out, nil
		}
	}
	return append(out, tr.Finish()...), nil
}

func FuzzMessagesToChatStream(f *testing.F) {
	addFixtures(f, "messages_to_chat_stream/*.sse")
	f.Fuzz(func(t *testing.T, body []byte) {
		tr := NewMessagesToChatStream("m", len(body)%2 == 0)
		out, err := feed(tr, body)
		if err != nil {
			t.Fatalf("an error that is neither ErrBadAnswer nor ErrStreamFailed: %v", err)
		}
		if err := checkChatSequence(out, true); err != nil {
			t.Fatalf("%s\nfrom %q:\n%s", err, body, joinEvents(out))
		}
	})
}

func FuzzChatToMessagesStream(f *testing.F) {
	addFixtures(f, "chat_to_messages_stream/*.sse")
	f.Fuzz(func(t *testing.T, body []byte) {
		tr := NewChatToMessagesStream("claude")
		out, err := feed(tr, body)
		if err != nil {
			t.Fatalf("an error that is neither ErrBadAnswer nor ErrStreamFailed: %v", err)
		}
		if err := checkAnthropicSequence(out, true); err != nil {
			t.Fatalf("%s\nfrom %q:\n%s", err, body, joinEvents(out))
		}
	})
}

func FuzzChatToMessages(f *testing.F) {
	addFixtures(f, "chat_to_messages/*.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := ChatToMessages(body, "claude", 1024)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Message == "" {
				t.Fatalf("want a *RequestError with a message, got %v", err)
			}
			return
		}
		if err := checkMessagesRequest(out); err != nil {
			t.Fatalf("%s\nfrom %s:\n%s", err, body, out)
		}
	})
}

// checkMessagesRequest verifies what Anthropic demands of a request that
// ChatToMessages controls: alternating roles, no empty message or text
// block, tool_use inputs that are objects.
func checkMessagesRequest(out []byte) error {
	var req struct {
		Model    string    `json:"model"`
		Messages []message `json:"messages"`
	}
	if err := json.Unmarshal(out, &req); err != nil {
		return err
	}
	if req.Model != "claude" || len(req.Messages) == 0 {
		return errors.New("want the model and at least one message")
	}
	for i, m := range req.Messages {
		if (m.Role != "user" && m.Role != "assistant") || len(m.Content) == 0 || (i > 0 && req.Messages[i-1].Role == m.Role) {
			return errors.New("roles must alternate and messages have content")
		}
		for _, b := range m.Content {
			switch b.Type {
			case "text":
				if b.Text == "" {
					return errors.New("empty text block")
				}
			case "tool_use":
				if firstByte(b.Input) != '{' || !isToolID(b.ID) {
					return errors.New("bad tool_use block")
				}
			case "tool_result":
				if !isToolID(b.ToolUseID) {
					return errors.New("bad tool_result block")
				}
			case "image":
				if b.Source == nil {
					return errors.New("image without source")
				}
			default:
				return errors.New("unexpected block " + b.Type)
			}
		}
	}
	return nil
}

func FuzzMessagesToChat(f *testing.F) {
	addFixtures(f, "messages_to_chat/*.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := MessagesToChat(body, "gpt")
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Message == "" {
				t.Fatalf("want a *RequestError with a message, got %v", err)
			}
			return
		}
		var req struct {
			Model    string    `json:"model"`
			Messages []chatOut `json:"messages"`
		}
		if err := json.Unmarshal(out, &req); err != nil || req.Model != "gpt" || len(req.Messages) == 0 {
			t.Fatalf("invalid request (%v) from %s:\n%s", err, body, out)
		}
	})
}

func FuzzAnswers(f *testing.F) {
	addFixtures(f, "message_to_chat_completion/*.json")
	addFixtures(f, "chat_completion_to_message/*.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, translate := range []func([]byte, string) ([]byte, error){MessageToChatCompletion, ChatCompletionToMessage} {
			out, err := translate(body, "m")
			if err != nil {
				if !errors.Is(err, ErrBadAnswer) {
					t.Fatalf("want ErrBadAnswer, got %v", err)
				}
				continue
			}
			if !json.Valid(out) || !bytes.Contains(out, []byte(`"model":"m"`)) {
				t.Fatalf("invalid answer from %s:\n%s", body, out)
			}
		}
		for _, conv := range []func(int, []byte) []byte{ErrorToOpenAI, ErrorToAnthropic} {
			if out := conv(500, body); !json.Valid(out) {
				t.Fatalf("invalid error body from %s:\n%s", body, out)
			}
		}
		_, _, _ = MessagesUsage(body)
	})
}
