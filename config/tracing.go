package config

import (
	"net/url"
	"strings"
)

// Tracing is the tracing block: OpenTelemetry spans exported over
// OTLP/HTTP (issue 16). It is off unless OTLPEndpoint is set.
type Tracing struct {
	// OTLPEndpoint is the collector's OTLP/HTTP address, such as
	// http://127.0.0.1:4318: a URL without a path gets /v1/traces (as the
	// OTEL_EXPORTER_OTLP_ENDPOINT variable does), one with a path is used
	// as it is. Default empty: no tracing.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// SampleRatio is the share of new traces that are recorded, 0 to 1; a
	// request whose client sent a traceparent follows its sampled flag.
	// Default 1.
	SampleRatio float64 `yaml:"sample_ratio"`
	// Headers are sent with every export (an API key of a hosted
	// collector); their values are secrets. Default none.
	Headers map[string]string `yaml:"headers"`
}

// DefaultSampleRatio records every trace once tracing is on.
const DefaultSampleRatio = 1.0

// Enabled reports whether spans are exported.
func (t Tracing) Enabled() bool { return t.OTLPEndpoint != "" }

// ExportURL is the URL the spans are posted to (see OTLPEndpoint).
func (t Tracing) ExportURL() *url.URL {
	u, err := url.Parse(t.OTLPEndpoint)
	if err != nil {
		return nil // Validate reported it
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u
}

// validateTracing checks the tracing block; sample_ratio and headers
// without an endpoint only warn (see Warnings), since an endpoint taken
// from an unset variable is the usual way to turn tracing off.
func (c *Config) validateTracing(v *validator) {
	t := c.Tracing
	if t.SampleRatio < 0 || t.SampleRatio > 1 {
		v.errorf("tracing.sample_ratio", "must be between 0 and 1, got %v", t.SampleRatio)
	}
	for name, value := range t.Headers {
		path := "tracing.headers." + name
		if name == "" || strings.ContainsFunc(name, notTokenChar) {
			v.errorf(path, "header name %q must be a token: letters, digits and !#$%%&'*+-.^_`|~", name)
		}
		if strings.ContainsFunc(value, isControl) {
			v.errorf(path, "header value must not contain control characters")
		}
	}
	if !t.Enabled() {
		return
	}
	u, err := url.Parse(t.OTLPEndpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf("tracing.otlp_endpoint", "must be an http or https URL with a host, got %q", redactURL(t.OTLPEndpoint))
		return
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		v.errorf("tracing.otlp_endpoint", "must not carry a query, fragment or user info (send credentials in tracing.headers), got %q", redactURL(t.OTLPEndpoint))
	}
}

// tracingWarnings are the start-up warnings of the tracing block.
func (c *Config) tracingWarnings() []string {
	t := c.Tracing
	if t.Enabled() {
		return nil
	}
	if len(t.Headers) > 0 || (t.SampleRatio != 0 && t.SampleRatio != DefaultSampleRatio) {
		return []string{"tracing.otlp_endpoint is empty: tracing is off, and tracing.sample_ratio and tracing.headers have no effect"}
	}
	return nil
}

// notTokenChar reports a character that may not appear in an HTTP field
// name (RFC 9110 section 5.6.2).
func notTokenChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}
