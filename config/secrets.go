package config

import (
	"bytes"
	"net/url"
	"sort"
	"strings"
)

// RedactedSecret replaces a secret that Scrubber finds in a text.
const RedactedSecret = "[redacted]"

// MinSecretLen is the shortest value Scrubber removes: shorter ones are no
// real keys, and scrubbing them would cut ordinary words out of messages.
const MinSecretLen = 8

// Secrets returns the secret values of the config, for a Scrubber: the
// client keys (and the hashes given for them), the admin key, the provider
// API keys, the Redis password, the record store URL's password, the
// values of tracing.headers and the store's encryption keys.
func (c *Config) Secrets() []string {
	var s []string
	for _, k := range c.Auth.Keys {
		s = append(s, k.Key, k.SHA256)
	}
	s = append(s, c.Auth.AdminKey, c.Lock.Redis.Password)
	for _, v := range c.Tracing.Headers {
		s = append(s, v) // a hosted collector's API key
	}
	for _, k := range c.Store.EncryptionKeys {
		s = append(s, k.Key)
	}
	for _, p := range c.Providers {
		if p != nil {
			s = append(s, p.APIKey)
		}
	}
	if u, err := url.Parse(c.Store.URL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			s = append(s, pw)
		}
	}
	return s
}

// Scrubber removes known secrets from texts that leave the gateway
// (upstream error bodies, error messages, log lines). The zero value and
// nil remove nothing.
type Scrubber struct {
	secrets []string // longest first, so a key that contains another goes whole
}

// NewScrubber returns a scrubber of the given values; empty and short
// ones (see MinSecretLen) and duplicates are dropped.
func NewScrubber(secrets []string) *Scrubber {
	seen := map[string]bool{}
	s := &Scrubber{}
	for _, v := range secrets {
		if len(v) >= MinSecretLen && !seen[v] {
			seen[v] = true
			s.secrets = append(s.secrets, v)
		}
	}
	sort.Slice(s.secrets, func(i, j int) bool { return len(s.secrets[i]) > len(s.secrets[j]) })
	return s
}

// String returns in without the secrets; in itself when it holds none,
// so that clean texts cost no allocation.
func (s *Scrubber) String(in string) string {
	if s == nil {
		return in
	}
	for _, v := range s.secrets {
		if strings.Contains(in, v) {
			in = strings.ReplaceAll(in, v, RedactedSecret)
		}
	}
	return in
}

// Bytes is String for a byte slice: changed reports whether out is a new
// slice without secrets; otherwise out is in itself.
func (s *Scrubber) Bytes(in []byte) (out []byte, changed bool) {
	if s == nil {
		return in, false
	}
	for _, v := range s.secrets {
		if bytes.Contains(in, []byte(v)) {
			in, changed = bytes.ReplaceAll(in, []byte(v), []byte(RedactedSecret)), true
		}
	}
	return in, changed
}
