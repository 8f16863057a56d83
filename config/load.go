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

	"gopkg.in/yaml.v3"
)

// Defaults applied to zero values (see the field comments in config.go).
const (
	DefaultListen           = "127.0.0.1:8080"
	DefaultMaxBodyBytes     = 8 << 20
	DefaultShutdownTimeout  = 30 * time.Second
	DefaultAuthMode         = "keys"
	DefaultStoreKind        = "embedded"
	DefaultStorePath        = "./data/gateway.db"
	DefaultStoreMigrate     = "auto"
	DefaultLockKind         = "local"
	DefaultRedisAddr        = "127.0.0.1:6379"
	DefaultRedisKeyPrefix   = "gw:"
	DefaultDerive           = "body"
	DefaultDeriveWindow     = 10 * time.Minute
	DefaultKeyTTL           = 24 * time.Hour
	DefaultLease            = 30 * time.Second
	DefaultMaxProcessing    = 10 * time.Minute
	DefaultOnInProgress     = "wait"
	DefaultWaitTimeout      = 120 * time.Second
	DefaultOnStoreError     = "fail"
	DefaultMaxRecordBytes   = 4 << 20
	DefaultReapInterval     = time.Minute
	DefaultReapBatch        = 500
	DefaultLogLevel         = "info"
	DefaultLogFormat        = "json"
	DefaultProviderKind     = "openai"
	DefaultTimeout          = 60 * time.Second
	DefaultFirstByteTimeout = 30 * time.Second
	DefaultMaxConns         = 512
)

// DefaultFallbackOn returns the failures a route falls back on when
// fallback_on is not set. It is a function so that no caller can modify a
// shared slice.
func DefaultFallbackOn() []string {
	return []string{"connect", "timeout", "429", "5xx"}
}

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
	expanded, lines, err := expandEnv(name, data, getenv)
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

// expandEnv replaces ${VAR} and ${VAR:-default} in data; $$ stands for a
// literal $ and any other $ is kept as is. Expansion happens on the raw text,
// before YAML parsing, so that it also works inside flow mappings such as
// {api_key: ${KEY}} (a YAML plain scalar cannot contain "{" there); values
// with YAML-special characters should therefore be quoted in the file.
//
// The returned slice maps each line of the output (0-based) to its 1-based
// line in data, so that error lines stay right even when a value holds a
// newline.
func expandEnv(name string, data []byte, getenv func(string) (string, bool)) ([]byte, []int, error) {
	out := make([]byte, 0, len(data))
	lines := []int{1}
	line := 1
	var errs []error
	emit := func(s string) {
		for i := 0; i < len(s); i++ {
			out = append(out, s[i])
			if s[i] == '\n' {
				lines = append(lines, line)
			}
		}
	}
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c == '\n' {
			out = append(out, c)
			line++
			lines = append(lines, line)
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
		v, err := lookupVar(expr, getenv)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, line, err))
		}
		emit(v)
		i = end
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return out, lines, nil
}

var varNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// lookupVar evaluates the inside of ${...}: VAR or VAR:-default. As in the
// shell, the default is used when VAR is unset or empty.
func lookupVar(expr string, getenv func(string) (string, bool)) (string, error) {
	name, def, hasDef := strings.Cut(expr, ":-")
	if !varNameRe.MatchString(name) {
		return "", fmt.Errorf("invalid variable name %q in ${%s} (want ${NAME} or ${NAME:-default})", name, expr)
	}
	v, _ := getenv(name)
	if v == "" && hasDef {
		return def, nil
	}
	return v, nil
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
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) decode(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			return nil, fmt.Errorf("%s:%d: %s", d.file, d.srcLine(n), m[2])
		}
		return nil, fmt.Errorf("cannot parse %q: %w", d.file, err)
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
	if err := doc.Decode(cfg); err != nil && len(d.problems) == 0 {
		return nil, fmt.Errorf("cannot decode %q: %w", d.file, err)
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
			d.typeError(line, path, "expected a duration such as 30s or 10m, got %s", describe(n))
		}
	case t.Kind() == reflect.Struct:
		d.walkStruct(n, t, path, line)
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.typeError(line, path, "expected a mapping, got %s", describe(n))
			return
		}
		d.eachPair(n, path, func(key string, k, v *yaml.Node) {
			d.walk(v, t.Elem(), path+"."+key, d.srcLine(k.Line))
		})
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.typeError(line, path, "expected a list, got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			d.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), d.srcLine(item.Line))
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
		d.typeError(line, path, "expected %s, got %s", want, describe(n))
	}
}

