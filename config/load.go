package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Defaults applied to zero values (see the field comments in config.go).
const (
	DefaultListen            = "127.0.0.1:8080"
	DefaultMaxBodyBytes      = 8 << 20
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultAuthMode          = AuthKeys
	DefaultStoreKind         = StoreEmbedded
	DefaultStorePath         = "./data/gateway.db"
	DefaultStoreMigrate      = MigrateAuto
	DefaultLockKind          = LockLocal
	DefaultRedisAddr         = "127.0.0.1:6379"
	DefaultRedisKeyPrefix    = "gw:"
	DefaultDerive            = DeriveBody
	DefaultDeriveWindow      = 10 * time.Minute
	DefaultKeyTTL            = 24 * time.Hour
	DefaultLease             = 30 * time.Second
	DefaultMaxProcessing     = 10 * time.Minute
	DefaultOnInProgress      = InProgressWait
	DefaultWaitTimeout       = 120 * time.Second
	DefaultOnStoreError      = StoreErrorFail
	DefaultMaxRecordBytes    = 4 << 20
	DefaultReapInterval      = time.Minute
	DefaultReapBatch         = 500
	DefaultLogLevel          = LogInfo
	DefaultLogFormat         = LogJSON
	DefaultProviderKind      = ProviderOpenAI
	DefaultOnStreamCut       = StreamCutError
	DefaultAnthropicVersion  = "2023-06-01"
	DefaultMaxTokens         = 4096
	DefaultTimeout           = 60 * time.Second
	DefaultFirstByteTimeout  = 30 * time.Second
	DefaultMaxConns          = 512
)

// Load reads, expands, decodes, defaults and validates the config file at path.
// The environment is the process environment.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read config %q: %w", path, err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse turns the YAML in data into a validated Config. name is the file name
// used in error messages and stored in Config.Path. getenv looks up variables
// for ${VAR} expansion; nil means an empty environment.
//
// All problems are returned at once (joined with errors.Join), each naming
// the file, line and key path.
func Parse(name string, data []byte, getenv func(string) (string, bool)) (*Config, error) {
	if getenv == nil {
		getenv = func(string) (string, bool) { return "", false }
	}
	expanded, lines, unset, err := expandEnv(name, data, getenv)
	if err != nil {
		return nil, err
	}
	d := &decoder{file: name, lines: lines, index: map[string]int{}, present: map[string]bool{}, bad: map[string]bool{}}
	cfg, err := d.decode(expanded)
	if err != nil {
		return nil, err
	}
	cfg.Path = name
	cfg.lines = d.index
	cfg.envWarnings = d.unsetWarnings(unset)
	cfg.applyDefaults(func(path string) bool { return d.present[path] })
	// Key and type errors are reported together with the validation errors,
	// so that one run shows every problem of the file.
	v := &validator{file: name, lines: d.index, problems: d.problems, bad: d.bad}
	cfg.validate(v)
	if err := v.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// unsetWarnings names each unset ${VAR} with its line and the key it is
// in: the closest key or list item before it on its line. Without one (a
// multi-line value), the line alone.
func (d *decoder) unsetWarnings(unset []unsetVar) []string {
	var w []string
	for _, u := range unset {
		path := ""
		best := keyPos{}
		for _, k := range d.keys {
			// At one position a list item and its first key start
			// together: the longer path is the deeper one.
			if k.line == u.outLine && k.col <= u.outCol && (k.col > best.col || k.col == best.col && len(k.path) > len(path)) {
				best, path = k, k.path
			}
		}
		msg := fmt.Sprintf("${%s} is not set and has no default: it expands to an empty string (set %s, or write ${%s:-default})", u.name, u.name, u.name)
		if path != "" {
			msg = path + ": " + msg
		}
		w = append(w, fmt.Sprintf("%s:%d: %s", d.file, u.line, msg))
	}
	return w
}

// expandEnv replaces ${VAR} and ${VAR:-default} in data; $$ stands for a
// literal $ and any other $ is kept as is. Expansion happens on the raw text,
// before YAML parsing, so that it also works inside flow mappings such as
// {api_key: ${KEY}} (a YAML plain scalar cannot contain "{" there); values
// with YAML-special characters should therefore be quoted in the file.
//
// The returned slice maps each line of the output (0-based) to its 1-based
// line in data, so that error lines stay right even when a value holds a
// newline. unset lists the variables without a default that are not set
// (outside comments), for Parse's warnings.
func expandEnv(name string, data []byte, getenv func(string) (string, bool)) (out []byte, lines []int, unset []unsetVar, err error) {
	out = make([]byte, 0, len(data))
	lines = []int{1}
	line := 1
	// Starts of the current line in data and in out.
	dataLine, outLine := 0, 0
	var errs []error
	emit := func(s string) {
		for i := 0; i < len(s); i++ {
			out = append(out, s[i])
			if s[i] == '\n' {
				lines = append(lines, line)
				outLine = len(out)
			}
		}
	}
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c == '\n' {
			out = append(out, c)
			line++
			lines = append(lines, line)
			dataLine, outLine = i+1, len(out)
			continue
		}
		if c != '$' || i+1 >= len(data) {
			out = append(out, c)
			continue
		}
		switch data[i+1] {
		case '$':
			out = append(out, '$')
			i++
			continue
		case '{':
		default:
			out = append(out, c)
			continue
		}
		end := -1
		for j := i + 2; j < len(data) && data[j] != '\n'; j++ {
			if data[j] == '}' {
				end = j
				break
			}
		}
		if end < 0 {
			errs = append(errs, fmt.Errorf("%s:%d: unterminated ${ (write $$ for a literal $)", name, line))
			out = append(out, c)
			continue
		}
		expr := string(data[i+2 : end])
		v, isUnset, err := lookupVar(expr, getenv)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, line, err))
		}
		if isUnset && !inComment(data[dataLine:i]) {
			unset = append(unset, unsetVar{name: expr, line: line, outLine: len(lines), outCol: utf8.RuneCount(out[outLine:]) + 1})
		}
		emit(v)
		i = end
	}
	if len(errs) > 0 {
		return nil, nil, nil, errors.Join(errs...)
	}
	return out, lines, unset, nil
}

