package config

import (
	"strconv"
	"strings"
)

// Fallback is a compiled routes[].fallback_on: which failed attempts move on
// to the route's next target. Parse compiles it once, so that a failed
// attempt asks a few bits instead of parsing the list again. The zero value
// never falls back.
type Fallback struct {
	connect, timeout bool
	// status has bit n set when HTTP status n falls back; statuses are
	// three digits, so 600 bits cover them all.
	status [(600 + 63) / 64]uint64
}

// DefaultFallbackOn returns the failures a route falls back on when
// fallback_on is not set. It is a function so that no caller can modify a
// shared slice.
func DefaultFallbackOn() []string {
	return []string{"connect", "timeout", "429", "5xx"}
}

// compileFallback compiles a fallback_on list; nil means DefaultFallbackOn,
// an empty list never falls back. Invalid entries are skipped: validation
// reports them with their line.
func compileFallback(list []string) Fallback {
	if list == nil {
		list = DefaultFallbackOn()
	}
	var f Fallback
	for _, s := range list {
		f.add(s)
	}
	return f
}

// add adds one fallback_on entry (connect, timeout, 4xx, 5xx or a status
// such as 429, case-insensitive) and reports whether it was valid.
func (f *Fallback) add(s string) bool {
	switch strings.ToLower(s) {
	case "connect":
		f.connect = true
	case "timeout":
		f.timeout = true
	case "4xx":
		f.addStatuses(400, 499)
	case "5xx":
		f.addStatuses(500, 599)
	default:
		n, err := strconv.Atoi(s)
		if err != nil || len(s) != 3 || n < 100 || n > 599 {
			return false
		}
		f.addStatuses(n, n)
	}
	return true
}

func (f *Fallback) addStatuses(from, to int) {
	for n := from; n <= to; n++ {
		f.status[n/64] |= 1 << (n % 64)
	}
}

// Covers reports whether a failed attempt falls back: status is the
// upstream's HTTP status (0 when none was received), connect a failure to
// connect, timeout a timed-out attempt.
func (f Fallback) Covers(status int, connect, timeout bool) bool {
	switch {
	case connect && f.connect, timeout && f.timeout:
		return true
	case status < 100 || status > 599:
		return false
	}
	return f.status[status/64]&(1<<(status%64)) != 0
}

// validFallback reports whether s is a valid fallback_on entry.
func validFallback(s string) bool {
	var f Fallback
	return f.add(s)
}
