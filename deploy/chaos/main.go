// Command chaos is the gateway's chaos run (issue 13, `make chaos`): three
// gateway processes on a Postgres and a Redis that the run starts itself
// on free ports, the fake upstream answering a share of calls with
// failures, 429s, hangs, slow and cut answers, and clients repeating a
// sliding window of keys, stream and non-stream, with their own retries.
// Meanwhile it SIGKILLs and restarts gateway nodes, SIGKILLs Redis and
// restarts it empty, and restarts Postgres in immediate mode. Afterwards
// every key gets a final retry, and an invariant checker reads every
// client's results, the fake's call counters and the attempt ledger.
// It prints one summary line and exits 1 on any violation.
//
//	go run ./deploy/chaos -duration 2m
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	duration   time.Duration
	faultEvery time.Duration
	clients    int
	window     int
	keyEvery   time.Duration
	seed       uint64
	gateway    string
	keep       bool
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 6*time.Minute, "how long clients send while faults are injected")
	fs.DurationVar(&o.faultEvery, "fault-every", 2*time.Second, "mean pause between two infrastructure faults")
	fs.IntVar(&o.clients, "clients", 8, "concurrent clients")
	fs.IntVar(&o.window, "window", 8, "keys in use at any moment")
	fs.DurationVar(&o.keyEvery, "key-every", 100*time.Millisecond, "a new key enters the window this often")
	fs.Uint64Var(&o.seed, "seed", uint64(time.Now().UnixNano()), "seed of the upstream answers, faults and clients")
	fs.StringVar(&o.gateway, "gateway", "", "gateway binary (default: go build ./gateway)")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's directory (configs, logs, Postgres) for a look afterwards")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || o.clients < 1 || o.window < 1 || o.duration <= 0 || o.faultEvery <= 0 || o.keyEvery <= 0 {
		fmt.Fprintln(stderr, "usage: chaos [-duration D] [-fault-every D] [-clients N] [-window N] [-key-every D] [-seed N] [-gateway BIN] [-keep]")
		return 2
	}
	r := &chaosRun{o: o, log: stderr, rng: rand.New(rand.NewPCG(o.seed, 0))}
	defer r.cleanup()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		if _, ok := <-stop; ok {
			r.cleanup()
			os.Exit(130)
		}
	}()
	defer signal.Stop(stop)
	violations, err := r.main()
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	fmt.Fprintln(stdout, r.summary(len(violations)))
	if len(violations) > 0 {
		for i, v := range violations {
			if i == 50 {
				fmt.Fprintf(stdout, "... and %d more\n", len(violations)-50)
				break
			}
			fmt.Fprintln(stdout, "violation:", v)
		}
		return 1
	}
	return 0
}

// chaosRun holds the run's processes and counters.
type chaosRun struct {
	o   options
	log io.Writer
	rng *rand.Rand // used by the orchestrating goroutine only

	tmp      string
	pg       *postgres
	redis    *redisServer
	fake     *upstreamtest.Server
	scripts  []script
	nodes    []*node
	clients  []*client
	keys     []string
	requests atomic.Int64

	faultsMu sync.Mutex
	faults   map[string]int
	upstream [numAnswerKinds]int

	// Read by verdict for the summary.
	totalCalls int
	ev         evidence

	cleanOnce sync.Once
}

// lease is the nodes' dedupe lease: short, so a killed leader's task is
// taken over within the run.
const lease = 2 * time.Second

