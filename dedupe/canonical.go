package dedupe

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrBodyInvalid is returned by Canonical, wrapped with what is wrong and
// where, when a request body is not strict JSON (RFC 8259) or has duplicate
// object keys; the gateway answers it with 400.
var ErrBodyInvalid = errors.New("dedupe: invalid JSON body")

// maxDepth bounds nesting exactly like encoding/json's scanner does, so a
// hostile body cannot grow the recursion without limit and every body
// Canonical accepts is also one encoding/json accepts.
const maxDepth = 10000

// Canonical appends the canonical form of the JSON body to dst and returns
// the extended buffer; on error it returns dst unchanged and an error
// wrapping ErrBodyInvalid. The canonical form is what fingerprints and
// derived keys are computed from (DESIGN.md section 2), so two bodies that
// mean the same request must give the same bytes:
//
//   - object members sorted by their unescaped UTF-8 key bytes; duplicate
//     keys are rejected, because which one "wins" differs between parsers;
//   - insignificant whitespace removed;
//   - numbers kept exactly as written, never through float64, which would
//     corrupt integers above 2^53 such as seeds (1.0 and 1 stay different);
//   - strings decoded and re-encoded with only the mandatory escapes: \" \\
//     and control characters as \b \f \n \r \t or \u00XX; no HTML escaping
//     of <>&; everything else, non-ASCII included, as raw UTF-8. A lone
//     UTF-16 surrogate escape stays escaped (\udXXX, lowercase) and invalid
//     UTF-8 is kept verbatim, so distinct bodies stay distinct; Unicode is
//     not normalised.
//
// When fields is non-empty and the top-level value is an object, only its
// members named in fields are kept (dedupe.derive_fields); the rest of the
// body is still validated.
//
// It is a single pass over the body with no tree: output is written as the
// input is read, and only an object whose members are out of order (or
// filtered) is rearranged, using dst's spare capacity as scratch space.
func Canonical(dst, body []byte, fields []string) ([]byte, error) {
	// One allocation up front covers typical request bodies (a chat request
	// has a few dozen members open at once at most); member holds no
	// pointers, so it is cheap for the GC.
	s := scanner{body: body, fields: fields, members: make([]member, 0, 32)}
	out, err := s.value(dst)
	if err != nil {
		return dst, err
	}
	s.skipSpace()
	if s.pos < len(s.body) {
		return dst, s.fail("trailing data after the JSON value")
	}
	return out, nil
}

// scanner holds the state of one Canonical call.
type scanner struct {
	body   []byte
	pos    int
	depth  int
	fields []string
	// members is a stack shared by the objects being parsed: each object
	// owns members[base:] while it is open, and pops them when it closes.
	members []member
	// unescaped holds the unescaped form of keys that had escapes, which
	// are rare; it is a stack like members.
	unescaped []byte
}

// member is one parsed object member. It holds offsets rather than slices
// so that sorting moves no pointers (no GC write barriers) and the members
// stack can live in a pointer-free allocation.
type member struct {
	// keyStart and keyEnd delimit the unescaped key, in the body when the
	// key had no escapes, in scanner.unescaped otherwise (inUnescaped).
	// Members are sorted by it.
	keyStart, keyEnd int
	// start and end delimit the member's canonical `"key":value` in dst.
	start, end int
	// inUnescaped tells where the key is, see keyStart.
	inUnescaped bool
	// drop marks a top-level member that fields did not select.
	drop bool
}

// key returns the unescaped key of m.
func (s *scanner) key(m *member) []byte {
	if m.inUnescaped {
		return s.unescaped[m.keyStart:m.keyEnd]
	}
	return s.body[m.keyStart:m.keyEnd]
}

func (s *scanner) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrBodyInvalid, what, s.pos)
}

func (s *scanner) unexpected() error {
	if s.pos >= len(s.body) {
		return s.fail("unexpected end of input")
	}
	return s.fail(fmt.Sprintf("unexpected %q", s.body[s.pos:s.pos+1]))
}

