// Package config loads and validates gateway.yaml: env expansion, strict
// decoding, defaults and validation that names the key path and line of
// every problem (DESIGN.md section 4).
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Config is the whole gateway.yaml tree. Zero values are replaced by the
// defaults stated in each field's comment.
type Config struct {
	// Listen is the address the server binds. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// MaxBodyBytes caps request bodies. Default 8 MiB.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// ShutdownTimeout bounds how long in-flight requests may run after SIGTERM. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ReadHeaderTimeout bounds how long a client may take to send a
	// request's line and headers, counted from the connection's opening
	// (TLS handshake included) or, on a kept-alive connection, from the
	// request's first byte: a client that trickles its headers
	// (slowloris) is cut off. Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds how long a client may take to send the body once
	// its headers are in. Default 60s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds each write of a response to the client: a client
	// that stops reading (a stream it no longer consumes, a replay it never
	// takes) is disconnected after it instead of holding its buffers
	// forever. It is per write, not per response, so long streams are not
	// cut while their client reads. Default 30s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	Auth         Auth          `yaml:"auth"`
	Store        Store         `yaml:"store"`
	Lock         Lock          `yaml:"lock"`
	Dedupe       Dedupe        `yaml:"dedupe"`
	Log          Log           `yaml:"log"`
	Debug        Debug         `yaml:"debug"`
	// Providers by name; the name is used in routes and metric labels.
	Providers map[string]*Provider `yaml:"providers"`
	// Routes in match order; model "*" matches any model.
	Routes []*Route `yaml:"routes"`
	// Pricing per upstream model name, for the cost metrics. Optional.
	Pricing map[string]Price `yaml:"pricing"`
	// Resilience holds every provider's defaults for breakers, cooldowns,
	// retries and attempt budgets (DESIGN.md section 7); the defaults are
	// those of DefaultResilience.
	Resilience Resilience `yaml:"resilience"`

	// ShutdownDelay is how long after SIGTERM the gateway keeps serving,
	// with /readyz answering 503, before it stops accepting: a load
	// balancer that polls /readyz takes the node out first, so no client
	// meets a closed port. Default 0 (stop accepting at once).
	ShutdownDelay time.Duration `yaml:"shutdown_delay"`

	// ListenTLS serves HTTPS on Listen when set (see listen_tls.go). Optional.
	ListenTLS ListenTLS `yaml:"listen_tls"`

	// Tracing exports OpenTelemetry spans (see tracing.go). Default off.
	Tracing Tracing `yaml:"tracing"`

	// Path is the file the config was loaded from (not a YAML key).
	Path string `yaml:"-"`

	// lines maps key paths to their line in Path, for Validate's messages.
	lines map[string]int
	// envWarnings name the unset ${VAR}s of the file (see Warnings).
	envWarnings []string
}

// Auth configures client authentication.
type Auth struct {
	// Mode is keys (default) or none.
	Mode AuthMode `yaml:"mode"`
	// Keys map bearer keys to tenants.
	Keys []ClientKey `yaml:"keys"`
	// AdminKey guards /admin/*. Empty disables the admin API.
	AdminKey string `yaml:"admin_key"`
}

// ClientKey maps one bearer key (given raw or as its sha256 hex) to a tenant.
type ClientKey struct {
	Tenant string `yaml:"tenant"`
	Key    string `yaml:"key"`
	SHA256 string `yaml:"sha256"`
	// MaxInflight caps the concurrent requests made with this key on one
	// node; past it the answer is 429 tenant_concurrency_limit. Default 0 = unlimited.
	MaxInflight int `yaml:"max_inflight"`
	// RequestsPerMinute is the refill rate and size of this key's token
	// bucket, shared by the cluster through Redis when lock.kind is redis;
	// past it the answer is 429 rate_limit_exceeded. Default 0 = unlimited.
	RequestsPerMinute int `yaml:"requests_per_minute"`
}

