package upstreams

import (
	"bytes"
	"encoding/json"
)

var usageMarker = []byte(`"usage"`)

// ParseUsage reads the usage object of a response body or of one stream
// event. It understands chat/completions (prompt_tokens, completion_tokens)
// and responses (input_tokens, output_tokens, possibly nested under
// "response"). ok is false when there is no usage in data.
func ParseUsage(data []byte) (Usage, bool) {
	if !bytes.Contains(data, usageMarker) {
		return Usage{}, false
	}
	type usage struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		InputTokens      int64 `json:"input_tokens"`
		OutputTokens     int64 `json:"output_tokens"`
	}
	var v struct {
		Usage    *usage `json:"usage"`
		Response *struct {
			Usage *usage `json:"usage"`
		} `json:"response"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return Usage{}, false
	}
	u := v.Usage
	if u == nil && v.Response != nil {
		u = v.Response.Usage
	}
	if u == nil {
		return Usage{}, false
	}
	return Usage{
		PromptTokens:     u.PromptTokens + u.InputTokens,
		CompletionTokens: u.CompletionTokens + u.OutputTokens,
	}, true
}

// SSEData returns the payload of an SSE event's data lines (joined by
// newlines as the SSE spec says) or nil when it has none.
func SSEData(event []byte) []byte {
	var out []byte
	for len(event) > 0 {
		line := event
		if i := bytes.IndexByte(event, '\n'); i >= 0 {
			line, event = event[:i], event[i+1:]
		} else {
			event = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if !bytes.HasPrefix(line, []byte("data:")) {
			continue
		}
		v := bytes.TrimPrefix(line[5:], []byte{' '})
		if out != nil {
			out = append(out, '\n')
		}
		out = append(out, v...)
	}
	return out
}
