// Command bench is a load tool for a gateway running on this machine: it
// sends chat completions (streamed or not) from many workers for a bounded
// time and request count, then prints throughput, latency percentiles,
// time to first byte of streams, errors by status and how many answers
// were replays.
//
// It refuses any target that is not loopback, so that it can never be
// pointed at a real provider (or someone else's gateway) by mistake.
//
//	go run ./deploy/bench -target http://127.0.0.1:8080 -concurrency 200 -duration 10s -stream -mode unique -key sk-...
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits that keep a run bounded whatever the flags say.
const (
	maxDuration    = 10 * time.Minute
	maxConcurrency = 5000
	// maxRequests also bounds the memory of the latency samples (8 bytes each).
	maxRequests = 10_000_000
)

// options are the parsed flags.
type options struct {
	target      *url.URL
	path        string
	concurrency int
	duration    time.Duration
	requests    int64
	stream      bool
	mode        string
	key         string
	model       string
	timeout     time.Duration
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "bench:", err)
		}
		return 2
	}
	res := newBench(o).run()
	res.print(stdout, o)
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
	fs.IntVar(&o.concurrency, "concurrency", 50, "concurrent workers, each with its own keep-alive connection")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send requests (at most "+maxDuration.String()+")")
	fs.Int64Var(&o.requests, "requests", 0, "stop after this many requests (0: only the duration bounds the run)")
	fs.BoolVar(&o.stream, "stream", false, "send stream:true and read the SSE answer")
	fs.StringVar(&o.mode, "mode", "unique", "unique: new body and Idempotency-Key per request (every request goes upstream); "+
		"same-key: one body and one Idempotency-Key (replays); derived: one body, no key (the gateway derives it; replays)")
	fs.StringVar(&o.key, "key", "", "client key sent as Authorization: Bearer (empty: none)")
	fs.StringVar(&o.model, "model", "bench-model", "model name sent in the body")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of one request")
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
	switch {
	case o.mode != "unique" && o.mode != "same-key" && o.mode != "derived":
		return nil, fmt.Errorf("-mode must be unique, same-key or derived, got %q", o.mode)
	case o.concurrency < 1 || o.concurrency > maxConcurrency:
		return nil, fmt.Errorf("-concurrency must be between 1 and %d, got %d", maxConcurrency, o.concurrency)
	case o.duration <= 0 || o.duration > maxDuration:
		return nil, fmt.Errorf("-duration must be positive and at most %s, got %s", maxDuration, o.duration)
	case o.requests < 0 || o.requests > maxRequests:
		return nil, fmt.Errorf("-requests must be between 0 and %d, got %d", maxRequests, o.requests)
	case o.timeout <= 0:
		return nil, fmt.Errorf("-timeout must be positive, got %s", o.timeout)
	}
	if o.requests == 0 {
		o.requests = maxRequests
	}
	return o, nil
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

// bench is one run.
type bench struct {
	o      *options
	url    string
	client *http.Client
	// sent counts requests handed out, to stop at o.requests.
	sent atomic.Int64
	// runID keeps unique-mode bodies and keys distinct across runs, so a
	// second run against the same gateway does not replay the first.
	runID string
}

