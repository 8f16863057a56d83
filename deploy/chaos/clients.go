package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The client side of the run: workers that send a bounded, sliding set of
// keys to random nodes, retrying the way an SDK does.

const (
	clientKey = "sk-chaos-client"
	adminKey  = "chaos-admin-key"
	tenant    = "chaos"
)

// tryResult is one HTTP exchange as the client saw it.
type tryResult struct {
	key      string
	status   int    // 0: no answer (connection refused, reset, timeout)
	ok       bool   // a complete success: 200 and, for a stream, [DONE] without an error event
	replayed bool   // Idempotent-Replayed: true
	body     string // sha256 of what identifies the answer, when ok
	detail   string // why it was not ok, for the report; what the answer was, when ok
	final    bool   // part of the final retry of the key
	node     string
	at       time.Time
}

// keyName and keyBody: key n asks for a stream when n is odd, and its
// body is fixed, so every retry of it is the same request.
func keyName(run string, n int) string { return fmt.Sprintf("chaos-%s-%d", run, n) }

func keyStream(n int) bool { return n%2 == 1 }

func keyBody(n int) []byte {
	return fmt.Appendf(nil, `{"model":"chaos","messages":[{"role":"user","content":"chaos key %d"}],"stream":%v}`, n, keyStream(n))
}

// client is one worker; its results are read by the checker after it stopped.
type client struct {
	run     string
	nodes   []string
	http    *http.Client
	rng     *rand.Rand
	results []tryResult
}

func newClient(run string, nodes []string, seed uint64) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 5 * time.Second}
	// One try gets long enough for a wait_timeout plus a slow stream.
	return &client{run: run, nodes: nodes, rng: rand.New(rand.NewPCG(seed, 1)),
		http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// loop sends logical requests for keys of the current window until ctx
// ends, with a pause between two, as a program between two calls.
func (c *client) loop(ctx context.Context, window func() (int, int), maxTries int, requests *atomic.Int64) {
	for ctx.Err() == nil {
		lo, hi := window()
		n := lo + c.rng.IntN(hi-lo)
		c.request(ctx, n, maxTries, false, requests)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(20+c.rng.IntN(60)) * time.Millisecond):
		}
	}
}

// request is one logical request with the client's own retries: on no
// answer, 409, 429, 5xx and a broken stream, after the hinted delay or a
// jittered backoff. It reports whether a try succeeded.
func (c *client) request(ctx context.Context, n, maxTries int, final bool, requests *atomic.Int64) bool {
	backoff := 100 * time.Millisecond
	for try := 0; try < maxTries; try++ {
		r, wait := c.try(n)
		r.final = final
		c.results = append(c.results, r)
		requests.Add(1)
		if r.ok || !retryable(r.status) {
			return r.ok
		}
		if wait <= 0 {
			wait = time.Duration(c.rng.Int64N(int64(backoff))) + 50*time.Millisecond
			backoff = min(2*backoff, 2*time.Second)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(wait, 3*time.Second)):
		}
	}
	return false
}

func retryable(status int) bool {
	return status == 0 || status == 409 || status == 429 || status >= 500 || status == 200
}

// try sends key n once to a random node.
func (c *client) try(n int) (tryResult, time.Duration) {
	r := tryResult{key: keyName(c.run, n), node: c.nodes[c.rng.IntN(len(c.nodes))], at: time.Now()}
	req, err := http.NewRequest("POST", r.node+"/v1/chat/completions", bytes.NewReader(keyBody(n)))
	if err != nil {
		r.detail = err.Error()
		return r, 0
	}
	req.Header.Set("Authorization", "Bearer "+clientKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", r.key)
	resp, err := c.http.Do(req)
	if err != nil {
		r.detail = "no answer: " + err.Error()
		return r, 0
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode
	r.replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	var wait time.Duration
	if ms, err := strconv.Atoi(resp.Header.Get("retry-after-ms")); err == nil {
		wait = time.Duration(ms) * time.Millisecond
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		r.detail = "body cut: " + err.Error()
	case resp.StatusCode != 200:
		r.detail = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
	case keyStream(n):
		r.ok, r.body, r.detail = streamIdentity(body)
	default:
		r.ok = bytes.Contains(body, []byte(`"choices"`))
		r.body = fmt.Sprintf("%x", sha256.Sum256(body))
		r.detail = fmt.Sprintf("%.160s", body)
		if !r.ok {
			r.detail = "200 without choices: " + string(body)
		}
	}
	if !r.ok {
		r.body = ""
	}
	return r, wait
}

// streamIdentity reads an SSE answer: a success ends with data: [DONE]
// and has no error event; its identity is its data lines, without the
// id lines a replay or a join numbers differently.
func streamIdentity(body []byte) (ok bool, identity, detail string) {
	var data []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if d, found := strings.CutPrefix(sc.Text(), "data: "); found {
			data = append(data, d)
		}
	}
	summary := fmt.Sprintf("%d events, first %.120s", len(data), strings.Join(data, ""))
	if len(data) == 0 || data[len(data)-1] != "[DONE]" {
		last := ""
		if len(data) > 0 {
			last = data[len(data)-1]
		}
		return false, "", "stream without [DONE]; last event: " + last
	}
	for _, d := range data {
		if strings.HasPrefix(d, `{"error"`) {
			return false, "", "stream with an error event: " + d
		}
	}
	return true, fmt.Sprintf("%x", sha256.Sum256([]byte(strings.Join(data, "\n")))), summary
}
