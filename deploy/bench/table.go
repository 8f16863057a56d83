package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
)

// cmdTable prints the records of a suite run as the README's markdown
// table: one row per label, its peak throughput against its reference
// line, its latency at a set rate and what it adds to the reference's at
// the same rate, and the CPU and allocations per request of the process.
func cmdTable(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("table", flag.ContinueOnError)
	fs.SetOutput(stderr)
	readme := fs.String("readme", "", "write the table into this file between "+benchBegin+" and "+benchEnd+" instead of printing it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: bench table [-readme README.md] RECORDS.jsonl")
		return 2
	}
	recs, err := readRecords(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	if len(recs) == 0 {
		fmt.Fprintln(stderr, "bench: no records in", fs.Arg(0))
		return 1
	}
	if *readme == "" {
		writeTable(stdout, recs)
		return 0
	}
	var b strings.Builder
	writeTable(&b, recs)
	if err := replaceSection(*readme, b.String()); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	return 0
}

// The markers around the generated table in README.md.
const (
	benchBegin = "<!-- bench:begin (make bench writes this table) -->"
	benchEnd   = "<!-- bench:end -->"
)

// replaceSection puts text between the markers of the file at path.
func replaceSection(path, text string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read %q: %w", path, err)
	}
	s := string(data)
	i, j := strings.Index(s, benchBegin), strings.Index(s, benchEnd)
	if i < 0 || j < i {
		return fmt.Errorf("cannot find %q ... %q in %q", benchBegin, benchEnd, path)
	}
	s = s[:i+len(benchBegin)] + "\n" + text + s[j:]
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		return fmt.Errorf("cannot write %q: %w", path, err)
	}
	return nil
}

// row is one label's records.
type row struct {
	label   string
	peak    *record
	latency *record
}

func rows(recs []record) []*row {
	var out []*row
	by := map[string]*row{}
	for i := range recs {
		r := &recs[i]
		rw := by[r.Label]
		if rw == nil {
			rw = &row{label: r.Label}
			by[r.Label] = rw
			out = append(out, rw)
		}
		switch {
		case r.Phase == "peak":
			rw.peak = r
		case rw.latency == nil:
			rw.latency = r
		}
	}
	return out
}

// latencyAt returns label's latency record at rate (within 3%).
func latencyAt(recs []record, label string, rate float64) *record {
	for i := range recs {
		r := &recs[i]
		if r.Label == label && r.Phase == "latency" && math.Abs(r.Rate-rate) <= 0.03*rate {
			return r
		}
	}
	return nil
}

func writeTable(w io.Writer, recs []record) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range recs {
		if r.Load1 >= 0 {
			lo, hi = math.Min(lo, r.Load1), math.Max(hi, r.Load1)
		}
	}
	fmt.Fprintf(w, "Measured %s on %d cores; 1-minute load average %.1f to %.1f during the run.\n\n",
		strings.SplitN(recs[0].Time, "T", 2)[0], runtime.NumCPU(), lo, hi)
	fmt.Fprintln(w, "| line | req/s | vs reference | latency at | p50 / p99 | added p50 / p99 | CPU µs/req | CPU vs ref | allocs/req | notes |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, rw := range rows(recs) {
		writeRow(w, recs, rw)
	}
}

