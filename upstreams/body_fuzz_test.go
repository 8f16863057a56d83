package upstreams

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzBodyFields checks the byte-level body inspection the gateway routes
// on against encoding/json, which is what the upstreams will read: on a
// valid JSON object, Field finds the member encoding/json finds (or
// refuses a duplicate of it), StringField and BoolField read its value as
// encoding/json does, and ReplaceField, the model rewrite, returns valid
// JSON whose member reads back as the new value with every other member
// untouched. On any input nothing panics.
func FuzzBodyFields(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte, name, value string) {
		s, e, ok, err := Field(body, name)
		str, present, isString, serr := StringField(body, name)
		isTrue, berr := BoolField(body, name)
		newRaw, _ := json.Marshal(value)
		out, rerr := ReplaceField(body, name, newRaw)
		if !json.Valid(body) || strings.ContainsRune(name, utf8.RuneError) {
			// The upstream judges malformed bodies; the gateway must only
			// not crash. encoding/json reads invalid UTF-8 in a key as
			// U+FFFD, so such names cannot be compared.
			return
		}
		members, isObject := topLevelMembers(t, body)
		if !isObject {
			if !errors.Is(err, ErrNotObject) {
				t.Fatalf("Field(%q) on a non-object: %v, want ErrNotObject", body, err)
			}
			return
		}
		raws := members[name]
		if len(raws) > 1 {
			if !errors.Is(err, ErrDuplicateField) || rerr == nil {
				t.Fatalf("Field(%q, %q) with %d members: %v (ReplaceField %v), want ErrDuplicateField", body, name, len(raws), err, rerr)
			}
			return
		}
		if err != nil || serr != nil || berr != nil || rerr != nil {
			t.Fatalf("valid object %q, member %q: Field %v, StringField %v, BoolField %v, ReplaceField %v", body, name, err, serr, berr, rerr)
		}
		if ok != (len(raws) == 1) || present != ok {
			t.Fatalf("Field(%q, %q) ok = %v (StringField present %v), encoding/json finds %d", body, name, ok, present, len(raws))
		}
		if !ok {
			if !bytes.Equal(out, body) {
				t.Fatalf("ReplaceField(%q) without the member changed the body to %q", body, out)
			}
			return
		}
		raw := body[s:e]
		if !bytes.Equal(compact(t, raw), compact(t, raws[0])) {
			t.Fatalf("Field(%q, %q) = %q, encoding/json reads %q", body, name, raw, raws[0])
		}
		if isTrue != bytes.Equal(raw, []byte("true")) {
			t.Fatalf("BoolField(%q, %q) = %v for %q", body, name, isTrue, raw)
		}
		var want any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // 1e309 is valid JSON, but no float64
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("member %q of %q: %v", raw, body, err)
		}
		if ws, wantString := want.(string); isString != wantString {
			t.Fatalf("StringField(%q, %q) isString = %v for %q", body, name, isString, raw)
		} else if wantString && utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u`)) && (serr != nil || str != ws) {
			// encoding/json turns invalid UTF-8 and lone surrogates into
			// U+FFFD; only texts without either must read the same.
			t.Fatalf("StringField(%q, %q) = %q, %v; encoding/json reads %q", body, name, str, serr, ws)
		}

		// The rewrite.
		if !json.Valid(out) {
			t.Fatalf("ReplaceField(%q, %q, %s) = %q is not valid JSON", body, name, newRaw, out)
		}
		var newValue string
		_ = json.Unmarshal(newRaw, &newValue)
		if got, _, isStr, err := StringField(out, name); err != nil || !isStr || got != newValue {
			t.Fatalf("after ReplaceField(%q, %q, %s): StringField = %q, %v, %v; want %q", body, name, newRaw, got, isStr, err, newValue)
		}
		after, _ := topLevelMembers(t, out)
		if len(after) != len(members) {
			t.Fatalf("ReplaceField(%q) = %q changed the members", body, out)
		}
		for k, vs := range members {
			if k == name {
				continue
			}
			if len(after[k]) != len(vs) || !bytes.Equal(after[k][len(vs)-1], vs[len(vs)-1]) {
				t.Fatalf("ReplaceField(%q, %q) = %q changed member %q", body, name, out, k)
			}
		}
	})
}

// topLevelMembers returns the raw values of the top-level object's
// members by decoded name, every occurrence of duplicates included.
func topLevelMembers(t *testing.T, body []byte) (map[string][]json.RawMessage, bool) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // a top-level 1e400 is valid JSON, but no float64
	tok, err := dec.Token()
	if err != nil {
		t.Fatalf("encoding/json cannot read %q: %v", body, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, false
	}
	members := map[string][]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("encoding/json cannot read %q: %v", body, err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("encoding/json cannot read %q: %v", body, err)
		}
		k := tok.(string)
		members[k] = append(members[k], v)
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		t.Fatalf("encoding/json cannot read %q: %v", body, err)
	}
	return members, true
}

func compact(t *testing.T, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("cannot compact %q: %v", raw, err)
	}
	return b.Bytes()
}
