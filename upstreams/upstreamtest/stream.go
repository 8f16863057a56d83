package upstreamtest

import (
	"net/http"
	"strconv"
)

// chunkEncoder appends the SSE events of one stream shape.
type chunkEncoder interface {
	// prefix appends the start of every chunk, up to the choices.
	prefix(buf []byte, c *call) []byte
	// delta appends the choices of content chunk i.
	delta(buf []byte, i int, text string) []byte
	// finish appends the choices of the chunk that carries finish_reason.
	finish(buf []byte) []byte
}

// chatChunks encodes chat.completion.chunk events.
type chatChunks struct{}

func (chatChunks) prefix(buf []byte, c *call) []byte {
	buf = append(buf, `data: {"id":"chatcmpl-fake-`...)
	buf = strconv.AppendInt(buf, c.n, 10)
	buf = append(buf, `","object":"chat.completion.chunk","created":`...)
	buf = strconv.AppendInt(buf, c.created, 10)
	buf = append(buf, `,"model":`...)
	buf = appendJSONString(buf, c.model)
	return append(buf, `,"choices":`...)
}

func (chatChunks) delta(buf []byte, i int, text string) []byte {
	buf = append(buf, `[{"index":0,"delta":{`...)
	if i == 0 {
		// As OpenAI does, only the first chunk names the role.
		buf = append(buf, `"role":"assistant",`...)
	}
	buf = append(buf, `"content":`...)
	buf = appendJSONString(buf, text)
	return append(buf, `},"finish_reason":null}]`...)
}

func (chatChunks) finish(buf []byte) []byte {
	return append(buf, `[{"index":0,"delta":{},"finish_reason":"stop"}]`...)
}

// textChunks encodes streamed text_completion events.
type textChunks struct{}

func (textChunks) prefix(buf []byte, c *call) []byte {
	buf = append(buf, `data: {"id":"cmpl-fake-`...)
	buf = strconv.AppendInt(buf, c.n, 10)
	buf = append(buf, `","object":"text_completion","created":`...)
	buf = strconv.AppendInt(buf, c.created, 10)
	buf = append(buf, `,"model":`...)
	buf = appendJSONString(buf, c.model)
	return append(buf, `,"choices":`...)
}

func (textChunks) delta(buf []byte, _ int, text string) []byte {
	buf = append(buf, `[{"text":`...)
	buf = appendJSONString(buf, text)
	return append(buf, `,"index":0,"logprobs":null,"finish_reason":null}]`...)
}

func (textChunks) finish(buf []byte) []byte {
	return append(buf, `[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]`...)
}

// stream answers with server-sent events: the content chunks, each flushed
// at once, then a finish chunk, a usage chunk and "data: [DONE]".
// Once the headers are sent, any interruption aborts the connection, so the
// client sees a broken stream rather than a short one that looks complete.
func (c *call) stream(enc chunkEncoder) {
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	c.w.WriteHeader(c.b.status())
	flusher := c.w.(http.Flusher)

	prefix := enc.prefix(nil, c)
	buf := make([]byte, 0, len(prefix)+128)
	drop := c.b.dropPoint()
	for i, text := range streamPieces(c.b) {
		if i > 0 && !c.s.wait(c.r, c.b.Interval) {
			panic(http.ErrAbortHandler)
		}
		buf = append(buf[:0], prefix...)
		buf = enc.delta(buf, i, text)
		if c.b.UsageEveryChunk {
			buf = append(buf, `,"usage":`...)
			buf = appendUsage(buf, c.b.promptTokens(), i+1)
		}
		buf = append(buf, "}\n\n"...)
		if _, err := c.w.Write(buf); err != nil {
			panic(http.ErrAbortHandler)
		}
		flusher.Flush()
		if i+1 == drop {
			panic(http.ErrAbortHandler)
		}
	}

	buf = append(buf[:0], prefix...)
	buf = enc.finish(buf)
	buf = append(buf, "}\n\n"...)
	buf = append(buf, prefix...)
	buf = append(buf, `[],"usage":`...)
	buf = appendUsage(buf, c.b.promptTokens(), c.b.streamCompletionTokens())
	buf = append(buf, "}\n\ndata: [DONE]\n\n"...)
	if _, err := c.w.Write(buf); err != nil {
		panic(http.ErrAbortHandler)
	}
	flusher.Flush()
}