// unsetVar is a ${VAR} without a default whose variable is not set: line is
// its line in the file, outLine and outCol its 1-based position in the
// expanded text, where YAML nodes are found.
type unsetVar struct {
	name    string
	line    int
	outLine int
	outCol  int
}

// inComment reports whether the text before a ${VAR} on its line opens a
// YAML comment: a # at the line's start or after a blank, outside quotes.
// Comments are expanded like everything else, but an unset variable there
// (the root gateway.yaml explains ${VAR} in one) is no mistake.
func inComment(prefix []byte) bool {
	var quote byte
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		switch {
		case quote == '"' && c == '\\':
			i++ // the escaped byte cannot close the quote
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			// A quote opens a quoted scalar only at a scalar's start.
			if i == 0 || strings.IndexByte(" \t[{,:-", prefix[i-1]) >= 0 {
				quote = c
			}
		case c == '#' && (i == 0 || prefix[i-1] == ' ' || prefix[i-1] == '\t'):
			return true
		}
	}
	return false
}

var varNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// lookupVar evaluates the inside of ${...}: VAR or VAR:-default. As in the
// shell, the default is used when VAR is unset or empty. unset reports a
// VAR without default that is not set at all: it silently expands to "",
// which Parse warns about (a variable set to "" is taken as meant).
func lookupVar(expr string, getenv func(string) (string, bool)) (v string, unset bool, err error) {
	name, def, hasDef := strings.Cut(expr, ":-")
	if !varNameRe.MatchString(name) {
		return "", false, fmt.Errorf("invalid variable name %q in ${%s} (want ${NAME} or ${NAME:-default})", name, expr)
	}
	v, ok := getenv(name)
	if v == "" && hasDef {
		return def, false, nil
	}
	return v, !ok && !hasDef, nil
}

// decoder turns expanded YAML into a Config while recording the line of every
// key path, so that validation can point at the line of each problem.
type decoder struct {
	file  string
	lines []int
	// index maps key paths (dedupe.lease, routes[0].targets[1].provider) to
	// their source line.
	index map[string]int
	// present holds the key paths that have a non-null value; defaults apply
	// only to absent keys, so an explicit 0 is reported instead of replaced.
	present map[string]bool
	// bad holds the paths with a type error; validation skips them, so that
	// "lease: 30" is reported once, not also as "must be positive".
	bad      map[string]bool
	problems []problem
	// keys are the positions of mapping keys and list items in the
	// expanded text, to name the key of an unset ${VAR}.
	keys []keyPos
}

