package upstreams

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// inspectCases are bodies whose validity Inspect must judge as json.Valid
// does (among JSON objects).
var inspectCases = []string{
	`{}`, ` { } `, `{"model":"m"}`, "\t{\"model\" : \"m\" ,\n\"stream\":true}\r\n",
	`{"model":"m","stream":false,"n":-0.5e+10,"a":[1,2,[3,{"b":null}]],"s":"\u00e9\"\\\/\b\f\n\r\t"}`,
	`{"model":"m",}`, `{"model":"m"`, `{"model" "m"}`, `{"model":'m'}`, `{model:"m"}`,
	`{"model":"m"} x`, `{"model":"m"}{}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":-}`, `{"a":+1}`,
	`{"a":tru}`, `{"a":truex}`, `{"a":nul}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":{"b"}}`, `{"a":{"b":}}`,
	`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12G4"}`, "{\"a\":\"tab\there\"}", "{\"a\":\"nl\nhere\"}",
	`{"a":"` + "\xff\xfe" + `"}`, `{"a":[]}`, `{"a":{}}`, `{"a":[{}]}`, `{"a":"}"}`, `{"a":"\\"}`,
	`{"a":1}  `, `{"a":0}`, `{"a":-0}`, `{"a":1E5}`, `{"a":1.25E-3}`, `{"a":"unterminated}`, `{"a":[1,2}`,
	`{"a":{"b":1]}`, `{"a":1,"a":2}`, `{"":1}`, `{"a":"` + strings.Repeat("x", 5000) + `"}`,
	`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
}

func TestInspectValidatesLikeJSONValid(t *testing.T) {
	for _, body := range inspectCases {
		_, err := Inspect([]byte(body))
		if want := json.Valid([]byte(body)); (err == nil) != want {
			t.Errorf("Inspect(%.80q) error = %v, json.Valid = %t", body, err, want)
		}
	}
}

func TestInspectReadsModelAndStream(t *testing.T) {
	f := func(body string, want Inspection) {
		t.Helper()
		got, err := Inspect([]byte(body))
		if err != nil || got != want {
			t.Fatalf("Inspect(%s) = %+v, %v; want %+v", body, got, err, want)
		}
	}
	f(`{"model":"gpt-4o","stream":true}`, Inspection{Model: "gpt-4o", ModelPresent: true, ModelIsString: true, Stream: true})
	f(`{"stream":false,"messages":[{"model":"no","stream":true}],"model":"a\/b"}`, Inspection{Model: "a/b", ModelPresent: true, ModelIsString: true})
	f(`{"model":7,"stream":"true"}`, Inspection{ModelPresent: true, StreamInvalid: true})
	f(`{"model":"m","stream":1}`, Inspection{Model: "m", ModelPresent: true, ModelIsString: true, StreamInvalid: true})
	f(`{"model":"m","stream":{}}`, Inspection{Model: "m", ModelPresent: true, ModelIsString: true, StreamInvalid: true})
	f(`{"model":"m","stream":false}`, Inspection{Model: "m", ModelPresent: true, ModelIsString: true})
	f(`{"mod\u0065l":"m","stream":null}`, Inspection{Model: "m", ModelPresent: true, ModelIsString: true})
	f(`{"x":1}`, Inspection{})

	for _, dup := range []string{`{"model":"a","model":"b"}`, `{"stream":true,"model":"a","stream":false}`} {
		in, err := Inspect([]byte(dup))
		if !errors.Is(err, ErrDuplicateField) || in.Duplicate == "" {
			t.Fatalf("Inspect(%s) = %+v, %v; want ErrDuplicateField naming the member", dup, in, err)
		}
	}
	for _, notObject := range []string{``, `[]`, `"model"`, `null`, ` 1`} {
		if _, err := Inspect([]byte(notObject)); !errors.Is(err, ErrNotObject) {
			t.Fatalf("Inspect(%q) error = %v, want ErrNotObject", notObject, err)
		}
	}
	deep := `{"a":` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `}`
	if _, err := Inspect([]byte(deep)); err == nil {
		t.Fatal("Inspect of a body nested past maxDepth: want an error")
	}
}

// FuzzInspect holds Inspect to encoding/json: the same validity (for
// objects), and the same model and stream when it accepts.
func FuzzInspect(f *testing.F) {
	for _, c := range inspectCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := Inspect(body)
		switch {
		case errors.Is(err, ErrDuplicateField):
			return
		case errors.Is(err, ErrNotObject):
			var m map[string]json.RawMessage
			if json.Unmarshal(body, &m) == nil && m != nil {
				t.Fatalf("Inspect(%q): ErrNotObject for an object", body)
			}
			return
		case err != nil:
			if json.Valid(body) {
				t.Fatalf("Inspect(%q) = %v, but json.Valid accepts it", body, err)
			}
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("Inspect(%q) accepted what json.Unmarshal refuses: %v", body, err)
		}
		raw, ok := m["model"]
		if ok != in.ModelPresent {
			t.Fatalf("Inspect(%q).ModelPresent = %t, json says %t", body, in.ModelPresent, ok)
		}
		var model string
		isString := ok && json.Unmarshal(raw, &model) == nil && strings.HasPrefix(string(raw), `"`)
		if isString != in.ModelIsString || (isString && utf8.ValidString(model) && utf8.Valid(raw) && model != in.Model) {
			t.Fatalf("Inspect(%q) model = %q (string %t), json says %q (string %t)", body, in.Model, in.ModelIsString, model, isString)
		}
		if stream := string(m["stream"]) == "true"; stream != in.Stream {
			t.Fatalf("Inspect(%q).Stream = %t, json says %t", body, in.Stream, stream)
		}
	})
}
