package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// ledgerTask is what the checker reads of GET /admin/tasks/{key}.
type ledgerTask struct {
	found    bool
	status   string
	attempts int // attempts that were not skipped: the calls the ledger owns up to
	outcomes map[string]int
}

// evidence is everything the checker judges.
type evidence struct {
	keys    []string
	results []tryResult
	calls   map[string]int // the fake's count of calls per Idempotency-Key
	ledger  map[string]ledgerTask
}

// expectedStatus: the answers a client may get during the run. Anything
// else (a 400, a 422 for an unchanged body, a 500) is a gateway bug.
func expectedStatus(s int) bool {
	switch s {
	case 0, 200, 409, 429, 502, 503, 504:
		return true
	}
	return false
}

// check applies the invariants of issue 13 and returns one line per violation.
func check(ev evidence) []string {
	var v []string
	bodies := map[string]map[string]bool{}
	finalOK := map[string]bool{}
	for _, r := range ev.results {
		if !expectedStatus(r.status) {
			v = append(v, fmt.Sprintf("key %s: unexpected answer %s", r.key, r.detail))
		}
		if !r.ok {
			continue
		}
		if bodies[r.key] == nil {
			bodies[r.key] = map[string]bool{}
		}
		bodies[r.key][r.body] = true
		if r.final {
			finalOK[r.key] = true
		}
	}
	for _, k := range ev.keys {
		if n := len(bodies[k]); n > 1 {
			v = append(v, fmt.Sprintf("key %s: %d different successful bodies%s", k, n, successes(ev.results, k)))
		}
		t := ev.ledger[k]
		if calls := ev.calls[k]; calls > 0 && !t.found {
			v = append(v, fmt.Sprintf("key %s: %d upstream calls and no task in the ledger", k, calls))
		} else if calls > t.attempts {
			v = append(v, fmt.Sprintf("key %s: %d upstream calls but %d non-skipped attempts in the ledger %v", k, calls, t.attempts, t.outcomes))
		}
		if t.status == "processing" {
			v = append(v, fmt.Sprintf("key %s: still processing after its leases ran out", k))
		}
		if !finalOK[k] {
			v = append(v, fmt.Sprintf("key %s: the final retry did not succeed", k))
		}
	}
	sort.Strings(v)
	return v
}

// successes lists a key's successful tries, for the report of a violation.
func successes(results []tryResult, key string) string {
	var b strings.Builder
	for _, r := range results {
		if r.key == key && r.ok {
			fmt.Fprintf(&b, "\n    %s %s replayed=%v body %.12s: %s", r.at.Format("15:04:05.000"), r.node, r.replayed, r.body, r.detail)
		}
	}
	return b.String()
}

// readLedger fetches a key's task and attempt log from a node's admin API.
func readLedger(hc *http.Client, base, key string) (ledgerTask, error) {
	req, err := http.NewRequest("GET", base+"/admin/tasks/"+url.PathEscape(key)+"?tenant="+tenant, nil)
	if err != nil {
		return ledgerTask{}, err
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := hc.Do(req)
	if err != nil {
		return ledgerTask{}, fmt.Errorf("cannot read the task of %s: %w", key, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 404 {
		return ledgerTask{}, nil
	}
	if resp.StatusCode != 200 {
		return ledgerTask{}, fmt.Errorf("cannot read the task of %s: %d %s", key, resp.StatusCode, b)
	}
	var task struct {
		Status   string `json:"status"`
		Attempts []struct {
			Outcome string `json:"outcome"`
		} `json:"attempts"`
	}
	if err := json.Unmarshal(b, &task); err != nil {
		return ledgerTask{}, fmt.Errorf("cannot decode the task of %s: %w", key, err)
	}
	t := ledgerTask{found: true, status: task.Status, outcomes: map[string]int{}}
	for _, a := range task.Attempts {
		t.outcomes[a.Outcome]++
		if a.Outcome != "skipped" {
			t.attempts++
		}
	}
	return t, nil
}

// readLedgers reads every key's task, retrying a node that does not answer.
func readLedgers(hc *http.Client, nodes []string, keys []string) (map[string]ledgerTask, error) {
	out := make(map[string]ledgerTask, len(keys))
	for i, k := range keys {
		var err error
		for try := 0; try < 5; try++ {
			var t ledgerTask
			if t, err = readLedger(hc, nodes[(i+try)%len(nodes)], k); err == nil {
				out[k] = t
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