func (r *chaosRun) main() ([]string, error) {
	var err error
	if r.tmp, err = os.MkdirTemp("", "gwchaos"); err != nil {
		return nil, fmt.Errorf("cannot create the run directory: %w", err)
	}
	// Postgres (as its own user when root) must reach its directory.
	if err := os.Chmod(r.tmp, 0o755); err != nil {
		return nil, err
	}
	bin := r.o.gateway
	if bin == "" {
		bin = filepath.Join(r.tmp, "gateway")
		if out, err := exec.Command("go", "build", "-o", bin, "./gateway").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("cannot build the gateway (run from the module root): %w\n%s", err, out)
		}
	}
	if r.pg, err = startPostgres(r.tmp); err != nil {
		return nil, err
	}
	if r.redis, err = startRedis(r.tmp); err != nil {
		return nil, err
	}
	if r.fake, err = upstreamtest.Start(); err != nil {
		return nil, err
	}
	r.fake.SetMaxRequests(0)
	for _, m := range []string{"chaos-a", "chaos-b"} {
		s := newScript(m, r.rng)
		s.install(r.fake, r.rng)
		r.scripts = append(r.scripts, s)
	}
	urls, err := r.startNodes(bin, 3)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(r.log, "chaos: seed %d, %d nodes, Postgres :%d, Redis :%d, fake %s, run directory %s\n",
		r.o.seed, len(r.nodes), r.pg.port, r.redis.port, r.fake.URL, r.tmp)

	// The load phase, with faults.
	nKeys := r.o.window + int(r.o.duration/r.o.keyEvery)
	start := time.Now()
	window := func() (int, int) {
		lo := min(int(time.Since(start)/r.o.keyEvery), nKeys-r.o.window)
		return lo, lo + r.o.window
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.o.duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range r.o.clients {
		c := newClient(fmt.Sprint(r.o.seed), urls, r.o.seed+uint64(i)+1)
		r.clients = append(r.clients, c)
		wg.Go(func() { c.loop(ctx, window, 6, &r.requests) })
	}
	faultsDone := make(chan struct{})
	go func() { defer close(faultsDone); r.injectFaults(ctx) }()
	<-faultsDone
	wg.Wait()
	fmt.Fprintf(r.log, "chaos: load phase over after %v, %d requests; final retries\n", time.Since(start).Round(time.Second), r.requests.Load())

	// Every process up, the upstream healthy, the killed leaders' leases
	// run out: then every key must answer its final retry.
	if err := r.allUp(); err != nil {
		return nil, err
	}
	r.countUpstream()
	for _, s := range r.scripts {
		r.fake.SetBehavior(s.model, upstreamtest.Behavior{Interval: 20 * time.Millisecond})
	}
	time.Sleep(2 * lease)
	for n := range nKeys {
		r.keys = append(r.keys, keyName(fmt.Sprint(r.o.seed), n))
	}
	var next atomic.Int64
	for _, c := range r.clients {
		wg.Go(func() {
			for {
				n := int(next.Add(1)) - 1
				if n >= nKeys {
					return
				}
				c.request(context.Background(), n, 12, true, &r.requests)
			}
		})
	}
	wg.Wait()
	// Detached leaders finish and heartbeats stop before the ledger is read.
	time.Sleep(2 * lease)
	return r.verdict(urls)
}

func (r *chaosRun) startNodes(bin string, n int) ([]string, error) {
	var urls []string
	for i := range n {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		nd := &node{bin: bin, cfg: filepath.Join(r.tmp, fmt.Sprintf("node%d.yaml", i)),
			logPath: filepath.Join(r.tmp, fmt.Sprintf("node%d.log", i)), url: fmt.Sprintf("http://127.0.0.1:%d", port)}
		if err := os.WriteFile(nd.cfg, []byte(r.nodeConfig(port)), 0o600); err != nil {
			return nil, fmt.Errorf("cannot write a node config: %w", err)
		}
		if err := nd.start(); err != nil {
			return nil, err
		}
		r.nodes = append(r.nodes, nd)
		urls = append(urls, nd.url)
	}
	return urls, nil
}

// nodeConfig: two targets on the fake, so a failed call usually falls
// back; a short lease and breaker cooldown so the run sees take-overs and
// probes; key_attempts high, since the run's keys fail far more often
// than a real key would and must still answer their final retry.
func (r *chaosRun) nodeConfig(port int) string {
	return fmt.Sprintf(`listen: 127.0.0.1:%d
auth:
  mode: keys
  keys: [{tenant: %s, key: %s}]
  admin_key: %s
log: {level: warn, format: json}
store: {kind: postgres, url: %q, migrate: auto}
lock: {kind: redis, redis: {addrs: [%q], key_prefix: "chaos:"}}
dedupe:
  lease: %s
  max_processing: 30s
  wait_timeout: 8s
  key_ttl: 24h
  reap_interval: 1s
resilience:
  breaker: {failures: 5, cooldown: 1s, max_cooldown: 4s}
  rate_limit_cooldown: 200ms
  retries: 1
  retry_backoff: 50ms
  max_retry_wait: 200ms
  max_attempts: 4
  key_attempts: 1000
providers:
  up1: {base_url: %q, api_key: sk-chaos-upstream-1, timeout: 5s, first_byte_timeout: 1s}
  up2: {base_url: %q, api_key: sk-chaos-upstream-2, timeout: 5s, first_byte_timeout: 1s}
routes:
  - model: chaos
    fallback_on: [connect, timeout, 429, 5xx]
    targets: [{provider: up1, model: chaos-a}, {provider: up2, model: chaos-b}]
`, port, tenant, clientKey, adminKey, r.pg.url(), r.redis.addr(), lease, r.fake.URL, r.fake.URL)
}

// Infrastructure faults and their share.
const (
	faultNodeKill     = "gateway_kill"
	faultRedisKill    = "redis_kill"
	faultPostgresRest = "postgres_restart"
	faultPostgresDown = "postgres_down" // immediate stop, down longer than a lease, start
)

