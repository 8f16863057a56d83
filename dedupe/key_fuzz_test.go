package dedupe

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParseKey checks the Idempotency-Key contract of DESIGN.md section 2:
// an accepted key is 1 to 255 printable ASCII characters and not blank, an
// unquoted value is the key itself once its OWS is trimmed, every accepted
// key survives being sent back as an RFC 8941 sf-string, and every refusal
// wraps ErrKeyInvalid. The key is hashed with a NUL separator, so it must
// never hold a NUL.
func FuzzParseKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		key, err := ParseKey(raw)
		if err != nil {
			if !errors.Is(err, ErrKeyInvalid) {
				t.Fatalf("ParseKey(%q): error %v does not wrap ErrKeyInvalid", raw, err)
			}
			if key != "" {
				t.Fatalf("ParseKey(%q) returned %q with its error", raw, key)
			}
			return
		}
		if len(key) < 1 || len(key) > maxKeyLen || strings.Trim(key, " ") == "" {
			t.Fatalf("ParseKey(%q) accepted %q (%d bytes)", raw, key, len(key))
		}
		for i := 0; i < len(key); i++ {
			if key[i] < 0x20 || key[i] > 0x7e {
				t.Fatalf("ParseKey(%q) accepted %q with byte 0x%02x", raw, key, key[i])
			}
		}
		trimmed := bytes.Trim(raw, " \t")
		if trimmed[0] != '"' && key != string(trimmed) {
			t.Fatalf("ParseKey(%q) = %q, want the trimmed value %q", raw, key, trimmed)
		}
		// The sf-string form of the key parses back to it, with or
		// without surrounding OWS.
		quoted := sfString(key)
		for _, v := range []string{quoted, " \t" + quoted + "\t "} {
			back, err := ParseKey([]byte(v))
			if err != nil || back != key {
				t.Fatalf("ParseKey(%q) = %q, %v; want %q back (from raw %q)", v, back, err, key, raw)
			}
		}
		// A key that needs no quoting is accepted bare, as the gateway
		// echoes it in the Idempotency-Key response header.
		if key[0] != '"' && key[0] != ' ' && key[len(key)-1] != ' ' {
			if back, err := ParseKey([]byte(key)); err != nil || back != key {
				t.Fatalf("ParseKey(%q) = %q, %v; the echoed key must parse to itself", key, back, err)
			}
		}
	})
}

// sfString serialises s as an RFC 8941 section 4.1.6 sf-string.
func sfString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// FuzzDeriveKey checks the key derivation on top of Canonical: a derived
// key is "derived:" and 64 lowercase hex digits, so a client that retries
// with the echoed key is accepted by ParseKey; it depends only on the
// route, the canonical body and the window bucket, so any
// re-serialisation of the body (here: its canonical form, and the body
// with its derive_fields selected first) derives the same key; and a
// different route derives a different one.
func FuzzDeriveKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, route string, body []byte, fields string, windowSec uint16, unixSec int64) {
		var sel []string
		if fields != "" {
			sel = strings.Split(fields, ",")
		}
		canon, err := Canonical(nil, body, sel)
		if err != nil {
			if !errors.Is(err, ErrBodyInvalid) {
				t.Fatalf("Canonical(%q): error %v does not wrap ErrBodyInvalid", body, err)
			}
			return
		}
		window := time.Duration(windowSec) * time.Second
		now := time.Unix(unixSec%(1<<40), 0)
		key := DeriveKey(route, canon, window, now)
		if !derivedKeyRe(key) {
			t.Fatalf("DeriveKey = %q, want derived: and 64 lowercase hex digits", key)
		}
		if back, err := ParseKey([]byte(key)); err != nil || back != key {
			t.Fatalf("ParseKey(%q) = %q, %v: an echoed derived key must be accepted", key, back, err)
		}
		if fp := Fingerprint(canon); !isLowerHex(fp, 64) {
			t.Fatalf("Fingerprint = %q", fp)
		}
		// The same request again: its canonical form re-canonicalised,
		// or the whole body canonicalised first and then selected.
		again, err := Canonical(nil, canon, sel)
		if err != nil || DeriveKey(route, again, window, now) != key {
			t.Fatalf("re-canonicalising %q changes the key (%q, %v)", body, again, err)
		}
		whole, err := Canonical(nil, body, nil)
		if err != nil {
			t.Fatalf("Canonical(%q) without fields: %v", body, err)
		}
		if selected, err := Canonical(nil, whole, sel); err != nil || DeriveKey(route, selected, window, now) != key {
			t.Fatalf("selecting %q after canonicalising %q changes the key (%q, %v)", sel, body, selected, err)
		}
		// Within one window bucket the key is stable; without a window
		// it never changes.
		if window == 0 && DeriveKey(route, canon, 0, now.Add(1000*time.Hour)) != key {
			t.Fatal("a key without a window changed with time")
		}
		if DeriveKey(route+"x", canon, window, now) == key {
			t.Fatalf("routes %q and %q derive the same key", route, route+"x")
		}
	})
}

func derivedKeyRe(key string) bool {
	rest, ok := strings.CutPrefix(key, derivedPrefix)
	return ok && isLowerHex(rest, 64)
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}
