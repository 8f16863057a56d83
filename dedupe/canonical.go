package dedupe

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
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
// There is no document tree. A first pass validates the body and records,
// for each object only, its members (offsets into the body) in sorted
// order; a second pass writes the output, following that order inside
// objects and the body's order everywhere else. Each byte is written once,
// so the cost stays linear however deeply reordered objects are nested
// (moving output around at each level would be quadratic in the depth).
func Canonical(dst, body []byte, fields []string) ([]byte, error) {
	if len(body) > math.MaxInt32 {
		// Offsets are int32 to halve the bookkeeping; request bodies are
		// limited to megabytes long before this.
		return dst, fmt.Errorf("%w: body of %d bytes is too large", ErrBodyInvalid, len(body))
	}
	// Sized for a typical chat request so that the slices are allocated
	// once, not grown a dozen times; all three hold no pointers.
	p := parser{
		body:    body,
		fields:  fields,
		open:    make([]openMember, 0, 32),
		objects: make([]object, 0, 32),
		sorted:  make([]member, 0, 64),
	}
	if err := p.value(); err != nil {
		return dst, err
	}
	p.skipSpace()
	if p.pos < len(body) {
		return dst, p.fail("trailing data after the JSON value")
	}
	w := writer{body: body, objects: p.objects, members: p.sorted}
	dst, _ = w.value(dst, 0)
	return dst, nil
}

// parser is the first pass of Canonical: strict validation, and the sorted
// member order of every object.
type parser struct {
	body   []byte
	pos    int
	depth  int
	fields []string
	// open is a stack shared by the objects being parsed: each object owns
	// open[base:] while it is open and pops them when it closes.
	open []openMember
	// unescaped holds the unescaped form of keys that had escapes (rare),
	// used for sorting; a stack like open.
	unescaped []byte
	// objects lists every object in the order of its '{' in the body, so
	// the second pass finds one by binary search.
	objects []object
	// sorted holds the kept members of every object in canonical order;
	// an object owns sorted[first:first+n].
	sorted []member
}

// object is an object of the body.
type object struct {
	open, end int32 // offsets of its '{' and just after its '}'
	first, n  int32 // its members in parser.sorted
}

// member is an object member as the second pass needs it. It holds
// offsets, not slices, so sorting moves no pointers and the arrays cost
// the garbage collector nothing to scan.
type member struct {
	keyStart, keyEnd int32 // raw key, between its quotes
	value            int32 // offset of the value
	escaped          bool  // the raw key has escapes to re-encode
}

// openMember is a member of an object still being parsed.
type openMember struct {
	member
	// sortStart and sortEnd delimit the unescaped key: in the body (the
	// raw key itself) when it had no escapes, in parser.unescaped otherwise.
	sortStart, sortEnd int32
	// drop marks a top-level member that fields did not select.
	drop bool
}

func (p *parser) sortKey(m *openMember) []byte {
	if m.escaped {
		return p.unescaped[m.sortStart:m.sortEnd]
	}
	return p.body[m.sortStart:m.sortEnd]
}

func (p *parser) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrBodyInvalid, what, p.pos)
}

func (p *parser) unexpected() error {
	if p.pos >= len(p.body) {
		return p.fail("unexpected end of input")
	}
	return p.fail(fmt.Sprintf("unexpected %q", p.body[p.pos:p.pos+1]))
}

func (p *parser) skipSpace() {
	p.pos = skipSpace(p.body, p.pos)
}

// skipSpace skips the four whitespace bytes of RFC 8259 section 2.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func (p *parser) value() error {
	p.skipSpace()
	if p.pos >= len(p.body) {
		return p.unexpected()
	}
	switch c := p.body[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		_, err := p.str()
		return err
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c == '-' || isDigit(c):
		return p.number()
	}
	return p.unexpected()
}

func (p *parser) literal(lit string) error {
	if len(p.body)-p.pos < len(lit) || string(p.body[p.pos:p.pos+len(lit)]) != lit {
		return p.fail("invalid literal, want " + lit)
	}
	p.pos += len(lit)
	return nil
}

