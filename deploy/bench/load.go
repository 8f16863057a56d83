package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// bench is one run of `bench load`.
type bench struct {
	o      *options
	url    string
	client *fasthttp.HostClient
	// sent counts requests handed out, to stop at o.requests and to
	// schedule open-loop sends.
	sent atomic.Int64
	// recording is set once the warm-up is over: samples before it are
	// dropped, and CPU and allocations are counted from then on.
	recording atomic.Bool
	// stop is set at the end of the measured window.
	stop atomic.Bool
	// runID keeps unique-mode bodies and keys distinct across runs, so a
	// second run against the same gateway does not replay the first.
	runID string
	// start is when open-loop slots are counted from.
	start time.Time
	// dup mode: one channel per worker hands out rounds; results come back.
	rounds      []chan int64
	answers     chan dupAnswer
	roundsDone  atomic.Int64
	roundsSplit atomic.Int64
}

func newBench(o *options) *bench {
	return &bench{
		o:   o,
		url: strings.TrimSuffix(o.target.String(), "/") + o.path,
		client: &fasthttp.HostClient{
			Addr:                     hostPort(o.target),
			IsTLS:                    o.target.Scheme == "https",
			MaxConns:                 o.concurrency,
			ReadTimeout:              o.timeout,
			WriteTimeout:             o.timeout,
			MaxIdleConnDuration:      time.Minute,
			StreamResponseBody:       o.stream,
			NoDefaultUserAgentHeader: true,
			// A measured request is sent once: a retry would hide a failure.
			MaxIdemponentCallAttempts: 1,
		},
		runID: strconv.FormatInt(time.Now().UnixNano(), 36),
	}
}

// sample is the outcome of one request.
type sample struct {
	latency  time.Duration
	ttfb     time.Duration // streams only
	status   int           // 0: transport error
	broken   bool          // 2xx stream without [DONE] (or with the wrong chunk count)
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

func newWorkerStats() *workerStats { return &workerStats{byStatus: make(map[string]int)} }

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

// measure runs the mode of o with its warm-up and returns the merged result.
func measure(o *options) (*result, error) {
	switch o.mode {
	case modeHold:
		return newBench(o).hold()
	case modeBegin:
		return measureBegin(o)
	case modeTasks:
		return measureTasks(o)
	}
	b := newBench(o)
	if o.mode == modeDup {
		b.initDup()
	}
	stats := make([]*workerStats, o.concurrency)
	var wg sync.WaitGroup
	// Open-loop slots start with the warm-up, which runs at the same rate.
	b.start = time.Now()
	for i := range stats {
		ws := newWorkerStats()
		stats[i] = ws
		wg.Go(func() {
			if o.mode == modeDup {
				b.dupWorker(i, ws)
				return
			}
			b.worker(ws)
		})
	}
	if o.mode == modeDup {
		go b.dupRounds()
	}
	time.Sleep(o.warmup)
	m, err := startMeter(o)
	if err != nil {
		b.stop.Store(true)
		wg.Wait()
		return nil, err
	}
	b.recording.Store(true)
	time.Sleep(o.duration)
	usage, err := m.stop()
	elapsed := time.Since(m.begin)
	b.stop.Store(true)
	wg.Wait()
	if err == nil {
		err = m.readWAL(&usage)
	}
	if err != nil {
		return nil, err
	}
	r := merge(stats, elapsed)
	r.usage = usage
	if o.mode == modeDup {
		r.rounds, r.split = int(b.roundsDone.Load()), int(b.roundsSplit.Load())
	}
	return r, nil
}

// worker sends requests until the end of the run: back to back, or at its
// share of -rate (open loop: each request has a slot start + n/rate, so a
// slow answer does not lower the offered rate; the latency is measured
// from the actual send).
func (b *bench) worker(ws *workerStats) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	var body []byte
	for !b.stop.Load() {
		n := b.sent.Add(1)
		if n > b.o.requests {
			return
		}
		if b.o.rate > 0 {
			slot := b.start.Add(time.Duration(float64(n) / b.o.rate * float64(time.Second)))
			if d := time.Until(slot); d > 0 {
				time.Sleep(d)
			}
			if b.stop.Load() {
				return
			}
		}
		var key string
		body, key = b.body(body[:0], n)
		s := b.do(req, resp, body, key)
		if s.status == 0 && b.stop.Load() {
			return // cut by the end of the run, not a failure of the gateway
		}
		if b.recording.Load() && !b.stop.Load() {
			ws.add(s)
		}
	}
}

// body appends the request body of request n to buf and returns its
// Idempotency-Key.
func (b *bench) body(buf []byte, n int64) ([]byte, string) {
	content := "benchmark prompt"
	key := ""
	switch b.o.mode {
	case modeUnique:
		id := b.runID + "-" + strconv.FormatInt(n, 10)
		content = "benchmark prompt " + id
		key = "bench-" + id
	case modeSameKey:
		key = "bench-" + b.runID
		if b.o.idemKey != "" {
			key = b.o.idemKey
		}
		content += " " + key
	case modeDerived:
		content += " " + b.runID
	}
	return appendChat(buf, b.o.model, content, b.o.stream), key
}

// appendChat appends a chat completion body of about 1 KB: a system
// prompt and a user message, as a typical application sends.
func appendChat(buf []byte, model, content string, stream bool) []byte {
	buf = append(buf, `{"model":`...)
	buf = strconv.AppendQuote(buf, model)
	buf = append(buf, `,"messages":[{"role":"system","content":"`...)
	buf = append(buf, systemPrompt...)
	buf = append(buf, `"},{"role":"user","content":`...)
	buf = strconv.AppendQuote(buf, content)
	buf = append(buf, `}],"temperature":0.2,"max_tokens":256,"stream":`...)
	buf = strconv.AppendBool(buf, stream)
	return append(buf, '}')
}

