package dedupe

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCanonicalDeterministic checks the properties derived keys rely on:
// Canonical is exactly as strict as encoding/json apart from refusing
// duplicate keys, its output is valid JSON and a fixed point, and any
// re-serialization of the same value (other key order, other whitespace,
// other escapes) has the same canonical form.
func FuzzCanonicalDeterministic(f *testing.F) {
	for _, seed := range []string{
		`{"model":"gpt-4o","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Hi <b>&</b>"}],"temperature":0.2,"seed":12345678901234567890,"stream":false}`,
		`{"b":1,"a":{"d":[3,2,1],"c":null},"":true}`,
		`[1.0, 1e10, -0, 0.5E-7, 12345678901234567890, 1E+2]`,
		`"\u003c\u003e\u0026 \/ \" \\ \b\f\n\r\t \u0000\u001f \u00e9 \ud83d\ude00"`,
		`{"\u0062":1,"a":2,"\n":3,"é":4}`,
		`"\ud800 \udc00\ud800 \ud800\u0041 \ud800\ud800\udc00"`,
		"\"\xff\xfe invalid utf-8\"",
		`{"a":1,"a":2}`,
		`{"a":1,"\u0061":2}`,
		`{"a":[1,],}`,
		`01`,
		`{"a":1} x`,
		" \t\r\n{ \"k\" : [ true , false , null ] } \n",
		`[[[[[[[[{}]]]]]]]]`,
		`{"messages":[{"content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}],"role":"user"}],"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"integer"}}}}}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		canon, err := Canonical(nil, body, nil)
		valid := json.Valid(body)
		if err != nil {
			if !errors.Is(err, ErrBodyInvalid) {
				t.Fatalf("error %v does not wrap ErrBodyInvalid", err)
			}
			if valid && !strings.Contains(err.Error(), "duplicate key") {
				t.Fatalf("Canonical rejects %q, which encoding/json accepts: %v", body, err)
			}
			return
		}
		if !valid {
			t.Fatalf("Canonical accepts %q, which encoding/json rejects", body)
		}
		// (a) The canonical form is JSON.
		if !json.Valid(canon) {
			t.Fatalf("Canonical(%q) = %q is not valid JSON", body, canon)
		}
		// (b) It is a fixed point.
		again, err := Canonical(nil, canon, nil)
		if err != nil {
			t.Fatalf("Canonical(Canonical(%q)): %v", body, err)
		}
		if !bytes.Equal(again, canon) {
			t.Fatalf("Canonical is not idempotent on %q:\n%q\n%q", body, canon, again)
		}
		// Selecting fields gives valid JSON and a fixed point too.
		sel, err := Canonical(nil, body, []string{"model", "messages", "a", ""})
		if err != nil {
			t.Fatalf("Canonical(%q) with fields: %v", body, err)
		}
		if selAgain, err := Canonical(nil, sel, nil); err != nil || !bytes.Equal(selAgain, sel) || !json.Valid(sel) {
			t.Fatalf("Canonical(%q) with fields = %q, not a canonical fixed point (%q, %v)", body, sel, selAgain, err)
		}

		// (c) Re-serializations through encoding/json. Skipped when a
		// string holds invalid UTF-8 or a lone surrogate: encoding/json
		// turns those into U+FFFD, which Canonical deliberately does not.
		// Success above already means there are no duplicate keys.
		if !utf8.Valid(canon) || bytes.Contains(canon, []byte(`\ud`)) {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("encoding/json cannot decode %q: %v", body, err)
		}
		var reversed bytes.Buffer
		writeReversed(t, &reversed, v)
		others := [][]byte{reversed.Bytes()}
		// Indented output grows with the square of the depth (10000 levels
		// make 100 MB), which would stall the fuzzer; shallow values suffice.
		if depthOf(v) <= 100 {
			var indented bytes.Buffer
			enc := json.NewEncoder(&indented)
			enc.SetEscapeHTML(false)
			enc.SetIndent(" ", "\t")
			if err := enc.Encode(v); err != nil {
				t.Fatalf("encoding/json cannot encode %q: %v", body, err)
			}
			others = append(others, indented.Bytes())
		}
		for _, other := range others {
			got, err := Canonical(nil, other, nil)
			if err != nil {
				t.Fatalf("Canonical(%q), a re-serialization of %q: %v", other, body, err)
			}
			if !bytes.Equal(got, canon) {
				t.Fatalf("re-serialization changes the canonical form\n input %q\n other %q\n   got %q\n  want %q", body, other, got, canon)
			}
		}
	})
}

// writeReversed serializes a value decoded by encoding/json (with UseNumber)
// with object keys in descending order, spaces everywhere and HTML-escaped
// strings (json.Marshal's default), i.e. as differently from the canonical
// form as still means the same.
func writeReversed(t *testing.T, buf *bytes.Buffer, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		slices.Reverse(keys)
		buf.WriteString("{ ")
		for i, k := range keys {
			if i > 0 {
				buf.WriteString(" , ")
			}
			writeMarshaled(t, buf, k)
			buf.WriteString(" : ")
			writeReversed(t, buf, v[k])
		}
		buf.WriteString(" }")
	case []any:
		buf.WriteString("[ ")
		for i, e := range v {
			if i > 0 {
				buf.WriteString(" , ")
			}
			writeReversed(t, buf, e)
		}
		buf.WriteString(" ]")
	case json.Number:
		buf.WriteString(v.String())
	default: // string, bool, nil
		writeMarshaled(t, buf, v)
	}
}

func writeMarshaled(t *testing.T, buf *bytes.Buffer, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("cannot marshal %v: %v", v, err)
	}
	buf.Write(b)
}

// depthOf returns the nesting depth of a value decoded by encoding/json.
func depthOf(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			d = max(d, depthOf(e))
		}
	case []any:
		for _, e := range v {
			d = max(d, depthOf(e))
		}
	default:
		return 0
	}
	return d + 1
}
