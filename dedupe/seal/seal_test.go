package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func testKey(t testing.TB, name string) Key {
	t.Helper()
	k := Key{Name: name, Secret: make([]byte, KeySize)}
	if _, err := rand.Read(k.Secret); err != nil {
		t.Fatal(err)
	}
	return k
}

func testRing(t testing.TB, keys ...Key) *Keyring {
	t.Helper()
	k, err := NewKeyring(keys)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k1 := testKey(t, "k1")
	ring := testRing(t, k1)
	plain := []byte(`{"id":"chatcmpl-1","choices":[{"message":{"content":"secret answer"}}]}`)
	ad := Binding("record", "tenant-a", "hash-1")
	sealed := ring.Seal(nil, plain, ad)
	if !IsSealed(sealed) || len(sealed) != len(plain)+Overhead {
		t.Fatalf("sealed value: sealed=%v len %d, want %d", IsSealed(sealed), len(sealed), len(plain)+Overhead)
	}
	if bytes.Contains(sealed, []byte("secret answer")) {
		t.Fatal("the sealed value contains the plaintext")
	}
	if id, _ := KeyOf(sealed); id != IDOf(k1.Secret) {
		t.Fatalf("key id %s, want %s", id, IDOf(k1.Secret))
	}
	got, err := ring.Open(sealed, ad)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v; want the plaintext", got, err)
	}
	// Two seals of one value differ (a fresh nonce each).
	if bytes.Equal(sealed, ring.Seal(nil, plain, ad)) {
		t.Fatal("two seals of the same value are equal: the nonce repeats")
	}
	// Sealing appends to dst.
	if out := ring.Seal([]byte("pre"), plain, ad); !bytes.HasPrefix(out, []byte("pre")) || !IsSealed(out[3:]) {
		t.Fatalf("Seal did not append to dst: %q", out[:8])
	}
}

func TestOpenRefuses(t *testing.T) {
	k1, k2 := testKey(t, "k1"), testKey(t, "k2")
	ring := testRing(t, k1)
	ad := Binding("record", "tenant-a", "hash-1")
	sealed := ring.Seal(nil, []byte("the answer"), ad)

	f := func(name string, k *Keyring, value, ad []byte, want error) {
		t.Helper()
		if _, err := k.Open(value, ad); !errors.Is(err, want) {
			t.Errorf("%s: Open error %v, want %v", name, err, want)
		}
	}
	f("another tenant", ring, sealed, Binding("record", "tenant-b", "hash-1"), ErrCorrupt)
	f("another key hash", ring, sealed, Binding("record", "tenant-a", "hash-2"), ErrCorrupt)
	f("another kind of value", ring, sealed, Binding("live", "tenant-a", "hash-1"), ErrCorrupt)
	// Length prefixes: moving a byte between parts changes the binding.
	f("parts shifted", ring, sealed, Binding("record", "tenant-ah", "ash-1"), ErrCorrupt)
	f("a key that did not seal it", testRing(t, k2), sealed, ad, ErrUnknownKey)
	f("no keys", nil, sealed, ad, ErrUnknownKey)
	f("truncated", ring, sealed[:len(sealed)-1], ad, ErrCorrupt)
	f("too short for a header", ring, sealed[:Overhead-1], ad, ErrCorrupt)
	for _, i := range []int{len(magic) + 1, headerSize - 1, headerSize, len(sealed) - 1} {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		want := ErrCorrupt
		if i < len(magic)+1+idSize {
			want = ErrUnknownKey // the key id changed
		}
		f("byte flipped", ring, bad, ad, want)
	}
	// A key with the same id cannot exist, but one swapped into the ring
	// under the same name must not open either.
	f("same name, other key", testRing(t, Key{Name: "k1", Secret: k2.Secret}), sealed, ad, ErrUnknownKey)
}

func TestRotation(t *testing.T) {
	k1, k2 := testKey(t, "k1"), testKey(t, "k2")
	ad := Binding("record", "t", "h")
	old := testRing(t, k1).Seal(nil, []byte("written with k1"), ad)
	rotated := testRing(t, k2, k1)
	if got, err := rotated.Open(old, ad); err != nil || string(got) != "written with k1" {
		t.Fatalf("[k2, k1] opens a k1 value: %q, %v", got, err)
	}
	fresh := rotated.Seal(nil, []byte("new"), ad)
	if id, _ := KeyOf(fresh); id != IDOf(k2.Secret) {
		t.Fatalf("[k2, k1] seals with key id %s, want k2's %s", id, IDOf(k2.Secret))
	}
	if name, id, ok := rotated.WriteKey(); !ok || name != "k2" || id != IDOf(k2.Secret) {
		t.Fatalf("WriteKey = %q %s %v", name, id, ok)
	}
}

func TestPlaintextIsNotSealed(t *testing.T) {
	for _, v := range []string{``, `{}`, `{"id":"x"}`, "data: {}\n\n", ": ping\n\n", "event: message_start\n", "\x00gw", strings.Repeat("x", 100)} {
		if IsSealed([]byte(v)) {
			t.Errorf("IsSealed(%q) = true", v)
		}
	}
}

func TestNewKeyringRefuses(t *testing.T) {
	k1 := testKey(t, "k1")
	if _, err := NewKeyring([]Key{{Name: "short", Secret: make([]byte, 16)}}); err == nil || !strings.Contains(err.Error(), "want 32 bytes, got 16") {
		t.Errorf("16-byte key: %v", err)
	}
	if _, err := NewKeyring([]Key{k1, {Name: "again", Secret: k1.Secret}}); err == nil || !strings.Contains(err.Error(), `same key as "k1"`) {
		t.Errorf("repeated key: %v", err)
	}
	var none *Keyring
	if none.Enabled() || testRing(t).Enabled() {
		t.Error("an empty keyring is enabled")
	}
	if _, _, ok := none.WriteKey(); ok {
		t.Error("a nil keyring has a write key")
	}
}

func TestDescribeHidesSecrets(t *testing.T) {
	k1 := testKey(t, "k1")
	d := strings.Join(testRing(t, k1).Describe(), " ")
	if !strings.Contains(d, `"k1" (key id `+IDOf(k1.Secret).String()+`)`) {
		t.Fatalf("Describe = %s", d)
	}
	for _, enc := range []string{string(k1.Secret), base64.StdEncoding.EncodeToString(k1.Secret), hex.EncodeToString(k1.Secret)} {
		if strings.Contains(d, enc) {
			t.Fatalf("Describe shows key bytes: %s", d)
		}
	}
}
