package config

import (
	"bytes"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// redactedText is the placeholder that replaces every non-empty secret in the
// output of Config.Redacted.
const redactedText = "<redacted>"

// Redacted returns the resolved config (after env expansion and defaults) as
// YAML, with every secret replaced by "<redacted>": client keys and their
// hashes, the admin key, provider API keys, the Redis password, passwords
// in URLs, the values of tracing.headers and the store's encryption keys.
// `gateway check` prints it. c is not modified.
func (c *Config) Redacted() ([]byte, error) {
	out := *c
	out.lines = nil

	out.Auth.AdminKey = redact(c.Auth.AdminKey)
	out.Auth.Keys = make([]ClientKey, len(c.Auth.Keys))
	for i, k := range c.Auth.Keys {
		k.Key, k.SHA256 = redact(k.Key), redact(k.SHA256)
		out.Auth.Keys[i] = k
	}

	out.Store.URL = redactDSN(c.Store.URL)
	out.Store.EncryptionKeys = nil
	for _, k := range c.Store.EncryptionKeys {
		out.Store.EncryptionKeys = append(out.Store.EncryptionKeys, EncryptionKey{ID: k.ID, Key: redact(k.Key)})
	}
	out.Lock.Redis.Password = redact(c.Lock.Redis.Password)
	out.Lock.Redis.Addrs = make([]string, len(c.Lock.Redis.Addrs))
	for i, a := range c.Lock.Redis.Addrs {
		out.Lock.Redis.Addrs[i] = redactURL(a)
	}
	if c.Lock.Redis.Addrs == nil {
		out.Lock.Redis.Addrs = nil
	}

	if c.Providers != nil {
		out.Providers = make(map[string]*Provider, len(c.Providers))
		for name, p := range c.Providers {
			if p == nil {
				out.Providers[name] = nil
				continue
			}
			cp := *p
			cp.APIKey = redact(p.APIKey)
			cp.BaseURL = redactURL(p.BaseURL)
			out.Providers[name] = &cp
		}
	}

	if c.Tracing.Headers != nil {
		out.Tracing.Headers = make(map[string]string, len(c.Tracing.Headers))
		for k, v := range c.Tracing.Headers {
			out.Tracing.Headers[k] = redact(v)
		}
	}
	out.Tracing.OTLPEndpoint = redactURL(c.Tracing.OTLPEndpoint)

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&out); err != nil {
		return nil, fmt.Errorf("cannot encode config %q: %w", c.Path, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("cannot encode config %q: %w", c.Path, err)
	}
	return buf.Bytes(), nil
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return redactedText
}

// redactURL hides the password in a URL's userinfo and in query parameters
// whose name mentions a password or key (pgx accepts ?password=, some APIs
// take ?key=). Strings that are not URLs are returned unchanged.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return s
	}
	q := u.Query()
	changed := false
	for name := range q {
		if isSecretParam(name) {
			q[name] = []string{"REDACTED"}
			changed = true
		}
	}
	if changed {
		// Encode() would escape "<>", so a plain placeholder is swapped in
		// afterwards.
		u.RawQuery = strings.ReplaceAll(q.Encode(), "=REDACTED", "="+redactedText)
	}
	if u.User == nil {
		return u.String()
	}
	if _, hasPassword := u.User.Password(); !hasPassword {
		// A lone username can still be a token (https://TOKEN@host).
		if u.User.Username() == "" {
			return u.String()
		}
		u.User = nil
		return u.Scheme + "://" + redactedText + "@" + strings.TrimPrefix(u.String(), u.Scheme+"://")
	}
	user := url.User(u.User.Username()).String()
	u.User = nil
	return u.Scheme + "://" + user + ":" + redactedText + "@" + strings.TrimPrefix(u.String(), u.Scheme+"://")
}

func isSecretParam(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "password") || strings.Contains(n, "secret") || strings.Contains(n, "token") || n == "key" || strings.HasSuffix(n, "_key") || strings.HasSuffix(n, "apikey")
}

// dsnPasswordRe matches password=... in a libpq keyword/value connection
// string, quoted or not.
var dsnPasswordRe = regexp.MustCompile(`(?i)(\b\w*password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactDSN hides the password of a Postgres URL or keyword/value string.
func redactDSN(s string) string {
	if s == "" {
		return ""
	}
	if strings.Contains(s, "://") {
		if r := redactURL(s); r != s || !strings.Contains(s, "@") {
			return r
		}
		// Unparseable URL with userinfo: hide it all rather than guess.
		return redactedText
	}
	return dsnPasswordRe.ReplaceAllString(s, "${1}"+redactedText)
}
