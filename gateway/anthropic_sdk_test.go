package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// Acceptance (issue 12, #1): the official Anthropic and OpenAI Go SDKs,
// unmodified, through the gateway to targets of either kind.

// dialectConfig is a gateway on one fake that speaks both APIs:
// provider claude (kind anthropic) and oai (kind openai). Routes:
// to-claude and to-openai each have one target; fallback tries claude
// first, then oai.
func dialectConfig(t *testing.T, fake *upstreamtest.Server, extra string) string {
	t.Helper()
	providers := fmt.Sprintf(`providers:
  claude: {kind: anthropic, base_url: %q, api_key: upstream-secret-key, timeout: 10s, first_byte_timeout: 5s}
  oai: {base_url: FAKE_URL, api_key: upstream-secret-key, timeout: 10s, first_byte_timeout: 5s}
`, fake.AnthropicURL())
	return providerConfig(t, fake.URL, providers, `routes:
  - {model: to-claude, targets: [{provider: claude, model: claude-up}]}
  - {model: to-openai, targets: [{provider: oai, model: gpt-up}]}
  - model: fallback
    targets: [{provider: claude, model: claude-down}, {provider: oai, model: gpt-standby}]
`+extra)
}

// anthropicClient is the Anthropic SDK pointed at the gateway, as Claude
// Code is with ANTHROPIC_BASE_URL, with tenant A's key as x-api-key.
func anthropicClient(url string, opts ...anthropicoption.RequestOption) anthropic.Client {
	return anthropic.NewClient(append([]anthropicoption.RequestOption{
		anthropicoption.WithBaseURL(url), anthropicoption.WithAPIKey(testClientKey), anthropicoption.WithMaxRetries(0),
	}, opts...)...)
}

func messageParams(model, text string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     anthropic.Model(model),
		MaxTokens: 256,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))},
	}
}

var weatherTool = anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
	Name:        "get_weather",
	InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}},
}}

