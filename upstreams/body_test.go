package upstreams

import (
	"errors"
	"testing"
)

func TestFieldFindsTopLevelMembers(t *testing.T) {
	tests := []struct {
		name, body, field, want string
		ok                      bool
	}{
		{"first", `{"model":"a","x":1}`, "model", `"a"`, true},
		{"last", `{"x":1,"model":"a"}`, "model", `"a"`, true},
		{"spaces", " \n{ \"x\" : [1, 2] ,\t\"model\"\r\n:\n \"a\" }\n", "model", `"a"`, true},
		{"absent", `{"x":1}`, "model", "", false},
		{"empty object", `{}`, "model", "", false},
		{"empty object spaced", ` { } `, "model", "", false},
		{"nested not top level", `{"a":{"model":"no"},"b":[{"model":"no"}]}`, "model", "", false},
		{"nested before", `{"a":{"model":"no","c":[1,{"d":"}]"}]},"model":"yes"}`, "model", `"yes"`, true},
		{"brackets in strings", `{"a":"}{][","model":"m"}`, "model", `"m"`, true},
		{"escaped quote in string", `{"a":"x\"y","model":"m\"n"}`, "model", `"m\"n"`, true},
		{"escaped backslash before quote", `{"a":"x\\","model":"m"}`, "model", `"m"`, true},
		{"escaped key", `{"mod\u0065l":"m"}`, "model", `"m"`, true},
		{"escaped key slash", `{"a\/b":1}`, "a/b", `1`, true},
		{"key with quote", `{"a\"b":true}`, `a"b`, `true`, true},
		{"object value", `{"model":{"x":[1,2,{"y":"}"}]}}`, "model", `{"x":[1,2,{"y":"}"}]}`, true},
		{"array value", `{"model":[1,[2,[3]]]}`, "model", `[1,[2,[3]]]`, true},
		{"number", `{"model":-1.5e3}`, "model", `-1.5e3`, true},
		{"literal", `{"stream":true}`, "stream", `true`, true},
		{"null", `{"stream":null }`, "stream", `null`, true},
		{"prefix key is other key", `{"models":1,"model":2}`, "model", `2`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, e, ok, err := Field([]byte(tt.body), tt.field)
			if err != nil {
				t.Fatalf("Field(%s) error: %v", tt.body, err)
			}
			if ok != tt.ok {
				t.Fatalf("Field(%s) ok = %v, want %v", tt.body, ok, tt.ok)
			}
			if ok && tt.body[s:e] != tt.want {
				t.Fatalf("Field(%s) = %q, want %q", tt.body, tt.body[s:e], tt.want)
			}
		})
	}
}

