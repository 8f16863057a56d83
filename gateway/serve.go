package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/dedupe/seal"
	"github.com/idemgw/gateway/routes"
	"github.com/idemgw/gateway/routes/tracing"
	"github.com/idemgw/gateway/upstreams"
	"github.com/idemgw/gateway/upstreams/breaker"
)

// app is one running gateway: its stores, server and background work.
type app struct {
	cfg   *config.Config
	log   *slog.Logger
	store dedupe.Store
	// keys seal records and live streams (store.encryption_keys).
	keys     *seal.Keyring
	redis    redis.UniversalClient
	rbackend *dedupe.Redis
	coord    *dedupe.Coordinator
	umet     *upstreams.Metrics
	// breaker holds every target's breaker for the life of the process:
	// a reload changes its settings, never its state.
	breaker *breaker.Breaker
	server  *routes.Server
	tracer  *tracing.Tracer // nil: tracing off
	http    *fasthttp.Server
	set     *metrics.Set // the app's own series (reloads)

	// certs is the listen_tls pair; nil serves plain HTTP.
	certs *certificates
	// secrets are removed from every log line (scrublog.go).
	secrets atomic.Pointer[config.Scrubber]

	reloadMu   sync.Mutex
	stopReaper context.CancelFunc
	reaperDone chan struct{}
	// draining is set on SIGTERM: /readyz answers 503 from then on.
	draining atomic.Bool
}

// newApp opens the stores and builds the server of cfg.
func newApp(cfg *config.Config, logOut io.Writer) (*app, error) {
	a := &app{cfg: cfg, umet: upstreams.NewMetrics(), set: metrics.NewSet()}
	a.secrets.Store(config.NewScrubber(cfg.Secrets()))
	a.log = slog.New(scrubHandler{inner: newLogger(cfg.Log, logOut).Handler(), scrub: &a.secrets})
	// Both series exist from the start, so increase() sees the first reload.
	a.set.GetOrCreateCounter(`gateway_config_reloads_total{result="success"}`)
	a.set.GetOrCreateCounter(`gateway_config_reloads_total{result="failure"}`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if cfg.Lock.Kind == config.LockRedis {
		// Locks, live streams, the rate limits' shared buckets and the
		// breakers' shared state.
		a.redis = newRedis(cfg.Lock.Redis)
	}
	// Shared by the nodes through Redis, kept in process without it (or
	// while it does not answer).
	a.breaker = breaker.New(cfg, breaker.Options{Redis: a.redis, Prefix: cfg.Lock.Redis.KeyPrefix, Logger: a.log})
	st, err := routes.NewState(cfg, a.umet, a.breaker)
	if err != nil {
		a.close()
		return nil, err
	}
	if a.certs, err = newCertificates(cfg.ListenTLS); err != nil {
		a.close()
		return nil, err
	}
	if cfg.Dedupe.IsEnabled() {
		if a.store, err = openStore(ctx, cfg); err != nil {
			a.close()
			return nil, err
		}
		sealed, keys, err := sealStore(ctx, cfg, a.store)
		if err != nil {
			a.close()
			return nil, err
		}
		a.store, a.keys = sealed, keys
		var backend dedupe.Backend
		if a.redis != nil {
			a.rbackend = dedupe.NewRedis(a.redis, cfg.Lock.Redis.KeyPrefix)
			backend = a.rbackend
		}
		opts := coordinatorOptions(cfg)
		opts.Log = a.log
		opts.Keys = a.keys
		a.coord = dedupe.NewCoordinator(a.store, backend, opts)
		// A Redis that is down at start-up is logged once here and probed
		// in the background; requests do not wait for it.
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		a.coord.RedisStatus(rctx)
		rcancel()
	}
	a.server = routes.NewServer(st, a.coord, a.log, a.ready)
	if a.tracer, err = tracing.New(cfg.Tracing, a.log); err != nil {
		a.close()
		return nil, err
	}
	a.server.Trace(a.tracer)
	if a.redis != nil {
		a.server.ShareLimits(a.redis, cfg.Lock.Redis.KeyPrefix)
	}
	a.http = &fasthttp.Server{
		Handler:            a.handler(),
		Name:               "idempotent-llm-gateway",
		MaxRequestBodySize: cfg.MaxBodyBytes,
		// fasthttp's ReadTimeout runs from the connection's opening, or a
		// kept-alive request's first byte, through the headers and the
		// body; HeaderReceived restarts it for the body, so the first
		// part bounds the headers alone (read_header_timeout) and a
		// slowloris client is cut off after it (issue 13).
		ReadTimeout: cfg.ReadHeaderTimeout,
		HeaderReceived: func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{ReadTimeout: cfg.ReadTimeout}
		},
		IdleTimeout: 2 * time.Minute,
		// fasthttp answers oversize bodies and malformed requests itself;
		// this keeps those answers in OpenAI's error shape.
		ErrorHandler:          routes.TransportError,
		NoDefaultServerHeader: true,
		CloseOnShutdown:       true,
		// fasthttp's own error log would print raw request bytes,
		// Authorization header included: secrets never reach the log.
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{a.log},
	}
	return a, nil
}