// textOf joins the text blocks of a message.
func textOf(m *anthropic.Message) string {
	var b strings.Builder
	for _, c := range m.Content {
		if c.Type == "text" {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// toolUseOf returns the message's tool_use block.
func toolUseOf(t *testing.T, m *anthropic.Message) anthropic.ContentBlockUnion {
	t.Helper()
	for _, c := range m.Content {
		if c.Type == "tool_use" {
			return c
		}
	}
	t.Fatalf("no tool_use block in %+v", m.Content)
	return anthropic.ContentBlockUnion{}
}

// streamMessage streams params and accumulates the message as the SDK's
// own helper does.
func streamMessage(t *testing.T, client anthropic.Client, params anthropic.MessageNewParams, opts ...anthropicoption.RequestOption) (*anthropic.Message, []string, error) {
	t.Helper()
	stream := client.Messages.NewStreaming(context.Background(), params, opts...)
	defer stream.Close()
	var msg anthropic.Message
	var types []string
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		if err := msg.Accumulate(ev); err != nil {
			return nil, types, err
		}
	}
	return &msg, types, stream.Err()
}

// An Anthropic client gets messages, streams and tool calls from an
// Anthropic target (bytes forwarded) and from an OpenAI-compatible one
// (translated), and counts tokens on the Anthropic one.
func TestAnthropicSDKBothTargets(t *testing.T) {
	fake := startFake(t)
	g := startGateway(t, dialectConfig(t, fake, ""))
	client := anthropicClient(g.URL)
	ctx := context.Background()
	for _, tc := range []struct{ route, upstream, wantPath string }{
		{"to-claude", "claude-up", "/v1/messages"},
		{"to-openai", "gpt-up", "/v1/chat/completions"},
	} {
		t.Run(tc.route, func(t *testing.T) {
			b := upstreamtest.Behavior{Chunks: 6, PromptTokens: 11}
			fake.SetBehavior(tc.upstream, b)
			fake.ResetCounters()

			msg, err := client.Messages.New(ctx, messageParams(tc.route, "hello"))
			if err != nil {
				t.Fatalf("Messages.New: %v", err)
			}
			if got, want := textOf(msg), upstreamtest.ContentFor(b, tc.upstream); got != want || msg.StopReason != "end_turn" {
				t.Fatalf("text %q (stop %s), want %q", got, msg.StopReason, want)
			}
			if msg.Usage.InputTokens != 11 || msg.Usage.OutputTokens == 0 {
				t.Fatalf("usage %+v", msg.Usage)
			}

			streamed, types, err := streamMessage(t, client, messageParams(tc.route, "stream please"))
			if err != nil {
				t.Fatalf("stream: %v (events %v)", err, types)
			}
			if got, want := textOf(streamed), upstreamtest.StreamText(b); got != want {
				t.Fatalf("streamed text %q, want %q", got, want)
			}
			if types[0] != "message_start" || types[len(types)-1] != "message_stop" || streamed.StopReason != "end_turn" {
				t.Fatalf("events %v, stop %s", types, streamed.StopReason)
			}

			fake.SetBehavior(tc.upstream, upstreamtest.Behavior{ToolName: "get_weather", ToolInput: `{"city":"Paris"}`})
			params := messageParams(tc.route, "weather in Paris?")
			params.Tools = []anthropic.ToolUnionParam{weatherTool}
			msg, err = client.Messages.New(ctx, params)
			if err != nil {
				t.Fatalf("tool use: %v", err)
			}
			use := toolUseOf(t, msg)
			if use.Name != "get_weather" || string(use.Input) != `{"city":"Paris"}` || msg.StopReason != "tool_use" {
				t.Fatalf("tool use %s %s, stop %s", use.Name, use.Input, msg.StopReason)
			}
			// The tool's result goes back in the next turn, and the model answers.
			fake.SetBehavior(tc.upstream, upstreamtest.Behavior{Content: "sunny"})
			params.Messages = append(params.Messages, msg.ToParam(), anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, "18C and sunny", false)))
			answer, err := client.Messages.New(ctx, params)
			if err != nil || textOf(answer) != "sunny" {
				t.Fatalf("after the tool result: %v %+v", err, answer)
			}

			fake.SetBehavior(tc.upstream, upstreamtest.Behavior{ToolName: "get_weather", ToolInput: `{"city":"Paris"}`})
			params = messageParams(tc.route, "weather in Paris, streamed?")
			params.Tools = []anthropic.ToolUnionParam{weatherTool}
			streamed, types, err = streamMessage(t, client, params)
			if err != nil {
				t.Fatalf("tool stream: %v (events %v)", err, types)
			}
			if use := toolUseOf(t, streamed); use.Name != "get_weather" || string(use.Input) != `{"city":"Paris"}` || streamed.StopReason != "tool_use" {
				t.Fatalf("streamed tool use %s %s, stop %s", use.Name, use.Input, streamed.StopReason)
			}

			for _, r := range fake.Requests() {
				if r.Path != tc.wantPath || r.Model != tc.upstream {
					t.Fatalf("upstream got %s for model %q, want %s for %q", r.Path, r.Model, tc.wantPath, tc.upstream)
				}
			}
			if n := fake.Calls(); n != 5 {
				t.Fatalf("upstream calls %d, want 5", n)
			}
		})
	}

	count, err := client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{
		Model: "to-claude", Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("count"))},
	})
	if err != nil || count.InputTokens != upstreamtest.DefaultPromptTokens {
		t.Fatalf("CountTokens: %v %+v", err, count)
	}
	// No target of to-openai can count tokens: a 400 in the SDK's type.
	_, err = client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{
		Model: "to-openai", Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("count"))},
	})
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Type() != "invalid_request_error" {
		t.Fatalf("count_tokens on an OpenAI-only route: %v", err)
	}
}