func TestFieldRejectsMalformedInput(t *testing.T) {
	bodies := []string{
		``,
		`   `,
		`[]`,
		`"model"`,
		`null`,
		`{`,
		`{"model"`,
		`{"model":`,
		`{"model": }`,
		`{"model":"a`,
		`{"model":"a\`,
		`{"x":{"model":"a"}`,
		`{"x":[1,2}`,
		`{model:"a"}`,
		`{"x" 1,"model":"a"}`,
		`{"x":1 "model":"a"}`,
		`{"x":1,}`,
		`{"x":1,"model":"a",`,
		`{"x":"unterminated,"model":"a"}`,
	}
	for _, b := range bodies {
		if _, _, ok, err := Field([]byte(b), "model"); err == nil {
			t.Errorf("Field(%q) = ok %v, nil error; want an error", b, ok)
		}
	}
	if _, _, _, err := Field([]byte(`[{"model":"a"}]`), "model"); !errors.Is(err, ErrNotObject) {
		t.Errorf("Field(array) error = %v, want ErrNotObject", err)
	}
}

// A duplicate of the routed member must not pass: encoding/json (and
// most upstreams) take the last one, the gateway would route on the first.
func TestFieldRejectsDuplicateMember(t *testing.T) {
	for _, b := range []string{
		`{"model":"cheap","model":"expensive"}`,
		`{"model":"cheap","x":1,"mod\u0065l":"expensive"}`,
	} {
		if _, _, _, err := Field([]byte(b), "model"); !errors.Is(err, ErrDuplicateField) {
			t.Errorf("Field(%s) error = %v, want ErrDuplicateField", b, err)
		}
		if _, err := ReplaceField([]byte(b), "model", []byte(`"t"`)); err == nil {
			t.Errorf("ReplaceField(%s) accepted a duplicate model", b)
		}
	}
	// Duplicates of other members are the upstream's business.
	if _, _, ok, err := Field([]byte(`{"x":1,"x":2,"model":"m"}`), "model"); err != nil || !ok {
		t.Errorf("Field with a duplicate other member: ok %v, err %v", ok, err)
	}
}

func TestStringField(t *testing.T) {
	tests := []struct {
		body              string
		want              string
		present, isString bool
	}{
		{`{"model":"gpt-4o"}`, "gpt-4o", true, true},
		{`{"model":"google\/gemini-2.0-flash"}`, "google/gemini-2.0-flash", true, true},
		{`{"model":"caf\u00e9"}`, "café", true, true},
		{`{"model":"\ud83d\ude00"}`, "\U0001F600", true, true},
		{`{"model":"a\"b\\c"}`, `a"b\c`, true, true},
		{`{"model":""}`, "", true, true},
		{`{"model":5}`, "", true, false},
		{`{"model":null}`, "", true, false},
		{`{"model":["a"]}`, "", true, false},
		{`{"messages":[]}`, "", false, false},
	}
	for _, tt := range tests {
		v, present, isString, err := StringField([]byte(tt.body), "model")
		if err != nil {
			t.Errorf("StringField(%s) error: %v", tt.body, err)
			continue
		}
		if v != tt.want || present != tt.present || isString != tt.isString {
			t.Errorf("StringField(%s) = %q, %v, %v; want %q, %v, %v", tt.body, v, present, isString, tt.want, tt.present, tt.isString)
		}
	}
	// Go escapes that JSON does not have are malformed input, not a model name.
	for _, b := range []string{`{"model":"\x41"}`, `{"model":"\a"}`, `{"model":"\u12"}`} {
		if v, _, _, err := StringField([]byte(b), "model"); err == nil {
			t.Errorf("StringField(%s) = %q, nil error; want an error", b, v)
		}
	}
}

func TestBoolField(t *testing.T) {
	for body, want := range map[string]bool{
		`{"stream":true}`:       true,
		`{"stream": true }`:     true,
		`{"stream":false}`:      false,
		`{"stream":"true"}`:     false,
		`{"stream":1}`:          false,
		`{"model":"m"}`:         false,
		`{"a":{"stream":true}}`: false,
	} {
		got, err := BoolField([]byte(body), "stream")
		if err != nil || got != want {
			t.Errorf("BoolField(%s) = %v, %v; want %v", body, got, err, want)
		}
	}
	if _, err := BoolField([]byte(`{"stream":tru`), "stream"); err == nil {
		t.Error("BoolField on a truncated body: no error")
	}
}

func TestReplaceFieldKeepsOtherBytes(t *testing.T) {
	tests := []struct{ body, value, want string }{
		{`{"model":"a","x":1}`, `"b"`, `{"model":"b","x":1}`},
		{"{ \"x\" : [1, {\"model\":\"n\"}] ,\n  \"model\" :  \"alias\"  , \"t\":0.50}", `"real/model"`,
			"{ \"x\" : [1, {\"model\":\"n\"}] ,\n  \"model\" :  \"real/model\"  , \"t\":0.50}"},
		{`{"model":{"nested":"obj"},"y":"model"}`, `"s"`, `{"model":"s","y":"model"}`},
		{`{"mod\u0065l":"a"}`, `"b"`, `{"mod\u0065l":"b"}`},
		{`{"x":1}`, `"b"`, `{"x":1}`},
	}
	for _, tt := range tests {
		in := []byte(tt.body)
		orig := string(in)
		got, err := ReplaceField(in, "model", []byte(tt.value))
		if err != nil {
			t.Errorf("ReplaceField(%s) error: %v", tt.body, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("ReplaceField(%s) = %s, want %s", tt.body, got, tt.want)
		}
		if string(in) != orig {
			t.Errorf("ReplaceField modified its input: %s", in)
		}
	}
	if _, err := ReplaceField([]byte(`{"model":"a"`), "model", []byte(`"b"`)); err == nil {
		t.Error("ReplaceField on a truncated body: no error")
	}
}
