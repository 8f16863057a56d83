package dialect

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// -update rewrites the .want files from the translators' output; review
// the diff before committing it.
var update = flag.Bool("update", false, "rewrite testdata/**/*.want.* from the current output")

func readFixture(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("cannot read fixture: %s", err)
	}
	return b
}

// normalize decodes JSON for a comparison that ignores key order and
// spacing; "created" is the translation's clock and compares as 0.
func normalize(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %s: %s", b, err)
	}
	if m, ok := v.(map[string]any); ok {
		if _, ok := m["created"]; ok {
			m["created"] = float64(0)
		}
	}
	return v
}

func pretty(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return b
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

// zeroCreated sets "created" to 0, for want files.
func zeroCreated(b []byte) []byte {
	return createdRE.ReplaceAll(b, []byte(`"created":0`))
}

var createdRE = regexp.MustCompile(`"created":[0-9]+`)

// checkJSONFixture compares got with the .want.json beside in.
func checkJSONFixture(t *testing.T, wantPath string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(wantPath, pretty(zeroCreated(got)), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := readFixture(t, wantPath)
	if g, w := normalize(t, got), normalize(t, want); !reflect.DeepEqual(g, w) {
		var compact bytes.Buffer
		_ = json.Compact(&compact, want)
		t.Fatalf("%s: output differs\ngot:  %s\nwant: %s", wantPath, got, compact.Bytes())
	}
}

// splitEvents splits an SSE fixture into its events (blank-line separated).
func splitEvents(b []byte) [][]byte {
	var out [][]byte
	for _, ev := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n") {
		if ev = strings.Trim(ev, "\n"); ev != "" {
			out = append(out, []byte(ev))
		}
	}
	return out
}

// checkSSEFixture compares the translated events with the .want.sse:
// the same events, their non-data lines equal, their data equal as JSON.
func checkSSEFixture(t *testing.T, wantPath string, got [][]byte) {
	t.Helper()
	if *update {
		var buf bytes.Buffer
		for _, ev := range got {
			name, data := parseEvent(ev)
			if name != "" {
				buf.WriteString("event: " + name + "\n")
			}
			buf.WriteString("data: ")
			buf.Write(zeroCreated(data))
			buf.WriteString("\n\n")
		}
		if err := os.WriteFile(wantPath, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := splitEvents(readFixture(t, wantPath))
	if len(got) != len(want) {
		t.Fatalf("%s: want %d events, got %d:\n%s", wantPath, len(want), len(got), bytes.Join(got, []byte("\n\n")))
	}
	for i := range want {
		gn, gd := parseEvent(got[i])
		wn, wd := parseEvent(want[i])
		if gn != wn || bytes.Count(got[i], []byte("\n")) != bytes.Count(want[i], []byte("\n")) {
			t.Fatalf("%s: event %d: want %q, got %q", wantPath, i, want[i], got[i])
		}
		if bytes.Equal(wd, doneData) || bytes.Equal(gd, doneData) {
			if !bytes.Equal(gd, wd) {
				t.Fatalf("%s: event %d: want %q, got %q", wantPath, i, want[i], got[i])
			}
			continue
		}
		if g, w := normalize(t, gd), normalize(t, wd); !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: event %d differs\ngot:  %s\nwant: %s", wantPath, i, gd, wd)
		}
	}
}

func fixture(dir, name, ext string) string {
	return filepath.Join("testdata", dir, name+ext)
}