func writeRow(w io.Writer, recs []record, rw *row) {
	cells := make([]string, 10)
	for i := range cells {
		cells[i] = "–"
	}
	cells[0] = rw.label
	var refs []string
	var notes []string
	if p := rw.peak; p != nil {
		refs = splitLabels(p.Ref)
		cells[1] = fmt.Sprintf("%.0f", p.RPS)
		if len(refs) > 0 {
			if low, err := minPeak(recs, p.Ref); err == nil {
				name := refs[0]
				if len(refs) > 1 {
					name = "min(" + strings.Join(refs, ", ") + ")"
				}
				cells[2] = fmt.Sprintf("%.2fx %s", p.RPS/low, name)
			}
		}
		if p.CPU >= 0 {
			cells[6] = fmt.Sprintf("%.0f", p.CPU)
			if len(refs) > 0 {
				if rp, ok := peakOf(recs, refs[0]); ok && rp.CPU > 0 {
					cells[7] = fmt.Sprintf("%.2fx", p.CPU/rp.CPU)
				}
			}
		}
		if p.Allocs >= 0 {
			cells[8] = fmt.Sprintf("%.0f", p.Allocs)
		}
		for _, v := range splitLabels(p.Vs) {
			if vp, ok := peakOf(recs, v); ok && vp.RPS > 0 {
				notes = append(notes, fmt.Sprintf("%.2fx %s", p.RPS/vp.RPS, v))
			}
		}
		notes = append(notes, recordNotes(p)...)
	}
	if l := rw.latency; l != nil {
		if refs == nil {
			refs = splitLabels(l.Ref)
		}
		cells[3] = fmt.Sprintf("%.0f/s", l.Rate)
		cells[4] = dur(l.P50) + " / " + dur(l.P99)
		if len(refs) > 0 {
			if rl := latencyAt(recs, refs[0], l.Rate); rl != nil && rl != l {
				cells[5] = signed(l.P50-rl.P50) + " / " + signed(l.P99-rl.P99)
				if l.Stream && rl.TTFB50 > 0 {
					fb50, fb99 := l.TTFB50-rl.TTFB50, l.TTFB99-rl.TTFB99
					note := "first byte " + dur(l.TTFB50) + " / " + dur(l.TTFB99) + ", added " + signed(fb50) + " / " + signed(fb99)
					if l.Beyond != "" {
						if b := latencyAt(recs, l.Beyond, l.Rate); b != nil {
							note += "; beyond " + l.Beyond + " (" + dur(b.P50) + " / " + dur(b.P99) + "): " + signed(fb50-b.P50) + " / " + signed(fb99-b.P99)
						}
					}
					notes = append(notes, note)
				}
			}
		}
		if l.Stream && len(notes) == 0 && l.TTFB50 > 0 {
			notes = append(notes, "first byte "+dur(l.TTFB50)+" / "+dur(l.TTFB99))
		}
		if l.Errors != "none" && l.Errors != "" {
			notes = append(notes, "errors at rate: "+l.Errors)
		}
		if l.RPS < 0.95*l.Rate {
			notes = append(notes, fmt.Sprintf("reached only %.0f/s", l.RPS))
		}
	}
	cells[9] = strings.Join(notes, "; ")
	if cells[9] == "" {
		cells[9] = " "
	}
	fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
}

// recordNotes are a peak record's facts that no column holds.
func recordNotes(r *record) []string {
	var notes []string
	switch r.Mode {
	case modeDup:
		notes = append(notes, fmt.Sprintf("%d rounds of %d simultaneous requests per key, %d with differing answers", r.Rounds, r.Concurrency, r.Split))
	case modeHold:
		notes = append(notes, fmt.Sprintf("%d of %d streams open at once, %d completed; RSS %.0f MiB -> %.0f MiB: %.1f KiB per stream",
			r.Held, r.Concurrency, r.OK, float64(r.RSSBase)/1024, float64(r.RSSPeak)/1024, r.KiB))
	}
	if r.Stream && r.Mode != modeHold && r.TTFB50 > 0 {
		notes = append(notes, "first byte at peak "+dur(r.TTFB50)+" / "+dur(r.TTFB99))
	}
	if r.Commits != nil && r.WALBytes != nil {
		notes = append(notes, fmt.Sprintf("%.2f commits and %.0f WAL bytes per task", *r.Commits, *r.WALBytes))
	}
	if r.Errors != "none" && r.Errors != "" {
		notes = append(notes, "errors: "+r.Errors)
	}
	return notes
}

// dur formats microseconds.
func dur(v float64) string {
	if math.Abs(v) < 1000 {
		return fmt.Sprintf("%.0f µs", v)
	}
	return fmt.Sprintf("%.2f ms", v/1000)
}

func signed(v float64) string {
	if v >= 0 {
		return "+" + dur(v)
	}
	return "−" + dur(-v)
}
