package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

func TestLoopbackURL(t *testing.T) {
	f := func(target string, ok bool) {
		t.Helper()
		_, err := loopbackURL(target)
		if (err == nil) != ok {
			t.Fatalf("loopbackURL(%q) error = %v, want ok=%t", target, err, ok)
		}
	}
	f("http://127.0.0.1:8080", true)
	f("http://127.3.4.5:8080", true)
	f("http://[::1]:8080", true)
	f("http://localhost:8080", true)
	f("https://LOCALHOST", true)
	f("http://10.0.0.1:8080", false)
	f("http://[::2]:8080", false)
	f("http://api.openai.com", false)
	f("http://localhost.example.com", false)
	f("http://127.0.0.1.nip.io", false)
	f("ftp://127.0.0.1", false)
	f("127.0.0.1:8080", false)
	f("http://0.0.0.0:8080", false)
}

func TestParseFlagsBounds(t *testing.T) {
	f := func(ok bool, args ...string) {
		t.Helper()
		_, err := parseFlags(args, testWriter{t})
		if (err == nil) != ok {
			t.Fatalf("parseFlags(%q) error = %v, want ok=%t", args, err, ok)
		}
	}
	f(true)
	f(true, "-mode", "same-key", "-stream", "-duration", "1s", "-requests", "10")
	f(true, "-mode", "dup", "-concurrency", "60", "-rate", "100")
	f(true, "-rate-from", "floor", "-json", "x.jsonl")
	f(false, "-rate-from", "floor")
	f(false, "-rate-like", "floor")
	f(false, "-target", "http://192.168.1.1")
	f(false, "-pprof", "http://192.168.1.1")
	f(false, "-mode", "other")
	f(false, "-mode", "begin")
	f(false, "-phase", "other")
	f(false, "-duration", "11m")
	f(false, "-duration", "0s")
	f(false, "-concurrency", "0")
	f(false, "-concurrency", "20001")
	f(false, "-requests", "-1")
	f(false, "-rate", "-1")
	f(false, "-rate-frac", "0")
	f(false, "extra")
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	f := func(q float64, want time.Duration) {
		t.Helper()
		if got := percentile(s, q); got != want {
			t.Fatalf("percentile(%v) = %v, want %v", q, got, want)
		}
	}
	f(50, 50)
	f(95, 95)
	f(99, 99)
	f(100, 100)
	f(0, 1)
	if got := percentile(nil, 50); got != 0 {
		t.Fatalf("percentile(nil) = %v, want 0", got)
	}
}

func TestParseProc(t *testing.T) {
	// The command name may hold spaces and parentheses.
	stat := "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 8 0 100 0 0"
	cpu, err := parseStatCPU([]byte(stat))
	if err != nil || cpu != 3250*time.Millisecond {
		t.Fatalf("parseStatCPU = %v, %v; want 3.25s", cpu, err)
	}
	if _, err := parseStatCPU([]byte("1 (x) S 1")); err == nil {
		t.Fatal("parseStatCPU of a short line: want an error")
	}
	rss, err := parseRSS(strings.NewReader("Name:\tgateway\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\n"))
	if err != nil || rss != 12345 {
		t.Fatalf("parseRSS = %d, %v; want 12345", rss, err)
	}
	n, err := parseMallocs(strings.NewReader("heap profile: 1: 2 [3: 4] @ heap/1048576\n\n# runtime.MemStats\n# Alloc = 10\n# Mallocs = 987654\n# Frees = 5\n"))
	if err != nil || n != 987654 {
		t.Fatalf("parseMallocs = %d, %v; want 987654", n, err)
	}
	// The test process itself: CPU and memory are readable and plausible.
	self := os.Getpid()
	if _, err := processCPU(self); err != nil {
		t.Fatal(err)
	}
	if rss, err := processRSS(self); err != nil || rss <= 0 {
		t.Fatalf("processRSS(self) = %d, %v", rss, err)
	}
}

func TestResolveRate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	for _, r := range []record{
		{Label: "floor", Phase: "peak", RPS: 10000},
		{Label: "read floor", Phase: "peak", RPS: 8000},
		{Label: "slow", Phase: "peak", RPS: 1000},
		{Label: "replays", Phase: "latency", Rate: 4000},
	} {
		if err := appendRecord(path, r); err != nil {
			t.Fatal(err)
		}
	}
	f := func(label, from, like string, want float64) {
		t.Helper()
		o := &options{label: label, rateFrom: from, rateLike: like, rateFrac: 0.5, jsonPath: path}
		if err := resolveRate(o); err != nil {
			t.Fatalf("resolveRate(%s, %s): %v", label, from, err)
		}
		if o.rate != want {
			t.Fatalf("resolveRate(%s, from %q like %q) = %v, want %v", label, from, like, o.rate, want)
		}
	}
	f("fast", "floor", "", 5000)
	f("fast", "floor,read floor", "", 4000)
	// A line slower than the rate / 0.8 is measured at half its own peak.
	f("slow", "floor", "", 500)
	f("x", "", "replays", 4000)
	if err := resolveRate(&options{label: "x", rateFrom: "nothing", rateFrac: 0.5, jsonPath: path}); err == nil {
		t.Fatal("resolveRate from a missing label: want an error")
	}
}

