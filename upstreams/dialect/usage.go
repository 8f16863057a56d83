package dialect

import (
	"bytes"
	"encoding/json"
)

var usageMarker = []byte(`"usage"`)

// MessagesUsage reads the usage of an Anthropic Message body or of the
// data of one stream event (message_start nests it in "message",
// message_delta carries it at the top), as the gateway counts tokens:
// prompt is input_tokens plus the cache writes and reads
// (cache_creation_input_tokens, cache_read_input_tokens), completion is
// output_tokens. ok is false when data has no usage.
//
// Over a stream keep, for each of the two, the last non-zero value:
// message_start gives the prompt side and a first output count,
// message_delta the final output count and, in recent API versions, the
// prompt side again.
func MessagesUsage(data []byte) (prompt, completion int64, ok bool) {
	if !bytes.Contains(data, usageMarker) || checkJSON(data, MaxBodyBytes) != nil {
		return 0, 0, false
	}
	var v struct {
		Usage   *anthropicUsage `json:"usage"`
		Message *struct {
			Usage *anthropicUsage `json:"usage"`
		} `json:"message"`
	}
	if json.Unmarshal(data, &v) != nil {
		return 0, 0, false
	}
	u := v.Usage
	if u == nil && v.Message != nil {
		u = v.Message.Usage
	}
	if u == nil {
		return 0, 0, false
	}
	return u.prompt(), u.OutputTokens, true
}