// systemPrompt pads bodies to the ~1 KB of the measurements.
var systemPrompt = strings.Repeat("You are a careful assistant. Answer briefly and cite the source of every fact. ", 11)

// do sends one request and reads the whole answer.
func (b *bench) do(req *fasthttp.Request, resp *fasthttp.Response, body []byte, key string) sample {
	req.Reset()
	resp.Reset()
	req.SetRequestURI(b.url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if b.o.key != "" {
		req.Header.Set("Authorization", "Bearer "+b.o.key)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	req.SetBodyRaw(body)
	start := time.Now()
	if err := b.client.Do(req, resp); err != nil {
		return sample{latency: time.Since(start)}
	}
	s := sample{status: resp.StatusCode(), replayed: string(resp.Header.Peek("Idempotent-Replayed")) == "true"}
	ok := s.status >= 200 && s.status < 300
	var err error
	if b.o.stream && ok {
		var chunks int
		var done bool
		s.ttfb, chunks, done, err = readStream(bodyReader(resp), start)
		s.broken = !done || (b.o.chunks > 0 && chunks != b.o.chunks)
	} else if rs := resp.BodyStream(); rs != nil {
		_, err = io.Copy(io.Discard, rs)
	}
	_ = resp.CloseBodyStream()
	s.latency = time.Since(start)
	if err != nil {
		s.status = 0
	}
	return s
}

// bodyReader returns the answer's body as a reader, streamed or not.
func bodyReader(resp *fasthttp.Response) io.Reader {
	if rs := resp.BodyStream(); rs != nil {
		return rs
	}
	return bytes.NewReader(resp.Body())
}

// readStream reads an SSE answer to its end and returns the time to its
// first event, how many content chunks it carried and whether it ended
// with "data: [DONE]".
func readStream(r io.Reader, start time.Time) (ttfb time.Duration, chunks int, done bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		data, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue
		}
		if ttfb == 0 {
			ttfb = time.Since(start)
		}
		data = bytes.TrimSpace(data)
		if bytes.Equal(data, []byte("[DONE]")) {
			done = true
			continue
		}
		if bytes.Contains(data, []byte(`"content":"`)) && !bytes.Contains(data, []byte(`"content":""`)) {
			chunks++
		}
	}
	return ttfb, chunks, done, sc.Err()
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
	usage     usage
	// dup mode: rounds finished, and rounds whose answers differed.
	rounds, split int
	// hold mode: the gateway's RSS before the streams and at their peak.
	rssBase, rssPeak int64
	held             int
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

func (r *result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.total) / r.elapsed.Seconds()
}

func (r *result) print(w io.Writer, o *options) {
	fmt.Fprintf(w, "target      %s  mode=%s stream=%t concurrency=%d", o.target.Redacted(), o.mode, o.stream, o.concurrency)
	if o.rate > 0 {
		fmt.Fprintf(w, " rate=%.0f/s", o.rate)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "requests    %d in %s: %.0f req/s (%d ok)\n", r.total, r.elapsed.Round(time.Millisecond), r.rps(), r.ok)
	fmt.Fprintf(w, "latency     p50=%s p95=%s p99=%s max=%s\n",
		ms(percentile(r.latencies, 50)), ms(percentile(r.latencies, 95)), ms(percentile(r.latencies, 99)), ms(percentile(r.latencies, 100)))
	if o.stream {
		fmt.Fprintf(w, "ttfb        p50=%s p99=%s\n", ms(percentile(r.ttfbs, 50)), ms(percentile(r.ttfbs, 99)))
	}
	if r.usage.measured {
		fmt.Fprintf(w, "cpu         %.1f µs/request (pid %d)\n", r.usage.cpuPerRequest(r.total), o.pid)
	}
	if r.usage.allocsMeasured {
		fmt.Fprintf(w, "allocs      %.1f /request\n", r.usage.allocsPerRequest(r.total))
	}
	if r.usage.walMeasured {
		fmt.Fprintf(w, "wal         %.2f commits and %.0f bytes per request\n",
			perRequest(r.usage.wal.commits, r.ok), perRequest(r.usage.wal.bytes, r.ok))
	}
	if o.mode == modeDup {
		fmt.Fprintf(w, "rounds      %d of %d requests, %d with differing answers\n", r.rounds, o.concurrency, r.split)
	}
	if o.mode == modeHold {
		fmt.Fprintf(w, "held        %d streams open at once; rss %d KiB -> %d KiB: %.1f KiB/stream\n",
			r.held, r.rssBase, r.rssPeak, r.kibPerStream())
	}
	fmt.Fprintf(w, "replayed    %d (Idempotent-Replayed: true)\n", r.replayed)
	fmt.Fprintf(w, "errors      %s\n", r.errorText())
}

// errorText lists the failures by status, or "none".
func (r *result) errorText() string {
	keys := make([]string, 0, len(r.byStatus))
	for k := range r.byStatus {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var errs []string
	for _, k := range keys {
		errs = append(errs, fmt.Sprintf("%s=%d", k, r.byStatus[k]))
	}
	if r.split > 0 {
		errs = append(errs, fmt.Sprintf("split-rounds=%d", r.split))
	}
	if len(errs) == 0 {
		return "none"
	}
	return strings.Join(errs, " ")
}

func (r *result) kibPerStream() float64 {
	if r.held == 0 {
		return 0
	}
	return float64(r.rssPeak-r.rssBase) / float64(r.held)
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
}
