// Package dialect translates between OpenAI's Chat Completions API and
// Anthropic's Messages API: requests, answers, streams, errors and usage
// (DESIGN.md section 7, issue 12).
//
// It is the one place in the gateway where a body is re-modelled, since a
// translated body must be rebuilt. It decodes only the fields it
// translates and leaves every other field out rather than guessing what it
// would mean in the other dialect; a field whose loss would change the
// answer (n > 1, logprobs, a JSON response format, an Anthropic server
// tool) is refused with a *RequestError, which the caller answers as a 400
// in the client's dialect.
//
// Everything works on bytes: JSON bodies in and out, and SSE events in the
// form upstreams.Stream.Next returns them (the event's lines without the
// blank line that ends it). Inputs are bounded (MaxBodyBytes, MaxDepth,
// MaxBlocks) and garbage gets an error, never a panic.
package dialect

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// DefaultMaxTokens is the max_tokens ChatToMessages sends when neither the
// client's request nor the caller's defaultMaxTokens gives one; Anthropic
// requires the field.
const DefaultMaxTokens = 4096

// Limits on what the translators accept.
const (
	// MaxBodyBytes caps a request or answer body; Anthropic's own limit
	// for a Messages request is 32 MB, OpenAI's answers are far smaller.
	MaxBodyBytes = 32 << 20
	// MaxEventBytes caps one SSE event, as upstreams.Stream does.
	MaxEventBytes = 4 << 20
	// MaxDepth caps the nesting of a JSON body, which is walked before it
	// is decoded. Tool schemas are the deepest part of a real request and
	// stay far below it.
	MaxDepth = 64
	// MaxBlocks caps the content blocks and tool calls of one stream, so
	// the translator's state stays small whatever the upstream sends.
	MaxBlocks = 4096
)

// RequestError is a client request that cannot be translated: malformed,
// over a limit, or using a feature the other dialect lacks. The caller
// answers 400 invalid_request_error in the client's dialect, with Error()
// as the message.
type RequestError struct {
	// Param names the offending field, e.g. "messages[2].content" or "n";
	// empty when the body as a whole is at fault.
	Param string
	// Message says what is wrong, for the client.
	Message string
}

func (e *RequestError) Error() string {
	if e.Param == "" {
		return e.Message
	}
	return e.Param + ": " + e.Message
}

func requestErrorf(param, format string, args ...any) *RequestError {
	return &RequestError{Param: param, Message: fmt.Sprintf(format, args...)}
}

// Sentinel causes of answer and stream errors.
var (
	// ErrBadAnswer: an upstream answer or stream event cannot be
	// translated (malformed, of the wrong shape, over a limit). The caller
	// treats the attempt as failed, as it would a cut stream.
	ErrBadAnswer = errors.New("dialect: upstream answer cannot be translated")
	// ErrStreamFailed: the upstream reported an error inside its stream.
	ErrStreamFailed = errors.New("dialect: upstream stream reported an error")
)

func badAnswerf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadAnswer, fmt.Sprintf(format, args...))
}

// checkJSON bounds a body before it is decoded: its size, and its nesting,
// which encoding/json would otherwise follow 10000 levels deep.
func checkJSON(b []byte, limit int) error {
	if len(b) > limit {
		return fmt.Errorf("body is over %d bytes", limit)
	}
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > MaxDepth {
				return fmt.Errorf("body is nested deeper than %d levels", MaxDepth)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// fields splits a JSON object into its top-level members. Unlike decoding
// into a struct, it matches names exactly: encoding/json would take
// "Stream" for "stream", while the gateway's router reads only the exact
// name, and the two must agree on whether the answer is a stream.
func fields(body []byte) (map[string]json.RawMessage, error) {
	if err := checkJSON(body, MaxBodyBytes); err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("body is not a JSON object: %s", describe(err))
	}
	if m == nil {
		return nil, errors.New("body is not a JSON object")
	}
	return m, nil
}

// field decodes the member name of m into v; an absent or null member
// leaves v as it is. The error names the member.
func field(m map[string]json.RawMessage, name string, v any) *RequestError {
	raw, ok := m[name]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return &RequestError{Param: name, Message: describe(err)}
	}
	return nil
}

// describe turns a decoding error into words for a client, without Go type names.
func describe(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		where := "value"
		if te.Field != "" {
			where = te.Field
		}
		return fmt.Sprintf("%s must be %s, not %s", where, kindName(te.Type), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, se.Error())
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func kindName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return kindName(t.Elem())
	default:
		return "an object"
	}
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// firstByte returns the first non-space byte of raw, or 0.
func firstByte(raw json.RawMessage) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// marshal encodes v without HTML escaping, so that text reaches the
// client as the model wrote it (encoding/json would turn < into \u003c).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// mustMarshal encodes values built by this package, which always encode.
func mustMarshal(v any) []byte {
	b, err := marshal(v)
	if err != nil {
		panic(fmt.Sprintf("BUG: cannot encode %T: %s", v, err))
	}
	return b
}

// jsonString encodes s as a JSON string.
func jsonString(s string) json.RawMessage {
	return mustMarshal(s)
}

// newID returns prefix and 16 random URL-safe characters, for ids the
// upstream did not give (a stream without message_start, a tool call
// without an id). They match Anthropic's tool id pattern ^[a-zA-Z0-9_-]+$.
func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// toolID makes a tool call id acceptable to Anthropic, which allows only
// ^[a-zA-Z0-9_-]+$; OpenAI-compatible providers are freer. The mapping is
// deterministic, so a tool_use and its tool_result still match.
func toolID(id string) string {
	ok := true
	for i := 0; i < len(id); i++ {
		if !isIDByte(id[i]) {
			ok = false
			break
		}
	}
	if ok {
		return id
	}
	b := []byte(id)
	for i, c := range b {
		if !isIDByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func isIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// compactObject returns raw, compacted, when it is a JSON object.
func compactObject(raw []byte) (json.RawMessage, bool) {
	if firstByte(raw) != '{' || checkJSON(raw, MaxBodyBytes) != nil {
		return nil, false
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, false
	}
	return buf.Bytes(), true
}