// Store selects the durable record store.
type Store struct {
	// Kind is embedded (default) or postgres.
	Kind StoreKind `yaml:"kind"`
	// Path of the embedded store file. Default ./data/gateway.db.
	Path string `yaml:"path"`
	// URL of the Postgres database (kind postgres).
	URL string `yaml:"url"`
	// Migrate is auto (default) or manual.
	Migrate MigrateMode `yaml:"migrate"`
	// EncryptionKeys seal stored responses and live stream events with
	// AES-256-GCM (issue 13): the first key seals, every key opens, so a
	// new key is put first and the old one kept until its records expired.
	// Default none: records are stored as they are.
	EncryptionKeys []EncryptionKey `yaml:"encryption_keys"`
}

// Lock selects the lock and signalling backend.
type Lock struct {
	// Kind is local (default) or redis.
	Kind  LockKind `yaml:"kind"`
	Redis Redis    `yaml:"redis"`
}

// Redis configures the go-redis UniversalClient.
type Redis struct {
	// Addrs default to [127.0.0.1:6379].
	Addrs []string `yaml:"addrs"`
	// MasterName selects Sentinel mode when set.
	MasterName string `yaml:"master_name"`
	Password   string `yaml:"password"`
	DB         int    `yaml:"db"`
	// KeyPrefix prefixes every Redis key. Default "gw:".
	KeyPrefix string `yaml:"key_prefix"`
}

// Dedupe configures idempotency (DESIGN.md section 2).
type Dedupe struct {
	// Enabled defaults to true.
	Enabled *bool `yaml:"enabled"`
	// Derive is body (default), retries or off.
	Derive DeriveMode `yaml:"derive"`
	// DeriveFields restricts the derived key to these top-level fields; empty = whole body.
	DeriveFields []string `yaml:"derive_fields"`
	// DeriveWindow is how long the answer to a derived key is replayed,
	// counted from the answer; older ones are regenerated. Default 10m.
	DeriveWindow time.Duration `yaml:"derive_window"`
	// RequireKey rejects requests without Idempotency-Key. Default false.
	RequireKey bool `yaml:"require_key"`
	// KeyTTL is how long finished tasks are kept. Default 24h.
	KeyTTL time.Duration `yaml:"key_ttl"`
	// Lease is the leader's lease, renewed every Lease/3. Default 30s.
	Lease time.Duration `yaml:"lease"`
	// MaxProcessing caps a task's life. Default 10m.
	MaxProcessing time.Duration `yaml:"max_processing"`
	// OnInProgress is wait (default) or reject.
	OnInProgress InProgressMode `yaml:"on_in_progress"`
	// WaitTimeout bounds how long a duplicate waits for the leader. Default 120s.
	WaitTimeout time.Duration `yaml:"wait_timeout"`
	// OnStoreError is fail (default) or open.
	OnStoreError StoreErrorMode `yaml:"on_store_error"`
	// DetachOnDisconnect keeps reading the upstream after the client left. Default true.
	DetachOnDisconnect *bool `yaml:"detach_on_disconnect"`
	// MaxRecordBytes caps one stored response or stream transcript. Default 4 MiB.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// ReapInterval is how often the background reaper runs. Default 1m.
	ReapInterval time.Duration `yaml:"reap_interval"`
	// ReapBatch is how many rows one reaper statement touches. Default 500.
	ReapBatch int `yaml:"reap_batch"`
}

// Log configures the request log.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level LogLevel `yaml:"level"`
	// Format is json (default) or text.
	Format LogFormat `yaml:"format"`
}

// Debug holds diagnostics that are off by default.
type Debug struct {
	// Pprof serves Go's runtime profiles at /debug/pprof/ (CPU, heap,
	// allocations, goroutines), for profiling under load: only to requests
	// with the admin key when auth.admin_key is set, else only to loopback
	// clients. Default false.
	Pprof bool `yaml:"pprof"`
}

