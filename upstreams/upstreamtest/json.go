package upstreamtest

import (
	"strconv"
	"unicode/utf8"
)

// The hot answers (chat and text completions, stream chunks) are built by
// appending to a byte slice rather than through encoding/json, so that a
// benchmark of the gateway measures the gateway and not this fake.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal (RFC 8259, section 7).
// Invalid UTF-8 is replaced with U+FFFD, as encoding/json does.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, s[start:i]...)
				buf = append(buf, `\ufffd`...)
				i += size
				start = i
				continue
			}
			i += size
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// appendUsage appends the chat/completions usage object.
func appendUsage(buf []byte, prompt, completion int) []byte {
	buf = append(buf, `{"prompt_tokens":`...)
	buf = strconv.AppendInt(buf, int64(prompt), 10)
	buf = append(buf, `,"completion_tokens":`...)
	buf = strconv.AppendInt(buf, int64(completion), 10)
	buf = append(buf, `,"total_tokens":`...)
	buf = strconv.AppendInt(buf, int64(prompt+completion), 10)
	return append(buf, '}')
}

// appendError appends an OpenAI error object: {"error":{"message","type","param","code"}}.
func appendError(buf []byte, message, typ, code string) []byte {
	buf = append(buf, `{"error":{"message":`...)
	buf = appendJSONString(buf, message)
	buf = append(buf, `,"type":`...)
	buf = appendJSONString(buf, typ)
	buf = append(buf, `,"param":null,"code":`...)
	buf = appendJSONString(buf, code)
	return append(buf, "}}"...)
}