// skipSpace skips the four whitespace bytes of RFC 8259 section 2.
func (s *scanner) skipSpace() {
	for s.pos < len(s.body) {
		switch s.body[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) value(dst []byte) ([]byte, error) {
	s.skipSpace()
	if s.pos >= len(s.body) {
		return dst, s.unexpected()
	}
	switch c := s.body[s.pos]; {
	case c == '{':
		return s.object(dst)
	case c == '[':
		return s.array(dst)
	case c == '"':
		dst, _, err := s.str(dst)
		return dst, err
	case c == 't':
		return s.literal(dst, "true")
	case c == 'f':
		return s.literal(dst, "false")
	case c == 'n':
		return s.literal(dst, "null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number(dst)
	}
	return dst, s.unexpected()
}

func (s *scanner) literal(dst []byte, lit string) ([]byte, error) {
	if len(s.body)-s.pos < len(lit) || string(s.body[s.pos:s.pos+len(lit)]) != lit {
		return dst, s.fail("invalid literal, want " + lit)
	}
	s.pos += len(lit)
	return append(dst, lit...), nil
}

// number checks the grammar of RFC 8259 section 6 and copies the number
// verbatim. What may follow it is the caller's business, so "01" fails
// there, on the unexpected '1'.
func (s *scanner) number(dst []byte) ([]byte, error) {
	b := s.body
	start := s.pos
	i := start
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		s.pos = i
		return dst, s.fail("invalid number: want a digit")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i == len(b) || !isDigit(b[i]) {
			s.pos = i
			return dst, s.fail("invalid number: want a digit after '.'")
		}
		i = skipDigits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i == len(b) || !isDigit(b[i]) {
			s.pos = i
			return dst, s.fail("invalid number: want a digit in the exponent")
		}
		i = skipDigits(b, i)
	}
	s.pos = i
	return append(dst, b[start:i]...), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// str reads the string at s.pos and appends its canonical encoding. It
// reports whether the string had escapes, i.e. whether its raw bytes differ
// from its unescaped bytes.
func (s *scanner) str(dst []byte) ([]byte, bool, error) {
	b := s.body
	i := s.pos + 1
	run := i // start of bytes copied verbatim
	escaped := false
	dst = append(dst, '"')
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			dst = append(dst, b[run:i]...)
			s.pos = i + 1
			return append(dst, '"'), escaped, nil
		case c == '\\':
			dst = append(dst, b[run:i]...)
			r, n := readEscape(b, i)
			if n == 0 {
				s.pos = i
				return dst, false, s.fail("invalid escape in string")
			}
			dst = appendCanonicalRune(dst, r)
			i += n
			run = i
			escaped = true
		case c < 0x20:
			// RFC 8259 section 7: control characters must be escaped.
			s.pos = i
			return dst, false, s.fail(fmt.Sprintf("control character 0x%02x in string", c))
		default:
			i++
		}
	}
	s.pos = i
	return dst, false, s.fail("unterminated string")
}

// readEscape decodes the escape starting at b[i] == '\\' and returns the
// code point and the escape's length, or n == 0 when it is invalid. A
// \uXXXX high surrogate followed by a \uXXXX low surrogate is one code
// point (12 bytes); any other surrogate is returned alone.
func readEscape(b []byte, i int) (r rune, n int) {
	if i+1 >= len(b) {
		return 0, 0
	}
	switch b[i+1] {
	case '"', '\\', '/':
		return rune(b[i+1]), 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r, ok := hex4(b, i+2)
		if !ok {
			return 0, 0
		}
		if 0xd800 <= r && r < 0xdc00 && i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
			if lo, ok := hex4(b, i+8); ok && 0xdc00 <= lo && lo < 0xe000 {
				return utf16.DecodeRune(r, lo), 12
			}
		}
		return r, 6
	}
	return 0, 0
}

