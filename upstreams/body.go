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
