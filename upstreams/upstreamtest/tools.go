package upstreamtest

import (
	"net/http"
	"strconv"
)

// toolInput returns the scripted tool input, {} when none.
func (b Behavior) toolInput() string {
	if b.ToolInput == "" {
		return "{}"
	}
	return b.ToolInput
}

// toolPieces splits the tool input across the chunks of a stream, on rune
// boundaries; short inputs leave some pieces empty, as real streams have.
func toolPieces(b Behavior) []string {
	n := b.chunks()
	runes := []rune(b.toolInput())
	pieces := make([]string, n)
	for i := range pieces {
		pieces[i] = string(runes[i*len(runes)/n : (i+1)*len(runes)/n])
	}
	return pieces
}

// toolCompletionTokens is the completion count of a tool call answer.
func (b Behavior) toolCompletionTokens() int {
	if b.CompletionTokens > 0 {
		return b.CompletionTokens
	}
	return b.chunks()
}

// ToolCallID returns the id of the tool call the fake answers for the
// call with sequence number n: "call_fake_<n>" in chat answers and
// "toolu_fake_<n>" in Anthropic ones. Tests read n from the answer's id.
func ToolCallID(anthropic bool, n int64) string {
	if anthropic {
		return "toolu_fake_" + strconv.FormatInt(n, 10)
	}
	return "call_fake_" + strconv.FormatInt(n, 10)
}

// chatTool answers POST /v1/chat/completions with a call of the scripted tool.
func (c *call) chatTool(stream bool) {
	id := ToolCallID(false, c.n)
	if stream {
		c.chatToolStream(id)
		return
	}
	buf := make([]byte, 0, 400+len(c.b.ToolInput)+len(c.model))
	buf = append(buf, `{"id":"chatcmpl-fake-`...)
	buf = strconv.AppendInt(buf, c.n, 10)
	buf = append(buf, `","object":"chat.completion","created":`...)
	buf = strconv.AppendInt(buf, c.created, 10)
	buf = append(buf, `,"model":`...)
	buf = appendJSONString(buf, c.model)
	buf = append(buf, `,"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"`...)
	buf = append(buf, id...)
	buf = append(buf, `","type":"function","function":{"name":`...)
	buf = appendJSONString(buf, c.b.ToolName)
	buf = append(buf, `,"arguments":`...)
	buf = appendJSONString(buf, c.b.toolInput())
	buf = append(buf, `}}]},"finish_reason":"tool_calls"}],"usage":`...)
	buf = appendUsage(buf, c.b.promptTokens(), c.b.toolCompletionTokens())
	buf = append(buf, '}')
	c.writeJSON(buf)
}

// chatToolStream streams a tool call as OpenAI does: the first chunk
// names the call with empty arguments, the next ones carry fragments.
func (c *call) chatToolStream(id string) {
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	c.w.WriteHeader(c.b.status())
	flusher := c.w.(http.Flusher)

	prefix := chatChunks{}.prefix(nil, c)
	buf := append([]byte(nil), prefix...)
	buf = append(buf, `[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"`...)
	buf = append(buf, id...)
	buf = append(buf, `","type":"function","function":{"name":`...)
	buf = appendJSONString(buf, c.b.ToolName)
	buf = append(buf, `,"arguments":""}}]},"finish_reason":null}]}`+"\n\n"...)
	drop := c.b.dropPoint()
	for i, piece := range toolPieces(c.b) {
		if i > 0 && !c.s.wait(c.r, c.b.Interval) {
			panic(http.ErrAbortHandler)
		}
		buf = append(buf, prefix...)
		buf = append(buf, `[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":`...)
		buf = appendJSONString(buf, piece)
		buf = append(buf, `}}]},"finish_reason":null}]}`+"\n\n"...)
		if _, err := c.w.Write(buf); err != nil {
			panic(http.ErrAbortHandler)
		}
		flusher.Flush()
		if i+1 == drop {
			panic(http.ErrAbortHandler)
		}
		buf = buf[:0]
	}
	buf = append(buf, prefix...)
	buf = append(buf, `[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`+"\n\n"...)
	buf = append(buf, prefix...)
	buf = append(buf, `[],"usage":`...)
	buf = appendUsage(buf, c.b.promptTokens(), c.b.toolCompletionTokens())
	buf = append(buf, "}\n\ndata: [DONE]\n\n"...)
	if _, err := c.w.Write(buf); err != nil {
		panic(http.ErrAbortHandler)
	}
	flusher.Flush()
}
