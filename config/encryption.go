package config

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"reflect"

	"gopkg.in/yaml.v3"
)

// EncryptionKeySize is the length of a decoded store.encryption_keys key
// (AES-256).
const EncryptionKeySize = 32

// EncryptionKey is one key of store.encryption_keys: {id, key}, or the
// key alone as a plain string.
type EncryptionKey struct {
	// ID names the key in messages; it is not a secret and not stored.
	ID string `yaml:"id"`
	// Key is the base64 of 32 random bytes (openssl rand -base64 32).
	Key string `yaml:"key"`
}

// Secret returns the decoded key; validation has checked it.
func (k EncryptionKey) Secret() []byte {
	b, _ := base64.StdEncoding.DecodeString(k.Key)
	return b
}

// UnmarshalYAML accepts the key alone as a string, as well as {id, key}.
func (k *EncryptionKey) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&k.Key)
	}
	type plain EncryptionKey
	return n.Decode((*plain)(k))
}

// Name is the key's id, or its place in the list when it has none.
func (k EncryptionKey) Name(i int) string {
	if k.ID != "" {
		return k.ID
	}
	return fmt.Sprintf("store.encryption_keys[%d]", i)
}

var encryptionKeyType = reflect.TypeOf(EncryptionKey{})

// validateEncryptionKeys checks each key's base64 and length, and that no
// id and no key appears twice.
func (c *Config) validateEncryptionKeys(v *validator) {
	ids := map[string]int{}
	secrets := map[[sha256.Size]byte]int{}
	for i, k := range c.Store.EncryptionKeys {
		path := fmt.Sprintf("store.encryption_keys[%d]", i)
		if k.ID != "" {
			if prev, ok := ids[k.ID]; ok {
				v.errorf(path+".id", "duplicate id %q: also store.encryption_keys[%d]", k.ID, prev)
			}
			ids[k.ID] = i
		}
		keyPath := path
		if _, ok := v.lines[path+".key"]; ok {
			keyPath = path + ".key"
		}
		if k.Key == "" {
			v.errorf(keyPath, "must not be empty (is the environment variable set?)")
			continue
		}
		b, err := base64.StdEncoding.DecodeString(k.Key)
		switch {
		case err != nil:
			// Never quote the value: it is a secret.
			v.errorf(keyPath, "must be standard base64 (openssl rand -base64 32): %s", base64Problem(err))
			continue
		case len(b) != EncryptionKeySize:
			v.errorf(keyPath, "must decode to %d bytes, got %d (openssl rand -base64 32)", EncryptionKeySize, len(b))
			continue
		}
		h := sha256.Sum256(b)
		if prev, ok := secrets[h]; ok {
			v.errorf(keyPath, "duplicate key: the same key as store.encryption_keys[%d]", prev)
			continue
		}
		secrets[h] = i
	}
}

// base64Problem describes a decoding error without the input's bytes.
func base64Problem(err error) string {
	if e, ok := err.(base64.CorruptInputError); ok {
		return fmt.Sprintf("invalid character at offset %d", int64(e))
	}
	return "invalid"
}
