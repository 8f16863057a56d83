package upstreams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// ErrNotObject is returned when a request body is not a JSON object.
var ErrNotObject = errors.New("upstreams: body is not a JSON object")

// ErrDuplicateField is returned when the member looked for occurs twice.
// JSON parsers disagree on which one wins (Go and Python take the last),
// so routing on the first while the upstream reads the last would let a
// client pick any model of a provider behind a route's back.
var ErrDuplicateField = errors.New("upstreams: duplicate member in JSON object")

// Field finds the top-level member name of the JSON object in body and
// returns the byte span [start, end) of its raw value. It skips over the
// other members' values without decoding them (STYLE.md: the body is
// bytes), but walks every top-level member so that a duplicate of name is
// an error. ok is false when the member is absent.
func Field(body []byte, name string) (start, end int, ok bool, err error) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return 0, 0, false, ErrNotObject
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return 0, 0, false, nil
	}
	for i < len(body) {
		if body[i] != '"' {
			return 0, 0, false, errSyntax(i)
		}
		keyEnd, err := skipString(body, i)
		if err != nil {
			return 0, 0, false, err
		}
		key := body[i+1 : keyEnd-1]
		i = skipSpace(body, keyEnd)
		if i >= len(body) || body[i] != ':' {
			return 0, 0, false, errSyntax(i)
		}
		vStart := skipSpace(body, i+1)
		vEnd, err := skipValue(body, vStart)
		if err != nil {
			return 0, 0, false, err
		}
		if keyEquals(key, name) {
			if ok {
				return 0, 0, false, fmt.Errorf("%w: %q", ErrDuplicateField, name)
			}
			start, end, ok = vStart, vEnd, true
		}
		i = skipSpace(body, vEnd)
		if i >= len(body) {
			break
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return start, end, ok, nil
		default:
			return 0, 0, false, errSyntax(i)
		}
	}
	return 0, 0, false, errSyntax(len(body))
}

// StringField returns the top-level string member name; isString is false
// when it is present but not a string.
func StringField(body []byte, name string) (value string, present, isString bool, err error) {
	s, e, ok, err := Field(body, name)
	if err != nil || !ok {
		return "", ok, false, err
	}
	raw := body[s:e]
	if raw[0] != '"' {
		return "", true, false, nil
	}
	v, err := unquote(raw)
	if err != nil {
		return "", true, true, err
	}
	return v, true, true, nil
}

// unquote decodes a JSON string literal. JSON escapes are not Go's:
// strconv.Unquote rejects \/ (which PHP's json_encode writes in every
// "vendor/model" name) and surrogate pairs, and accepts \x41.
func unquote(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("cannot decode string %q: %w", raw, err)
	}
	return v, nil
}

// BoolField reports whether the top-level member name is the literal true.
func BoolField(body []byte, name string) (bool, error) {
	s, e, ok, err := Field(body, name)
	if err != nil || !ok {
		return false, err
	}
	return string(body[s:e]) == "true", nil
}

// ReplaceField returns a copy of body with the raw value of the top-level
// member name replaced by rawValue; body is returned unchanged when the
// member is absent.
func ReplaceField(body []byte, name string, rawValue []byte) ([]byte, error) {
	s, e, ok, err := Field(body, name)
	if err != nil || !ok {
		return body, err
	}
	out := make([]byte, 0, len(body)-(e-s)+len(rawValue))
	out = append(out, body[:s]...)
	out = append(out, rawValue...)
	return append(out, body[e:]...), nil
}

func errSyntax(at int) error {
	return errors.New("upstreams: malformed JSON near byte " + strconv.Itoa(at))
}

func keyEquals(raw []byte, name string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == name
	}
	u, err := unquote(append(append([]byte{'"'}, raw...), '"'))
	return err == nil && u == name
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errSyntax(i)
}

// skipValue returns the index just past the JSON value starting at b[i].
// Nested containers are skipped by depth counting; their content is
// validated later by whoever reads it (the upstream).
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax(i)
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errSyntax(i)
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
			j++
		}
		if j == i {
			return 0, errSyntax(i)
		}
		return j, nil
	}
}

// Inspection is what the gateway reads of a request body: its top-level
// "model" and "stream" (DESIGN.md section 1), nothing else.
type Inspection struct {
	Model string
	// ModelPresent and ModelIsString tell a missing model from one that
	// is not a string.
	ModelPresent  bool
	ModelIsString bool
	// Stream is true when "stream" is the literal true.
	Stream bool
	// StreamInvalid is true when "stream" is present but neither true,
	// false nor null.
	StreamInvalid bool
	// Duplicate names the member that occurred twice with ErrDuplicateField.
	Duplicate string
}

