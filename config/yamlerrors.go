package config

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// yaml.v3 reports some problems without a line, and panics on a few
// malformed documents; these helpers give every problem a line (issue 13,
// found by FuzzParse).

// decodeNode decodes doc into cfg. yaml.v3 panics on some malformed
// documents (a merge key in a mapping that also has a non-scalar key:
// "hash of unhashable type"); a config file must never crash the gateway,
// least of all on a SIGHUP reload, so the panic becomes an error.
func decodeNode(doc *yaml.Node, cfg *Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: cannot decode: %v", r)
		}
	}()
	return doc.Decode(cfg)
}

var selfAliasRe = regexp.MustCompile(`^yaml: anchor '(.*)' value contains itself$`)

// decodeErrorLine returns the line a yaml.v3 Decode error is about: the
// alias of an anchor that contains itself, else the document's start
// (excessive aliasing is about the whole document).
func decodeErrorLine(doc *yaml.Node, err error) int {
	m := selfAliasRe.FindStringSubmatch(err.Error())
	if m == nil {
		return doc.Line
	}
	var find func(n *yaml.Node) int
	find = func(n *yaml.Node) int {
		if n.Kind == yaml.AliasNode {
			if n.Value == m[1] {
				return n.Line
			}
			return 0 // its target is searched where it is defined
		}
		for _, c := range n.Content {
			if line := find(c); line > 0 {
				return line
			}
		}
		return 0
	}
	if line := find(doc); line > 0 {
		return line
	}
	return doc.Line
}

// isReaderError reports an error of yaml.v3's reader (readerc.go), which
// checks the characters of the stream before any parsing.
func isReaderError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "UTF-8") || strings.Contains(msg, "UTF-16") ||
		strings.Contains(msg, "surrogate") || strings.Contains(msg, "control characters") ||
		strings.Contains(msg, "Unicode character")
}

// badCharLine returns the 1-based line of the first character YAML does
// not allow in a stream (YAML 1.2 section 5.1: invalid UTF-8, C0 controls
// other than tab, LF and CR, DEL, C1 controls other than NEL, surrogates,
// U+FFFE and U+FFFF), or 0 when there is none.
func badCharLine(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		printable := r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0x7e) || r == 0x85 ||
			(r >= 0xa0 && r <= 0xd7ff) || (r >= 0xe000 && r <= 0xfffd) || r >= 0x10000
		if !printable || (r == utf8.RuneError && size == 1) {
			return line
		}
		if r == '\n' {
			line++
		}
		i += size
	}
	return 0
}
