package dialect

import "bytes"

// Events go in and out in the form upstreams.Stream.Next returns them:
// the lines of one SSE event without the blank line that ends it. The
// caller writes "\n\n" after each event it sends.

var doneData = []byte("[DONE]")

// parseEvent returns the event name and the data of one SSE event, its
// data lines joined by newlines (the SSE spec); comments and other fields
// are ignored.
func parseEvent(ev []byte) (name string, data []byte) {
	for len(ev) > 0 {
		line := ev
		if i := bytes.IndexByte(ev, '\n'); i >= 0 {
			line, ev = ev[:i], ev[i+1:]
		} else {
			ev = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		switch {
		case bytes.HasPrefix(line, []byte("data:")):
			v := bytes.TrimPrefix(line[5:], []byte{' '})
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, v...)
		case bytes.HasPrefix(line, []byte("event:")):
			name = string(bytes.TrimPrefix(line[6:], []byte{' '}))
		}
	}
	return name, data
}

// dataEvent is an OpenAI stream event: one data line.
func dataEvent(payload []byte) []byte {
	out := make([]byte, 0, len(payload)+6)
	out = append(out, "data: "...)
	return append(out, payload...)
}

// namedEvent is an Anthropic stream event: the event line names the type
// its data repeats.
func namedEvent(name string, payload []byte) []byte {
	out := make([]byte, 0, len(name)+len(payload)+14)
	out = append(out, "event: "...)
	out = append(out, name...)
	out = append(out, "\ndata: "...)
	return append(out, payload...)
}