// An OpenAI client gets completions, streams and tool calls from an
// Anthropic target.
func TestOpenAISDKToAnthropicTarget(t *testing.T) {
	fake := startFake(t)
	g := startGateway(t, dialectConfig(t, fake, ""))
	client := sdkClient(g.URL)
	ctx := context.Background()
	b := upstreamtest.Behavior{Chunks: 6, PromptTokens: 13}
	fake.SetBehavior("claude-up", b)

	comp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "to-claude",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("hello")},
	})
	if err != nil {
		t.Fatalf("chat completion: %v", err)
	}
	if got, want := comp.Choices[0].Message.Content, upstreamtest.ContentFor(b, "claude-up"); got != want || comp.Choices[0].FinishReason != "stop" {
		t.Fatalf("content %q (finish %s), want %q", got, comp.Choices[0].FinishReason, want)
	}
	if comp.Usage.PromptTokens != 13 || comp.Usage.CompletionTokens == 0 {
		t.Fatalf("usage %+v", comp.Usage)
	}

	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         "to-claude",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream please")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if got, want := acc.Choices[0].Message.Content, upstreamtest.StreamText(b); got != want {
		t.Fatalf("streamed %q, want %q", got, want)
	}
	if acc.Usage.PromptTokens != 13 {
		t.Fatalf("stream usage %+v", acc.Usage)
	}

	fake.SetBehavior("claude-up", upstreamtest.Behavior{ToolName: "get_weather", ToolInput: `{"city":"Oslo"}`})
	tools := []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
		Name:       "get_weather",
		Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
	})}
	params := openai.ChatCompletionNewParams{
		Model:    "to-claude",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Oslo?")},
		Tools:    tools,
	}
	comp, err = client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatalf("tool call: %v", err)
	}
	calls := comp.Choices[0].Message.ToolCalls
	if len(calls) != 1 || calls[0].Function.Name != "get_weather" || calls[0].Function.Arguments != `{"city":"Oslo"}` || comp.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("tool calls %+v, finish %s", calls, comp.Choices[0].FinishReason)
	}
	// The tool result goes back as a tool message, translated to a tool_result block.
	fake.SetBehavior("claude-up", upstreamtest.Behavior{Content: "cold"})
	params.Messages = append(params.Messages, comp.Choices[0].Message.ToParam(), openai.ToolMessage("-3C", calls[0].ID))
	if comp, err = client.Chat.Completions.New(ctx, params); err != nil || comp.Choices[0].Message.Content != "cold" {
		t.Fatalf("after the tool result: %v", err)
	}
	last := fake.Requests()[len(fake.Requests())-1]
	if !strings.Contains(string(last.Body), `"type":"tool_result"`) || !strings.Contains(string(last.Body), calls[0].ID) {
		t.Fatalf("the tool result did not reach the Anthropic target: %s", last.Body)
	}

	fake.SetBehavior("claude-up", upstreamtest.Behavior{ToolName: "get_weather", ToolInput: `{"city":"Oslo"}`})
	stream = client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model: "to-claude", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("streamed tool")}, Tools: tools,
	})
	acc = openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("tool stream: %v", err)
	}
	if tc := acc.Choices[0].Message.ToolCalls; len(tc) != 1 || tc[0].Function.Name != "get_weather" || tc[0].Function.Arguments != `{"city":"Oslo"}` || acc.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("streamed tool calls %+v, finish %s", tc, acc.Choices[0].FinishReason)
	}
	for _, r := range fake.Requests() {
		if r.Path != "/v1/messages" || r.Header.Get("x-api-key") != "upstream-secret-key" || r.Header.Get("anthropic-version") != "2023-06-01" {
			t.Fatalf("upstream request %s with headers %v", r.Path, r.Header)
		}
	}
}

// An Idempotency-Key sent twice by the Anthropic SDK is one upstream
// call: the second answer is the first, replayed, streams included.
func TestAnthropicSDKIdempotencyKey(t *testing.T) {
	fake := startFake(t)
	g := startGateway(t, dialectConfig(t, fake, ""))
	client := anthropicClient(g.URL)
	for _, route := range []string{"to-claude", "to-openai"} {
		key := anthropicoption.WithHeader("Idempotency-Key", "sdk-key-"+route)
		var first, second *http.Response
		m1, err := client.Messages.New(context.Background(), messageParams(route, "once"), key, anthropicoption.WithResponseInto(&first))
		if err != nil {
			t.Fatalf("%s: first: %v", route, err)
		}
		m2, err := client.Messages.New(context.Background(), messageParams(route, "once"), key, anthropicoption.WithResponseInto(&second))
		if err != nil {
			t.Fatalf("%s: second: %v", route, err)
		}
		if first.Header.Get("Idempotent-Replayed") != "false" || second.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("%s: Idempotent-Replayed %q then %q", route, first.Header.Get("Idempotent-Replayed"), second.Header.Get("Idempotent-Replayed"))
		}
		if m1.ID != m2.ID || textOf(m1) != textOf(m2) {
			t.Fatalf("%s: replay %+v of %+v", route, m2, m1)
		}
		if n := fake.CallsForKey("sdk-key-" + route); n != 1 {
			t.Fatalf("%s: upstream calls with the key: %d, want 1", route, n)
		}

		skey := anthropicoption.WithHeader("Idempotency-Key", "sdk-stream-"+route)
		s1, _, err := streamMessage(t, client, messageParams(route, "stream once"), skey)
		if err != nil {
			t.Fatalf("%s: stream: %v", route, err)
		}
		s2, _, err := streamMessage(t, client, messageParams(route, "stream once"), skey, anthropicoption.WithResponseInto(&second))
		if err != nil || s1.ID != s2.ID || textOf(s1) != textOf(s2) || second.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("%s: replayed stream: %v, %q vs %q", route, err, textOf(s2), textOf(s1))
		}
		if n := fake.CallsForKey("sdk-stream-" + route); n != 1 {
			t.Fatalf("%s: upstream calls for the stream: %d, want 1", route, n)
		}
	}
}

