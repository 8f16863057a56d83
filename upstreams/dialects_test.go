package upstreams

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/upstreams/dialect"
	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// dialectChain builds a registry over one fake upstream that speaks both
// APIs: provider "claude" (kind anthropic) and "oai" (kind openai), and
// routes given in YAML.
func dialectRegistry(t *testing.T, routes string) (*Registry, *upstreamtest.Server, *Metrics) {
	t.Helper()
	fake, err := upstreamtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	yaml := "auth: {mode: none}\nproviders:\n" +
		"  claude: {kind: anthropic, base_url: \"" + fake.AnthropicURL() + "\", api_key: sk-ant, default_max_tokens: 333, timeout: 5s}\n" +
		"  oai: {base_url: \"" + fake.URL + "\", api_key: sk-oai, timeout: 5s}\n" +
		"routes:\n" + routes
	cfg, err := config.Parse("t.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	m := NewMetrics()
	r, err := NewRegistry(cfg, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, fake, m
}

func drain(t *testing.T, s *Stream) ([]string, error) {
	t.Helper()
	var evs []string
	for range 10000 {
		ev, err := s.Next()
		if err == io.EOF {
			return evs, nil
		}
		if err != nil {
			return evs, err
		}
		evs = append(evs, string(ev))
	}
	t.Fatal("stream never ended")
	return nil, nil
}

const chatReq = `{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`
const messagesReq = `{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`

// An OpenAI chat request to a kind anthropic target goes to
// {base_url}/v1/messages with x-api-key, anthropic-version and the
// provider's default_max_tokens, and its answer comes back as a
// chat.completion with Anthropic's usage counted.
func TestChatToAnthropicTarget(t *testing.T) {
	r, fake, m := dialectRegistry(t, "  - {model: m, targets: [{provider: claude, model: claude-x}]}\n")
	ch := r.ChainFor("m")
	b := upstreamtest.Behavior{Content: "hello there", PromptTokens: 7, CompletionTokens: 3}
	fake.SetBehavior("claude-x", b)
	res, err := ch.Do(context.Background(), Request{Path: chatPath, Body: []byte(chatReq), Model: "m"})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	var comp struct {
		Object  string `json:"object"`
		Choices []struct {
			Message      struct{ Content string } `json:"message"`
			FinishReason string                   `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(res.Body, &comp); err != nil || comp.Object != "chat.completion" {
		t.Fatalf("answer is not a chat.completion (%v): %s", err, res.Body)
	}
	if comp.Choices[0].Message.Content != "hello there" || comp.Choices[0].FinishReason != "stop" || comp.Usage.PromptTokens != 7 {
		t.Fatalf("answer: %s", res.Body)
	}
	if res.Usage != (Usage{PromptTokens: 7, CompletionTokens: 3}) || res.ContentType != "application/json" {
		t.Fatalf("usage %+v, content type %q", res.Usage, res.ContentType)
	}
	reqs := fake.Requests()
	if len(reqs) != 1 {
		t.Fatalf("fake got %d requests", len(reqs))
	}
	up := reqs[0]
	if up.Path != "/v1/messages" || up.Header.Get("x-api-key") != "sk-ant" || up.Header.Get("anthropic-version") != "2023-06-01" || up.Authorization != "" {
		t.Fatalf("upstream request: path %s, headers %v", up.Path, up.Header)
	}
	var sent struct {
		Model     string `json:"model"`
		MaxTokens int    `json:"max_tokens"`
		System    []struct{ Text string }
	}
	if err := json.Unmarshal(up.Body, &sent); err != nil || sent.Model != "claude-x" || sent.MaxTokens != 333 || len(sent.System) != 1 || sent.System[0].Text != "be brief" {
		t.Fatalf("translated body (%v): %s", err, up.Body)
	}
	if got := m.set.GetOrCreateCounter(`gateway_tokens_total{provider="claude",model="claude-x",kind="prompt"}`).Get(); got != 7 {
		t.Fatalf("prompt tokens counted: %d, want 7", got)
	}
}

// A streamed chat request to an Anthropic target is a chat.completion.chunk
// stream ending in [DONE], with tool calls; Anthropic's event sequence
// never reaches the client.
func TestChatStreamToAnthropicTarget(t *testing.T) {
	r, fake, _ := dialectRegistry(t, "  - {model: m, targets: [{provider: claude}]}\n")
	ch := r.ChainFor("m")
	fake.SetBehavior("m", upstreamtest.Behavior{ToolName: "get_weather", ToolInput: `{"city":"Paris"}`, PromptTokens: 9})
	body := `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}`
	res, err := ch.Do(context.Background(), Request{Path: chatPath, Body: []byte(body), Model: "m", Stream: true})
	if err != nil || res.Stream == nil {
		t.Fatalf("Do: %v (stream %v)", err, res.Stream)
	}
	evs, err := drain(t, res.Stream)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if res.ContentType != "text/event-stream" || evs[len(evs)-1] != "data: [DONE]" {
		t.Fatalf("content type %q, events %q", res.ContentType, evs)
	}
	var args strings.Builder
	finish := ""
	for _, ev := range evs {
		if strings.Contains(ev, "message_start") || strings.HasPrefix(ev, "event:") {
			t.Fatalf("an Anthropic event reached an OpenAI client: %q", ev)
		}
		var c struct {
			Choices []struct {
				Delta struct {
					ToolCalls []struct {
						Function struct{ Name, Arguments string }
					} `json:"tool_calls"`
				}
				FinishReason *string `json:"finish_reason"`
			}
		}
		if json.Unmarshal(SSEData([]byte(ev)), &c) != nil || len(c.Choices) == 0 {
			continue
		}
		for _, tc := range c.Choices[0].Delta.ToolCalls {
			args.WriteString(tc.Function.Arguments)
		}
		if c.Choices[0].FinishReason != nil {
			finish = *c.Choices[0].FinishReason
		}
	}
	if args.String() != `{"city":"Paris"}` || finish != "tool_calls" {
		t.Fatalf("tool arguments %q, finish_reason %q", args.String(), finish)
	}
	if u := res.Stream.Usage(); u.PromptTokens != 9 || u.CompletionTokens == 0 {
		t.Fatalf("usage %+v", u)
	}
	if a := res.Attempts[0]; a.Outcome != OutcomeSuccess {
		t.Fatalf("attempt %+v", a)
	}
}

// An Anthropic Messages request to an OpenAI-compatible target goes to
// /v1/chat/completions with a bearer key, and comes back as a Message,
// streamed as Anthropic's event sequence.
func TestMessagesToOpenAITarget(t *testing.T) {
	r, fake, _ := dialectRegistry(t, "  - {model: m, targets: [{provider: oai, model: gpt-x}]}\n")
	ch := r.ChainFor("m")
	fake.SetBehavior("gpt-x", upstreamtest.Behavior{Content: "bonjour", PromptTokens: 4, CompletionTokens: 1, Chunks: 3})
	res, err := ch.Do(context.Background(), Request{Path: MessagesPath, Body: []byte(messagesReq), Model: "m"})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	var msg struct {
		Type       string `json:"type"`
		StopReason string `json:"stop_reason"`
		Content    []struct{ Type, Text string }
	}
	if err := json.Unmarshal(res.Body, &msg); err != nil || msg.Type != "message" || msg.Content[0].Text != "bonjour" || msg.StopReason != "end_turn" {
		t.Fatalf("answer (%v): %s", err, res.Body)
	}
	if r := fake.Requests()[0]; r.Path != "/v1/chat/completions" || r.Authorization != "Bearer sk-oai" || r.Model != "gpt-x" {
		t.Fatalf("upstream request %s %q model %q", r.Path, r.Authorization, r.Model)
	}
	if res.Usage != (Usage{PromptTokens: 4, CompletionTokens: 1}) {
		t.Fatalf("usage %+v", res.Usage)
	}

	stream := strings.Replace(messagesReq, `"max_tokens":50`, `"max_tokens":50,"stream":true`, 1)
	res, err = ch.Do(context.Background(), Request{Path: MessagesPath, Body: []byte(stream), Model: "m", Stream: true})
	if err != nil || res.Stream == nil {
		t.Fatalf("Do stream: %v", err)
	}
	evs, err := drain(t, res.Stream)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	var names []string
	for _, ev := range evs {
		name, _, _ := strings.Cut(ev, "\n")
		names = append(names, strings.TrimPrefix(name, "event: "))
	}
	got := strings.Join(names, ",")
	want := "message_start,content_block_start,content_block_delta,content_block_delta,content_block_delta,content_block_stop,message_delta,message_stop"
	if got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	if !fake.Requests()[1].Stream || !strings.Contains(string(fake.Requests()[1].Body), `"include_usage":true`) {
		t.Fatalf("the chat stream did not ask for its usage: %s", fake.Requests()[1].Body)
	}
	if u := res.Stream.Usage(); u.PromptTokens != 4 {
		t.Fatalf("stream usage %+v", u)
	}
}

// Anthropic to Anthropic forwards the client's bytes with only model
// rewritten; the stream ends at message_stop, and a stream cut before it
// is cut.
func TestMessagesPassThrough(t *testing.T) {
	r, fake, _ := dialectRegistry(t, "  - {model: m, targets: [{provider: claude, model: claude-x}]}\n")
	ch := r.ChainFor("m")
	body := `{"model":"m", "max_tokens":50,"metadata":{"x":1},"messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled","budget_tokens":1024}}`
	res, err := ch.Do(context.Background(), Request{Path: MessagesPath, Body: []byte(body), Model: "m"})
	if err != nil || res.Status != 200 {
		t.Fatalf("Do: %v %d", err, res.Status)
	}
	if got, want := string(fake.Requests()[0].Body), strings.Replace(body, `"m"`, `"claude-x"`, 1); got != want {
		t.Fatalf("forwarded body\n got %s\nwant %s", got, want)
	}
	if res.Usage.PromptTokens != upstreamtest.DefaultPromptTokens {
		t.Fatalf("usage %+v", res.Usage)
	}

	fake.SetBehavior("claude-x", upstreamtest.Behavior{Chunks: 4})
	stream := strings.Replace(body, `"max_tokens":50`, `"max_tokens":50,"stream":true`, 1)
	res, err = ch.Do(context.Background(), Request{Path: MessagesPath, Body: []byte(stream), Model: "m", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := drain(t, res.Stream)
	if err != nil || !strings.HasPrefix(evs[len(evs)-1], "event: message_stop") {
		t.Fatalf("stream: %v, events %q", err, evs)
	}
	if u := res.Stream.Usage(); u.PromptTokens != upstreamtest.DefaultPromptTokens || u.CompletionTokens != 4 {
		t.Fatalf("stream usage %+v", u)
	}

	fake.SetBehavior("claude-x", upstreamtest.Behavior{Chunks: 4, DropAfter: 2})
	res, err = ch.Do(context.Background(), Request{Path: MessagesPath, Body: []byte(stream), Model: "m", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := drain(t, res.Stream); err == nil {
		t.Fatal("a stream cut before message_stop ended cleanly")
	}
	if a := res.Attempts[len(res.Attempts)-1]; a.Outcome != OutcomeCut {
		t.Fatalf("cut stream's attempt: %+v", a)
	}
}

// An Anthropic stream relayed as it is: message_start gives the prompt
// side with the cache tokens, message_delta the output; an error event
// mid-stream fails the attempt instead of ending it cleanly.
func TestAnthropicStreamUsageAndError(t *testing.T) {
	events := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":1000,\"output_tokens\":1}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n"
	end := "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":42}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	s, probe := newTestStream(strings.NewReader(events+end), 4096, true)
	s.anthropic = true
	if _, err := readAll(t, s); err != io.EOF {
		t.Fatalf("clean stream ended with %v", err)
	}
	if probe.err != nil || probe.usage != (Usage{PromptTokens: 1105, CompletionTokens: 42}) {
		t.Fatalf("attempt: err %v, usage %+v", probe.err, probe.usage)
	}

	failed := events + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
	s, probe = newTestStream(strings.NewReader(failed), 4096, true)
	s.anthropic = true
	evs, err := readAll(t, s)
	if err == io.EOF || !errors.Is(err, dialect.ErrStreamFailed) || !strings.Contains(err.Error(), "overloaded_error: Overloaded") {
		t.Fatalf("error event ended the stream with %v", err)
	}
	if len(evs) != 2 || probe.err == nil || outcomeFor(probe.err, 200) != OutcomeCut {
		t.Fatalf("events %q, attempt error %v", evs, probe.err)
	}
}

// A translated stream that breaks off, or whose upstream sends garbage,
// fails the attempt; the caller ends the client's stream.
func TestTranslatedStreamFailures(t *testing.T) {
	f := func(upstream string) {
		t.Helper()
		s, probe := newTestStream(strings.NewReader(upstream), 4096, true)
		s.tr = dialect.NewChatToMessagesStream("m")
		if _, err := readAll(t, s); err == io.EOF || probe.err == nil {
			t.Fatalf("%q: stream ended with %v, attempt error %v", upstream, err, probe.err)
		}
	}
	f("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n")                    // no [DONE]
	f("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {not json\n\n") // garbage
	f("data: {\"error\":{\"message\":\"boom\"}}\n\n")                                                           // an error event
}

// Upstream errors reach the client in its own dialect.
func TestUpstreamErrorsInClientDialect(t *testing.T) {
	r, fake, _ := dialectRegistry(t, "  - {model: m, targets: [{provider: claude}]}\n  - {model: o, targets: [{provider: oai}]}\n")
	ch := r.ChainFor("m")
	fake.SetBehavior("m", upstreamtest.Behavior{Status: 400})
	fake.SetBehavior("o", upstreamtest.Behavior{Status: 400})
	res, err := ch.Do(context.Background(), Request{Path: chatPath, Body: []byte(chatReq), Model: "m"})
	if err != nil || res.Status != 400 {
		t.Fatalf("Do: %v, status %d", err, res.Status)
	}
	var oai struct {
		Error struct{ Message, Type string } `json:"error"`
	}
	if json.Unmarshal(res.Body, &oai) != nil || oai.Error.Type != "invalid_request_error" || !strings.Contains(oai.Error.Message, "scripted status 400") {
		t.Fatalf("Anthropic 400 for an OpenAI client: %s", res.Body)
	}

	res, err = r.ChainFor("o").Do(context.Background(), Request{Path: MessagesPath, Body: []byte(strings.Replace(messagesReq, `"m"`, `"o"`, 1)), Model: "o"})
	if err != nil || res.Status != 400 {
		t.Fatalf("Do: %v, status %d", err, res.Status)
	}
	var ant struct {
		Type  string                         `json:"type"`
		Error struct{ Type, Message string } `json:"error"`
	}
	if json.Unmarshal(res.Body, &ant) != nil || ant.Type != "error" || ant.Error.Type != "invalid_request_error" || !strings.Contains(ant.Error.Message, "scripted status 400") {
		t.Fatalf("OpenAI 400 for an Anthropic client: %s", res.Body)
	}
}

// A target whose kind cannot serve the endpoint is skipped, in the plan
// and in the pass; a route none of whose targets can is reported by
// Serves, before any record.
func TestKindCannotServeEndpoint(t *testing.T) {
	r, fake, _ := dialectRegistry(t, "  - {model: m, targets: [{provider: oai}, {provider: claude}]}\n  - {model: a, targets: [{provider: claude}]}\n")
	ch := r.ChainFor("m")
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	pl := ch.Plan(CountTokensPath, "m")
	if len(pl.Skipped) != 1 || pl.Skipped[0].Provider != "oai" || pl.Skipped[0].Error != `provider "oai" (kind openai) does not serve /v1/messages/count_tokens` || pl.First.Provider != "claude" {
		t.Fatalf("plan %+v", pl)
	}
	res, err := ch.Do(context.Background(), Request{Path: CountTokensPath, Body: body, Model: "m"})
	if err != nil || !strings.Contains(string(res.Body), `"input_tokens"`) {
		t.Fatalf("count_tokens: %v %s", err, res.Body)
	}
	if len(res.Attempts) != 2 || res.Attempts[0].Outcome != OutcomeSkipped || fake.Requests()[0].Path != CountTokensPath {
		t.Fatalf("attempts %+v", res.Attempts)
	}
	if !ch.Serves(CountTokensPath) || !ch.Serves("/v1/embeddings") || !ch.Serves(MessagesPath) {
		t.Fatal("Serves refused an endpoint one target serves")
	}
	only := r.ChainFor("a")
	if only.Serves("/v1/embeddings") || only.Serves("/v1/responses") || !only.Serves(chatPath) {
		t.Fatal("an anthropic-only route serves embeddings or responses, or not chat")
	}
}

// A request the target's dialect cannot express skips that target; with
// no other target it is the client's error, a *dialect.RequestError.
func TestUntranslatableRequest(t *testing.T) {
	r, fake, _ := dialectRegistry(t, "  - {model: m, targets: [{provider: claude}, {provider: oai}]}\n  - {model: a, targets: [{provider: claude}]}\n")
	ch := r.ChainFor("m")
	body := `{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`
	res, err := ch.Do(context.Background(), Request{Path: chatPath, Body: []byte(body), Model: "m"})
	if err != nil || res.Provider != "oai" || res.Attempts[0].Outcome != OutcomeSkipped || !strings.Contains(res.Attempts[0].Error, "cannot translate") {
		t.Fatalf("Do: %v, attempts %+v", err, res.Attempts)
	}
	_, err = r.ChainFor("a").Do(context.Background(), Request{Path: chatPath, Body: []byte(strings.Replace(body, `"m"`, `"a"`, 1)), Model: "a"})
	var re *dialect.RequestError
	if !errors.As(err, &re) || re.Param != "n" || !errors.Is(err, ErrNoUsableTarget) {
		t.Fatalf("err = %v, want a RequestError for n", err)
	}
	if fake.Calls() != 1 {
		t.Fatalf("fake calls %d, want 1", fake.Calls())
	}
}

// Fallback between kinds inside one route: an Anthropic target that
// answers 529 (overloaded), then an OpenAI-compatible one, for an
// Anthropic client.
func TestFallbackAcrossKinds(t *testing.T) {
	r, fake, _ := dialectRegistry(t, "  - {model: m, targets: [{provider: claude, model: claude-x}, {provider: oai, model: gpt-x}]}\n")
	ch := r.ChainFor("m")
	fake.SetBehavior("claude-x", upstreamtest.Behavior{Status: 529})
	res, err := ch.Do(context.Background(), Request{Path: MessagesPath, Body: []byte(messagesReq), Model: "m"})
	if err != nil || res.Provider != "oai" || len(res.Attempts) != 2 || res.Attempts[0].HTTPStatus != 529 {
		t.Fatalf("Do: %v, provider %s, attempts %+v", err, res.Provider, res.Attempts)
	}
	if !strings.Contains(string(res.Body), `"type":"message"`) {
		t.Fatalf("answer %s", res.Body)
	}
	if got := fake.Requests(); got[0].Path != "/v1/messages" || got[1].Path != "/v1/chat/completions" {
		t.Fatalf("paths %s, %s", got[0].Path, got[1].Path)
	}
}