// keyPos is where a key path starts in the expanded text (1-based).
type keyPos struct {
	line, col int
	path      string
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) decode(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			return nil, fmt.Errorf("%s:%d: %s", d.file, d.srcLine(n), m[2])
		}
		// yaml.v3 names no line for its reader's errors (control
		// characters, invalid UTF-8), where the offending character does,
		// nor for errors on the first line, whose 0-based mark is 0.
		n := 1
		if isReaderError(err) {
			n = max(badCharLine(data), 1)
		}
		return nil, fmt.Errorf("%s:%d: %s", d.file, d.srcLine(n), strings.TrimPrefix(err.Error(), "yaml: "))
	}
	cfg := &Config{}
	if len(root.Content) == 0 {
		// An empty file is an empty mapping: all defaults, and validation
		// says what is missing.
		return cfg, nil
	}
	doc := root.Content[0]
	d.walk(doc, reflect.TypeOf(cfg).Elem(), "", d.srcLine(doc.Line))
	// Decode skips unknown keys and leaves mistyped fields zero; both were
	// reported by the walk. Without such problems, an error here is one the
	// walk does not know about and must not be ignored.
	if err := decodeNode(doc, cfg); err != nil && len(d.problems) == 0 {
		return nil, fmt.Errorf("%s:%d: %s", d.file, d.srcLine(decodeErrorLine(doc, err)), strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return cfg, nil
}

// srcLine maps a line of the expanded text to the line in the file.
func (d *decoder) srcLine(n int) int {
	if n >= 1 && n <= len(d.lines) {
		return d.lines[n-1]
	}
	return n
}

func (d *decoder) errorf(line int, path, format string, args ...any) {
	d.problems = append(d.problems, problem{line, lineError(d.file, line, path, fmt.Sprintf(format, args...))})
}

// typeError reports a value of the wrong type and treats the key as absent,
// so that its default applies and validation stays quiet about it.
func (d *decoder) typeError(line int, path, format string, args ...any) {
	d.errorf(line, path, format, args...)
	d.bad[path] = true
	delete(d.present, path)
}

func lineError(file string, line int, path, msg string) error {
	prefix := file
	if line > 0 {
		prefix = fmt.Sprintf("%s:%d", file, line)
	}
	if path == "" {
		path = "(top level)"
	}
	if prefix == "" {
		return fmt.Errorf("%s: %s", path, msg)
	}
	return fmt.Errorf("%s: %s: %s", prefix, path, msg)
}

var durationType = reflect.TypeOf(time.Duration(0))

// walk checks n against the Go type t: unknown and duplicate keys, and
// scalars of the wrong type. yaml.v3's KnownFields only works on a Decoder
// and names neither the key path nor, for type errors, the key; walking the
// node tree does both and reports every problem, not only the first.
func (d *decoder) walk(n *yaml.Node, t reflect.Type, path string, line int) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	d.index[path] = line
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	d.present[path] = true
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		var v time.Duration
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || n.Decode(&v) != nil {
			d.typeError(line, path, "expected a duration such as 30s or 10m, got %s", describeAt(path, n))
		}
	case t.Kind() == reflect.Struct:
		d.walkStruct(n, t, path, line)
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.typeError(line, path, "expected a mapping, got %s", describeAt(path, n))
			return
		}
		d.eachPair(n, path, func(key string, k, v *yaml.Node) {
			d.keys = append(d.keys, keyPos{k.Line, k.Column, path + "." + key})
			d.walk(v, t.Elem(), path+"."+key, d.srcLine(k.Line))
		})
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.typeError(line, path, "expected a list, got %s", describeAt(path, n))
			return
		}
		for i, item := range n.Content {
			ip := fmt.Sprintf("%s[%d]", path, i)
			d.keys = append(d.keys, keyPos{item.Line, item.Column, ip})
			d.walk(item, t.Elem(), ip, d.srcLine(item.Line))
		}
	default:
		d.walkScalar(n, t, path, line)
	}
}

func (d *decoder) walkScalar(n *yaml.Node, t reflect.Type, path string, line int) {
	var want string
	ok := n.Kind == yaml.ScalarNode
	tag := n.ShortTag()
	switch t.Kind() {
	case reflect.String:
		want = "a string"
	case reflect.Bool:
		// yaml.v3 would also accept yes/no/on/off for a bool; YAML 1.2 does
		// not, and neither do we.
		want, ok = "true or false", ok && tag == "!!bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		// Checked here because yaml.v3 silently truncates 1.5 to 1.
		want, ok = "an integer", ok && tag == "!!int"
	case reflect.Float32, reflect.Float64:
		want, ok = "a number", ok && (tag == "!!int" || tag == "!!float")
	default:
		panic(fmt.Sprintf("BUG: config field %s has unsupported type %s", path, t))
	}
	if ok {
		ok = n.Decode(reflect.New(t).Interface()) == nil
	}
	if !ok {
		d.typeError(line, path, "expected %s, got %s", want, describeAt(path, n))
	}
}