// injectFaults injects one fault about every faultEvery until ctx ends.
// A killed node comes back after a moment, at most one node is down at a
// time, and Redis and Postgres are back before the next fault.
func (r *chaosRun) injectFaults(ctx context.Context) {
	r.faults = map[string]int{}
	var restarts sync.WaitGroup
	defer restarts.Wait()
	for {
		pause := r.o.faultEvery/2 + time.Duration(r.rng.Int64N(int64(r.o.faultEvery)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		switch p := r.rng.IntN(100); {
		case p < 50:
			nd := r.nodes[r.rng.IntN(len(r.nodes))]
			if !r.allNodesUp() {
				continue
			}
			nd.kill()
			r.count(faultNodeKill)
			back := time.Duration(200+r.rng.IntN(800)) * time.Millisecond
			restarts.Go(func() {
				time.Sleep(back)
				if err := nd.start(); err != nil {
					fmt.Fprintln(r.log, "chaos: restarting a node:", err)
				}
			})
		case p < 75:
			r.redis.kill()
			r.count(faultRedisKill)
			time.Sleep(time.Duration(100+r.rng.IntN(900)) * time.Millisecond)
			if err := r.redis.start(); err != nil {
				fmt.Fprintln(r.log, "chaos: restarting Redis:", err)
			}
		case p < 88:
			if err := r.pg.restartImmediate(); err != nil {
				fmt.Fprintln(r.log, "chaos:", err)
			}
			r.count(faultPostgresRest)
		default:
			if err := r.pg.crashFor(lease + time.Duration(r.rng.IntN(2000))*time.Millisecond); err != nil {
				fmt.Fprintln(r.log, "chaos:", err)
			}
			r.count(faultPostgresDown)
		}
	}
}

func (r *chaosRun) count(kind string) {
	r.faultsMu.Lock()
	r.faults[kind]++
	r.faultsMu.Unlock()
}

func (r *chaosRun) allNodesUp() bool {
	for _, nd := range r.nodes {
		if !nd.up() {
			return false
		}
	}
	return true
}

// allUp restarts whatever a fault left down.
func (r *chaosRun) allUp() error {
	if !r.redis.ping() {
		if err := r.redis.start(); err != nil {
			return err
		}
	}
	for _, nd := range r.nodes {
		if !nd.up() {
			if err := nd.start(); err != nil {
				return err
			}
		}
	}
	return nil
}

// countUpstream reads the fake's counters: calls, and the answers sent
// of each kind (the scripts' first calls entries).
func (r *chaosRun) countUpstream() {
	for _, s := range r.scripts {
		sent := s.sent(r.fake.CallsForModel(s.model))
		for k := range sent {
			r.upstream[k] += sent[k]
		}
	}
}

func (r *chaosRun) verdict(urls []string) ([]string, error) {
	ev := evidence{keys: r.keys, calls: map[string]int{}}
	for _, k := range r.keys {
		ev.calls[k] = r.fake.CallsForKey(k)
	}
	for _, c := range r.clients {
		ev.results = append(ev.results, c.results...)
	}
	var err error
	if ev.ledger, err = readLedgers(&http.Client{Timeout: 10 * time.Second}, urls, r.keys); err != nil {
		return nil, err
	}
	r.totalCalls = r.fake.Calls()
	r.ev = ev
	return check(ev), nil
}

func (r *chaosRun) summary(violations int) string {
	var ok, failed, avoided int
	for _, res := range r.ev.results {
		switch {
		case res.ok && res.replayed:
			ok++
			avoided++
		case res.ok:
			ok++
		default:
			failed++
		}
	}
	faultTotal := r.faults[faultNodeKill] + r.faults[faultRedisKill] + r.faults[faultPostgresRest] + r.faults[faultPostgresDown]
	var up []string
	for k := answerFail; k < numAnswerKinds; k++ {
		up = append(up, fmt.Sprintf("%s %d", answerNames[k], r.upstream[k]))
	}
	return fmt.Sprintf("chaos: %v, 3 nodes, %d keys: requests %d, ok %d, failed %d; faults %d (gateway_kill %d, redis_kill %d, postgres_restart %d, postgres_down %d; upstream answers %s); upstream calls %d; duplicates avoided %d; violations %d",
		r.o.duration, len(r.keys), len(r.ev.results), ok, failed, faultTotal,
		r.faults[faultNodeKill], r.faults[faultRedisKill], r.faults[faultPostgresRest], r.faults[faultPostgresDown], strings.Join(up, ", "),
		r.totalCalls, avoided, violations)
}

// cleanup stops every process of the run and removes its directory.
func (r *chaosRun) cleanup() {
	r.cleanOnce.Do(func() {
		for _, nd := range r.nodes {
			nd.kill()
		}
		if r.fake != nil {
			_ = r.fake.Close()
		}
		if r.redis != nil {
			r.redis.kill()
		}
		if r.pg != nil {
			r.pg.stop()
		}
		if r.tmp != "" && !r.o.keep {
			_ = os.RemoveAll(r.tmp)
		}
	})
}
