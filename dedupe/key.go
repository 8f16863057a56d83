package dedupe

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ErrKeyInvalid is returned by ParseKey, wrapped with a message that says
// what is wrong with the key; the gateway answers it with 400
// idempotency_key_invalid (DESIGN.md section 2).
var ErrKeyInvalid = errors.New("dedupe: invalid idempotency key")

// maxKeyLen is the longest Idempotency-Key accepted, the same bound Stripe
// publishes (reference/idempotency-notes.md).
const maxKeyLen = 255

// derivedPrefix starts every derived key, so a derived key never equals a
// client's own key by accident (a client key of 64 hex digits is plausible).
// A client that retries with the key the gateway echoed, prefix included,
// deliberately reaches the same record; keys are tenant-scoped, so nobody
// else's.
const derivedPrefix = "derived:"

// maxRetryCount caps RetryCount so absurd header values cannot overflow;
// only "zero or not" matters to the caller.
const maxRetryCount = 1 << 20

// ParseKey validates an Idempotency-Key header value and returns the key.
//
// A key is 1 to 255 printable ASCII characters (0x20-0x7E); surrounding
// spaces and tabs are trimmed (RFC 9110 OWS) and a key that is blank after
// trimming is invalid. draft-ietf-httpapi-idempotency-key-header defines the
// header as a Structured-Field String, so a value in double quotes is
// unquoted first following RFC 8941 section 4.2.5: only \" and \\ escapes,
// nothing after the closing quote (parameters are not accepted, the draft
// defines none). Errors wrap ErrKeyInvalid.
func ParseKey(raw []byte) (string, error) {
	raw = trimOWS(raw)
	if len(raw) == 0 {
		return "", fmt.Errorf("%w: empty", ErrKeyInvalid)
	}
	if raw[0] == '"' {
		return parseQuotedKey(raw)
	}
	for i, c := range raw {
		if c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("%w: byte 0x%02x at offset %d is not printable ASCII", ErrKeyInvalid, c, i)
		}
	}
	if err := checkKeyLen(raw); err != nil {
		return "", err
	}
	return string(raw), nil
}

// parseQuotedKey unquotes an RFC 8941 sf-string; raw starts with '"'.
func parseQuotedKey(raw []byte) (string, error) {
	key := make([]byte, 0, len(raw))
	for i := 1; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\\':
			i++
			if i == len(raw) {
				return "", fmt.Errorf("%w: quoted key has no closing quote", ErrKeyInvalid)
			}
			if raw[i] != '"' && raw[i] != '\\' {
				return "", fmt.Errorf("%w: escape \\%c at offset %d in quoted key; only \\\" and \\\\ are allowed (RFC 8941 section 4.2.5)", ErrKeyInvalid, raw[i], i-1)
			}
			key = append(key, raw[i])
		case c == '"':
			if i != len(raw)-1 {
				return "", fmt.Errorf("%w: characters after the closing quote at offset %d", ErrKeyInvalid, i)
			}
			if err := checkKeyLen(key); err != nil {
				return "", err
			}
			return string(key), nil
		case c < 0x20 || c > 0x7e:
			return "", fmt.Errorf("%w: byte 0x%02x at offset %d is not printable ASCII", ErrKeyInvalid, c, i)
		default:
			key = append(key, c)
		}
	}
	return "", fmt.Errorf("%w: quoted key has no closing quote", ErrKeyInvalid)
}

// checkKeyLen checks the length of an unquoted key and that it is not only
// spaces, so `""`, `" "` and an empty header are refused alike.
func checkKeyLen(key []byte) error {
	if len(key) > maxKeyLen {
		return fmt.Errorf("%w: %d characters long, at most %d allowed", ErrKeyInvalid, len(key), maxKeyLen)
	}
	for _, c := range key {
		if c != ' ' {
			return nil
		}
	}
	return fmt.Errorf("%w: empty", ErrKeyInvalid)
}

// trimOWS trims the optional whitespace (SP and HTAB) of RFC 9110 section 5.6.3.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// Fingerprint is the lowercase hex sha256 of a canonical body (see
// Canonical); it is stored with the task so that a key reused with a
// different body is refused with 422.
func Fingerprint(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// DeriveKey derives an idempotency key for a request that did not send one:
// "derived:" followed by the lowercase hex sha256 of
//
//	route + "\n" + bucket + "\n" + canonical
//
// where route is the request path (e.g. "/v1/chat/completions"), canonical
// the canonical body and bucket the decimal number of the window that now
// falls in, counted from the Unix epoch (now.Unix() / window seconds for
// whole-second windows), so the same body sent again in a later window is a
// new generation (DESIGN.md section 2). A window <= 0 means no bucket: the
// bucket is the empty string. The gateway derives keys without a bucket
// and applies derive_window as the answer's age instead
// (BeginRequest.MaxAge), so that no retry falls across a bucket boundary.
func DeriveKey(route string, canonical []byte, window time.Duration, now time.Time) string {
	head := make([]byte, 0, len(route)+22)
	head = append(head, route...)
	head = append(head, '\n')
	if window > 0 {
		// Nanoseconds rather than seconds so that sub-second windows in
		// tests do not divide by zero; for whole-second windows it is the
		// same number as now.Unix() / seconds.
		head = strconv.AppendInt(head, now.UnixNano()/window.Nanoseconds(), 10)
	}
	head = append(head, '\n')
	h := sha256.New()
	h.Write(head)
	h.Write(canonical)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	out := make([]byte, len(derivedPrefix)+hex.EncodedLen(len(sum)))
	copy(out, derivedPrefix)
	hex.Encode(out[len(derivedPrefix):], sum[:])
	return string(out)
}

// HashKey scopes a key to a tenant and hashes it: the lowercase hex
// sha256 of tenant + "\x00" + key. Only this hash is ever stored, so a
// leaked table reveals no client key, and two tenants using the same
// low-entropy key ("1", "retry") never share a record. NUL cannot occur in a
// key (ParseKey refuses it), which keeps the concatenation unambiguous.
func HashKey(tenant, key string) string {
	buf := make([]byte, 0, len(tenant)+1+len(key))
	buf = append(buf, tenant...)
	buf = append(buf, 0)
	buf = append(buf, key...)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}

// RetryCount parses the x-stainless-retry-count header the official OpenAI
// SDKs send (0 on the first try, 1, 2 on retries). A missing, negative or
// otherwise invalid value is 0: a request is only treated as a retry when it
// says so clearly. Values above 1<<20 are clamped to it.
func RetryCount(raw []byte) int {
	raw = trimOWS(raw)
	if len(raw) == 0 {
		return 0
	}
	n := 0
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0
		}
		n = min(n*10+int(c-'0'), maxRetryCount)
	}
	return n
}
