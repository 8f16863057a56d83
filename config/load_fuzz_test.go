package config

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// problemRe is the shape of one reported problem: the file, its line when
// the key is in the file, and the key path or the parser's message.
var (
	problemLineRe = regexp.MustCompile(`^fuzz\.yaml:[1-9][0-9]*: `)
	problemNoLine = regexp.MustCompile(`^fuzz\.yaml: [a-z_]+(\.[a-z_0-9]+)*: `)
)

// FuzzParse feeds arbitrary bytes to the config loader: it never panics,
// a config it accepts validates again unchanged, and every problem it
// reports names the file and the line (issue 13). The one exception is a
// required top-level key that is absent from the file, which has no line
// to point at ("fuzz.yaml: routes: at least one route is required").
func FuzzParse(f *testing.F) {
	// The shipped config is the most realistic seed; testdata holds the rest.
	if b, err := os.ReadFile("../gateway.yaml"); err == nil {
		f.Add(b)
	}
	getenv := env("KEY", "sk-1", "URL", "http://127.0.0.1:1/v1", "NL", "a\nb: c", "EMPTY", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data, getenv)
		if err == nil {
			if cfg == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Parse accepted %q but Validate refuses it: %v", data, err)
			}
			_ = cfg.Warnings()
			if _, err := cfg.Redacted(); err != nil {
				t.Fatalf("Parse accepted %q but Redacted fails: %v", data, err)
			}
			return
		}
		for _, e := range leafErrors(err) {
			msg := e.Error()
			if problemLineRe.MatchString(msg) {
				continue
			}
			if problemNoLine.MatchString(msg) && !strings.Contains(msg, "unknown key") && !strings.Contains(msg, "duplicate key") {
				// A missing key: its path is not in the file.
				path := strings.SplitN(strings.TrimPrefix(msg, "fuzz.yaml: "), ":", 2)[0]
				if top, _, _ := strings.Cut(path, "."); !topLevelKeyIn(data, getenv, top) {
					continue
				}
			}
			t.Fatalf("Parse(%q): a problem without a line number: %q", data, msg)
		}
	})
}

// leafErrors flattens errors.Join trees.
func leafErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// topLevelKeyIn reports whether the top-level mapping of the expanded
// file has key: a problem about a key that is in the file must point at
// its line.
func topLevelKeyIn(data []byte, getenv func(string) (string, bool), key string) bool {
	expanded, _, _, err := expandEnv("fuzz.yaml", data, getenv)
	if err != nil {
		return true
	}
	var root yaml.Node
	if yaml.Unmarshal(expanded, &root) != nil || len(root.Content) == 0 {
		return false
	}
	doc := root.Content[0]
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == key {
			return true
		}
	}
	return false
}
