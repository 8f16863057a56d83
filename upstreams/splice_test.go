package upstreams

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

const storyText = "The quick brown fox jumps over the lazy dog, and the dog does not mind at all. Then they both sleep."

// spliceChain is a route of three targets on one fake upstream, models
// first, second and third, with on_stream_cut: continue.
func spliceChain(t *testing.T, fake *upstreamtest.Server, onCut string) *Chain {
	return spliceChainKinds(t, fake, onCut, "openai", "openai", "openai")
}

// spliceChainKinds is spliceChain with the kinds of providers a, b and c.
func spliceChainKinds(t *testing.T, fake *upstreamtest.Server, onCut string, kinds ...string) *Chain {
	t.Helper()
	ps := make([]string, 3)
	for i, k := range kinds {
		u := fake.URL
		if k == "anthropic" {
			u = fake.AnthropicURL()
		}
		ps[i] = "{kind: " + k + ", base_url: \"" + u + "\", api_key: k, timeout: 5s}"
	}
	cfg, err := config.Parse("t.yaml", []byte("auth: {mode: none}\nproviders:\n  a: "+ps[0]+"\n  b: "+ps[1]+"\n  c: "+ps[2]+"\n"+
		"routes:\n  - model: m\n    on_stream_cut: "+onCut+"\n    targets: [{provider: a, model: first}, {provider: b, model: second}, {provider: c, model: third}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRegistry(cfg, NewMetrics(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.ChainFor("m")
}

// streamed is what a client of a chain's stream got.
type streamed struct {
	text    string
	events  []string
	ids     map[string]bool
	models  map[string]bool
	created map[float64]bool
	done    int
	usage   []Usage // of each chunk that had one
	err     error
}

func readStream(t *testing.T, res *Result) streamed {
	t.Helper()
	out := streamed{ids: map[string]bool{}, models: map[string]bool{}, created: map[float64]bool{}}
	var text strings.Builder
	for {
		ev, err := res.Stream.Next()
		if err != nil {
			if err != io.EOF {
				out.err = err
			}
			break
		}
		out.events = append(out.events, string(ev))
		data := SSEData(ev)
		if string(data) == "[DONE]" {
			out.done++
			continue
		}
		var c struct {
			ID      string  `json:"id"`
			Created float64 `json:"created"`
			Model   string  `json:"model"`
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("event %q: %v", ev, err)
		}
		out.ids[c.ID], out.models[c.Model], out.created[c.Created] = true, true, true
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
		if u, ok := ParseUsage(data); ok {
			out.usage = append(out.usage, u)
		}
	}
	out.text = text.String()
	return out
}

func outcomes(res *Result) string {
	var b strings.Builder
	for i, a := range res.Attempts {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.Model + ":" + string(a.Outcome))
		if a.Continues > 0 {
			b.WriteString("<" + string(rune('0'+a.Continues)))
		}
	}
	return b.String()
}

const chatStream = `{"model":"m","messages":[{"role":"user","content":"tell me"}],"stream":true,"stream_options":{"include_usage":true}}`

// Acceptance 1 of issue 15 at the chain: a stream cut after k chunks goes
// on on the next target, with or without a repeat of the last words.
func TestSpliceContinuesCutStream(t *testing.T) {
	for _, repeat := range []int{0, 2, 5} {
		fake, err := upstreamtest.Start()
		if err != nil {
			t.Fatal(err)
		}
		defer fake.Close()
		fake.SetBehavior("first", upstreamtest.Behavior{Content: storyText, Chunks: 12, DropAfter: 5, UsageEveryChunk: true, PromptTokens: 20})
		fake.SetBehavior("second", upstreamtest.Behavior{Content: storyText, Chunks: 6, Continue: true, RepeatWords: repeat, PromptTokens: 40, CompletionTokens: 9})
		ch := spliceChain(t, fake, "continue")
		res, err := ch.Do(context.Background(), Request{Path: "/v1/chat/completions", Body: []byte(chatStream), Model: "m", Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		got := readStream(t, res)
		if got.err != nil {
			t.Fatalf("repeat %d: stream error %v", repeat, got.err)
		}
		if got.text != storyText {
			t.Fatalf("repeat %d: text\n got %q\nwant %q", repeat, got.text, storyText)
		}
		if got.done != 1 || !strings.HasSuffix(got.events[len(got.events)-1], "[DONE]") {
			t.Fatalf("repeat %d: %d [DONE], last event %q", repeat, got.done, got.events[len(got.events)-1])
		}
		if len(got.ids) != 1 || len(got.models) != 1 || len(got.created) != 1 || !got.models["first"] {
			t.Fatalf("repeat %d: ids %v models %v created %v", repeat, got.ids, got.models, got.created)
		}
		// The cut attempt reported 5 completion tokens before it broke; the
		// last usage is both attempts' sum.
		want := Usage{PromptTokens: 60, CompletionTokens: 14}
		if last := got.usage[len(got.usage)-1]; last != want || res.Stream.Usage() != want {
			t.Fatalf("repeat %d: final usage %+v, stream usage %+v, want %+v", repeat, last, res.Stream.Usage(), want)
		}
		if o := outcomes(res); o != "first:cut second:success<1" {
			t.Fatalf("repeat %d: attempts %s", repeat, o)
		}
		// The continuation was asked for in a new user turn after the text sent.
		reqs := fake.Requests()
		var body struct {
			Messages []struct{ Role, Content string }
		}
		if err := json.Unmarshal(reqs[1].Body, &body); err != nil || len(body.Messages) != 3 ||
			body.Messages[1].Role != "assistant" || !strings.HasPrefix(storyText, body.Messages[1].Content) || body.Messages[2].Content != ContinuePrompt {
			t.Fatalf("repeat %d: continuation request %s", repeat, reqs[1].Body)
		}
	}
}

// A continuation that breaks is continued again, while targets and
// max_attempts allow; when none can, the stream ends with the cut.
func TestSpliceContinuesTwiceThenGivesUp(t *testing.T) {
	fake, err := upstreamtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fake.SetBehavior("first", upstreamtest.Behavior{Content: storyText, Chunks: 12, DropAfter: 3})
	fake.SetBehavior("second", upstreamtest.Behavior{Content: storyText, Chunks: 8, DropAfter: 3, Continue: true, RepeatWords: 1})
	fake.SetBehavior("third", upstreamtest.Behavior{Content: storyText, Chunks: 4, Continue: true, RepeatWords: 3})
	ch := spliceChain(t, fake, "continue")
	res, err := ch.Do(context.Background(), Request{Path: "/v1/chat/completions", Body: []byte(chatStream), Model: "m", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	got := readStream(t, res)
	if got.err != nil || got.text != storyText || got.done != 1 {
		t.Fatalf("err %v, %d [DONE], text %q", got.err, got.done, got.text)
	}
	if o := outcomes(res); o != "first:cut second:cut<1 third:success<2" {
		t.Fatalf("attempts %s", o)
	}

	// The third cuts too: nothing is left to continue, and the stream ends
	// with its cut after what was sent.
	fake.SetBehavior("third", upstreamtest.Behavior{Content: storyText, Chunks: 8, DropAfter: 2, Continue: true})
	res, err = ch.Do(context.Background(), Request{Path: "/v1/chat/completions", Body: []byte(chatStream), Model: "m", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	got = readStream(t, res)
	if got.err == nil || !strings.Contains(got.err.Error(), "no target left") || got.done != 0 || !strings.HasPrefix(storyText, got.text) || len(got.text) == 0 {
		t.Fatalf("err %v, %d [DONE], text %q", got.err, got.done, got.text)
	}
	if o := outcomes(res); o != "first:cut second:cut<1 third:cut<2" {
		t.Fatalf("attempts %s", o)
	}

	// max_attempts 2 stops after one continuation.
	res, err = ch.Do(context.Background(), Request{Path: "/v1/chat/completions", Body: []byte(chatStream), Model: "m", Stream: true, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got = readStream(t, res); got.err == nil || !strings.Contains(got.err.Error(), "max_attempts") {
		t.Fatalf("err %v", got.err)
	}
	if o := outcomes(res); o != "first:cut second:cut<1" {
		t.Fatalf("attempts %s", o)
	}
	// Seven cuts so far: five continued, the last of the second and third streams not.
	var m strings.Builder
	ch.metrics.Set().WritePrometheus(&m)
	for _, want := range []string{`gateway_stream_continuations_total{route="m",outcome="continued"} 5`, `gateway_stream_continuations_total{route="m",outcome="not_continued"} 2`} {
		if !strings.Contains(m.String(), want) {
			t.Fatalf("no %s in\n%s", want, m.String())
		}
	}
}

// What on_stream_cut: continue does not continue ends as before.
func TestSpliceKeepsError(t *testing.T) {
	fake, err := upstreamtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fake.SetBehavior("second", upstreamtest.Behavior{Content: storyText, Continue: true})
	f := func(name, onCut, body string, first upstreamtest.Behavior, wantErr string) {
		t.Helper()
		fake.SetBehavior("first", first)
		fake.ResetCounters()
		res, err := spliceChain(t, fake, onCut).Do(context.Background(), Request{Path: "/v1/chat/completions", Body: []byte(body), Model: "m", Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		got := readStream(t, res)
		if got.err == nil || !strings.Contains(got.err.Error(), wantErr) || got.done != 0 {
			t.Errorf("%s: err %v, %d [DONE]", name, got.err, got.done)
		}
		if n := fake.Calls(); n != 1 {
			t.Errorf("%s: %d upstream calls, want 1", name, n)
		}
	}
	cut := upstreamtest.Behavior{Content: storyText, Chunks: 10, DropAfter: 4}
	f("on_stream_cut: error", "error", chatStream, cut, "stream interrupted")
	f("a tool call started", "continue", chatStream, upstreamtest.Behavior{ToolName: "lookup", ToolInput: `{"q":"a long query"}`, Chunks: 6, DropAfter: 3}, "not continued: tool calls started")
	f("n: 2", "continue", strings.Replace(chatStream, `"stream":true`, `"stream":true,"n":2`, 1), cut, "stream interrupted")
	f("logprobs", "continue", strings.Replace(chatStream, `"stream":true`, `"stream":true,"logprobs":true`, 1), cut, "stream interrupted")
}

// A /v1/messages client's stream is continued too, whatever its targets
// speak: one message_start, one text block, one message_stop, the usage
// summed on message_delta; and a chat client's stream continues on a
// kind anthropic target.
func TestSpliceMessagesStream(t *testing.T) {
	fake, err := upstreamtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fake.SetBehavior("first", upstreamtest.Behavior{Content: storyText, Chunks: 12, DropAfter: 5, PromptTokens: 20})
	fake.SetBehavior("second", upstreamtest.Behavior{Content: storyText, Chunks: 6, Continue: true, RepeatWords: 2, PromptTokens: 40, CompletionTokens: 9})
	const messagesStream = `{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"tell me"}],"stream":true}`
	for _, kinds := range [][]string{{"anthropic", "anthropic"}, {"openai", "anthropic"}, {"anthropic", "openai"}} {
		name := kinds[0] + "->" + kinds[1]
		ch := spliceChainKinds(t, fake, "continue", kinds[0], kinds[1], "openai")
		res, err := ch.Do(context.Background(), Request{Path: MessagesPath, Body: []byte(messagesStream), Model: "m", Stream: true})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var text strings.Builder
		count := map[string]int{}
		var lastUsage map[string]int64
		for {
			ev, err := res.Stream.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var e struct {
				Type  string
				Index int
				Delta struct{ Type, Text string }
				Usage map[string]int64
			}
			if err := json.Unmarshal(SSEData(ev), &e); err != nil {
				t.Fatalf("%s: %q: %v", name, ev, err)
			}
			if !strings.HasPrefix(string(ev), "event: "+e.Type+"\n") {
				t.Fatalf("%s: event line of %q", name, ev)
			}
			count[e.Type]++
			if strings.HasPrefix(e.Type, "content_block") && e.Index != 0 {
				t.Fatalf("%s: block index %d in %q", name, e.Index, ev)
			}
			text.WriteString(e.Delta.Text)
			if e.Type == "message_delta" {
				lastUsage = e.Usage
			}
		}
		if text.String() != storyText {
			t.Fatalf("%s: text\n got %q\nwant %q", name, text.String(), storyText)
		}
		if count["message_start"] != 1 || count["content_block_start"] != 1 || count["content_block_stop"] != 1 || count["message_delta"] != 1 || count["message_stop"] != 1 {
			t.Fatalf("%s: events %v", name, count)
		}
		if lastUsage["output_tokens"] != 9+res.Attempts[0].Usage.CompletionTokens || res.Stream.Usage().PromptTokens != 40+res.Attempts[0].Usage.PromptTokens {
			t.Fatalf("%s: usage %v, stream %+v, attempts %+v", name, lastUsage, res.Stream.Usage(), res.Attempts)
		}
		if o := outcomes(res); o != "first:cut second:success<1" {
			t.Fatalf("%s: attempts %s", name, o)
		}
	}

	// A chat client, continued on a kind anthropic target.
	res, err := spliceChainKinds(t, fake, "continue", "openai", "anthropic", "openai").Do(context.Background(),
		Request{Path: "/v1/chat/completions", Body: []byte(chatStream), Model: "m", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	got := readStream(t, res)
	if got.err != nil || got.text != storyText || got.done != 1 || len(got.ids) != 1 || len(got.models) != 1 {
		t.Fatalf("chat on anthropic: err %v, %d [DONE], ids %v models %v, text %q", got.err, got.done, got.ids, got.models, got.text)
	}
}