func (d *decoder) walkStruct(n *yaml.Node, t reflect.Type, path string, line int) {
	if t == encryptionKeyType && n.Kind == yaml.ScalarNode {
		// The key alone, as a string (EncryptionKey.UnmarshalYAML).
		d.walkScalar(n, reflect.TypeOf(""), path, line)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.typeError(line, path, "expected a mapping, got %s", describeAt(path, n))
		return
	}
	fields := yamlFields(t)
	d.eachPair(n, path, func(key string, k, v *yaml.Node) {
		child := key
		if path != "" {
			child = path + "." + key
		}
		d.keys = append(d.keys, keyPos{k.Line, k.Column, child})
		f, ok := fields[key]
		if !ok {
			msg := "unknown key"
			if s := suggest(key, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errorf(d.srcLine(k.Line), child, "%s", msg)
			return
		}
		d.walk(v, f.Type, child, d.srcLine(k.Line))
	})
}

// eachPair calls fn for every key/value of a mapping node, reporting
// non-scalar and duplicate keys and following YAML merge keys (<<: *anchor).
func (d *decoder) eachPair(n *yaml.Node, path string, fn func(key string, k, v *yaml.Node)) {
	seen := map[string]int{}
	// Each mapping is visited once: merges of merges (<<: [*a, *a] in
	// every level) would otherwise take exponential time, and a mapping
	// that merges itself would recurse without end.
	visited := map[*yaml.Node]bool{}
	var visit func(n *yaml.Node)
	visit = func(n *yaml.Node) {
		if visited[n] {
			return
		}
		visited[n] = true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				if v.Kind == yaml.AliasNode && v.Alias != nil {
					v = v.Alias
				}
				merged := []*yaml.Node{v}
				if v.Kind == yaml.SequenceNode {
					merged = v.Content
				}
				for _, m := range merged {
					if m.Kind == yaml.AliasNode && m.Alias != nil {
						m = m.Alias
					}
					if m.Kind == yaml.MappingNode {
						visit(m)
					}
				}
				continue
			}
			kl := d.srcLine(k.Line)
			if k.Kind != yaml.ScalarNode {
				d.errorf(kl, path, "keys must be strings, got %s", describe(k))
				continue
			}
			if prev, ok := seen[k.Value]; ok {
				d.errorf(kl, joinPath(path, k.Value), "duplicate key (first set at line %d)", prev)
				continue
			}
			seen[k.Value] = kl
			fn(k.Value, k, v)
		}
	}
	visit(n)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the yaml names of t's fields to the fields.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	fields := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f
	}
	return fields
}