func newBench(o *options) *bench {
	tr := &http.Transport{
		Proxy:               nil, // loopback only: never through a proxy
		MaxIdleConns:        o.concurrency,
		MaxIdleConnsPerHost: o.concurrency,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &bench{
		o:      o,
		url:    strings.TrimSuffix(o.target.String(), "/") + o.path,
		client: &http.Client{Transport: tr, Timeout: o.timeout},
		runID:  strconv.FormatInt(time.Now().UnixNano(), 36),
	}
}

// sample is the outcome of one request.
type sample struct {
	latency  time.Duration
	ttfb     time.Duration // streams only
	status   int           // 0: transport error
	broken   bool          // 2xx stream without [DONE]
	replayed bool
}

// workerStats is what one worker collected; merged at the end.
type workerStats struct {
	latencies []time.Duration
	ttfbs     []time.Duration
	byStatus  map[string]int
	replayed  int
	ok        int
}

func (b *bench) run() *result {
	ctx, cancel := context.WithTimeout(context.Background(), b.o.duration)
	defer cancel()
	stats := make([]*workerStats, b.o.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range stats {
		ws := &workerStats{byStatus: make(map[string]int)}
		stats[i] = ws
		wg.Go(func() { b.worker(ctx, ws) })
	}
	wg.Wait()
	return merge(stats, time.Since(start))
}

func (b *bench) worker(ctx context.Context, ws *workerStats) {
	for ctx.Err() == nil {
		n := b.sent.Add(1)
		if n > b.o.requests {
			return
		}
		s := b.do(ctx, n)
		if s.status == 0 && ctx.Err() != nil {
			// Cut by the end of the run, not a failure of the gateway.
			return
		}
		ws.add(s)
	}
}

func (ws *workerStats) add(s sample) {
	ws.latencies = append(ws.latencies, s.latency)
	switch {
	case s.status == 0:
		ws.byStatus["transport"]++
	case s.broken:
		ws.byStatus["broken-stream"]++
	case s.status >= 200 && s.status < 300:
		ws.ok++
		if s.ttfb > 0 {
			ws.ttfbs = append(ws.ttfbs, s.ttfb)
		}
	default:
		ws.byStatus[strconv.Itoa(s.status)]++
	}
	if s.replayed {
		ws.replayed++
	}
}

// body returns the request body and Idempotency-Key of request n.
func (b *bench) body(n int64) ([]byte, string) {
	content := "benchmark prompt"
	key := ""
	switch b.o.mode {
	case "unique":
		content = "benchmark prompt " + b.runID + "-" + strconv.FormatInt(n, 10)
		key = "bench-" + b.runID + "-" + strconv.FormatInt(n, 10)
	case "same-key":
		key = "bench-" + b.runID
		content += " " + b.runID
	case "derived":
		content += " " + b.runID
	}
	body := fmt.Appendf(nil, `{"model":%q,"messages":[{"role":"user","content":%q}],"stream":%t}`, b.o.model, content, b.o.stream)
	return body, key
}

func (b *bench) do(ctx context.Context, n int64) sample {
	body, key := b.body(n)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url, bytes.NewReader(body))
	if err != nil {
		return sample{}
	}
	req.Header.Set("Content-Type", "application/json")
	if b.o.key != "" {
		req.Header.Set("Authorization", "Bearer "+b.o.key)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	start := time.Now()
	resp, err := b.client.Do(req)
	if err != nil {
		return sample{latency: time.Since(start)}
	}
	defer resp.Body.Close()
	s := sample{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if b.o.stream && ok {
		s.ttfb, s.broken, err = readStream(resp.Body, start)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	s.latency = time.Since(start)
	if err != nil {
		s.status = 0
	}
	return s
}

// readStream reads an SSE answer to its end and returns the time to its
// first event and whether it lacked the final "data: [DONE]".
func readStream(r io.Reader, start time.Time) (ttfb time.Duration, broken bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	done := false
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("data:")) {
			continue
		}
		if ttfb == 0 {
			ttfb = time.Since(start)
		}
		if bytes.Equal(bytes.TrimSpace(line[len("data:"):]), []byte("[DONE]")) {
			done = true
		}
	}
	return ttfb, !done, sc.Err()
}

// result is the merged outcome of a run.
type result struct {
	elapsed   time.Duration
	total     int
	ok        int
	replayed  int
	latencies []time.Duration
	ttfbs     []time.Duration
	byStatus  map[string]int
}

func merge(stats []*workerStats, elapsed time.Duration) *result {
	r := &result{elapsed: elapsed, byStatus: make(map[string]int)}
	for _, ws := range stats {
		r.latencies = append(r.latencies, ws.latencies...)
		r.ttfbs = append(r.ttfbs, ws.ttfbs...)
		r.ok += ws.ok
		r.replayed += ws.replayed
		for k, v := range ws.byStatus {
			r.byStatus[k] += v
		}
	}
	r.total = len(r.latencies)
	slices.Sort(r.latencies)
	slices.Sort(r.ttfbs)
	return r
}

// percentile returns the q-th percentile (nearest rank) of sorted samples.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q/100*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (r *result) print(w io.Writer, o *options) {
	fmt.Fprintf(w, "target      %s  mode=%s stream=%t concurrency=%d\n", o.target.Redacted(), o.mode, o.stream, o.concurrency)
	fmt.Fprintf(w, "requests    %d in %s: %.0f req/s (%d ok)\n", r.total, r.elapsed.Round(time.Millisecond), float64(r.total)/r.elapsed.Seconds(), r.ok)
	fmt.Fprintf(w, "latency     p50=%s p95=%s p99=%s max=%s\n",
		ms(percentile(r.latencies, 50)), ms(percentile(r.latencies, 95)), ms(percentile(r.latencies, 99)), ms(percentile(r.latencies, 100)))
	if o.stream {
		fmt.Fprintf(w, "ttfb        p50=%s p99=%s\n", ms(percentile(r.ttfbs, 50)), ms(percentile(r.ttfbs, 99)))
	}
	fmt.Fprintf(w, "replayed    %d (Idempotent-Replayed: true)\n", r.replayed)
	keys := make([]string, 0, len(r.byStatus))
	for k := range r.byStatus {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var errs []string
	for _, k := range keys {
		errs = append(errs, fmt.Sprintf("%s=%d", k, r.byStatus[k]))
	}
	if len(errs) == 0 {
		errs = []string{"none"}
	}
	fmt.Fprintf(w, "errors      %s\n", strings.Join(errs, " "))
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
}
