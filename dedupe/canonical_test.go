package dedupe

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got, err := Canonical(nil, []byte(in), nil)
		if err != nil {
			t.Fatalf("Canonical(%q): unexpected error: %v", in, err)
		}
		if string(got) != want {
			t.Fatalf("Canonical(%q)\n got %s\nwant %s", in, got, want)
		}
		// Canonical is idempotent.
		again, err := Canonical(nil, got, nil)
		if err != nil || string(again) != want {
			t.Fatalf("Canonical(Canonical(%q)) = %s, %v; want %s", in, again, err, want)
		}
	}
	// Scalars.
	f(`null`, `null`)
	f(` true `, `true`)
	f("\t\r\nfalse\n", `false`)
	f(`"s"`, `"s"`)
	f(`0`, `0`)

	// Key order and whitespace.
	f(`{"b":1,"a":2}`, `{"a":2,"b":1}`)
	f(`{ "model" : "gpt-4o" , "messages" : [ ] , "temperature" : 0.2 }`, `{"messages":[],"model":"gpt-4o","temperature":0.2}`)
	f(`{"a":1,"B":2,"_":3,"aa":4,"":5}`, `{"":5,"B":2,"_":3,"a":1,"aa":4}`)
	f(`{}`, `{}`)
	f(`{ }`, `{}`)
	f(`[ ]`, `[]`)
	f(`[{}, [], {"a":[]}]`, `[{},[],{"a":[]}]`)

	// Nested objects are sorted at every level; arrays keep their order.
	f(`{"z":{"y":1,"x":{"d":[3,2,1],"c":null}},"a":[{"k":2,"j":1},"b","a"]}`,
		`{"a":[{"j":1,"k":2},"b","a"],"z":{"x":{"c":null,"d":[3,2,1]},"y":1}}`)
	f(`{"messages":[{"role":"user","content":"hi"},{"role":"system","content":"be brief"}]}`,
		`{"messages":[{"content":"hi","role":"user"},{"content":"be brief","role":"system"}]}`)

	// Numbers are kept exactly as written.
	f(`{"a":1.0}`, `{"a":1.0}`)
	f(`{"a":1e10}`, `{"a":1e10}`)
	f(`[1E+2, 1e-2, -0, -0.0, 0.5e007]`, `[1E+2,1e-2,-0,-0.0,0.5e007]`)
	f(`{"seed":12345678901234567890}`, `{"seed":12345678901234567890}`)
	f(`9007199254740993`, `9007199254740993`) // 2^53+1, lost in float64

	// Strings: one normal form.
	f(`"\u003c\u003e\u0026"`, `"<>&"`)
	f(`"<>&"`, `"<>&"`)
	f(`"\u00e9\u4e16\ud83d\ude00"`, `"é世😀"`)
	f(`"é世😀"`, `"é世😀"`)
	f(`"\/\u002F/"`, `"///"`)
	f(`"\"\\\u0022\u005c"`, `"\"\\\"\\"`)
	f(`"\u0008\u000c\u000a\u000d\u0009"`, `"\b\f\n\r\t"`)
	f(`"\b\f\n\r\t"`, `"\b\f\n\r\t"`)
	f(`"\u0000\u001F\u001b"`, `"\u0000\u001f\u001b"`)
	f(`"\u007f\u2028"`, "\"\x7f\u2028\"")
	f(`"\u0041\u00410"`, `"AA0"`)
	// Lone surrogates stay escaped (lowercase), distinct from U+FFFD.
	f(`"\uD800"`, `"\ud800"`)
	f(`"\uDC00\uD800x"`, `"\udc00\ud800x"`)
	f(`"\ud800\ud800\udc00"`, `"\ud800𐀀"`)
	f(`"\ud800\u0041"`, `"\ud800A"`)
	f(`"\ufffd"`, `"�"`)
	// Invalid UTF-8 is kept verbatim (RFC 8259 only says SHOULD).
	f("\"\xff\xfe\"", "\"\xff\xfe\"")

	// Keys are sorted by their unescaped bytes and re-encoded like values.
	f(`{"\u0062":1,"a":2}`, `{"a":2,"b":1}`)
	f(`{"b":1,"\n":2,"A":3}`, `{"\n":2,"A":3,"b":1}`) // 0x0a sorts first though `\n` encodes as 0x5c
	f(`{"é":1,"z":2,"\u00e8":3}`, `{"z":2,"è":3,"é":1}`)

	fErr := func(in, why string) {
		t.Helper()
		dst := []byte("prefix")
		got, err := Canonical(dst, []byte(in), nil)
		if err == nil {
			t.Fatalf("Canonical(%q) = %s, want an error", in, got)
		}
		if !errors.Is(err, ErrBodyInvalid) {
			t.Fatalf("Canonical(%q): error %v does not wrap ErrBodyInvalid", in, err)
		}
		if !strings.Contains(err.Error(), why) {
			t.Fatalf("Canonical(%q): error %q does not say %q", in, err, why)
		}
		if string(got) != "prefix" {
			t.Fatalf("Canonical(%q) returned dst %q on error, want it unchanged", in, got)
		}
	}
	// Duplicate keys, including ones that only collide once unescaped.
	fErr(`{"a":1,"a":2}`, `duplicate key "a" in the object at offset 0`)
	fErr(`{"a":1,"b":2,"a":1}`, `duplicate key "a"`)
	fErr(`{"a":1,"\u0061":2}`, `duplicate key "a"`)
	fErr(`[0,{"x":{"k":1,"k":1}}]`, `duplicate key "k" in the object at offset 8`)
	fErr(`{"`+strings.Repeat("k", 100)+`":1,"`+strings.Repeat("k", 100)+`":2}`, `duplicate key "`+strings.Repeat("k", 64)+`" in`)

	// Invalid JSON.
	fErr(``, "unexpected end of input at offset 0")
	fErr(`   `, "unexpected end of input")
	fErr(`{"a":1} x`, "trailing data after the JSON value at offset 8")
	fErr(`{"a":1}{}`, "trailing data")
	fErr(`1 2`, "trailing data")
	fErr(`{`, "unexpected end of input")
	fErr(`{"a"`, "unexpected end of input")
	fErr(`{"a":`, "unexpected end of input")
	fErr(`{"a":1`, "unexpected end of input")
	fErr(`{"a":1,}`, `unexpected "}", want an object key`)
	fErr(`{a:1}`, `unexpected "a", want an object key`)
	fErr(`{'a':1}`, `want an object key`)
	fErr(`{"a" 1}`, `unexpected "1", want ':'`)
	fErr(`{"a":1 "b":2}`, `unexpected "\""`)
	fErr(`{1:1}`, "want an object key")
	fErr(`[1,]`, `unexpected "]"`)
	fErr(`[1 2]`, `unexpected "2"`)
	fErr(`[`, "unexpected end of input")
	fErr(`]`, `unexpected "]"`)
	fErr(`[1}`, `unexpected "}"`)
	fErr(`{"a":1]`, `unexpected "]"`)
	fErr(`tru`, "invalid literal, want true")
	fErr(`True`, `unexpected "T"`)
	fErr(`nul`, "want null")
	fErr(`falsey`, "trailing data")
	fErr(`[nulll]`, `unexpected "l"`)
	fErr(`undefined`, `unexpected "u"`)
	fErr(`NaN`, `unexpected "N"`)
	fErr(`01`, "trailing data after the JSON value at offset 1")
	fErr(`[01]`, `unexpected "1"`)
	fErr(`-`, "invalid number: want a digit at offset 1")
	fErr(`-a`, "invalid number")
	fErr(`+1`, `unexpected "+"`)
	fErr(`.5`, `unexpected "."`)
	fErr(`1.`, "want a digit after '.'")
	fErr(`1.e5`, "want a digit after '.'")
	fErr(`1e`, "want a digit in the exponent")
	fErr(`1e+`, "want a digit in the exponent")
	fErr(`0x10`, "trailing data")
	fErr(`"abc`, "unterminated string at offset 4")
	fErr(`"abc\`, "invalid escape")
	fErr(`"\x41"`, "invalid escape in string at offset 1")
	fErr(`"\a"`, "invalid escape")
	fErr(`"\u12"`, "invalid escape")
	fErr(`"\u12G4"`, "invalid escape")
	fErr(`"\U0041"`, "invalid escape")
	fErr(`"\ud800\uZZZZ"`, "invalid escape in string at offset 7")
	fErr("\"a\nb\"", "control character 0x0a in string at offset 2")
	fErr("\"a\tb\"", "control character 0x09")
	fErr("\"\x00\"", "control character 0x00")
	fErr("{\"a\x01\":1}", "control character 0x01")
	fErr("\xef\xbb\xbf{}", `unexpected "\xef"`) // a BOM is not JSON (RFC 8259 section 8.1)
	fErr("{}\x00", "trailing data")
	fErr("[1,\v2]", `unexpected "\v"`) // only four whitespace bytes exist
	fErr(strings.Repeat("[", maxDepth+1)+strings.Repeat("]", maxDepth+1), "nesting deeper than 10000")
	fErr(strings.Repeat(`{"a":`, maxDepth+1)+"1"+strings.Repeat("}", maxDepth+1), "nesting deeper than 10000")

	// The deepest nesting encoding/json accepts is accepted too.
	deep := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	f(" "+deep, deep)
}

func TestCanonicalAppends(t *testing.T) {
	dst := make([]byte, 0, 64)
	dst = append(dst, "x="...)
	got, err := Canonical(dst, []byte(`{"b":[1, 2],"a":{"d":0,"c":1}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `x={"a":{"c":1,"d":0},"b":[1,2]}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	// Reusing the returned buffer gives the same bytes (nothing is left
	// over from the scratch space used for reordering).
	got2, err := Canonical(got[:2], []byte(`{"b":[1, 2],"a":{"d":0,"c":1}}`), nil)
	if err != nil || string(got2) != string(got) {
		t.Fatalf("second call: %s, %v", got2, err)
	}
}

func TestCanonicalFields(t *testing.T) {
	fields := []string{"model", "messages", "temperature"}
	f := func(in, want string) {
		t.Helper()
		got, err := Canonical(nil, []byte(in), fields)
		if err != nil {
			t.Fatalf("Canonical(%q, %q): unexpected error: %v", in, fields, err)
		}
		if string(got) != want {
			t.Fatalf("Canonical(%q, %q)\n got %s\nwant %s", in, fields, got, want)
		}
	}
	f(`{"user":"u1","model":"m","temperature":0.7,"messages":[{"role":"user","content":"x"}],"stream":true}`,
		`{"messages":[{"content":"x","role":"user"}],"model":"m","temperature":0.7}`)
	// Keys are matched unescaped.
	f(`{"\u006dodel":"m","metadata":{"a":1}}`, `{"model":"m"}`)
	// Only top-level members are filtered.
	f(`{"messages":[{"model":"x","name":"n"}],"n":2}`, `{"messages":[{"model":"x","name":"n"}]}`)
	f(`{"a":1,"b":2}`, `{}`)
	f(`{}`, `{}`)
	// A top level that is not an object is kept whole.
	f(`[{"a":1,"model":"m"}]`, `[{"a":1,"model":"m"}]`)
	f(`"model"`, `"model"`)
	// Already in order with a member dropped in the middle.
	f(`{"messages":[],"metadata":{},"model":"m"}`, `{"messages":[],"model":"m"}`)

	fErr := func(in, why string) {
		t.Helper()
		_, err := Canonical(nil, []byte(in), fields)
		if !errors.Is(err, ErrBodyInvalid) || !strings.Contains(err.Error(), why) {
			t.Fatalf("Canonical(%q, %q): error %v, want one saying %q", in, fields, err, why)
		}
	}
	// Members that are dropped are still validated.
	fErr(`{"model":"m","other":[1,]}`, `unexpected "]"`)
	fErr(`{"model":"m","other":1,"other":2}`, `duplicate key "other"`)
	fErr(`{"model":"m","x":{"y":1,"y":2}}`, `duplicate key "y"`)

	// Without fields the same bodies are kept whole.
	got, err := Canonical(nil, []byte(`{"user":"u1","model":"m"}`), nil)
	if err != nil || string(got) != `{"model":"m","user":"u1"}` {
		t.Fatalf("without fields: %s, %v", got, err)
	}
}

// TestCanonicalEquivalentBodies checks that bodies an OpenAI client could
// send for the same request, written differently, share one canonical form
// and so one derived key; and that bodies that differ do not.
func TestCanonicalEquivalentBodies(t *testing.T) {
	same := func(a, b string) {
		t.Helper()
		ca, err := Canonical(nil, []byte(a), nil)
		if err != nil {
			t.Fatalf("Canonical(%q): %v", a, err)
		}
		cb, err := Canonical(nil, []byte(b), nil)
		if err != nil {
			t.Fatalf("Canonical(%q): %v", b, err)
		}
		if string(ca) != string(cb) {
			t.Fatalf("%q and %q canonicalize differently:\n%s\n%s", a, b, ca, cb)
		}
	}
	differ := func(a, b string) {
		t.Helper()
		ca, _ := Canonical(nil, []byte(a), nil)
		cb, _ := Canonical(nil, []byte(b), nil)
		if string(ca) == string(cb) {
			t.Fatalf("%q and %q canonicalize the same: %s", a, b, ca)
		}
	}
	same(`{"model":"gpt-4o","messages":[{"role":"user","content":"<b>&</b>"}]}`,
		"{\n  \"messages\": [\n    {\n      \"content\": \"\\u003cb\\u003e\\u0026\\u003c/b\\u003e\",\n      \"role\": \"user\"\n    }\n  ],\n  \"model\": \"gpt-4o\"\n}\n")
	same(`{"content":"naïve café"}`, `{"content":"na\u00efve caf\u00e9"}`)
	same(`{"content":"😀"}`, `{"content":"\uD83D\uDE00"}`)
	same(`{"a":"x/y"}`, `{"a":"x\/y"}`)

	differ(`{"temperature":1}`, `{"temperature":1.0}`)
	differ(`{"seed":12345678901234567890}`, `{"seed":12345678901234567891}`)
	differ(`{"a":[1,2]}`, `{"a":[2,1]}`)
	differ(`{"a":"\ud800"}`, `{"a":"\ufffd"}`)
	differ("{\"a\":\"\u00e9\"}", "{\"a\":\"e\u0301\"}") // NFC vs NFD: Unicode is not normalised
	differ(`{"a":null}`, `{}`)
}

// TestCanonicalDeepReorder covers objects reordered at every level of a deep
// nesting, the case that made an earlier, move-the-output-at-each-level
// version quadratic (a 1 MB body took 11 s); each byte is now written once.
func TestCanonicalDeepReorder(t *testing.T) {
	const depth = 2000
	big := strings.Repeat("x", 1<<16)
	in := strings.Repeat(`{"b":`, depth) + `"` + big + `"` + strings.Repeat(` , "a" : 1 }`, depth)
	want := strings.Repeat(`{"a":1,"b":`, depth) + `"` + big + `"` + strings.Repeat(`}`, depth)
	got, err := Canonical(nil, []byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("deeply reordered body canonicalized wrongly (got %d bytes, want %d)", len(got), len(want))
	}
}