// 20 concurrent duplicates on /v1/messages make one upstream call, and
// all of them get the same message; streams too.
func TestAnthropicSDKConcurrentDuplicates(t *testing.T) {
	fake := startFake(t)
	// The upstream is slow, so the duplicates arrive while the first runs.
	fake.SetBehavior("claude-up", upstreamtest.Behavior{FirstByteDelay: 300 * time.Millisecond, Chunks: 4, Interval: 20 * time.Millisecond})
	g := startGateway(t, dialectConfig(t, fake, ""))
	client := anthropicClient(g.URL)
	for _, stream := range []bool{false, true} {
		fake.ResetCounters()
		text := fmt.Sprintf("twenty at once (stream %v)", stream)
		var wg sync.WaitGroup
		ids := make([]string, 20)
		errs := make([]error, 20)
		for i := range ids {
			wg.Go(func() {
				var m *anthropic.Message
				var err error
				if stream {
					m, _, err = streamMessage(t, client, messageParams("to-claude", text))
				} else {
					m, err = client.Messages.New(context.Background(), messageParams("to-claude", text))
				}
				if err == nil {
					ids[i] = m.ID
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i := range ids {
			if errs[i] != nil || ids[i] != ids[0] || ids[0] == "" {
				t.Fatalf("stream %v: duplicate %d: %v, id %q (first %q)", stream, i, errs[i], ids[i], ids[0])
			}
		}
		if n := fake.Calls(); n != 1 {
			t.Fatalf("stream %v: 20 duplicates made %d upstream calls, want 1", stream, n)
		}
	}
}

// Errors arrive in each SDK's own error type: the gateway's refusals,
// upstream errors of either kind, and a stream that breaks.
func TestSDKErrorTypes(t *testing.T) {
	fake := startFake(t)
	g := startGateway(t, dialectConfig(t, fake, ""))
	ctx := context.Background()
	ant := anthropicClient(g.URL)
	wantAnthropic := func(what string, err error, status int, typ string) {
		t.Helper()
		var e *anthropic.Error
		if !errors.As(err, &e) || e.StatusCode != status || string(e.Type()) != typ || e.Message == "" {
			t.Fatalf("%s: %v (%T), want *anthropic.Error %d %s", what, err, err, status, typ)
		}
	}
	_, err := ant.Messages.New(ctx, messageParams("no-such-route", "x"))
	wantAnthropic("unknown model", err, 404, "not_found_error")
	wrong := anthropicClient(g.URL, anthropicoption.WithAPIKey("sk-wrong"))
	_, err = wrong.Messages.New(ctx, messageParams("to-claude", "x"))
	wantAnthropic("wrong key", err, 401, "authentication_error")
	fake.SetBehavior("gpt-up", upstreamtest.Behavior{Status: 400})
	_, err = ant.Messages.New(ctx, messageParams("to-openai", "x"))
	wantAnthropic("an OpenAI target's 400", err, 400, "invalid_request_error")
	fake.SetBehavior("claude-up", upstreamtest.Behavior{Status: 529})
	_, err = ant.Messages.New(ctx, messageParams("to-claude", "x"))
	wantAnthropic("an Anthropic target's 529", err, 529, "overloaded_error")
	for _, route := range []string{"to-claude", "to-openai"} {
		up := map[string]string{"to-claude": "claude-up", "to-openai": "gpt-up"}[route]
		fake.SetBehavior(up, upstreamtest.Behavior{Chunks: 5, DropAfter: 2})
		_, _, err = streamMessage(t, ant, messageParams(route, "cut"))
		wantAnthropic(route+": a cut stream", err, 200, "api_error") // the status line said 200 before the break
	}

	oai := sdkClient(g.URL)
	wantOpenAI := func(what string, err error, status int, code string) {
		t.Helper()
		var e *openai.Error
		if !errors.As(err, &e) || e.StatusCode != status || e.Code != code {
			t.Fatalf("%s: %v (%T), want *openai.Error %d %s", what, err, err, status, code)
		}
	}
	chat := func(text string) openai.ChatCompletionNewParams {
		return openai.ChatCompletionNewParams{Model: "to-claude", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}}
	}
	fake.SetBehavior("claude-up", upstreamtest.Behavior{Status: 400})
	_, err = oai.Chat.Completions.New(ctx, chat("x"))
	wantOpenAI("an Anthropic target's 400", err, 400, "invalid_request_error")
	fake.SetBehavior("claude-up", upstreamtest.Behavior{Status: 404})
	_, err = oai.Chat.Completions.New(ctx, chat("y"))
	wantOpenAI("an Anthropic target's 404", err, 404, "not_found_error")
	// n > 1 has no Anthropic equivalent: refused before any call.
	calls := fake.Calls()
	p := chat("z")
	p.N = openai.Int(2)
	_, err = oai.Chat.Completions.New(ctx, p)
	wantOpenAI("n: 2 for an Anthropic target", err, 400, "unsupported_for_target")
	if fake.Calls() != calls {
		t.Fatalf("an untranslatable request reached the upstream")
	}
	fake.SetBehavior("claude-up", upstreamtest.Behavior{Chunks: 5, DropAfter: 2})
	stream := oai.Chat.Completions.NewStreaming(ctx, chat("cut"))
	for stream.Next() {
	}
	if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("a cut stream for the OpenAI SDK ended with %v", err)
	}
}

// Fallback between kinds inside one route: the Anthropic target is
// overloaded, the OpenAI-compatible one answers, the Anthropic client
// sees one answer in its dialect; the attempt log names both.
func TestAnthropicSDKFallbackAcrossKinds(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("claude-down", upstreamtest.Behavior{Status: 529})
	b := upstreamtest.Behavior{Content: "from the standby"}
	fake.SetBehavior("gpt-standby", b)
	g := startGateway(t, dialectConfig(t, fake, ""))
	client := anthropicClient(g.URL)
	var resp *http.Response
	msg, err := client.Messages.New(context.Background(), messageParams("fallback", "fall back"),
		anthropicoption.WithHeader("Idempotency-Key", "fallback-1"), anthropicoption.WithResponseInto(&resp))
	if err != nil {
		t.Fatalf("Messages.New: %v", err)
	}
	if textOf(msg) != "from the standby" || resp.Header.Get("X-Gateway-Provider") != "oai" || resp.Header.Get("X-Gateway-Attempts") != "2" {
		t.Fatalf("text %q, provider %q, attempts %q", textOf(msg), resp.Header.Get("X-Gateway-Provider"), resp.Header.Get("X-Gateway-Attempts"))
	}
	streamed, _, err := streamMessage(t, client, messageParams("fallback", "fall back, streamed"))
	if err != nil || textOf(streamed) != upstreamtest.StreamText(b) {
		t.Fatalf("stream: %v, %q", err, textOf(streamed))
	}
	paths := []string{}
	for _, r := range fake.Requests() {
		paths = append(paths, r.Path)
	}
	if got := strings.Join(paths, " "); got != "/v1/messages /v1/chat/completions /v1/messages /v1/chat/completions" {
		t.Fatalf("upstream paths: %s", got)
	}

	// The attempt log of the keyed request: the 529 and the success.
	req, _ := http.NewRequest("GET", g.URL+"/admin/tasks/fallback-1?tenant=team-a", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var task struct {
		Attempts []struct {
			Provider   string `json:"provider"`
			Outcome    string `json:"outcome"`
			HTTPStatus int    `json:"http_status"`
		} `json:"attempts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&task); err != nil || len(task.Attempts) != 2 {
		t.Fatalf("task: %v %+v", err, task)
	}
	if a := task.Attempts; a[0].Provider != "claude" || a[0].HTTPStatus != 529 || a[1].Provider != "oai" || a[1].Outcome != "success" {
		t.Fatalf("attempts %+v", a)
	}
}