// fasthttpLogger routes fasthttp's messages into the structured log.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("http server", "message", fmt.Sprintf(format, args...))
}

// redisLogger routes go-redis's messages into the structured log.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, args ...any) {
	l.log.Warn("redis", "message", fmt.Sprintf(format, args...))
}

// handler adds /metrics in front of the API.
func (a *app) handler() fasthttp.RequestHandler {
	api := a.server.Handler()
	return func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/metrics" {
			ctx.SetContentType("text/plain; version=0.0.4")
			a.writeMetrics(ctx)
			return
		}
		api(ctx)
	}
}

// writeMetrics writes every component's series plus Go and process metrics.
func (a *app) writeMetrics(w io.Writer) {
	a.server.Metrics().WritePrometheus(w)
	a.umet.Set().WritePrometheus(w)
	a.breaker.Metrics().WritePrometheus(w)
	if a.coord != nil {
		a.coord.Metrics().WritePrometheus(w)
	}
	a.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
}

// ready is /readyz (DESIGN.md section 5): unready while draining or
// while the record store does not answer; degraded, but ready, while only
// Redis does not.
func (a *app) ready(ctx context.Context) routes.Readiness {
	if a.draining.Load() {
		return routes.Readiness{Unready: "draining: the gateway is shutting down"}
	}
	if a.store != nil {
		if err := a.store.Ping(ctx); err != nil {
			return routes.Readiness{Unready: "record store: " + err.Error()}
		}
	}
	if a.coord != nil {
		return routes.Readiness{Redis: a.coord.RedisStatus(ctx)}
	}
	return routes.Readiness{}
}

// serve runs the server on ln, and the background reaper and store
// health sampler, until shutdown.
func (a *app) serve(ln net.Listener) error {
	if a.coord != nil {
		ctx, cancel := context.WithCancel(context.Background())
		a.stopReaper, a.reaperDone = cancel, make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			a.coord.RunReaper(ctx, a.cfg.Dedupe.ReapInterval, func(r, e int, err error) {
				if err != nil {
					a.log.Warn("reaper pass failed", "error", err.Error())
					return
				}
				a.log.Info("reaper pass", "reclaimed", r, "expired", e)
			})
		})
		wg.Go(func() { a.coord.RunHealthSampler(ctx, dedupe.DefaultHealthEvery) })
		if a.keys.Enabled() {
			wg.Go(func() { a.refreshSealKey(ctx) })
		}
		go func() {
			wg.Wait()
			close(a.reaperDone)
		}()
	}
	ln = writeDeadlineListener{Listener: ln, timeout: a.cfg.WriteTimeout}
	if a.certs != nil {
		ln = a.certs.listener(ln)
	}
	return a.http.Serve(ln)
}

// drain marks the node as draining (/readyz 503) and, with
// shutdown_delay, keeps serving that long so that load balancers stop
// sending before the listener closes. A second SIGTERM or SIGINT ends
// the delay.
func (a *app) drain(sig <-chan os.Signal) {
	a.draining.Store(true)
	d := a.cfg.ShutdownDelay
	if d <= 0 {
		return
	}
	a.log.Info("draining: /readyz answers 503 until the listener closes", "shutdown_delay", d.String())
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case s := <-sig:
			if s != syscall.SIGHUP {
				return
			}
		}
	}
}

// shutdown stops accepting, lets in-flight requests finish within the
// context's bound, then closes the stores.
func (a *app) shutdown(ctx context.Context) error {
	a.draining.Store(true)
	err := a.http.ShutdownWithContext(ctx)
	if a.coord != nil {
		// Streams whose clients left are still being read and recorded
		// (detach_on_disconnect): let them finish within the bound.
		if derr := a.coord.Drain(ctx); derr != nil {
			a.log.Warn("shutdown before every running task ended", "error", derr.Error())
		}
	}
	if a.stopReaper != nil {
		a.stopReaper()
		<-a.reaperDone
	}
	if a.coord != nil {
		// The replays and joins counted since the reaper's last flush.
		if ferr := a.coord.FlushServed(ctx); ferr != nil {
			a.log.Warn("cannot record the last replay and join counts", "error", ferr.Error())
		}
	}
	// The spans of the last requests, within what is left of the bound.
	if terr := a.tracer.Shutdown(ctx); terr != nil {
		a.log.Warn("shutdown before every span was exported", "error", terr.Error())
	}
	a.close()
	return err
}

func (a *app) close() {
	if a.breaker != nil {
		a.breaker.Close() // its background reads use Redis, closed below
	}
	if a.coord != nil {
		a.coord.Close()
	}
	if a.store != nil {
		_ = a.store.Close()
	}
	if a.rbackend != nil {
		_ = a.rbackend.Close()
	}
	if a.redis != nil {
		_ = a.redis.Close()
	}
}

