package upstreamtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Defaults applied to the zero values of Behavior fields.
const (
	// DefaultChunks is the number of content chunks a stream sends when Behavior.Chunks is 0.
	DefaultChunks = 5
	// DefaultPromptTokens is the prompt token count reported when Behavior.PromptTokens is 0.
	DefaultPromptTokens = 10
	// SlowDelay is the first-byte delay of the "slow" model-name convention.
	SlowDelay = 2 * time.Second
	// StreamCutAfter is the number of chunks the "stream-cut" model-name convention sends before dropping the connection.
	StreamCutAfter = 3
	// StreamCutInterval is the pause between chunks of the "stream-cut" model-name convention.
	StreamCutInterval = 50 * time.Millisecond
	// StoryText is the text of the "story-cut" and "story-continue"
	// model-name conventions: the first streams it and is cut mid-way, the
	// second continues it (on_stream_cut: continue), repeating two words.
	StoryText = "Once upon a time a fox and a dog shared a garden. The fox dug, the dog watched, and by the end of the summer the garden was full of holes and tomatoes."
	// StoryInterval is the pause between the chunks of the story conventions.
	StoryInterval = 80 * time.Millisecond
)

// Behavior scripts how the server answers calls for one upstream model.
//
// The zero value answers 200 with DefaultChunks chunks and no delay.
type Behavior struct {
	// Status, when set and not 2xx, is answered with an OpenAI error JSON
	// {"error":{"message","type","param","code"}}. 0 means 200.
	Status int
	// EchoAuthorization makes the error message of a scripted Status quote
	// the Authorization header the call carried, as careless upstreams do,
	// so that tests can check the gateway scrubs it.
	EchoAuthorization bool
	// RetryAfter and RetryAfterMs, when set, are sent as the Retry-After
	// and retry-after-ms response headers (a rate-limited provider's hint).
	RetryAfter   string
	RetryAfterMs string
	// FirstByteDelay is how long to wait before sending the response headers.
	FirstByteDelay time.Duration
	// Hang makes the server never answer: the handler blocks until the
	// client goes away or the server is closed, then drops the connection.
	Hang bool
	// Chunks is the number of content chunks of a stream. 0 means DefaultChunks.
	Chunks int
	// Interval is the pause between two content chunks of a stream.
	Interval time.Duration
	// DropAfter, when > 0, aborts the connection after this many content
	// chunks (or after the last one, when it is >= Chunks): no finish chunk,
	// no usage, no [DONE] and a broken chunked encoding, as a crashed
	// upstream would leave it. A non-stream answer is cut after half its body.
	DropAfter int
	// Content is the non-stream content, and the text split across stream
	// chunks. Empty means a deterministic default (see StreamText and ContentFor).
	Content string
	// PromptTokens is the reported prompt token count. 0 means DefaultPromptTokens.
	PromptTokens int
	// CompletionTokens is the reported completion token count. 0 means the
	// number of chunks for a stream, or the number of words of the content otherwise.
	CompletionTokens int
	// ToolName, when set, makes a chat or Anthropic messages answer a call
	// of this tool instead of text: tool_calls (finish_reason tool_calls)
	// or a tool_use block (stop_reason tool_use). A stream splits
	// ToolInput across its chunks as argument fragments.
	ToolName string
	// ToolInput is the tool call's input, a JSON object; "" means {}.
	ToolInput string
	// Continue makes a chat answer the continuation of a cut one, as the
	// gateway asks for it with on_stream_cut: continue: the text of the
	// request's last assistant message, which must be followed by a user
	// turn, must be a prefix of Content (else 400), and the answer is the
	// rest of Content. Without an assistant message the answer is Content.
	Continue bool
	// RepeatWords, with Continue, starts the answer with the last
	// RepeatWords words of that assistant message (a word cut short counts
	// as one), as a model that repeats itself does.
	RepeatWords int
	// UsageEveryChunk adds the usage so far to every content chunk of a
	// stream (as vLLM's continuous_usage_stats does), so that a stream cut
	// before its end has reported some.
	UsageEveryChunk bool
}