// number checks the grammar of RFC 8259 section 6. What may follow a
// number is the caller's business, so "01" fails there, on the '1'.
func (p *parser) number() error {
	b := p.body
	i := p.pos
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		p.pos = i
		return p.fail("invalid number: want a digit")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i == len(b) || !isDigit(b[i]) {
			p.pos = i
			return p.fail("invalid number: want a digit after '.'")
		}
		i = skipDigits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i == len(b) || !isDigit(b[i]) {
			p.pos = i
			return p.fail("invalid number: want a digit in the exponent")
		}
		i = skipDigits(b, i)
	}
	p.pos = i
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// str validates the string at p.pos and reports whether it has escapes.
func (p *parser) str() (escaped bool, err error) {
	b := p.body
	for i := p.pos + 1; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			p.pos = i + 1
			return escaped, nil
		case c == '\\':
			_, n := readEscape(b, i)
			if n == 0 {
				p.pos = i
				return false, p.fail("invalid escape in string")
			}
			i += n
			escaped = true
		case c < 0x20:
			// RFC 8259 section 7: control characters must be escaped.
			p.pos = i
			return false, p.fail(fmt.Sprintf("control character 0x%02x in string", c))
		default:
			i++
		}
	}
	p.pos = len(b)
	return false, p.fail("unterminated string")
}

func (p *parser) array() error {
	if p.depth++; p.depth > maxDepth {
		return p.fail(fmt.Sprintf("nesting deeper than %d", maxDepth))
	}
	p.pos++ // '['
	p.skipSpace()
	if p.pos < len(p.body) && p.body[p.pos] == ']' {
		p.pos++
		p.depth--
		return nil
	}
	for {
		if err := p.value(); err != nil {
			return err
		}
		p.skipSpace()
		if p.pos >= len(p.body) {
			return p.unexpected()
		}
		switch p.body[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			p.depth--
			return nil
		default:
			return p.unexpected()
		}
	}
}

func (p *parser) object() error {
	if p.depth++; p.depth > maxDepth {
		return p.fail(fmt.Sprintf("nesting deeper than %d", maxDepth))
	}
	selecting := p.depth == 1 && len(p.fields) > 0
	idx := len(p.objects)
	p.objects = append(p.objects, object{open: int32(p.pos)})
	p.pos++ // '{'
	base, unescapedBase := len(p.open), len(p.unescaped)
	p.skipSpace()
	if p.pos < len(p.body) && p.body[p.pos] == '}' {
		p.pos++
	} else {
		if err := p.members(selecting); err != nil {
			return err
		}
	}
	if err := p.arrange(idx, base); err != nil {
		return err
	}
	p.objects[idx].end = int32(p.pos)
	p.open = p.open[:base]
	p.unescaped = p.unescaped[:unescapedBase]
	p.depth--
	return nil
}

// members parses the members of a non-empty object, up to its '}'.
func (p *parser) members(selecting bool) error {
	for {
		p.skipSpace()
		if p.pos >= len(p.body) {
			return p.unexpected()
		}
		if p.body[p.pos] != '"' {
			return p.fail(fmt.Sprintf("unexpected %q, want an object key", p.body[p.pos:p.pos+1]))
		}
		var m openMember
		m.keyStart = int32(p.pos + 1)
		escaped, err := p.str()
		if err != nil {
			return err
		}
		m.keyEnd = int32(p.pos - 1)
		m.escaped = escaped
		m.sortStart, m.sortEnd = m.keyStart, m.keyEnd
		if escaped {
			m.sortStart = int32(len(p.unescaped))
			p.unescaped = appendUnescaped(p.unescaped, p.body[m.keyStart:m.keyEnd])
			m.sortEnd = int32(len(p.unescaped))
		}
		p.skipSpace()
		if p.pos >= len(p.body) {
			return p.unexpected()
		}
		if p.body[p.pos] != ':' {
			return p.fail(fmt.Sprintf("unexpected %q, want ':'", p.body[p.pos:p.pos+1]))
		}
		p.pos++
		p.skipSpace()
		m.value = int32(p.pos)
		if err := p.value(); err != nil {
			return err
		}
		m.drop = selecting && !selected(p.fields, p.sortKey(&m))
		p.open = append(p.open, m)
		p.skipSpace()
		if p.pos >= len(p.body) {
			return p.unexpected()
		}
		switch p.body[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return nil
		default:
			return p.unexpected()
		}
	}
}

func selected(fields []string, key []byte) bool {
	for _, f := range fields {
		if f == string(key) {
			return true
		}
	}
	return false
}

