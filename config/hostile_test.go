package config

import (
	"fmt"
	"strings"
	"testing"
)

// Problems yaml.v3 reports without a line still name one (issue 13; found
// by FuzzParse).
func TestParseErrorsWithoutYAMLLine(t *testing.T) {
	f := func(data, want string) {
		t.Helper()
		_, err := Parse("gateway.yaml", []byte(data), env())
		if err == nil || err.Error() != want {
			t.Fatalf("Parse(%q):\n got: %v\nwant: %s", data, err, want)
		}
	}
	// The reader's errors: the line of the offending character.
	f(minimal+"listen: \"\x01\"\n", `gateway.yaml:6: control characters are not allowed`)
	f(minimal+"listen: \xff\n", `gateway.yaml:6: invalid leading UTF-8 octet`)
	f("auth:\x00 {mode: none}\n", `gateway.yaml:1: control characters are not allowed`)
	// A syntax error on the first line, whose 0-based mark yaml.v3 omits.
	f(`"`, `gateway.yaml:1: found unexpected end of stream`)
}

// Merge keys that merge the same mapping twice at every level used to
// make the key walk take exponential time (2^40 visits here), and a
// mapping that merges itself is refused instead of recursing.
func TestParseMergeBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString(minimal + "x0: &a0 {level: info}\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "x%d: &a%d {<<: [*a%d, *a%d]}\n", i, i, i-1, i-1)
	}
	b.WriteString("log: {<<: *a39}\n")
	_, err := Parse("gateway.yaml", []byte(b.String()), env())
	if err == nil || !strings.Contains(err.Error(), "gateway.yaml:6: x0: unknown key") {
		t.Fatalf("merge bomb: %v", err)
	}
	_, err = Parse("gateway.yaml", []byte(minimal+"log: &a {<<: *a}\n"), env())
	if err == nil || !strings.Contains(err.Error(), "gateway.yaml:6: anchor 'a' value contains itself") {
		t.Fatalf("self merge: %v", err)
	}
}

// yaml.v3 panics decoding a mapping with a merge key and a non-scalar key
// (found by FuzzParse); Parse reports the problem instead of crashing the
// gateway on a reload.
func TestParseUnhashableKeyWithMerge(t *testing.T) {
	_, err := Parse("gateway.yaml", []byte(minimal+"log: {<<, [], level: info}\n"), env())
	if err == nil || !strings.Contains(err.Error(), "gateway.yaml:6: log: keys must be strings, got a list") {
		t.Fatalf("err = %v", err)
	}
}
