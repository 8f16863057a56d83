package routes

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// proxyOffAllocBudget is what one non-stream request with dedupe off may
// allocate in the whole process: the handler, the upstream client and the
// log line (the canned upstream allocates nothing). The hot path is held to
// it so that a change that adds allocations to every request fails here
// first; lower it when an optimisation lands.
//
// Where the numbers come from (issue 14), measured on 2026-12-03:
// `go test ./routes -run '^$' -bench 'BenchmarkProxyOff$' -benchmem` gives
// 41 allocs/op (46 before the request id was drawn
// without hex.EncodeToString and the authed handlers were built once; 48 before
// finish cached its metrics per route), and this test logs 41 without
// -race and 54 with -race. The budgets are those plus a small margin (3
// normally; 8 under -race, where sync.Pool drops a random share of what is
// put back and the count wobbles).
const (
	proxyOffAllocBudget     = 44
	proxyOffAllocBudgetRace = 62
)

func TestProxyOffAllocations(t *testing.T) {
	h := offServer(t)
	var ctx fasthttp.RequestCtx
	offRequest(&ctx)
	for range 100 {
		serveOff(t, h, &ctx) // warm the connection pool and the metric series
	}
	budget := float64(proxyOffAllocBudget)
	if raceEnabled {
		budget = proxyOffAllocBudgetRace // see raceEnabled: pools refill under the race detector
	}
	got := testing.AllocsPerRun(500, func() { serveOff(t, h, &ctx) })
	t.Logf("%.0f allocations per request (budget %.0f)", got, budget)
	if got > budget {
		t.Fatalf("a dedupe-off request allocates %.0f times, over the budget of %.0f", got, budget)
	}
}
