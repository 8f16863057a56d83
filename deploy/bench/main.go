// Command bench measures a gateway running on this machine against a bare
// proxy in front of the same fake upstream. Its subcommands:
//
//	bench load      send chat completions (streamed or not) for a bounded
//	                time, closed-loop or at a fixed rate, and print (or
//	                append as JSON) throughput, latency percentiles, time to
//	                first byte, CPU and allocations per request of a process
//	bench floor     a bare fasthttp reverse proxy: the floor the gateway is
//	                measured against
//	bench readfloor a server answering every request with one indexed read
//	                of a stored task: the floor of a replay
//	bench table     turn the JSON records of a run into the README's table
//	bench soak      new keys at a steady rate for minutes against a gateway
//	                on Postgres, sampling table sizes, dead tuples and the
//	                HOT share of heartbeats
//
// Flags without a subcommand mean `bench load`. The load tool refuses any
// target that is not loopback, so that it can never be pointed at a real
// provider (or someone else's gateway) by mistake.
//
//	go run ./deploy/bench -target http://127.0.0.1:8080 -concurrency 200 -duration 10s -stream -mode unique -key sk-...
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Limits that keep a run bounded whatever the flags say.
const (
	maxDuration = 10 * time.Minute
	// maxConcurrency allows the long-stream run its 10,000 streams.
	maxConcurrency = 20000
	// maxRequests also bounds the memory of the latency samples (8 bytes each).
	maxRequests = 10_000_000
	// maxRate bounds the open-loop mode.
	maxRate = 1_000_000
)

// Load modes.
const (
	modeUnique  = "unique"
	modeSameKey = "same-key"
	modeDerived = "derived"
	modeDup     = "dup"
	modeHold    = "hold"
	modeBegin   = "begin"
	modeTasks   = "tasks"
)

// options are the parsed flags of `bench load`.
type options struct {
	target      *url.URL
	path        string
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	requests    int64
	stream      bool
	mode        string
	key         string
	model       string
	timeout     time.Duration
	// rate > 0 sends at this many requests per second (open loop);
	// rateFrom derives it from earlier records (see resolveRate).
	rate     float64
	rateFrom string
	rateFrac float64
	rateLike string
	// pid is the process whose CPU time (and, in hold mode, memory) is measured.
	pid int
	// pprof is the measured gateway's base URL for /debug/pprof/allocs.
	pprof    string
	adminKey string
	// label, phase, ref and jsonPath make the run a record of a suite.
	label    string
	phase    string
	ref      string
	beyond   string
	jsonPath string
	// idemKey is the one Idempotency-Key of same-key mode ("": a new one per run).
	idemKey string
	// chunks is how many content chunks each stream must carry (0: any).
	chunks int
	// storeURL is the Postgres URL of -mode begin and tasks.
	storeURL string
	// walURL is the database whose commits and WAL bytes per request
	// are measured (pg_walinspect).
	walURL string
	// vs lists labels whose peak this line's req/s is also set against.
	vs string
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch runs a subcommand and returns the exit code.
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest := args[0], args[1:]
		switch cmd {
		case "load":
			return run(rest, stdout, stderr)
		case "floor":
			return cmdFloor(rest, stderr)
		case "readfloor":
			return cmdReadFloor(rest, stderr)
		case "table":
			return cmdTable(rest, stdout, stderr)
		case "soak":
			return cmdSoak(rest, stdout, stderr)
		}
		fmt.Fprintf(stderr, "bench: unknown command %q (load, floor, readfloor, table, soak)\n", cmd)
		return 2
	}
	return run(args, stdout, stderr)
}

