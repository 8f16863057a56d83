package config

import (
	"bytes"
	"strings"
	"testing"
)

// Two valid keys (base64 of 32 bytes) and invalid ones.
const (
	testEncKey1 = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
	testEncKey2 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	testEncKey3 = "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	testEncBad  = "not*base64!"
	testEncShrt = "AAECAwQFBgcICQoLDA0ODw==" // 16 bytes
)

func TestEncryptionKeys(t *testing.T) {
	parse := func(store string, kv ...string) (*Config, error) {
		t.Helper()
		return Parse("gateway.yaml", []byte(minimal+store), env(kv...))
	}
	ok := func(store string, wantIDs []string, wantSecrets ...[]byte) {
		t.Helper()
		cfg, err := parse(store, "K1", testEncKey1, "K2", testEncKey2)
		if err != nil {
			t.Fatalf("Parse(%q): %v", store, err)
		}
		ks := cfg.Store.EncryptionKeys
		if len(ks) != len(wantIDs) {
			t.Fatalf("Parse(%q): %d keys, want %d", store, len(ks), len(wantIDs))
		}
		for i, k := range ks {
			if k.Name(i) != wantIDs[i] || !bytes.Equal(k.Secret(), wantSecrets[i]) {
				t.Fatalf("Parse(%q): key %d = %q, %x", store, i, k.Name(i), k.Secret())
			}
		}
	}
	k1 := []byte{0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x90}
	k2 := make([]byte, 32)
	for i := range k2 {
		k2[i] = byte(i)
	}
	ok("", nil)
	ok("store:\n  encryption_keys:\n    - id: k2\n      key: ${K2}\n    - id: k1\n      key: ${K1}\n", []string{"k2", "k1"}, k2, k1)
	// The key alone, as DESIGN.md writes it: named by its place.
	ok("store: {encryption_keys: [\"${K1}\"]}\n", []string{"store.encryption_keys[0]"}, k1)
	ok("store:\n  encryption_keys:\n    - ${K2}\n    - {id: old, key: \"${K1}\"}\n", []string{"store.encryption_keys[0]", "old"}, k2, k1)

	bad := func(store, want string) {
		t.Helper()
		_, err := parse(store, "K1", testEncKey1, "K2", testEncKey2, "BAD", testEncBad, "SHORT", testEncShrt)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Parse(%q):\n got: %v\nwant: %s", store, err, want)
		}
		for _, secret := range []string{testEncKey1, testEncKey2, testEncBad, testEncShrt} {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("Parse(%q): the error shows a key: %v", store, err)
			}
		}
	}
	bad("store:\n  encryption_keys:\n    - id: k1\n      key: ${BAD}\n",
		`gateway.yaml:9: store.encryption_keys[0].key: must be standard base64 (openssl rand -base64 32): invalid character at offset 3`)
	bad("store:\n  encryption_keys:\n    - id: k1\n      key: ${SHORT}\n",
		`gateway.yaml:9: store.encryption_keys[0].key: must decode to 32 bytes, got 16`)
	bad("store:\n  encryption_keys:\n    - ${SHORT}\n",
		`gateway.yaml:8: store.encryption_keys[0]: must decode to 32 bytes, got 16`)
	bad("store:\n  encryption_keys:\n    - id: k1\n      key: ${UNSET}\n",
		`gateway.yaml:9: store.encryption_keys[0].key: must not be empty (is the environment variable set?)`)
	bad("store:\n  encryption_keys:\n    - {id: k1, key: \"${K1}\"}\n    - {id: k1, key: \"${K2}\"}\n",
		`gateway.yaml:9: store.encryption_keys[1].id: duplicate id "k1": also store.encryption_keys[0]`)
	bad("store:\n  encryption_keys:\n    - {id: new, key: \"${K1}\"}\n    - {id: old, key: \"${K1}\"}\n",
		`gateway.yaml:9: store.encryption_keys[1].key: duplicate key: the same key as store.encryption_keys[0]`)
	bad("store:\n  encryption_keys:\n    - {id: k1, secret: \"${K1}\"}\n",
		`gateway.yaml:8: store.encryption_keys[0].secret: unknown key`)
	bad("store:\n  encryption_keys: \"${K1}\"\n",
		`gateway.yaml:7: store.encryption_keys: expected a list, got a string (not shown: it may be a key)`)
	bad("store:\n  encryption_keys:\n    - [a]\n",
		`gateway.yaml:8: store.encryption_keys[0]: expected a mapping`)
	// Every problem at once.
	_, err := parse("store:\n  encryption_keys:\n    - ${BAD}\n    - ${SHORT}\n", "BAD", testEncBad, "SHORT", testEncShrt)
	if err == nil || !strings.Contains(err.Error(), "gateway.yaml:8:") || !strings.Contains(err.Error(), "gateway.yaml:9:") {
		t.Fatalf("two bad keys: %v", err)
	}
}

func TestEncryptionKeysAreSecrets(t *testing.T) {
	cfg, err := Parse("gateway.yaml", []byte(minimal+"store:\n  encryption_keys:\n    - {id: k2, key: \""+testEncKey2+"\"}\n    - "+testEncKey1+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewScrubber(cfg.Secrets())
	line := "cannot open with " + testEncKey2 + " or " + testEncKey1
	if got := s.String(line); strings.Contains(got, testEncKey1) || strings.Contains(got, testEncKey2) {
		t.Fatalf("the scrubber leaves a key: %s", got)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), testEncKey1) || strings.Contains(string(out), testEncKey2) || !strings.Contains(string(out), "id: k2") || strings.Count(string(out), "key: <redacted>") != 2 {
		t.Fatalf("gateway check prints:\n%s", out)
	}
	// A rotation is a restart, and the reload names the key, not its value.
	next, err := Parse("gateway.yaml", []byte(minimal+"store:\n  encryption_keys:\n    - "+testEncKey3+"\n    - "+testEncKey2+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := RestartOnlyChanges(cfg, next); len(got) != 1 || got[0] != "store.encryption_keys" {
		t.Fatalf("RestartOnlyChanges = %v", got)
	}
}
