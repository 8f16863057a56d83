package upstreams

import (
	"bytes"
	"io"
	"testing"

	"github.com/idemgw/gateway/upstreams/dialect"
)

// FuzzTranslatedStream feeds arbitrary upstream bytes to a Stream that
// relays Anthropic events as they are, or translates them either way
// (DESIGN.md section 7). It never panics and always ends, finishing its
// attempt and releasing its connection once; every event it returns can
// be recorded and split back out (no blank line, no final newline); and a
// clean end is claimed only after the client's own end marker: [DONE]
// for an OpenAI client, message_stop for an Anthropic one.
func FuzzTranslatedStream(f *testing.F) {
	anthropic := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\",\"usage\":{\"input_tokens\":3}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	chat := "data: {\"id\":\"c\",\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\",\"tool_calls\":[{\"index\":0,\"id\":\"t\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n" +
		"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n"
	for mode := range uint8(3) {
		f.Add([]byte(anthropic), mode)
		f.Add([]byte(chat), mode)
		f.Add([]byte(anthropic[:len(anthropic)/2]), mode)
		f.Add([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}\n\n"), mode)
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		s, p := newTestStream(bytes.NewReader(data), 4096, true)
		var end []byte // the client's end marker
		switch mode % 3 {
		case 0:
			s.anthropic, end = true, []byte(`"type":"message_stop"`)
		case 1:
			s.tr, end = dialect.NewMessagesToChatStream("m", true), []byte("data: [DONE]")
		default:
			s.tr, end = dialect.NewChatToMessagesStream("m"), []byte(`"type":"message_stop"`)
		}
		var last []byte
		var err error
		for n := 0; ; n++ {
			var ev []byte
			if ev, err = s.Next(); err != nil {
				break
			}
			if n > 4*len(data)+16 {
				t.Fatalf("the stream does not end: %q", data)
			}
			if bytes.Contains(ev, []byte("\n\n")) || bytes.HasSuffix(ev, []byte("\n")) {
				t.Fatalf("event %q of %q would not split back out of a transcript", ev, data)
			}
			last = ev
		}
		if _, again := s.Next(); again != io.EOF {
			t.Fatalf("Next after the end = %v, want io.EOF", again)
		}
		s.Close()
		if p.finishes != 1 || p.releases != 1 {
			t.Fatalf("finished %d and released %d times, want once each", p.finishes, p.releases)
		}
		if err == io.EOF && (p.err != nil || !bytes.Contains(last, end)) {
			t.Fatalf("a clean end after %q (attempt error %v) for %q", last, p.err, data)
		}
	})
}