// arrange sorts the members of object idx (open[base:]), rejects duplicate
// keys, and records the kept members in p.sorted.
func (p *parser) arrange(idx, base int) error {
	ms := p.open[base:]
	inOrder := true
	for i := 1; i < len(ms) && inOrder; i++ {
		inOrder = bytes.Compare(p.sortKey(&ms[i-1]), p.sortKey(&ms[i])) < 0
	}
	if !inOrder {
		// Not stable, which does not matter: equal keys are an error below.
		slices.SortFunc(ms, func(a, b openMember) int { return bytes.Compare(p.sortKey(&a), p.sortKey(&b)) })
		for i := 1; i < len(ms); i++ {
			if k := p.sortKey(&ms[i]); bytes.Equal(p.sortKey(&ms[i-1]), k) {
				return fmt.Errorf("%w: duplicate key %q in the object at offset %d", ErrBodyInvalid, clip(k), p.objects[idx].open)
			}
		}
	}
	o := &p.objects[idx]
	o.first = int32(len(p.sorted))
	for i := range ms {
		if !ms[i].drop {
			p.sorted = append(p.sorted, ms[i].member)
		}
	}
	o.n = int32(len(p.sorted)) - o.first
	return nil
}

// clip shortens a key quoted in an error message, so a hostile body cannot
// turn one error into a megabyte of log.
func clip(key []byte) []byte {
	const maxShown = 64
	if len(key) > maxShown {
		return key[:maxShown]
	}
	return key
}

// writer is the second pass of Canonical. The body is known to be valid,
// so it only looks for where tokens end.
type writer struct {
	body    []byte
	objects []object
	members []member
}

// value appends the canonical form of the value at pos (whitespace allowed
// before it) and returns the offset just after the value.
func (w *writer) value(dst []byte, pos int) ([]byte, int) {
	b := w.body
	pos = skipSpace(b, pos)
	switch b[pos] {
	case '{':
		i, found := slices.BinarySearchFunc(w.objects, int32(pos), func(o object, pos int32) int { return cmp.Compare(o.open, pos) })
		if !found {
			panic("BUG: the first pass did not record an object")
		}
		o := w.objects[i]
		dst = append(dst, '{')
		for j, m := range w.members[o.first : o.first+o.n] {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, b[m.keyStart:m.keyEnd], m.escaped)
			dst = append(dst, ':')
			dst, _ = w.value(dst, int(m.value))
		}
		return append(dst, '}'), int(o.end)
	case '[':
		dst = append(dst, '[')
		pos = skipSpace(b, pos+1)
		if b[pos] == ']' {
			return append(dst, ']'), pos + 1
		}
		for {
			dst, pos = w.value(dst, pos)
			pos = skipSpace(b, pos)
			if b[pos] == ']' {
				return append(dst, ']'), pos + 1
			}
			dst = append(dst, ',')
			pos++ // ','
		}
	case '"':
		end, escaped := stringEnd(b, pos)
		return appendString(dst, b[pos+1:end-1], escaped), end
	case 't', 'n':
		return append(dst, b[pos:pos+4]...), pos + 4
	case 'f':
		return append(dst, b[pos:pos+5]...), pos + 5
	}
	end := pos + 1
	for end < len(b) && (isDigit(b[end]) || b[end] == '.' || b[end] == 'e' || b[end] == 'E' || b[end] == '+' || b[end] == '-') {
		end++
	}
	return append(dst, b[pos:end]...), end
}

// stringEnd returns the offset after the closing quote of the valid string
// at pos, and whether it has escapes. Long prompts are the bulk of a
// request, so it jumps from quote to quote with bytes.IndexByte.
func stringEnd(b []byte, pos int) (end int, escaped bool) {
	for i := pos + 1; ; {
		q := i + bytes.IndexByte(b[i:], '"')
		bs := bytes.IndexByte(b[i:q], '\\')
		if bs < 0 {
			return q + 1, escaped
		}
		// Skip the backslash and the byte after it, which may be a quote;
		// the rest of a \uXXXX escape is hex digits.
		escaped = true
		i += bs + 2
	}
}

// appendString appends the canonical form of a valid string's raw content.
func appendString(dst, raw []byte, escaped bool) []byte {
	dst = append(dst, '"')
	if !escaped {
		// Raw bytes need no escape in the canonical form: the first pass
		// refused raw control characters, and '"' and '\' cannot occur raw.
		dst = append(dst, raw...)
		return append(dst, '"')
	}
	run := 0
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			i++
			continue
		}
		dst = append(dst, raw[run:i]...)
		r, n := readEscape(raw, i)
		if n == 0 {
			panic("BUG: appendString called on an invalid string")
		}
		dst = appendCanonicalRune(dst, r)
		i += n
		run = i
	}
	dst = append(dst, raw[run:]...)
	return append(dst, '"')
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
// string already validated. A lone surrogate becomes its 3-byte WTF-8 form,
// which is only used to order and compare keys.
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
