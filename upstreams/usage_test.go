package upstreams

import "testing"

func TestParseUsage(t *testing.T) {
	tests := []struct {
		name string
		data string
		want Usage
		ok   bool
	}{
		{"chat", `{"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`, Usage{12, 5}, true},
		{"embeddings", `{"data":[],"usage":{"prompt_tokens":8,"total_tokens":8}}`, Usage{8, 0}, true},
		{"responses", `{"id":"r","usage":{"input_tokens":4,"output_tokens":9,"total_tokens":13}}`, Usage{4, 9}, true},
		{"responses stream event", `{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":3,"output_tokens":2}}}`, Usage{3, 2}, true},
		{"zero usage", `{"usage":{"prompt_tokens":0,"completion_tokens":0}}`, Usage{}, true},
		{"null usage", `{"choices":[],"usage":null}`, Usage{}, false},
		{"null nested usage", `{"type":"response.created","response":{"usage":null}}`, Usage{}, false},
		{"no usage", `{"choices":[{"delta":{"content":"hi"}}]}`, Usage{}, false},
		{"word in content", `{"choices":[{"delta":{"content":"the \"usage\" word"}}]}`, Usage{}, false},
		{"done", `[DONE]`, Usage{}, false},
		{"malformed", `{"usage":{"prompt_tokens":1`, Usage{}, false},
		{"wrong type", `{"usage":"lots"}`, Usage{}, false},
		{"empty", ``, Usage{}, false},
		{"fraction", `{"usage":{"prompt_tokens":1.5}}`, Usage{}, false},
		{"negative", `{"usage":{"prompt_tokens":-1}}`, Usage{}, false},
		{"string count", `{"usage":{"prompt_tokens":"3"}}`, Usage{}, false},
		{"usage after a long content", `{"choices":[{"message":{"content":"a \"usage\": {} b"}}],"usage":{"prompt_tokens":7,"completion_tokens":1}}`, Usage{7, 1}, true},
		{"nested details", `{"usage":{"prompt_tokens":7,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":3}}}`, Usage{7, 2}, true},
		{"spaces", `{ "usage" : { "prompt_tokens" : 4 , "completion_tokens" : 6 } }`, Usage{4, 6}, true},
	}
	for _, tt := range tests {
		got, ok := ParseUsage([]byte(tt.data))
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: ParseUsage = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSSEData(t *testing.T) {
	tests := []struct{ event, want string }{
		{"data: {\"a\":1}", `{"a":1}`},
		{"data:{\"a\":1}", `{"a":1}`},
		{"data:  two spaces", " two spaces"},
		{"event: x\ndata: l1\ndata: l2", "l1\nl2"},
		{"event: x\r\ndata: l1\r\ndata: l2", "l1\nl2"},
		{"data:", ""},
		{": comment", ""},
		{"id: 3\ndata: [DONE]", "[DONE]"},
	}
	for _, tt := range tests {
		if got := string(SSEData([]byte(tt.event))); got != tt.want {
			t.Errorf("SSEData(%q) = %q, want %q", tt.event, got, tt.want)
		}
	}
	if SSEData([]byte("event: ping")) != nil {
		t.Error("SSEData of an event without data lines is not nil")
	}
}
