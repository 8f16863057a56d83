package config

// Every key that picks one of a few behaviours has its own string type, so
// that code compares it with a constant or a predicate below: a misspelt
// literal would compile and silently take the other branch (issue 9).
// Validation checks each against the constants of its type.

// AuthMode is auth.mode.
type AuthMode string

// auth.mode values.
const (
	// AuthKeys requires a bearer key from auth.keys; the key names the tenant.
	AuthKeys AuthMode = "keys"
	// AuthNone lets every client in as the tenant "default".
	AuthNone AuthMode = "none"
)

// StoreKind is store.kind.
type StoreKind string

// store.kind values.
const (
	StoreEmbedded StoreKind = "embedded"
	StorePostgres StoreKind = "postgres"
)

// MigrateMode is store.migrate.
type MigrateMode string

// store.migrate values.
const (
	// MigrateAuto applies the Postgres migrations at start-up.
	MigrateAuto MigrateMode = "auto"
	// MigrateManual leaves them to `gateway migrate`.
	MigrateManual MigrateMode = "manual"
)

// LockKind is lock.kind.
type LockKind string

// lock.kind values.
const (
	LockLocal LockKind = "local"
	LockRedis LockKind = "redis"
)

// DeriveMode is dedupe.derive: how requests without Idempotency-Key get one.
type DeriveMode string

// dedupe.derive values.
const (
	// DeriveBody derives a key from the body of every request.
	DeriveBody DeriveMode = "body"
	// DeriveRetries records first tries but deduplicates only SDK retries.
	DeriveRetries DeriveMode = "retries"
	// DeriveOff deduplicates only requests that send a key.
	DeriveOff DeriveMode = "off"
)

// InProgressMode is dedupe.on_in_progress.
type InProgressMode string

// dedupe.on_in_progress values.
const (
	// InProgressWait lets a duplicate wait for the leader's answer.
	InProgressWait InProgressMode = "wait"
	// InProgressReject answers a duplicate 409 at once.
	InProgressReject InProgressMode = "reject"
)

// StoreErrorMode is dedupe.on_store_error.
type StoreErrorMode string

// dedupe.on_store_error values.
const (
	// StoreErrorFail answers 503 and forwards nothing.
	StoreErrorFail StoreErrorMode = "fail"
	// StoreErrorOpen forwards the request without deduplication.
	StoreErrorOpen StoreErrorMode = "open"
)

// LogLevel is log.level; its values are those of log/slog.
type LogLevel string

// log.level values.
const (
	LogDebug LogLevel = "debug"
	LogInfo  LogLevel = "info"
	LogWarn  LogLevel = "warn"
	LogError LogLevel = "error"
)

// LogFormat is log.format.
type LogFormat string

// log.format values.
const (
	LogJSON LogFormat = "json"
	LogText LogFormat = "text"
)

// ProviderKind is providers.NAME.kind.
type ProviderKind string

// providers.NAME.kind values.
const (
	// ProviderOpenAI is any OpenAI-compatible API.
	ProviderOpenAI ProviderKind = "openai"
	// ProviderAnthropic is Anthropic's Messages API: the gateway calls
	// {base_url}/v1/messages with x-api-key and anthropic-version, and
	// translates OpenAI chat requests to it (DESIGN.md section 7).
	ProviderAnthropic ProviderKind = "anthropic"
)

// StreamCutMode is routes[].on_stream_cut.
type StreamCutMode string

// routes[].on_stream_cut values.
const (
	// StreamCutError ends a stream cut after its first byte with an SSE
	// error event.
	StreamCutError StreamCutMode = "error"
	// StreamCutContinue asks the next target to continue a cut text-only
	// chat stream, and relays the continuation in the same stream.
	StreamCutContinue StreamCutMode = "continue"
)

// ContinuesCutStreams reports whether a cut chat stream is continued on
// the next target (on_stream_cut: continue).
func (r *Route) ContinuesCutStreams() bool { return r.OnStreamCut == StreamCutContinue }

// Open reports whether auth.mode is none: no keys, one tenant.
func (a Auth) Open() bool { return a.Mode == AuthNone }

// AutoMigrate reports whether the Postgres migrations run at start-up.
func (s Store) AutoMigrate() bool { return s.Migrate == MigrateAuto }

// DerivesKeys reports whether requests without Idempotency-Key get a
// derived key (derive is not off).
func (d Dedupe) DerivesKeys() bool { return d.Derive != DeriveOff }

// DedupesRetriesOnly reports whether a derived key deduplicates only SDK
// retries (derive: retries): first tries are recorded but never answered
// from another first try.
func (d Dedupe) DedupesRetriesOnly() bool { return d.Derive == DeriveRetries }

// RejectsInProgress reports whether a duplicate of an in-flight request is
// answered 409 instead of waiting.
func (d Dedupe) RejectsInProgress() bool { return d.OnInProgress == InProgressReject }

// FailsOpen reports whether a record store failure forwards the request
// without deduplication instead of answering 503.
func (d Dedupe) FailsOpen() bool { return d.OnStoreError == StoreErrorOpen }