// conventionFor returns the behavior implied by a model name, for demos
// that cannot call SetBehavior (for example deploy/fakeupstream).
func conventionFor(model string) (Behavior, bool) {
	switch model {
	case "fail-400":
		return Behavior{Status: 400}, true
	case "fail-429":
		return Behavior{Status: 429}, true
	case "fail-500":
		return Behavior{Status: 500}, true
	case "fail-502":
		return Behavior{Status: 502}, true
	case "fail-503":
		return Behavior{Status: 503}, true
	case "fail-529":
		// Anthropic's "overloaded", for demos of a kind anthropic provider.
		return Behavior{Status: 529}, true
	case "hang":
		return Behavior{Hang: true}, true
	case "slow":
		return Behavior{FirstByteDelay: SlowDelay}, true
	case "stream-cut":
		return Behavior{DropAfter: StreamCutAfter, Interval: StreamCutInterval}, true
	case "story-cut":
		return Behavior{Content: StoryText, Chunks: 12, DropAfter: 5, Interval: StoryInterval}, true
	case "story-continue":
		return Behavior{Content: StoryText, Chunks: 7, Interval: StoryInterval, Continue: true, RepeatWords: 2}, true
	}
	return longStream(model)
}

// longStreamPrefix names models that stream slowly, "long-stream-NxD":
// N chunks, D (a Go duration) apart, e.g. long-stream-20x500ms. The bench
// holds thousands of such streams open at once through the CLI.
const longStreamPrefix = "long-stream-"

// maxLongStreamChunks bounds what a model name can ask for.
const maxLongStreamChunks = 10000

func longStream(model string) (Behavior, bool) {
	spec, ok := strings.CutPrefix(model, longStreamPrefix)
	if !ok {
		return Behavior{}, false
	}
	n, d, ok := strings.Cut(spec, "x")
	if !ok {
		return Behavior{}, false
	}
	chunks, err := strconv.Atoi(n)
	if err != nil || chunks < 1 || chunks > maxLongStreamChunks {
		return Behavior{}, false
	}
	interval, err := time.ParseDuration(d)
	if err != nil || interval < 0 || interval > time.Minute {
		return Behavior{}, false
	}
	return Behavior{Chunks: chunks, Interval: interval}, true
}

func (b Behavior) chunks() int {
	if b.Chunks <= 0 {
		return DefaultChunks
	}
	return b.Chunks
}

func (b Behavior) promptTokens() int {
	if b.PromptTokens <= 0 {
		return DefaultPromptTokens
	}
	return b.PromptTokens
}

func (b Behavior) status() int {
	if b.Status == 0 {
		return 200
	}
	return b.Status
}

// dropPoint returns after how many content chunks a stream is cut, or -1 when it is never cut.
func (b Behavior) dropPoint() int {
	if b.DropAfter <= 0 {
		return -1
	}
	return min(b.DropAfter, b.chunks())
}

// streamPieces returns the delta texts of the content chunks of a stream.
func streamPieces(b Behavior) []string {
	n := b.chunks()
	pieces := make([]string, n)
	if b.Content == "" {
		for i := range pieces {
			pieces[i] = fmt.Sprintf("tok%d ", i)
		}
		return pieces
	}
	// Split on rune boundaries so that every delta stays valid UTF-8.
	runes := []rune(b.Content)
	for i := range pieces {
		pieces[i] = string(runes[i*len(runes)/n : (i+1)*len(runes)/n])
	}
	return pieces
}

// StreamText returns the exact concatenation of the delta texts that a
// complete stream answered with behavior b carries, so that tests can
// compare what a client received.
func StreamText(b Behavior) string {
	if b.Content != "" {
		return b.Content
	}
	var sb strings.Builder
	for i := range b.chunks() {
		fmt.Fprintf(&sb, "tok%d ", i)
	}
	return sb.String()
}

// ContentFor returns the content of a non-stream answer with behavior b
// for the given upstream model (the choice's message content, text or
// output_text). The default names the model, so that tests can tell which
// target of a fallback chain answered.
func ContentFor(b Behavior, model string) string {
	if b.Content != "" {
		return b.Content
	}
	return "fake reply from " + model + ": " + strings.TrimSuffix(StreamText(b), " ")
}

// nonStreamCompletionTokens returns the completion tokens reported by a non-stream answer with the given content.
func (b Behavior) nonStreamCompletionTokens(content string) int {
	if b.CompletionTokens > 0 {
		return b.CompletionTokens
	}
	return len(strings.Fields(content))
}

// streamCompletionTokens returns the completion tokens reported by a stream.
func (b Behavior) streamCompletionTokens() int {
	if b.CompletionTokens > 0 {
		return b.CompletionTokens
	}
	return b.chunks()
}
