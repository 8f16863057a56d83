package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

const continueStory = "The quick brown fox jumps over the lazy dog, and the dog does not mind at all. Then they both sleep in the sun."

// continueRoutes: m continues a cut stream on the second target; mt is
// the same for a tool call.
const continueRoutes = `routes:
  - model: m
    on_stream_cut: continue
    targets: [{provider: fake, model: first}, {provider: fake2, model: second}]
  - model: mt
    on_stream_cut: continue
    targets: [{provider: fake, model: tool-first}, {provider: fake2, model: tool-second}]
`

// transcript is what a client read of a chat stream: its text, chunk
// identities, [DONE]s and last usage.
type transcript struct {
	raw      []byte
	text     string
	ids      map[string]bool
	models   map[string]bool
	created  map[int64]bool
	done     int
	errEvent bool
	usage    map[string]int64
}

func parseTranscript(t *testing.T, raw []byte) transcript {
	t.Helper()
	tr := transcript{raw: raw, ids: map[string]bool{}, models: map[string]bool{}, created: map[int64]bool{}}
	var text strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			tr.done++
			continue
		}
		var c struct {
			ID      string `json:"id"`
			Created int64  `json:"created"`
			Model   string `json:"model"`
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Usage map[string]int64 `json:"usage"`
			Error json.RawMessage  `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		if c.Error != nil {
			tr.errEvent = true
			continue
		}
		tr.ids[c.ID], tr.models[c.Model], tr.created[c.Created] = true, true, true
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
		if c.Usage != nil {
			tr.usage = c.Usage
		}
	}
	tr.text = text.String()
	return tr
}

// Acceptance 1 of issue 15: a stream cut after k chunks continues on the
// second target, with a continuation that repeats the last words (trimmed)
// and one that does not; the client, a joiner and a replay get the same
// bytes, one answer; the ledger says cut, then success continuing it.
func TestStreamCutContinues(t *testing.T) {
	stores := map[string]func(t *testing.T) string{
		"embedded": func(*testing.T) string { return "" },
		"postgres": func(t *testing.T) string { return newCluster(t).yaml(t, "") },
	}
	for _, store := range []string{"embedded", "postgres"} {
		for _, repeat := range []int{0, 3} {
			t.Run(fmt.Sprintf("%s/repeat-%d", store, repeat), func(t *testing.T) {
				fake := startFake(t)
				fake.SetBehavior("first", upstreamtest.Behavior{Content: continueStory, Chunks: 12, Interval: 40 * time.Millisecond,
					DropAfter: 5, UsageEveryChunk: true, PromptTokens: 20})
				fake.SetBehavior("second", upstreamtest.Behavior{Content: continueStory, Chunks: 6, Interval: 10 * time.Millisecond,
					Continue: true, RepeatWords: repeat, PromptTokens: 40, CompletionTokens: 9})
				g := startGateway(t, testConfig(t, fake.URL, stores[store](t)+continueRoutes))
				key := fmt.Sprintf("cont-%s-%d", store, repeat)
				body := `{"model":"m","messages":[{"role":"user","content":"a story"}],"stream":true,"stream_options":{"include_usage":true}}`

				leader := openStream(t, g.URL, body, "Idempotency-Key", key)
				br := bufio.NewReader(leader.Body)
				first, err := (&sseReader{br: br}).next()
				if err != nil {
					t.Fatal(err)
				}
				joiner := openStream(t, g.URL, body, "Idempotency-Key", key)
				if joiner.Header.Get("Idempotent-Replayed") != "true" {
					t.Fatalf("second request did not join: %v", joiner.Header)
				}
				rest, _ := io.ReadAll(br)
				got := append([]byte(first+"\n\n"), rest...)
				joined, _ := io.ReadAll(joiner.Body)

				tr := parseTranscript(t, got)
				if tr.text != continueStory {
					t.Fatalf("assembled text\n got %q\nwant %q\n%s", tr.text, continueStory, got)
				}
				if tr.done != 1 || tr.errEvent || !strings.HasSuffix(string(got), "data: [DONE]\nid: 1."+fmt.Sprint(bytes.Count(got, []byte("\n\n")))+"\n\n") {
					t.Fatalf("want one [DONE] at the end and no error event:\n%s", got)
				}
				if len(tr.ids) != 1 || len(tr.created) != 1 || len(tr.models) != 1 || !tr.models["first"] {
					t.Fatalf("chunk identities: ids %v created %v models %v", tr.ids, tr.created, tr.models)
				}
				// The cut attempt had reported 20 + 5 tokens; the continuation 40 + 9.
				if tr.usage["prompt_tokens"] != 60 || tr.usage["completion_tokens"] != 14 || tr.usage["total_tokens"] != 74 {
					t.Fatalf("final usage %v, want the sum of both attempts", tr.usage)
				}
				if !bytes.Equal(joined, got) {
					t.Fatalf("the joiner got other bytes:\n%s\n---\n%s", joined, got)
				}
				waitFor(t, 10*time.Second, "the task to complete", func() bool {
					_, task := adminTask(t, g.URL, key, "team-a")
					return task["status"] == "completed"
				})
				replay := openStream(t, g.URL, body, "Idempotency-Key", key)
				replayed, _ := io.ReadAll(replay.Body)
				if replay.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(replayed, got) {
					t.Fatalf("the replay differs:\n%s\n---\n%s", replayed, got)
				}
				if n := fake.Calls(); n != 2 {
					t.Fatalf("upstream calls = %d, want 2", n)
				}

				_, task := adminTask(t, g.URL, key, "team-a")
				attempts, _ := task["attempts"].([]any)
				if len(attempts) != 2 {
					t.Fatalf("attempts: %v", task["attempts"])
				}
				cut, cont := attempts[0].(map[string]any), attempts[1].(map[string]any)
				if cut["outcome"] != "cut" || cut["model"] != "first" || cut["continues"] != nil {
					t.Fatalf("first attempt: %v", cut)
				}
				if cont["outcome"] != "success" || cont["model"] != "second" || cont["continues"] != float64(1) {
					t.Fatalf("second attempt: %v", cont)
				}
				if u := task["usage"].(map[string]any); u["prompt_tokens"] != float64(60) || u["completion_tokens"] != float64(14) {
					t.Fatalf("task usage %v", u)
				}
			})
		}
	}
}

// The official SDK assembles a continued stream into one completion.
func TestStreamCutContinuesSDK(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("first", upstreamtest.Behavior{Content: continueStory, Chunks: 10, DropAfter: 4})
	fake.SetBehavior("second", upstreamtest.Behavior{Content: continueStory, Chunks: 5, Continue: true, RepeatWords: 2})
	g := startGateway(t, testConfig(t, fake.URL, continueRoutes))
	client := sdkClient(g.URL, option.WithHeader("Idempotency-Key", "sdk-cont"))
	s := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:         "m",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("a story")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for s.Next() {
		if !acc.AddChunk(s.Current()) {
			t.Fatalf("the SDK refused chunk %d: %s", chunks, s.Current().RawJSON())
		}
		chunks++
	}
	if err := s.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != continueStory {
		t.Fatalf("assembled %+v, want %q", acc.Choices, continueStory)
	}
	// The cut attempt reported no usage before it broke: the sum is the
	// continuation's.
	if acc.Usage.PromptTokens != upstreamtest.DefaultPromptTokens || acc.Usage.CompletionTokens != 5 {
		t.Fatalf("usage %+v", acc.Usage)
	}
}

// A stream whose tool call has started is not continued: it ends with
// the error event, and the second target is never called.
func TestStreamCutToolCallNotContinued(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("tool-first", upstreamtest.Behavior{ToolName: "lookup", ToolInput: `{"query":"the weather in Paris today"}`, Chunks: 6, DropAfter: 3})
	g := startGateway(t, testConfig(t, fake.URL, continueRoutes))
	resp := openStream(t, g.URL, `{"model":"mt","messages":[{"role":"user","content":"weather"}],"stream":true}`, "Idempotency-Key", "tool-cut")
	raw, _ := io.ReadAll(resp.Body)
	tr := parseTranscript(t, raw)
	if !tr.errEvent || tr.done != 0 || !bytes.Contains(raw, []byte("tool calls started")) {
		t.Fatalf("want the error event, no [DONE]:\n%s", raw)
	}
	if n := fake.CallsForModel("tool-second"); n != 0 {
		t.Fatalf("the tool call was continued (%d calls)", n)
	}
	_, task := adminTask(t, g.URL, "tool-cut", "team-a")
	if attempts, _ := task["attempts"].([]any); task["status"] != "failed" || len(attempts) != 1 || attempts[0].(map[string]any)["outcome"] != "cut" {
		t.Fatalf("task %v", task)
	}
}

// continues names the ledger's number of the cut attempt, also in a
// later generation of the task, whose rows follow the earlier ones.
func TestStreamCutContinuesNumbering(t *testing.T) {
	for _, store := range []string{"embedded", "postgres"} {
		t.Run(store, func(t *testing.T) {
			fake := startFake(t)
			extra := continueRoutes
			if store == "postgres" {
				extra = newCluster(t).yaml(t, "") + extra
			}
			g := startGateway(t, testConfig(t, fake.URL, extra))
			key := "numbering-" + store
			body := `{"model":"m","messages":[{"role":"user","content":"a story"}],"stream":true}`
			// Generation 1 fails with a 400 (not a fallback): one row.
			fake.SetBehavior("first", upstreamtest.Behavior{Status: 400})
			r1 := openStream(t, g.URL, body, "Idempotency-Key", key)
			if _, _ = io.ReadAll(r1.Body); r1.StatusCode != 400 {
				t.Fatalf("generation 1: %d", r1.StatusCode)
			}
			// Generation 2 is cut and continued: rows 2 and 3.
			fake.SetBehavior("first", upstreamtest.Behavior{Content: continueStory, Chunks: 10, DropAfter: 4})
			fake.SetBehavior("second", upstreamtest.Behavior{Content: continueStory, Chunks: 5, Continue: true, RepeatWords: 1})
			r2 := openStream(t, g.URL, body, "Idempotency-Key", key)
			raw, _ := io.ReadAll(r2.Body)
			if tr := parseTranscript(t, raw); tr.text != continueStory || tr.done != 1 {
				t.Fatalf("generation 2:\n%s", raw)
			}
			waitFor(t, 10*time.Second, "the task to complete", func() bool {
				_, task := adminTask(t, g.URL, key, "team-a")
				return task["status"] == "completed"
			})
			_, task := adminTask(t, g.URL, key, "team-a")
			attempts, _ := task["attempts"].([]any)
			var got []string
			for _, a := range attempts {
				m := a.(map[string]any)
				got = append(got, fmt.Sprintf("%v:%v:%v:%v", m["n"], m["fence"], m["outcome"], m["continues"]))
			}
			if want := "1:1:error:<nil> 2:2:cut:<nil> 3:2:success:2"; strings.Join(got, " ") != want {
				t.Fatalf("ledger %v, want %s", got, want)
			}
		})
	}
}
