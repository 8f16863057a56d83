package main

import (
	"context"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

func sdkClient(url string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{option.WithBaseURL(url + "/v1"), option.WithAPIKey(testClientKey), option.WithMaxRetries(0)}, opts...)...)
}

// Acceptance (issue 2, #1): the official Go SDK gets a chat completion
// and a streamed one through the gateway; the streamed text equals what
// the fake upstream produced.
func TestOpenAISDKChatAndStream(t *testing.T) {
	fake := startFake(t)
	b := upstreamtest.Behavior{Chunks: 7}
	fake.SetBehavior("gpt-test", b)
	g := startGateway(t, testConfig(t, fake.URL, ""))
	client := sdkClient(g.URL)
	ctx := context.Background()

	comp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "gpt-test",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
	})
	if err != nil {
		t.Fatalf("chat completion: %v", err)
	}
	if got, want := comp.Choices[0].Message.Content, upstreamtest.ContentFor(b, "gpt-test"); got != want {
		t.Fatalf("content = %q, want %q", got, want)
	}
	if comp.Usage.PromptTokens == 0 {
		t.Fatalf("usage not relayed: %+v", comp.Usage)
	}

	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:    "gpt-test",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream please")},
	})
	var text strings.Builder
	chunks := 0
	for stream.Next() {
		ch := stream.Current()
		if len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
		}
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if got, want := text.String(), upstreamtest.StreamText(b); got != want {
		t.Fatalf("streamed text = %q, want %q", got, want)
	}
	if chunks < 7 {
		t.Fatalf("got %d chunks, want at least 7", chunks)
	}
	if n := fake.Calls(); n != 2 {
		t.Fatalf("fake upstream calls = %d, want 2", n)
	}
}
