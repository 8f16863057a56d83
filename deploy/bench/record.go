package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// record is one run of `bench load` as a line of the JSON file that
// `bench table` reads: a suite appends one per run.
type record struct {
	Label string `json:"label"`
	// Phase is peak (closed loop) or latency (at Rate).
	Phase string `json:"phase"`
	// Ref lists the labels this line is compared with.
	Ref         string  `json:"ref,omitempty"`
	Beyond      string  `json:"beyond,omitempty"`
	Mode        string  `json:"mode"`
	Stream      bool    `json:"stream"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate"`
	Seconds     float64 `json:"seconds"`
	Requests    int     `json:"requests"`
	OK          int     `json:"ok"`
	RPS         float64 `json:"rps"`
	P50         float64 `json:"p50_us"`
	P99         float64 `json:"p99_us"`
	TTFB50      float64 `json:"ttfb_p50_us,omitempty"`
	TTFB99      float64 `json:"ttfb_p99_us,omitempty"`
	// CPU is µs of the measured process per request, -1 when not measured.
	CPU float64 `json:"cpu_us_per_req"`
	// Allocs is heap allocations of the gateway per request, -1 when not measured.
	Allocs float64 `json:"allocs_per_req"`
	// Commits and WALBytes are the -wal-url database's per successful
	// request (nil: not measured).
	Commits  *float64 `json:"commits_per_req,omitempty"`
	WALBytes *float64 `json:"wal_bytes_per_req,omitempty"`
	Vs       string   `json:"vs,omitempty"`
	Replayed int      `json:"replayed"`
	Errors   string   `json:"errors"`
	Rounds   int      `json:"rounds,omitempty"`
	Split    int      `json:"split_rounds,omitempty"`
	Held     int      `json:"held,omitempty"`
	KiB      float64  `json:"kib_per_stream,omitempty"`
	RSSBase  int64    `json:"rss_base_kib,omitempty"`
	RSSPeak  int64    `json:"rss_peak_kib,omitempty"`
	Load1    float64  `json:"load1"`
	Time     string   `json:"time"`
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func (r *result) record(o *options) record {
	rec := record{
		Label: o.label, Phase: o.phase, Ref: o.ref, Beyond: o.beyond, Mode: o.mode, Stream: o.stream,
		Concurrency: o.concurrency, Rate: o.rate, Seconds: r.elapsed.Seconds(),
		Requests: r.total, OK: r.ok, RPS: r.rps(),
		P50: us(percentile(r.latencies, 50)), P99: us(percentile(r.latencies, 99)),
		TTFB50: us(percentile(r.ttfbs, 50)), TTFB99: us(percentile(r.ttfbs, 99)),
		CPU: -1, Allocs: -1, Vs: o.vs, Replayed: r.replayed, Errors: r.errorText(),
		Rounds: r.rounds, Split: r.split, Held: r.held, RSSBase: r.rssBase, RSSPeak: r.rssPeak,
		Load1: loadAverage(), Time: time.Now().UTC().Format(time.RFC3339),
	}
	if r.held > 0 {
		rec.KiB = r.kibPerStream()
	}
	if r.usage.measured {
		rec.CPU = r.usage.cpuPerRequest(r.total)
	}
	if r.usage.allocsMeasured {
		rec.Allocs = r.usage.allocsPerRequest(r.total)
	}
	if r.usage.walMeasured {
		c, b := perRequest(r.usage.wal.commits, r.ok), perRequest(r.usage.wal.bytes, r.ok)
		rec.Commits, rec.WALBytes = &c, &b
	}
	return rec
}

// loadAverage is the 1-minute load average, or -1.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

func appendRecord(path string, rec record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("cannot encode the record: %w", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open %q: %w", path, err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("cannot write %q: %w", path, err)
	}
	return f.Close()
}

func readRecords(path string) ([]record, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open %q: %w", path, err)
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("cannot parse %s:%d: %w", path, n, err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read %q: %w", path, err)
	}
	return recs, nil
}

// peakOf returns the last peak record of label.
func peakOf(recs []record, label string) (record, bool) {
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Label == label && recs[i].Phase == "peak" {
			return recs[i], true
		}
	}
	return record{}, false
}

// minPeak returns the lowest req/s among the peak records of a
// comma-separated list of labels.
func minPeak(recs []record, labels string) (float64, error) {
	low := 0.0
	for _, l := range splitLabels(labels) {
		p, ok := peakOf(recs, l)
		if !ok || p.RPS <= 0 {
			return 0, fmt.Errorf("no peak record of %q", l)
		}
		if low == 0 || p.RPS < low {
			low = p.RPS
		}
	}
	if low == 0 {
		return 0, errors.New("no labels")
	}
	return low, nil
}

func splitLabels(s string) []string {
	var out []string
	for _, l := range strings.Split(s, ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// resolveRate sets o.rate from -rate-from: o.rateFrac times the lowest
// peak among those labels; but when this line's own peak (under -label)
// is lower than that rate / 0.8, at o.rateFrac of its own peak instead,
// so a latency run never measures a line that is overloaded.
func resolveRate(o *options) error {
	if o.rateFrom == "" && o.rateLike == "" {
		return nil
	}
	recs, err := readRecords(o.jsonPath)
	if err != nil {
		return err
	}
	if o.rateLike != "" {
		for _, r := range recs {
			if r.Label == o.rateLike && r.Phase == "latency" {
				o.rate = r.Rate
				return nil
			}
		}
		return fmt.Errorf("-rate-like: no latency record of %q", o.rateLike)
	}
	low, err := minPeak(recs, o.rateFrom)
	if err != nil {
		return fmt.Errorf("-rate-from: %w", err)
	}
	o.rate = o.rateFrac * low
	if own, ok := peakOf(recs, o.label); ok && own.RPS*0.8 < o.rate {
		o.rate = o.rateFrac * own.RPS
	}
	o.rate = float64(int(o.rate + 0.5))
	if o.rate < 1 {
		o.rate = 1
	}
	return nil
}