// Provider is one upstream API.
type Provider struct {
	// Kind is openai (default): any OpenAI-compatible API, or anthropic:
	// Anthropic's Messages API.
	Kind ProviderKind `yaml:"kind"`
	// BaseURL such as https://api.openai.com/v1 (http is allowed). For
	// kind anthropic it is the host without /v1, such as
	// https://api.anthropic.com: the gateway calls {base_url}/v1/messages.
	BaseURL string `yaml:"base_url"`
	// APIKey is sent as Bearer (kind anthropic: as x-api-key); empty is a
	// start-up warning and an error for requests routed here.
	APIKey string `yaml:"api_key"`
	// AnthropicVersion is the anthropic-version header of kind anthropic,
	// a date such as 2023-06-01. Default DefaultAnthropicVersion; only for
	// kind anthropic.
	AnthropicVersion string `yaml:"anthropic_version"`
	// DefaultMaxTokens is the max_tokens sent to a kind anthropic provider
	// for an OpenAI request that gives none (Anthropic requires it).
	// Default DefaultMaxTokens; only for kind anthropic.
	DefaultMaxTokens int `yaml:"default_max_tokens"`
	// Timeout bounds a whole attempt. Default 60s.
	Timeout time.Duration `yaml:"timeout"`
	// FirstByteTimeout bounds the wait for the first response byte. Default 30s, or Timeout when shorter.
	FirstByteTimeout time.Duration `yaml:"first_byte_timeout"`
	// MaxConns caps connections to this provider. Default 512.
	MaxConns int `yaml:"max_conns"`
	// Resilience overrides any key of the top-level resilience block for
	// this provider. After loading it holds the effective values: the
	// provider's own keys merged over the top-level block.
	Resilience Resilience `yaml:"resilience"`

	// Name is the map key (not a YAML key).
	Name string `yaml:"-"`
}

// Route maps a client model name to an ordered list of targets.
type Route struct {
	// Model is what clients send as "model"; "*" matches any.
	Model string `yaml:"model"`
	// FallbackOn lists failures that move to the next target:
	// connect, timeout, 429, 5xx, or a specific status. Default [connect, timeout, 429, 5xx].
	FallbackOn []string `yaml:"fallback_on"`
	Targets    []Target `yaml:"targets"`
	// OnStreamCut is what a chat stream that breaks after its first byte
	// does: error (end it with an error event) or continue (ask the next
	// target to continue the text, DESIGN.md section 7). Default error.
	OnStreamCut StreamCutMode `yaml:"on_stream_cut"`

	// Fallback is FallbackOn compiled by Parse (or ApplyDefaults), so that
	// a failed attempt does not parse the list again (not a YAML key).
	Fallback Fallback `yaml:"-"`
}

// Target is one provider (and optional upstream model) of a route.
type Target struct {
	Provider string `yaml:"provider"`
	// Model replaces the request's model; empty passes it through unchanged.
	Model string `yaml:"model"`
	// Tier groups consecutive targets with the same tier: one of them is
	// picked by weight, the rest of the group follows (by weight), then the
	// next group. 0 (omitted) makes the target a group of its own; when
	// written it must be at least 1.
	Tier int `yaml:"tier,omitempty"`
	// Weight is the target's share of first picks within its tier, from 1
	// to MaxWeight. Default 1.
	Weight int `yaml:"weight"`
}

// Price is USD per one million tokens for one model.
type Price struct {
	PromptPer1M     float64 `yaml:"prompt_per_1m"`
	CompletionPer1M float64 `yaml:"completion_per_1m"`
}

// Hash returns the lowercase sha256 hex of the key: SHA256 when the key is
// given hashed, else the hash of Key. Auth compares hashes so that raw and
// hashed keys are looked up the same way.
func (k ClientKey) Hash() string {
	if k.SHA256 != "" {
		return strings.ToLower(k.SHA256)
	}
	sum := sha256.Sum256([]byte(k.Key))
	return hex.EncodeToString(sum[:])
}

// IsEnabled reports whether deduplication is on (the default).
func (d Dedupe) IsEnabled() bool {
	return d.Enabled == nil || *d.Enabled
}

// Detach reports whether the leader keeps reading the upstream after its
// client disconnected (the default), so that the retry is a replay.
func (d Dedupe) Detach() bool {
	return d.DetachOnDisconnect == nil || *d.DetachOnDisconnect
}
