// Package seal is encryption at rest for the record store and the live
// streams in Redis (issue 13, store.encryption_keys): AES-256-GCM from the
// standard library, one random nonce per value, and associated data that
// binds each sealed value to where it belongs, so a value copied to
// another row or stream does not open.
//
// A sealed value is
//
//	magic "\x00gw" | version 1 | key id (8 bytes) | nonce (12) | ciphertext | tag (16)
//
// The magic starts with a NUL byte, which no JSON body or SSE transcript
// starts with, so values written before encryption was turned on are told
// apart and read as they are. The header is authenticated with the value.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// KeySize is the length of an AES-256 key.
const KeySize = 32

// Layout of a sealed value.
const (
	magic      = "\x00gw"
	version    = 1
	idSize     = 8
	nonceSize  = 12
	headerSize = len(magic) + 1 + idSize + nonceSize
	// Overhead is how many bytes sealing adds to a value.
	Overhead = headerSize + 16
)

// Errors of Open.
var (
	// ErrUnknownKey: the value was sealed with a key the keyring does not
	// hold (or the keyring is empty).
	ErrUnknownKey = errors.New("seal: sealed with a key that is not configured")
	// ErrCorrupt: the value does not open with its key and associated
	// data: it was altered, copied from elsewhere, or is truncated.
	ErrCorrupt = errors.New("seal: value does not open (altered, truncated or moved)")
)

// Key is one configured key.
type Key struct {
	// Name is the operator's name for the key (store.encryption_keys[].id),
	// for messages; values carry the key's ID instead, so a rename breaks
	// nothing.
	Name   string
	Secret []byte
}

// ID is a key's identifier in sealed values: the first 8 bytes of an
// HMAC-SHA256 of a fixed label under the key itself, which says nothing
// about the key.
type ID [idSize]byte

// String is the ID in hex, safe to log.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IDOf computes the ID of a secret.
func IDOf(secret []byte) ID {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("idemgw seal key id"))
	var id ID
	copy(id[:], m.Sum(nil))
	return id
}

type entry struct {
	name string
	id   ID
	aead cipher.AEAD
}

// Keyring seals with its first key and opens with any of them. A nil or
// empty Keyring seals nothing (Enabled is false) and opens nothing, so a
// sealed value is an error instead of garbage. It is safe for concurrent
// use.
type Keyring struct {
	keys []entry
}

// NewKeyring builds a keyring; the first key seals.
func NewKeyring(keys []Key) (*Keyring, error) {
	k := &Keyring{}
	seen := map[ID]string{}
	for i, key := range keys {
		if len(key.Secret) != KeySize {
			return nil, fmt.Errorf("cannot use encryption key %d (%q): want %d bytes, got %d", i, key.Name, KeySize, len(key.Secret))
		}
		id := IDOf(key.Secret)
		if prev, ok := seen[id]; ok {
			return nil, fmt.Errorf("cannot use encryption key %d (%q): same key as %q", i, key.Name, prev)
		}
		seen[id] = key.Name
		block, err := aes.NewCipher(key.Secret)
		if err != nil {
			return nil, fmt.Errorf("cannot use encryption key %q: %w", key.Name, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("cannot use encryption key %q: %w", key.Name, err)
		}
		k.keys = append(k.keys, entry{name: key.Name, id: id, aead: aead})
	}
	return k, nil
}

// Enabled reports whether the keyring has a key to seal with.
func (k *Keyring) Enabled() bool { return k != nil && len(k.keys) > 0 }

// WriteKey returns the name and ID of the key that seals; ok is false
// when there is none.
func (k *Keyring) WriteKey() (name string, id ID, ok bool) {
	if !k.Enabled() {
		return "", ID{}, false
	}
	return k.keys[0].name, k.keys[0].id, true
}

// Has returns the name of the key with this ID, if the keyring holds it.
func (k *Keyring) Has(id ID) (name string, ok bool) {
	if e := k.find(id); e != nil {
		return e.name, true
	}
	return "", false
}

func (k *Keyring) find(id ID) *entry {
	if k == nil {
		return nil
	}
	for i := range k.keys {
		if k.keys[i].id == id {
			return &k.keys[i]
		}
	}
	return nil
}

// IsSealed reports whether b has the header of a sealed value.
func IsSealed(b []byte) bool {
	return len(b) >= Overhead && string(b[:len(magic)]) == magic && b[len(magic)] == version
}

// KeyOf returns the ID of the key a sealed value was sealed with.
func KeyOf(sealed []byte) (ID, bool) {
	if !IsSealed(sealed) {
		return ID{}, false
	}
	var id ID
	copy(id[:], sealed[len(magic)+1:])
	return id, true
}

// Seal appends to dst the value sealed with the write key, bound to ad
// (which the opener must pass again). It panics without a write key:
// callers check Enabled.
func (k *Keyring) Seal(dst, plaintext, ad []byte) []byte {
	if !k.Enabled() {
		panic("BUG: seal without an encryption key")
	}
	e := &k.keys[0]
	start := len(dst)
	dst = append(dst, magic...)
	dst = append(dst, version)
	dst = append(dst, e.id[:]...)
	var nonce [nonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	dst = append(dst, nonce[:]...)
	header := dst[start:]
	return e.aead.Seal(dst, nonce[:], plaintext, additional(header, ad))
}

// Open returns the plaintext of a sealed value (a new slice), or
// ErrUnknownKey or ErrCorrupt. ad must be what Seal was given.
func (k *Keyring) Open(sealed, ad []byte) ([]byte, error) {
	id, ok := KeyOf(sealed)
	if !ok {
		return nil, ErrCorrupt
	}
	e := k.find(id)
	if e == nil {
		return nil, fmt.Errorf("%w (key id %s)", ErrUnknownKey, id)
	}
	header := sealed[:headerSize]
	nonce := header[headerSize-nonceSize:]
	out, err := e.aead.Open(nil, nonce, sealed[headerSize:], additional(header, ad))
	if err != nil {
		return nil, fmt.Errorf("%w (key %q)", ErrCorrupt, e.name)
	}
	return out, nil
}

// additional is the GCM associated data: the header, so that the key id
// and version cannot be swapped, then the caller's binding.
func additional(header, ad []byte) []byte {
	return bytes.Join([][]byte{header, ad}, nil)
}

// Binding builds associated data from a label naming the kind of value
// and the parts that say where it belongs (a tenant and key hash, a
// stream name), each length-prefixed so that no two lists of parts give
// the same bytes.
func Binding(label string, parts ...string) []byte {
	n := len(label)
	for _, p := range parts {
		n += 4 + len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, label...)
	for _, p := range parts {
		b = append(b, byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p)))
		b = append(b, p...)
	}
	return b
}

// Describe names the keys with their IDs, write key first, for messages.
func (k *Keyring) Describe() []string {
	if k == nil {
		return nil
	}
	out := make([]string, len(k.keys))
	for i, e := range k.keys {
		out[i] = fmt.Sprintf("%q (key id %s)", e.name, e.id)
	}
	return out
}
