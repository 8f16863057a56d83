package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// usage is what a measured process spent during the measured window.
type usage struct {
	measured bool
	cpu      time.Duration // user + system time
	// allocsMeasured: allocs is the count of heap allocations (runtime
	// MemStats.Mallocs) of the gateway, read from /debug/pprof/allocs.
	allocsMeasured bool
	allocs         int64
	// walMeasured: wal is what the -wal-url database wrote meanwhile.
	walMeasured bool
	wal         walUsage
}

// perRequest is n per request, 0 without requests.
func perRequest(n int64, requests int) float64 {
	if requests == 0 {
		return 0
	}
	return float64(n) / float64(requests)
}

func (u usage) cpuPerRequest(requests int) float64 {
	if requests == 0 {
		return 0
	}
	return float64(u.cpu.Microseconds()) / float64(requests)
}

func (u usage) allocsPerRequest(requests int) float64 {
	if requests == 0 {
		return 0
	}
	return float64(u.allocs) / float64(requests)
}

// meter snapshots a process's CPU time and allocations at the start of the
// measured window; stop takes the difference.
type meter struct {
	o      *options
	begin  time.Time
	cpu    time.Duration
	allocs int64
	wal    *walMark
}

func startMeter(o *options) (*meter, error) {
	m := &meter{o: o}
	var err error
	if o.pid > 0 {
		if m.cpu, err = processCPU(o.pid); err != nil {
			return nil, err
		}
	}
	if o.pprof != "" {
		if m.allocs, err = mallocs(o.pprof, o.adminKey); err != nil {
			return nil, err
		}
	}
	if o.walURL != "" {
		if m.wal, err = startWAL(o.walURL); err != nil {
			return nil, err
		}
	}
	m.begin = time.Now()
	return m, nil
}

func (m *meter) stop() (usage, error) {
	var u usage
	if m.o.pid > 0 {
		cpu, err := processCPU(m.o.pid)
		if err != nil {
			return u, err
		}
		u.measured, u.cpu = true, cpu-m.cpu
	}
	if m.o.pprof != "" {
		n, err := mallocs(m.o.pprof, m.o.adminKey)
		if err != nil {
			return u, err
		}
		u.allocsMeasured, u.allocs = true, n-m.allocs
	}
	if m.wal != nil {
		if err := m.wal.mark(); err != nil {
			return u, err
		}
	}
	return u, nil
}

// readWAL fills in the WAL of the window (-wal-url), once the load stopped.
func (m *meter) readWAL(u *usage) error {
	if m.wal == nil {
		return nil
	}
	w, err := m.wal.read()
	if err != nil {
		return err
	}
	u.walMeasured, u.wal = true, w
	return nil
}

// processCPU returns utime + stime of pid (all its threads).
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cannot read the CPU time of pid %d: %w", pid, err)
	}
	return parseStatCPU(data)
}

// parseStatCPU reads fields 14 and 15 (utime, stime) of /proc/PID/stat.
// The command name (field 2) is in parentheses and may hold spaces, so
// fields are counted from the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("cannot parse /proc/PID/stat: no ')'")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, errors.New("cannot parse /proc/PID/stat: too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cannot parse /proc/PID/stat utime %q stime %q", f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// processRSS returns the resident set of pid in KiB.
func processRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("cannot read the memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	return parseRSS(f)
}

// parseRSS reads VmRSS (in kB) from /proc/PID/status.
func parseRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse VmRSS %q: %w", rest, err)
		}
		return kb, nil
	}
	return 0, errors.New("cannot find VmRSS in /proc/PID/status")
}

// mallocs reads the gateway's count of heap allocations from the text form
// of its allocation profile ("# Mallocs = N", runtime.MemStats.Mallocs).
func mallocs(base, adminKey string) (int64, error) {
	req, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(base, "/")+"/debug/pprof/allocs?debug=1", nil)
	if err != nil {
		return 0, fmt.Errorf("cannot build the pprof request: %w", err)
	}
	if adminKey != "" {
		req.Header.Set("Authorization", "Bearer "+adminKey)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot read allocations from %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("cannot read allocations from %s: status %d (is debug.pprof on?)", base, resp.StatusCode)
	}
	return parseMallocs(resp.Body)
}

func parseMallocs(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "# Mallocs = "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cannot parse Mallocs %q: %w", rest, err)
			}
			return n, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("cannot read the allocation profile: %w", err)
	}
	return 0, errors.New("cannot find '# Mallocs = ' in the allocation profile")
}