// describe shows a node in an error message.
// describeAt is describe for the value at path, without the value where
// it is a secret: an encryption key given as a string where the list
// belongs must not be printed by `gateway check`.
func describeAt(path string, n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && strings.HasPrefix(path, "store.encryption_keys") {
		return "a string (not shown: it may be a key)"
	}
	return describe(n)
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// suggest returns the known key closest to a misspelt one, or "".
func suggest(key string, fields map[string]reflect.StructField) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	best, bestDist := "", 3
	for _, name := range names {
		if dist := editDistance(key, name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ApplyDefaults replaces zero values with the defaults stated in config.go
// and sets Provider.Name from the map key. Parse calls it; it is exported for
// configs built in code (tests, embedding).
func (c *Config) ApplyDefaults() {
	c.applyDefaults(func(string) bool { return false })
}

// applyDefaults fills the defaults of keys for which present is false. Keys
// given explicitly keep their value even when zero, so that validation can
// report "lease: 0s" instead of silently using 30s. It also compiles each
// route's fallback_on.
func (c *Config) applyDefaults(present func(path string) bool) {
	absent := func(path string) bool { return !present(path) }
	boolean := func(p **bool, def bool) {
		if *p == nil {
			v := def
			*p = &v
		}
	}

	setDefault(&c.Listen, DefaultListen, absent("listen"))
	setDefault(&c.MaxBodyBytes, DefaultMaxBodyBytes, absent("max_body_bytes"))
	setDefault(&c.ShutdownTimeout, DefaultShutdownTimeout, absent("shutdown_timeout"))
	setDefault(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout, absent("read_header_timeout"))
	setDefault(&c.ReadTimeout, DefaultReadTimeout, absent("read_timeout"))
	setDefault(&c.WriteTimeout, DefaultWriteTimeout, absent("write_timeout"))
	setDefault(&c.Auth.Mode, DefaultAuthMode, absent("auth.mode"))
	setDefault(&c.Store.Kind, DefaultStoreKind, absent("store.kind"))
	setDefault(&c.Store.Path, DefaultStorePath, absent("store.path"))
	setDefault(&c.Store.Migrate, DefaultStoreMigrate, absent("store.migrate"))
	setDefault(&c.Lock.Kind, DefaultLockKind, absent("lock.kind"))
	if c.Lock.Redis.Addrs == nil && absent("lock.redis.addrs") {
		c.Lock.Redis.Addrs = []string{DefaultRedisAddr}
	}
	setDefault(&c.Lock.Redis.KeyPrefix, DefaultRedisKeyPrefix, absent("lock.redis.key_prefix"))

	dd := &c.Dedupe
	boolean(&dd.Enabled, true)
	setDefault(&dd.Derive, DefaultDerive, absent("dedupe.derive"))
	setDefault(&dd.DeriveWindow, DefaultDeriveWindow, absent("dedupe.derive_window"))
	setDefault(&dd.KeyTTL, DefaultKeyTTL, absent("dedupe.key_ttl"))
	setDefault(&dd.Lease, DefaultLease, absent("dedupe.lease"))
	setDefault(&dd.MaxProcessing, DefaultMaxProcessing, absent("dedupe.max_processing"))
	setDefault(&dd.OnInProgress, DefaultOnInProgress, absent("dedupe.on_in_progress"))
	setDefault(&dd.WaitTimeout, DefaultWaitTimeout, absent("dedupe.wait_timeout"))
	setDefault(&dd.OnStoreError, DefaultOnStoreError, absent("dedupe.on_store_error"))
	boolean(&dd.DetachOnDisconnect, true)
	setDefault(&dd.MaxRecordBytes, DefaultMaxRecordBytes, absent("dedupe.max_record_bytes"))
	setDefault(&dd.ReapInterval, DefaultReapInterval, absent("dedupe.reap_interval"))
	setDefault(&dd.ReapBatch, DefaultReapBatch, absent("dedupe.reap_batch"))

	setDefault(&c.Log.Level, DefaultLogLevel, absent("log.level"))
	setDefault(&c.Log.Format, DefaultLogFormat, absent("log.format"))
	setDefault(&c.Tracing.SampleRatio, DefaultSampleRatio, absent("tracing.sample_ratio"))

	fillResilience(&c.Resilience, "resilience", DefaultResilience(), present)
	for name, p := range c.Providers {
		if p == nil {
			continue // reported by Validate
		}
		p.Name = name
		path := "providers." + name
		fillResilience(&p.Resilience, path+".resilience", c.Resilience, present)
		setDefault(&p.Kind, DefaultProviderKind, absent(path+".kind"))
		if p.Kind == ProviderAnthropic {
			setDefault(&p.AnthropicVersion, DefaultAnthropicVersion, absent(path+".anthropic_version"))
			setDefault(&p.DefaultMaxTokens, DefaultMaxTokens, absent(path+".default_max_tokens"))
		}
		setDefault(&p.Timeout, DefaultTimeout, absent(path+".timeout"))
		// An unset first-byte wait never outlasts the whole attempt. An
		// invalid timeout is reported on its own: the unset key keeps the
		// plain default rather than inherit the bad value, so that check
		// does not report a first_byte_timeout the user never wrote.
		fbt := DefaultFirstByteTimeout
		if p.Timeout > 0 {
			fbt = min(fbt, p.Timeout)
		}
		setDefault(&p.FirstByteTimeout, fbt, absent(path+".first_byte_timeout"))
		setDefault(&p.MaxConns, DefaultMaxConns, absent(path+".max_conns"))
	}
	for i, r := range c.Routes {
		if r == nil {
			continue
		}
		// An explicit empty list means "never fall back", so only a missing
		// key gets the default.
		if r.FallbackOn == nil && absent(fmt.Sprintf("routes[%d].fallback_on", i)) {
			r.FallbackOn = DefaultFallbackOn()
		}
		r.Fallback = compileFallback(r.FallbackOn)
		setDefault(&r.OnStreamCut, DefaultOnStreamCut, absent(fmt.Sprintf("routes[%d].on_stream_cut", i)))
		for j := range r.Targets {
			setDefault(&r.Targets[j].Weight, DefaultWeight, absent(fmt.Sprintf("routes[%d].targets[%d].weight", i, j)))
		}
	}
}

// setDefault sets *p to def when it is zero and absent is true (the key is
// not in the file).
func setDefault[T comparable](p *T, def T, absent bool) {
	var zero T
	if *p == zero && absent {
		*p = def
	}
}