// reload re-reads the config file; a valid one replaces providers, routes
// and auth for the next requests, an invalid one is logged and ignored.
// Keys read only at start-up (config.RestartOnlyChanges) keep their value,
// with a warning naming them.
func (a *app) reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	cfg, err := config.Load(a.cfg.Path)
	if err == nil {
		var st *routes.State
		if st, err = routes.NewState(cfg, a.umet, a.breaker); err == nil {
			// New settings, same state: targets still routed keep theirs.
			a.breaker.Reload(cfg)
			a.server.Swap(st)
			a.secrets.Store(config.NewScrubber(cfg.Secrets()))
			if a.certs != nil && cfg.ListenTLS.Enabled() {
				// Validation read the pair already; this load can only
				// fail when the files changed again since.
				if terr := a.certs.reload(cfg.ListenTLS); terr != nil {
					a.log.Error("listen_tls not reloaded; keeping the running certificate", "error", terr.Error())
				}
			}
			a.set.GetOrCreateCounter(`gateway_config_reloads_total{result="success"}`).Inc()
			a.log.Info("config reloaded", "path", a.cfg.Path, "routes", len(cfg.Routes), "providers", len(cfg.Providers))
			for _, w := range cfg.Warnings() {
				a.log.Warn("config warning", "warning", w)
			}
			// Compared with the start-up config: those values are the
			// ones still in effect.
			if keys := config.RestartOnlyChanges(a.cfg, cfg); len(keys) > 0 {
				a.log.Warn("config keys changed that need a restart; they keep their running values until then", "keys", keys)
			}
			return nil
		}
	}
	a.set.GetOrCreateCounter(`gateway_config_reloads_total{result="failure"}`).Inc()
	a.log.Error("config reload rejected; keeping the running config", "path", a.cfg.Path, "error", err.Error())
	return err
}

// cmdServe runs the gateway until SIGTERM or SIGINT; SIGHUP reloads.
func cmdServe(args []string, stderr io.Writer) int {
	cfg, code := loadConfig("serve", args, stderr)
	if cfg == nil {
		return code
	}
	a, err := newApp(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "cannot start:", config.NewScrubber(cfg.Secrets()).String(err.Error()))
		return 1
	}
	// go-redis logs through a package-level logger; in this process it
	// joins the structured log instead of writing plain lines.
	redis.SetLogger(redisLogger{a.log})
	for _, w := range cfg.Warnings() {
		a.log.Warn("config warning", "warning", w)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		a.close()
		fmt.Fprintf(stderr, "cannot listen on %q: %v\n", cfg.Listen, err)
		return 1
	}
	a.log.Info("gateway listening", "addr", ln.Addr().String(), "pid", os.Getpid(), "version", version, "store", cfg.Store.Kind, "lock", cfg.Lock.Kind, "tls", cfg.ListenTLS.Enabled())
	errc := make(chan error, 1)
	go func() { errc <- a.serve(ln) }()
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	for {
		select {
		case err := <-errc:
			a.log.Error("server stopped", "error", err)
			return 1
		case s := <-sig:
			if s == syscall.SIGHUP {
				_ = a.reload()
				continue
			}
			a.log.Info("shutting down", "signal", s.String(), "timeout", cfg.ShutdownTimeout.String())
			a.drain(sig)
			ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			err := a.shutdown(ctx)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				a.log.Error("shutdown", "error", err.Error())
			}
			a.log.Info("stopped")
			return 0
		}
	}
}

// openStore opens the configured record store.
func openStore(ctx context.Context, cfg *config.Config) (dedupe.Store, error) {
	// A failed open returns a nil Store, not a nil *Postgres or *Embedded
	// in a Store that app.close would call Close on.
	switch cfg.Store.Kind {
	case config.StorePostgres:
		s, err := dedupe.OpenPostgres(ctx, cfg.Store.URL, cfg.Store.AutoMigrate())
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		s, err := dedupe.OpenEmbedded(cfg.Store.Path)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

func newRedis(c config.Redis) redis.UniversalClient {
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:      c.Addrs,
		MasterName: c.MasterName,
		Password:   c.Password,
		DB:         c.DB,
		// Redis only makes the gateway fast: fail quickly and degrade to
		// the record store rather than stall requests.
		DialTimeout:  500 * time.Millisecond,
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
		MaxRetries:   1,
	})
}

func coordinatorOptions(cfg *config.Config) dedupe.Options {
	d := cfg.Dedupe
	return dedupe.Options{
		Owner: owner(), Lease: d.Lease, MaxProcessing: d.MaxProcessing, KeyTTL: d.KeyTTL,
		WaitTimeout: d.WaitTimeout, Reject: d.RejectsInProgress(), MaxRecordBytes: d.MaxRecordBytes,
		ReapBatch: d.ReapBatch,
	}
}

// owner names this process in leases: host, pid and a random suffix.
func owner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return strings.Join([]string{host, strconv.Itoa(os.Getpid()), hex.EncodeToString(b[:])}, ":")
}

// newLogger builds the request logger of the log config.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated: one of slog's names
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == config.LogText {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
