package upstreams

import (
	"bytes"
	"errors"
)

var usageMarker = []byte(`"usage"`)

// ParseUsage reads the usage object of a response body or of one stream
// event. It understands chat/completions (prompt_tokens, completion_tokens)
// and responses (input_tokens, output_tokens, possibly nested under
// "response"). ok is false when there is no usage in data, or when it is
// not an object of integer counts. It walks the members with Field instead
// of decoding the body: every non-stream answer passes through here.
func ParseUsage(data []byte) (Usage, bool) {
	if !bytes.Contains(data, usageMarker) {
		return Usage{}, false
	}
	u, found, err := usageMember(data)
	if err != nil {
		return Usage{}, false
	}
	if !found {
		s, e, ok, err := Field(data, "response")
		if err != nil || !ok {
			return Usage{}, false
		}
		if u, found, err = usageMember(data[s:e]); err != nil || !found {
			return Usage{}, false
		}
	}
	return u, true
}

// usageCounts are the members of a usage object that count tokens, and
// which total each adds to.
var usageCounts = [...]struct {
	name   string
	prompt bool
}{{"prompt_tokens", true}, {"input_tokens", true}, {"completion_tokens", false}, {"output_tokens", false}}

// usageMember reads obj's "usage" member; found is false when it is
// absent or null (or obj is not an object).
func usageMember(obj []byte) (u Usage, found bool, err error) {
	s, e, ok, err := Field(obj, "usage")
	if err != nil || !ok {
		return Usage{}, false, nil
	}
	raw := obj[s:e]
	if string(raw) == "null" {
		return Usage{}, false, nil
	}
	if raw[0] != '{' {
		return Usage{}, false, errNotCount
	}
	for _, c := range usageCounts {
		vs, ve, ok, err := Field(raw, c.name)
		if err != nil {
			return Usage{}, false, err
		}
		if !ok {
			continue
		}
		n, err := parseCount(raw[vs:ve])
		if err != nil {
			return Usage{}, false, err
		}
		if c.prompt {
			u.PromptTokens += n
		} else {
			u.CompletionTokens += n
		}
	}
	return u, true, nil
}

var errNotCount = errors.New("upstreams: usage count is not a non-negative integer")

// parseCount reads a JSON integer token count.
func parseCount(raw []byte) (int64, error) {
	if len(raw) == 0 || len(raw) > 18 {
		return 0, errNotCount
	}
	var n int64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, errNotCount
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
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