func hex4(b []byte, i int) (rune, bool) {
	if len(b)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

const hexDigits = "0123456789abcdef"

// appendCanonicalRune appends a decoded code point in the canonical string
// form described at Canonical.
func appendCanonicalRune(dst []byte, r rune) []byte {
	switch {
	case r == '"':
		return append(dst, '\\', '"')
	case r == '\\':
		return append(dst, '\\', '\\')
	case r < 0x20:
		switch r {
		case '\b':
			return append(dst, '\\', 'b')
		case '\f':
			return append(dst, '\\', 'f')
		case '\n':
			return append(dst, '\\', 'n')
		case '\r':
			return append(dst, '\\', 'r')
		case '\t':
			return append(dst, '\\', 't')
		}
		return append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
	case r < utf8.RuneSelf:
		return append(dst, byte(r))
	case 0xd800 <= r && r < 0xe000:
		// A lone surrogate has no UTF-8 form; keeping the escape keeps it
		// distinct from U+FFFD, which encoding/json would turn it into.
		return append(dst, '\\', 'u', hexDigits[r>>12], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
	}
	return utf8.AppendRune(dst, r)
}

// appendUnescaped appends the unescaped bytes of the raw content of a
// string already validated by str. A lone surrogate becomes its 3-byte WTF-8
// form, which is only used to order and compare keys.
func appendUnescaped(out, raw []byte) []byte {
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			out = append(out, raw[i])
			i++
			continue
		}
		r, n := readEscape(raw, i)
		if n == 0 {
			panic("BUG: appendUnescaped called on an invalid string")
		}
		if 0xd800 <= r && r < 0xe000 {
			out = append(out, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
		} else {
			out = utf8.AppendRune(out, r)
		}
		i += n
	}
	return out
}

func (s *scanner) array(dst []byte) ([]byte, error) {
	if s.depth++; s.depth > maxDepth {
		return dst, s.fail(fmt.Sprintf("nesting deeper than %d", maxDepth))
	}
	s.pos++ // '['
	dst = append(dst, '[')
	s.skipSpace()
	if s.pos < len(s.body) && s.body[s.pos] == ']' {
		s.pos++
		s.depth--
		return append(dst, ']'), nil
	}
	for {
		var err error
		if dst, err = s.value(dst); err != nil {
			return dst, err
		}
		s.skipSpace()
		if s.pos >= len(s.body) {
			return dst, s.unexpected()
		}
		switch s.body[s.pos] {
		case ',':
			s.pos++
			dst = append(dst, ',')
		case ']':
			s.pos++
			s.depth--
			return append(dst, ']'), nil
		default:
			return dst, s.unexpected()
		}
	}
}

func (s *scanner) object(dst []byte) ([]byte, error) {
	if s.depth++; s.depth > maxDepth {
		return dst, s.fail(fmt.Sprintf("nesting deeper than %d", maxDepth))
	}
	selecting := s.depth == 1 && len(s.fields) > 0
	bodyOpen := s.pos
	s.pos++ // '{'
	open := len(dst)
	dst = append(dst, '{')
	base, unescapedBase := len(s.members), len(s.unescaped)
	s.skipSpace()
	if s.pos < len(s.body) && s.body[s.pos] == '}' {
		s.pos++
		s.depth--
		return append(dst, '}'), nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.body) || s.body[s.pos] != '"' {
			if s.pos >= len(s.body) {
				return dst, s.unexpected()
			}
			return dst, s.fail(fmt.Sprintf("unexpected %q, want an object key", s.body[s.pos:s.pos+1]))
		}
		if len(s.members) > base {
			dst = append(dst, ',')
		}
		m := member{start: len(dst)}
		rawStart := s.pos + 1
		var escaped bool
		var err error
		if dst, escaped, err = s.str(dst); err != nil {
			return dst, err
		}
		m.keyStart, m.keyEnd = rawStart, s.pos-1
		if escaped {
			m.keyStart = len(s.unescaped)
			s.unescaped = appendUnescaped(s.unescaped, s.body[rawStart:s.pos-1])
			m.keyEnd = len(s.unescaped)
			m.inUnescaped = true
		}
		s.skipSpace()
		if s.pos >= len(s.body) || s.body[s.pos] != ':' {
			if s.pos >= len(s.body) {
				return dst, s.unexpected()
			}
			return dst, s.fail(fmt.Sprintf("unexpected %q, want ':'", s.body[s.pos:s.pos+1]))
		}
		s.pos++
		dst = append(dst, ':')
		if dst, err = s.value(dst); err != nil {
			return dst, err
		}
		m.end = len(dst)
		m.drop = selecting && !selected(s.fields, s.key(&m))
		s.members = append(s.members, m)
		s.skipSpace()
		if s.pos >= len(s.body) {
			return dst, s.unexpected()
		}
		if s.body[s.pos] == ',' {
			s.pos++
			continue
		}
		if s.body[s.pos] != '}' {
			return dst, s.unexpected()
		}
		s.pos++
		break
	}
	dst, err := s.arrange(dst, open, base, bodyOpen)
	s.members = s.members[:base]
	s.unescaped = s.unescaped[:unescapedBase]
	s.depth--
	return append(dst, '}'), err
}

func selected(fields []string, key []byte) bool {
	for _, f := range fields {
		if f == string(key) {
			return true
		}
	}
	return false
}

// arrange sorts the members of the object whose '{' is dst[open], rejects
// duplicate keys, and rewrites the members in order when they were not
// written in order already or some are dropped.
func (s *scanner) arrange(dst []byte, open, base, bodyOpen int) ([]byte, error) {
	ms := s.members[base:]
	inOrder, dropped := true, false
	for i := range ms {
		dropped = dropped || ms[i].drop
		if i > 0 && bytes.Compare(s.key(&ms[i-1]), s.key(&ms[i])) >= 0 {
			inOrder = false
		}
	}
	if !inOrder {
		// Not stable, which does not matter: equal keys are an error below.
		slices.SortFunc(ms, func(a, b member) int { return bytes.Compare(s.key(&a), s.key(&b)) })
		for i := 1; i < len(ms); i++ {
			if k := s.key(&ms[i]); bytes.Equal(s.key(&ms[i-1]), k) {
				return dst, fmt.Errorf("%w: duplicate key %q in the object at offset %d", ErrBodyInvalid, clip(k), bodyOpen)
			}
		}
	}
	if inOrder && !dropped {
		return dst, nil
	}
	// Write the members in order after the object, then move them over it:
	// dst's spare capacity is the scratch space, so a caller that reuses
	// its buffer pays no allocation here.
	end := len(dst)
	for _, m := range ms {
		if m.drop {
			continue
		}
		if len(dst) > end {
			dst = append(dst, ',')
		}
		dst = append(dst, dst[m.start:m.end]...)
	}
	n := copy(dst[open+1:], dst[end:])
	return dst[:open+1+n], nil
}

// clip shortens a key quoted in an error message, so a hostile body cannot
// turn one error into a megabyte of log.
func clip(key []byte) []byte {
	const max = 64
	if len(key) > max {
		return key[:max]
	}
	return key
}