// run is `bench load`.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "bench:", err)
		}
		return 2
	}
	if err := resolveRate(o); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	res, err := measure(o)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	res.print(stdout, o)
	if o.jsonPath != "" {
		if err := appendRecord(o.jsonPath, res.record(o)); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	}
	if res.total == 0 || res.ok == 0 {
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "http://127.0.0.1:8080", "gateway base URL; loopback only (127.0.0.0/8, ::1, localhost)")
	o := &options{}
	fs.StringVar(&o.path, "path", "/v1/chat/completions", "request path")
	fs.IntVar(&o.concurrency, "concurrency", 50, "concurrent workers, each with its own keep-alive connection (dup: requests per key; hold: streams held open)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure (at most "+maxDuration.String()+")")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "load sent before measuring starts (connections, pools)")
	fs.Int64Var(&o.requests, "requests", 0, "stop after this many requests (0: only the duration bounds the run)")
	fs.BoolVar(&o.stream, "stream", false, "send stream:true and read the SSE answer")
	fs.StringVar(&o.mode, "mode", modeUnique, "unique: new body and Idempotency-Key per request (every request goes upstream); "+
		"same-key: one body and one Idempotency-Key (replays); derived: one body, no key (the gateway derives it; replays); "+
		"dup: rounds of -concurrency simultaneous requests sharing a new key (one upstream call each); "+
		"hold: -concurrency streams open at once, memory per stream from -pid's RSS; "+
		"begin: the record store's Begin alone (Postgres at -store-url), the durable write in front of a new task; "+
		"tasks: the Postgres store's SQL of a new task (Begin's insert, then Complete) from a plain pgx loop at -store-url, the write path's floor")
	fs.StringVar(&o.key, "key", "", "client key sent as Authorization: Bearer (empty: none)")
	fs.StringVar(&o.model, "model", "bench-model", "model name sent in the body")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of one request")
	fs.Float64Var(&o.rate, "rate", 0, "send this many requests per second in all (open loop); 0: as fast as the workers go")
	fs.StringVar(&o.rateFrom, "rate-from", "", "comma-separated labels of peak records in -json: rate = -rate-frac x the lowest of their req/s")
	fs.Float64Var(&o.rateFrac, "rate-frac", 0.5, "fraction of -rate-from's req/s")
	fs.StringVar(&o.rateLike, "rate-like", "", "label of a latency record in -json: send at its rate (to compare two lines at the same rate)")
	fs.IntVar(&o.pid, "pid", 0, "process whose CPU time per request (and in hold mode RSS) is measured; 0: none")
	fs.StringVar(&o.pprof, "pprof", "", "base URL of the measured gateway's /debug/pprof (debug.pprof: true): allocations per request")
	fs.StringVar(&o.adminKey, "admin-key", "", "admin key sent to -pprof")
	fs.StringVar(&o.label, "label", "", "name of this line in the table")
	fs.StringVar(&o.phase, "phase", "peak", "peak (closed loop throughput) or latency (the line's latency at a set rate)")
	fs.StringVar(&o.ref, "ref", "", "comma-separated labels this line is compared with (the lowest req/s of them)")
	fs.StringVar(&o.beyond, "beyond", "", "label of a latency record whose p50/p99 the table subtracts from this line's added first byte (the Begin write)")
	fs.StringVar(&o.jsonPath, "json", "", "append the run as one JSON record to this file")
	fs.StringVar(&o.idemKey, "idem-key", "", "the Idempotency-Key of -mode same-key (default: a new one per run)")
	fs.IntVar(&o.chunks, "chunks", 0, "content chunks every stream must carry (0: not checked)")
	fs.StringVar(&o.storeURL, "store-url", "", "Postgres URL of -mode begin and tasks")
	fs.StringVar(&o.walURL, "wal-url", "", "Postgres URL of the database whose commits and WAL bytes per request are measured (pg_walinspect, a superuser)")
	fs.StringVar(&o.vs, "vs", "", "comma-separated labels whose peak req/s this line's is also compared with (in the notes)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	u, err := loopbackURL(*target)
	if err != nil {
		return nil, err
	}
	o.target = u
	if o.pprof != "" {
		if _, err := loopbackURL(o.pprof); err != nil {
			return nil, fmt.Errorf("-pprof: %w", err)
		}
	}
	switch {
	case !oneOf(o.mode, modeUnique, modeSameKey, modeDerived, modeDup, modeHold, modeBegin, modeTasks):
		return nil, fmt.Errorf("-mode must be unique, same-key, derived, dup, hold, begin or tasks, got %q", o.mode)
	case o.concurrency < 1 || o.concurrency > maxConcurrency:
		return nil, fmt.Errorf("-concurrency must be between 1 and %d, got %d", maxConcurrency, o.concurrency)
	case o.duration <= 0 || o.duration > maxDuration:
		return nil, fmt.Errorf("-duration must be positive and at most %s, got %s", maxDuration, o.duration)
	case o.warmup < 0 || o.warmup > time.Minute:
		return nil, fmt.Errorf("-warmup must be between 0 and 1m, got %s", o.warmup)
	case o.requests < 0 || o.requests > maxRequests:
		return nil, fmt.Errorf("-requests must be between 0 and %d, got %d", maxRequests, o.requests)
	case o.timeout <= 0:
		return nil, fmt.Errorf("-timeout must be positive, got %s", o.timeout)
	case o.rate < 0 || o.rate > maxRate:
		return nil, fmt.Errorf("-rate must be between 0 and %d, got %v", maxRate, o.rate)
	case o.rateFrac <= 0 || o.rateFrac > 1:
		return nil, fmt.Errorf("-rate-frac must be in (0, 1], got %v", o.rateFrac)
	case (o.rateFrom != "" || o.rateLike != "") && o.jsonPath == "":
		return nil, errors.New("-rate-from and -rate-like need -json (the records they read)")
	case !oneOf(o.phase, "peak", "latency"):
		return nil, fmt.Errorf("-phase must be peak or latency, got %q", o.phase)
	case (o.mode == modeBegin || o.mode == modeTasks) && o.storeURL == "":
		return nil, fmt.Errorf("-mode %s needs -store-url", o.mode)
	case o.chunks < 0:
		return nil, fmt.Errorf("-chunks must not be negative, got %d", o.chunks)
	}
	if o.requests == 0 {
		o.requests = maxRequests
	}
	if o.label == "" {
		o.label = o.mode
	}
	return o, nil
}

func oneOf(s string, allowed ...string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}

// loopbackURL parses target and accepts it only when its host is a
// loopback address or "localhost".
func loopbackURL(target string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("cannot parse -target %q: %w", target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("-target %q: scheme must be http or https", target)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return u, nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("-target %q: only loopback targets are allowed (127.0.0.0/8, ::1, localhost)", target)
	}
	return u, nil
}

// hostPort is the dial address of a loopback URL.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}