func ptr(v float64) *float64 { return &v }

func TestTable(t *testing.T) {
	recs := []record{
		{Label: "floor", Phase: "peak", RPS: 10000, CPU: 50, Allocs: -1, Errors: "none", Load1: 1.5, Time: "2026-01-02T03:04:05Z"},
		{Label: "floor", Phase: "latency", Rate: 5000, RPS: 5000, P50: 300, P99: 900, CPU: -1, Allocs: -1, Errors: "none", Load1: 2},
		{Label: "dedupe off", Ref: "floor", Phase: "peak", RPS: 8500, CPU: 70, Allocs: 12, Errors: "none", Load1: 2.5},
		{Label: "dedupe off", Ref: "floor", Phase: "latency", Rate: 5000, RPS: 4990, P50: 340, P99: 1500, CPU: -1, Allocs: -1, Errors: "none", Load1: 2},
		{Label: "dup", Mode: modeDup, Concurrency: 60, Phase: "peak", RPS: 600, Rounds: 10, Split: 1, CPU: -1, Allocs: -1, Errors: "split-rounds=1", Load1: 2},
		{Label: "write floor", Mode: modeTasks, Phase: "peak", RPS: 1000, CPU: -1, Allocs: -1, Commits: ptr(2.0), WALBytes: ptr(2100.4), Errors: "none", Load1: 2},
		{Label: "pg new keys", Ref: "floor", Vs: "write floor", Phase: "peak", RPS: 900, CPU: -1, Allocs: -1, Commits: ptr(0.25), WALBytes: ptr(1900), Errors: "none", Load1: 2},
	}
	var b bytes.Buffer
	writeTable(&b, recs)
	out := b.String()
	for _, want := range []string{
		"Measured 2026-01-02 on ",
		"load average 1.5 to 2.5",
		"| dedupe off | 8500 | 0.85x floor | 5000/s | 340 µs / 1.50 ms | +40 µs / +600 µs | 70 | 1.40x | 12 |",
		"10 rounds of 60 simultaneous requests per key, 1 with differing answers; errors: split-rounds=1",
		"| write floor | 1000 |",
		"| 2.00 commits and 2100 WAL bytes per task |",
		"| pg new keys | 900 | 0.09x floor |",
		"| 0.90x write floor; 0.25 commits and 1900 WAL bytes per task |",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}
	readme := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(readme, []byte("# x\n"+benchBegin+"\nold\n"+benchEnd+"\nafter\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := replaceSection(readme, "new table\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(readme)
	if want := "# x\n" + benchBegin + "\nnew table\n" + benchEnd + "\nafter\n"; string(got) != want {
		t.Fatalf("README after replaceSection:\n%s\nwant:\n%s", got, want)
	}
}

// startFloor runs the fake upstream and the floor proxy in front of it.
func startFloor(t *testing.T) (*upstreamtest.Server, string) {
	t.Helper()
	fake, err := upstreamtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	fake.SetMaxRequests(0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: floorHandler(fake.Addr())}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return fake, "http://" + ln.Addr().String()
}

func loadOptions(t *testing.T, target string, args ...string) *options {
	t.Helper()
	o, err := parseFlags(append([]string{"-target", target, "-duration", "300ms", "-warmup", "100ms"}, args...), testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// The floor relays answers and streams, and the load tool reads them.
func TestFloorAndLoad(t *testing.T) {
	fake, floor := startFloor(t)
	r, err := measure(loadOptions(t, floor, "-concurrency", "4", "-pid", "0"))
	if err != nil {
		t.Fatal(err)
	}
	if r.ok == 0 || r.ok != r.total || r.errorText() != "none" {
		t.Fatalf("non-stream through the floor: %d of %d ok, errors %s", r.ok, r.total, r.errorText())
	}
	r, err = measure(loadOptions(t, floor, "-concurrency", "4", "-stream", "-chunks", "5", "-rate", "200", "-pid", strconv.Itoa(os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	if r.ok == 0 || r.ok != r.total || len(r.ttfbs) != r.ok || !r.usage.measured {
		t.Fatalf("streams through the floor: %d of %d ok, %d first bytes, errors %s, cpu measured %t", r.ok, r.total, len(r.ttfbs), r.errorText(), r.usage.measured)
	}
	// About 200/s for 0.3 s; generous bounds, the point is that -rate limits.
	if r.total > 200 {
		t.Fatalf("-rate 200 for 0.3 s sent %d requests", r.total)
	}
	// A wrong chunk count is a broken stream.
	r, err = measure(loadOptions(t, floor, "-concurrency", "2", "-stream", "-chunks", "6"))
	if err != nil {
		t.Fatal(err)
	}
	if r.ok != 0 || r.byStatus["broken-stream"] == 0 {
		t.Fatalf("-chunks 6 against 5-chunk streams: %d ok, errors %s", r.ok, r.errorText())
	}
	if fake.Calls() == 0 {
		t.Fatal("the fake upstream saw no call")
	}
}

// Without deduplication (the floor), duplicates of a key are answered by
// separate upstream calls, and dup mode says so.
func TestDupDetectsSplitAnswers(t *testing.T) {
	_, floor := startFloor(t)
	r, err := measure(loadOptions(t, floor, "-mode", "dup", "-concurrency", "5"))
	if err != nil {
		t.Fatal(err)
	}
	if r.rounds == 0 || r.split != r.rounds {
		t.Fatalf("dup through a proxy without dedupe: %d rounds, %d split; want every round split", r.rounds, r.split)
	}
}

func TestHoldCountsStreams(t *testing.T) {
	_, floor := startFloor(t)
	o := loadOptions(t, floor, "-mode", "hold", "-stream", "-concurrency", "20", "-model", "long-stream-4x100ms",
		"-chunks", "4", "-pid", strconv.Itoa(os.Getpid()), "-duration", "10s")
	r, err := measure(o)
	if err != nil {
		t.Fatal(err)
	}
	if r.ok != 20 || r.held < 15 || r.rssPeak < r.rssBase {
		t.Fatalf("hold: %d ok, %d held at once, rss %d -> %d, errors %s", r.ok, r.held, r.rssBase, r.rssPeak, r.errorText())
	}
}

// The read floor reads what the embedded store wrote.
func TestReadEmbedded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.db")
	st, err := dedupe.OpenEmbedded(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kh := dedupe.HashKey("bench", "k1")
	res, err := st.Begin(ctx, dedupe.BeginRequest{Tenant: "bench", KeyHash: kh, Fingerprint: "f", Owner: "o", Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"x"}`)
	if err := st.Complete(ctx, "bench", kh, res.Task.Fence, dedupe.Completion{
		Response: dedupe.Response{Status: 200, ContentType: "application/json", Body: body}, TTL: time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := openReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := readEmbedded(db, "bench", kh)
	if err != nil || got.Status != 200 || got.ContentType != "application/json" || !bytes.Equal(got.Body, body) {
		t.Fatalf("readEmbedded = %+v, %v", got, err)
	}
	if _, err := readEmbedded(db, "bench", dedupe.HashKey("bench", "other")); err == nil {
		t.Fatal("readEmbedded of a missing task: want an error")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func TestSoakVerdict(t *testing.T) {
	at := func(kib int64, ins, upd, hot int64) tableSample {
		return tableSample{taskHeap: kib * 1024, inserts: ins, updates: upd, hotUpdates: hot}
	}
	first := at(0, 0, 0, 0)
	// 1000 tasks: 1000 completing updates and 3000 heartbeats, 2850 HOT.
	last := at(0, 1000, 4000, 2850)
	flat := []tableSample{at(100, 0, 0, 0), at(500, 0, 0, 0), at(900, 0, 0, 0), at(950, 0, 0, 0), at(940, 0, 0, 0), at(960, 0, 0, 0)}
	got := soakVerdict(first, last, flat)
	for _, want := range []string{"95.0% of 3000", "950 KiB at most in the middle third, 960 KiB in the last: +1.1% (plateau)"} {
		if !strings.Contains(got, want) {
			t.Fatalf("verdict %q lacks %q", got, want)
		}
	}
	growing := []tableSample{at(100, 0, 0, 0), at(200, 0, 0, 0), at(300, 0, 0, 0), at(400, 0, 0, 0), at(500, 0, 0, 0), at(600, 0, 0, 0)}
	if got := soakVerdict(first, last, growing); !strings.Contains(got, "(still growing)") {
		t.Fatalf("verdict %q, want still growing", got)
	}
	if got := hotShare(first, first); got != "–" {
		t.Fatalf("hotShare without heartbeats = %q", got)
	}
}
