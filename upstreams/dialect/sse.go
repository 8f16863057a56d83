package dialect

import (
	"bytes"
	"encoding/json"
)

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

var (
	messageStopMarker = []byte(`message_stop`)
	errorMarker       = []byte(`error`)
)

// MessagesStreamEnd reports whether the data of an Anthropic stream event
// ends its stream: message_stop, or an error event. An Anthropic stream
// has no [DONE]; one whose connection closes before either was cut, which
// the gateway must know when it forwards such a stream untranslated.
func MessagesStreamEnd(data []byte) bool {
	if !bytes.Contains(data, messageStopMarker) && !bytes.Contains(data, errorMarker) {
		return false
	}
	if checkJSON(data, MaxEventBytes) != nil {
		return false
	}
	// The exact member name, as clients read it: encoding/json would take
	// "tYpe" for "type" and call a stream complete that no SDK sees end.
	var ev map[string]json.RawMessage
	if json.Unmarshal(data, &ev) != nil {
		return false
	}
	var typ string
	if json.Unmarshal(ev["type"], &typ) != nil {
		return false
	}
	return typ == "message_stop" || typ == "error"
}
