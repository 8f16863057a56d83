//go:build race

package routes

// raceEnabled: the race detector makes sync.Pool drop a share of what is
// put back (to find reuse bugs), so pooled buffers are allocated again and
// allocation counts run higher than in a normal build.
const raceEnabled = true
