package config

import "reflect"

// restartOnly lists the keys a reload does not apply, each with its value:
// they are read once at start-up (the listener, the fasthttp server's body
// cap and timeouts, the logger, the record store, the lock backend and the
// coordinator's options), so a changed value would silently keep the old
// one. Every other key (the listen_tls files, auth with its limits,
// providers, routes, pricing, resilience, debug.pprof and the per-request
// dedupe settings) takes effect on the next request; breakers keep their
// state across a reload (upstreams/breaker's Reload).
var restartOnly = []struct {
	key   string
	value func(c *Config) any
}{
	{"listen", func(c *Config) any { return c.Listen }},
	{"max_body_bytes", func(c *Config) any { return c.MaxBodyBytes }},
	{"shutdown_timeout", func(c *Config) any { return c.ShutdownTimeout }},
	{"shutdown_delay", func(c *Config) any { return c.ShutdownDelay }},
	{"read_header_timeout", func(c *Config) any { return c.ReadHeaderTimeout }},
	{"read_timeout", func(c *Config) any { return c.ReadTimeout }},
	{"write_timeout", func(c *Config) any { return c.WriteTimeout }},
	// Turning TLS on or off changes the listener; a new cert and key pair
	// on a TLS listener is applied by the reload.
	{"listen_tls", func(c *Config) any { return c.ListenTLS.Enabled() }},
	{"store.kind", func(c *Config) any { return c.Store.Kind }},
	{"store.path", func(c *Config) any { return c.Store.Path }},
	{"store.url", func(c *Config) any { return c.Store.URL }},
	{"store.migrate", func(c *Config) any { return c.Store.Migrate }},
	// The keyring is built once with the store; a rotation is a restart.
	{"store.encryption_keys", func(c *Config) any { return c.Store.EncryptionKeys }},
	{"lock.kind", func(c *Config) any { return c.Lock.Kind }},
	{"lock.redis.addrs", func(c *Config) any { return c.Lock.Redis.Addrs }},
	{"lock.redis.master_name", func(c *Config) any { return c.Lock.Redis.MasterName }},
	{"lock.redis.password", func(c *Config) any { return c.Lock.Redis.Password }},
	{"lock.redis.db", func(c *Config) any { return c.Lock.Redis.DB }},
	{"lock.redis.key_prefix", func(c *Config) any { return c.Lock.Redis.KeyPrefix }},
	{"dedupe.enabled", func(c *Config) any { return c.Dedupe.IsEnabled() }},
	{"dedupe.key_ttl", func(c *Config) any { return c.Dedupe.KeyTTL }},
	{"dedupe.lease", func(c *Config) any { return c.Dedupe.Lease }},
	{"dedupe.max_processing", func(c *Config) any { return c.Dedupe.MaxProcessing }},
	{"dedupe.on_in_progress", func(c *Config) any { return c.Dedupe.OnInProgress }},
	{"dedupe.wait_timeout", func(c *Config) any { return c.Dedupe.WaitTimeout }},
	{"dedupe.max_record_bytes", func(c *Config) any { return c.Dedupe.MaxRecordBytes }},
	{"dedupe.reap_interval", func(c *Config) any { return c.Dedupe.ReapInterval }},
	{"dedupe.reap_batch", func(c *Config) any { return c.Dedupe.ReapBatch }},
	{"log.level", func(c *Config) any { return c.Log.Level }},
	{"log.format", func(c *Config) any { return c.Log.Format }},
	// The exporter and sampler are built once, at start-up.
	{"tracing.otlp_endpoint", func(c *Config) any { return c.Tracing.OTLPEndpoint }},
	{"tracing.sample_ratio", func(c *Config) any { return c.Tracing.SampleRatio }},
	{"tracing.headers", func(c *Config) any { return c.Tracing.Headers }},
}

// RestartOnlyChanges returns the keys whose value differs between the
// running config and a reloaded one but that only a restart applies, in a
// fixed order, so that the reload can warn instead of silently keeping the
// old values. It names keys only, never values: some are secrets.
func RestartOnlyChanges(running, reloaded *Config) []string {
	var keys []string
	for _, k := range restartOnly {
		if !reflect.DeepEqual(k.value(running), k.value(reloaded)) {
			keys = append(keys, k.key)
		}
	}
	return keys
}