func (d *decoder) walkStruct(n *yaml.Node, t reflect.Type, path string, line int) {
	if n.Kind != yaml.MappingNode {
		d.typeError(line, path, "expected a mapping, got %s", describe(n))
		return
	}
	fields := yamlFields(t)
	d.eachPair(n, path, func(key string, k, v *yaml.Node) {
		child := key
		if path != "" {
			child = path + "." + key
		}
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
	var visit func(n *yaml.Node)
	visit = func(n *yaml.Node) {
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
// report "lease: 0s" instead of silently using 30s.
func (c *Config) applyDefaults(present func(path string) bool) {
	str := func(p *string, path, def string) {
		if *p == "" && !present(path) {
			*p = def
		}
	}
	num := func(p *int, path string, def int) {
		if *p == 0 && !present(path) {
			*p = def
		}
	}
	dur := func(p *time.Duration, path string, def time.Duration) {
		if *p == 0 && !present(path) {
			*p = def
		}
	}
	boolean := func(p **bool, def bool) {
		if *p == nil {
			v := def
			*p = &v
		}
	}

	str(&c.Listen, "listen", DefaultListen)
	num(&c.MaxBodyBytes, "max_body_bytes", DefaultMaxBodyBytes)
	dur(&c.ShutdownTimeout, "shutdown_timeout", DefaultShutdownTimeout)
	str(&c.Auth.Mode, "auth.mode", DefaultAuthMode)
	str(&c.Store.Kind, "store.kind", DefaultStoreKind)
	str(&c.Store.Path, "store.path", DefaultStorePath)
	str(&c.Store.Migrate, "store.migrate", DefaultStoreMigrate)
	str(&c.Lock.Kind, "lock.kind", DefaultLockKind)
	if c.Lock.Redis.Addrs == nil && !present("lock.redis.addrs") {
		c.Lock.Redis.Addrs = []string{DefaultRedisAddr}
	}
	str(&c.Lock.Redis.KeyPrefix, "lock.redis.key_prefix", DefaultRedisKeyPrefix)

	dd := &c.Dedupe
	boolean(&dd.Enabled, true)
	str(&dd.Derive, "dedupe.derive", DefaultDerive)
	dur(&dd.DeriveWindow, "dedupe.derive_window", DefaultDeriveWindow)
	dur(&dd.KeyTTL, "dedupe.key_ttl", DefaultKeyTTL)
	dur(&dd.Lease, "dedupe.lease", DefaultLease)
	dur(&dd.MaxProcessing, "dedupe.max_processing", DefaultMaxProcessing)
	str(&dd.OnInProgress, "dedupe.on_in_progress", DefaultOnInProgress)
	dur(&dd.WaitTimeout, "dedupe.wait_timeout", DefaultWaitTimeout)
	str(&dd.OnStoreError, "dedupe.on_store_error", DefaultOnStoreError)
	boolean(&dd.DetachOnDisconnect, true)
	num(&dd.MaxRecordBytes, "dedupe.max_record_bytes", DefaultMaxRecordBytes)
	dur(&dd.ReapInterval, "dedupe.reap_interval", DefaultReapInterval)
	num(&dd.ReapBatch, "dedupe.reap_batch", DefaultReapBatch)

	str(&c.Log.Level, "log.level", DefaultLogLevel)
	str(&c.Log.Format, "log.format", DefaultLogFormat)

	for name, p := range c.Providers {
		if p == nil {
			continue // reported by Validate
		}
		p.Name = name
		path := "providers." + name
		str(&p.Kind, path+".kind", DefaultProviderKind)
		dur(&p.Timeout, path+".timeout", DefaultTimeout)
		// An unset first-byte wait never outlasts the whole attempt.
		dur(&p.FirstByteTimeout, path+".first_byte_timeout", min(DefaultFirstByteTimeout, p.Timeout))
		num(&p.MaxConns, path+".max_conns", DefaultMaxConns)
	}
	for i, r := range c.Routes {
		// An explicit empty list means "never fall back", so only a missing
		// key gets the default.
		if r != nil && r.FallbackOn == nil && !present(fmt.Sprintf("routes[%d].fallback_on", i)) {
			r.FallbackOn = DefaultFallbackOn()
		}
	}
}
