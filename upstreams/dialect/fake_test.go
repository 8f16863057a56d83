package dialect

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// The translators against the fake upstream over real HTTP, in both
// directions, the way the gateway will use them.

func startFake(t *testing.T) *upstreamtest.Server {
	t.Helper()
	s, err := upstreamtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func postFake(t *testing.T, url string, body []byte, anthropic bool) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if anthropic {
		req.Header.Set("x-api-key", "sk-ant-test")
		req.Header.Set("anthropic-version", "2023-06-01")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readSSE reads a whole SSE body into events, without their blank lines.
func readSSE(t *testing.T, r io.Reader) [][]byte {
	t.Helper()
	var out [][]byte
	var cur []byte
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if sc.Text() == "" {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		if len(cur) > 0 {
			cur = append(cur, '\n')
		}
		cur = append(cur, sc.Bytes()...)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// An OpenAI client's streamed tool call through an Anthropic target.
func TestChatClientThroughAnthropicFake(t *testing.T) {
	s := startFake(t)
	b := upstreamtest.Behavior{Chunks: 3, ToolName: "get_weather", ToolInput: `{"city":"Paris"}`, PromptTokens: 21, CompletionTokens: 8}
	s.SetBehavior("claude-x", b)
	client := []byte(`{"model":"route","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Weather in Paris?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}`)
	up, err := ChatToMessages(client, "claude-x", 512)
	if err != nil {
		t.Fatal(err)
	}
	resp := postFake(t, s.AnthropicURL()+"/v1/messages", up, true)
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("the fake refused the translated request %s: %d %s", up, resp.StatusCode, body)
	}
	tr := NewMessagesToChatStream("route", IncludeUsage(client))
	var out [][]byte
	for _, ev := range readSSE(t, resp.Body) {
		evs, err := tr.Translate(ev)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
	}
	if err := checkChatSequence(out, true); err != nil {
		t.Fatalf("%s:\n%s", err, joinEvents(out))
	}
	all := string(joinEvents(out))
	var args strings.Builder
	for _, ev := range out {
		var c struct {
			Choices []struct {
				Delta struct {
					ToolCalls []struct {
						Function struct{ Arguments string } `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
			} `json:"choices"`
		}
		_ = json.Unmarshal(ev[len("data: "):], &c)
		for _, ch := range c.Choices {
			for _, tc := range ch.Delta.ToolCalls {
				args.WriteString(tc.Function.Arguments)
			}
		}
	}
	if args.String() != b.ToolInput || !strings.Contains(all, `"finish_reason":"tool_calls"`) || !strings.Contains(all, `"usage":{"prompt_tokens":21,"completion_tokens":8,"total_tokens":29}`) {
		t.Fatalf("unexpected translated stream (arguments %q):\n%s", args.String(), all)
	}
	if p, c := tr.Usage(); p != 21 || c != 8 {
		t.Fatalf("want usage 21/8, got %d/%d", p, c)
	}
}

// An Anthropic client's text, streamed and not, through an OpenAI target.
func TestMessagesClientThroughOpenAIFake(t *testing.T) {
	s := startFake(t)
	b := upstreamtest.Behavior{Chunks: 4, Content: "Bonjour à tous", PromptTokens: 9, CompletionTokens: 4}
	s.SetBehavior("gpt-x", b)
	for _, stream := range []bool{false, true} {
		client := []byte(`{"model":"route","max_tokens":100,"system":"Be brief.","messages":[{"role":"user","content":"Say hi"}],"stream":` + map[bool]string{false: "false", true: "true"}[stream] + `}`)
		up, err := MessagesToChat(client, "gpt-x")
		if err != nil {
			t.Fatal(err)
		}
		resp := postFake(t, s.URL+"/chat/completions", up, false)
		if !stream {
			body, _ := io.ReadAll(resp.Body)
			msg, err := ChatCompletionToMessage(body, "route")
			if err != nil {
				t.Fatal(err)
			}
			p, c, ok := MessagesUsage(msg)
			if !strings.Contains(string(msg), `"content":[{"type":"text","text":"Bonjour à tous"}],"stop_reason":"end_turn"`) || !ok || p != 9 || c != 4 {
				t.Fatalf("unexpected message %s", msg)
			}
			continue
		}
		tr := NewChatToMessagesStream("route")
		var out [][]byte
		for _, ev := range readSSE(t, resp.Body) {
			evs, err := tr.Translate(ev)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, evs...)
		}
		if err := checkAnthropicSequence(out, true); err != nil {
			t.Fatalf("%s:\n%s", err, joinEvents(out))
		}
		all := string(joinEvents(out))
		if !strings.Contains(all, `"usage":{"input_tokens":9,"output_tokens":4}`) || strings.Count(all, "text_delta") != 4 {
			t.Fatalf("unexpected translated stream:\n%s", all)
		}
	}
}