// maxDepth is encoding/json's nesting limit, so that Inspect accepts what
// the upstream's decoder accepts.
const maxDepth = 10000

// Inspect checks that body is one valid JSON object, as json.Valid does
// (strings, escapes, numbers and literals by the grammar of RFC 8259), and
// reads its top-level model and stream in the same single pass: the hot
// path touches each byte of the body once, whether dedupe is on or off.
// A duplicate model or stream is ErrDuplicateField (see Field for why).
func Inspect(body []byte) (Inspection, error) {
	var in Inspection
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return in, ErrNotObject
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return in, trailing(body, i+1)
	}
	streamSeen := false
	for {
		if i >= len(body) || body[i] != '"' {
			return in, errSyntax(i)
		}
		keyEnd, err := validString(body, i)
		if err != nil {
			return in, err
		}
		key := body[i+1 : keyEnd-1]
		i = skipSpace(body, keyEnd)
		if i >= len(body) || body[i] != ':' {
			return in, errSyntax(i)
		}
		vStart := skipSpace(body, i+1)
		vEnd, err := validValue(body, vStart, 1)
		if err != nil {
			return in, err
		}
		switch raw := body[vStart:vEnd]; {
		case keyEquals(key, "model"):
			if in.ModelPresent {
				in.Duplicate = "model"
				return in, fmt.Errorf("%w: %q", ErrDuplicateField, "model")
			}
			in.ModelPresent = true
			if raw[0] == '"' {
				if in.Model, err = unquote(raw); err != nil {
					return in, err
				}
				in.ModelIsString = true
			}
		case keyEquals(key, "stream"):
			if streamSeen {
				in.Duplicate = "stream"
				return in, fmt.Errorf("%w: %q", ErrDuplicateField, "stream")
			}
			streamSeen = true
			in.Stream = string(raw) == "true"
			in.StreamInvalid = !in.Stream && string(raw) != "false" && string(raw) != "null"
		}
		i = skipSpace(body, vEnd)
		if i >= len(body) {
			return in, errSyntax(i)
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return in, trailing(body, i+1)
		default:
			return in, errSyntax(i)
		}
	}
}

// trailing accepts only whitespace after the object ending at i.
func trailing(b []byte, i int) error {
	if j := skipSpace(b, i); j != len(b) {
		return errSyntax(j)
	}
	return nil
}

// validValue returns the index just past the valid JSON value at b[i].
func validValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax(i)
	}
	switch c := b[i]; {
	case c == '"':
		return validString(b, i)
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return 0, errors.New("upstreams: JSON nested too deeply near byte " + strconv.Itoa(i))
		}
		return validContainer(b, i, depth+1)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return validNumber(b, i)
	}
	return 0, errSyntax(i)
}

// validContainer checks the object or array starting at b[i].
func validContainer(b []byte, i, depth int) (int, error) {
	object := b[i] == '{'
	closer := byte(']')
	if object {
		closer = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, nil
	}
	for {
		if object {
			if i >= len(b) || b[i] != '"' {
				return 0, errSyntax(i)
			}
			end, err := validString(b, i)
			if err != nil {
				return 0, err
			}
			i = skipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, errSyntax(i)
			}
			i = skipSpace(b, i+1)
		}
		end, err := validValue(b, i, depth)
		if err != nil {
			return 0, err
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return 0, errSyntax(i)
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case closer:
			return i + 1, nil
		default:
			return 0, errSyntax(i)
		}
	}
}

// stringSafe marks the bytes a JSON string holds as they are: not the
// quote, the backslash or a control character.
var stringSafe = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

// validString returns the index just past the valid string at b[i] == '"'.
func validString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		for j < len(b) && stringSafe[b[j]] {
			j++
		}
		if j >= len(b) {
			return 0, errSyntax(i)
		}
		switch b[j] {
		case '"':
			return j + 1, nil
		case '\\':
			if j+1 >= len(b) {
				return 0, errSyntax(j)
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) || !isHex(b[j+5]) {
					return 0, errSyntax(j)
				}
				j += 6
			default:
				return 0, errSyntax(j)
			}
		default: // a control character
			return 0, errSyntax(j)
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// validNumber returns the index just past the number at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return 0, errSyntax(start)
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, errSyntax(start)
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, errSyntax(start)
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, nil
}

func literal(b []byte, i int, word string) (int, error) {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return 0, errSyntax(i)
	}
	return i + len(word), nil
}
