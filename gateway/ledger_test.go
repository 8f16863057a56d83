package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemgw/gateway/dedupe/dedupetest"
)

// holdProxy forwards a loopback port to Postgres until hold is called;
// from then on it forwards nothing more towards Postgres and keeps what
// the gateway sends, so a test can see a statement leave the gateway and
// know it never reached the database.
type holdProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	held  bool
	kept  bytes.Buffer
	conns []net.Conn
}

func startHoldProxy(t *testing.T, target string) *holdProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *holdProxy) Addr() string { return p.ln.Addr().String() }

func (p *holdProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go p.toServer(c, up)
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

// toServer copies the gateway's bytes to Postgres, or keeps them once held.
func (p *holdProxy) toServer(c, up net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			held := p.held
			if held {
				p.kept.Write(buf[:n])
			}
			p.mu.Unlock()
			if !held {
				if _, werr := up.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			up.Close()
			return
		}
	}
}

func (p *holdProxy) hold() {
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
}

func (p *holdProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// keptLen is how many bytes the proxy holds.
func (p *holdProxy) keptLen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kept.Len()
}

// gatedUpstream is an OpenAI-compatible upstream for one call: it reports
// the call on called, answers with content once release is closed, and
// reports on answered when the whole answer has left it.
type gatedUpstream struct {
	url                       string
	called, release, answered chan struct{}
}

func startGatedUpstream(t *testing.T, content string) *gatedUpstream {
	t.Helper()
	u := &gatedUpstream{called: make(chan struct{}, 16), release: make(chan struct{}), answered: make(chan struct{}, 16)}
	body := fmt.Sprintf(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m",`+
		`"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`, content)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		u.called <- struct{}{}
		<-u.release
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = io.WriteString(w, body)
		w.(http.Flusher).Flush()
		u.answered <- struct{}{}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	u.url = "http://" + ln.Addr().String() + "/v1"
	return u
}

// wait reads one report of ch or fails the test.
func waitChan(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Acceptance (issue 10): a leader killed after the upstream answered but
// before its Complete reached the record store leaves its started
// attempt in the ledger; the take-over marks it abandoned and counts it.
// The kill point is deterministic: the upstream holds its answer until
// the proxy in front of Postgres holds everything the gateway sends (Begin,
// with attempt 1 started, is committed before the call goes out), so no
// Complete can be recorded; the process is killed once the whole answer
// has left the upstream and the gateway, having read it, writes towards
// the held store.
func TestKilledAfterAnswerBeforeComplete(t *testing.T) {
	pgURL := dedupetest.PostgresURL(t)
	const answer = "the answer the dead leader read and never recorded"
	up := startGatedUpstream(t, answer)
	upURL := up.url
	host := strings.SplitN(strings.TrimPrefix(pgURL, "postgres://postgres@"), "/", 2)
	px := startHoldProxy(t, host[0])
	const dd = "dedupe: {lease: 1s, wait_timeout: 20s}\n"
	proxied := testConfig(t, upURL, fmt.Sprintf("store: {kind: postgres, url: %q}\n", "postgres://postgres@"+px.Addr()+"/"+host[1])+dd)
	p := startProcess(t, proxied)

	body := chatBody("m", "answer then die", false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		req := newPost(t, p.URL+"/v1/chat/completions", body, "Idempotency-Key", "after-answer")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitChan(t, up.called, "the upstream call")
	px.hold()
	close(up.release)
	waitChan(t, up.answered, "the upstream answer")
	before := px.keptLen()
	waitFor(t, 10*time.Second, "the gateway to write towards the store after the answer", func() bool { return px.keptLen() > before })
	p.kill()
	<-done

	g := startGateway(t, testConfig(t, upURL, fmt.Sprintf("store: {kind: postgres, url: %q}\n", pgURL)+dd))
	_, task := adminTask(t, g.URL, "after-answer", "team-a")
	if task["status"] != "processing" || task["fence"].(float64) != 1 {
		t.Fatalf("the killed leader's Complete reached the store: %v", task)
	}
	// The take-over calls the upstream again (released: it answers at once).
	resp, b := post(t, g.URL, "/v1/chat/completions", body, "Idempotency-Key", "after-answer")
	if resp.StatusCode != 200 || !strings.Contains(string(b), answer) {
		t.Fatalf("retry: %d %s", resp.StatusCode, b)
	}
	_, task = adminTask(t, g.URL, "after-answer", "team-a")
	if task["status"] != "completed" || task["fence"].(float64) != 2 {
		t.Fatalf("task after take-over: %v", task)
	}
	checkAbandonedLedger(t, task, "success")
	if m := scrape(t, g.URL); !strings.Contains(m, `gateway_attempts_abandoned_total{provider="fake"} 1`) {
		t.Fatalf("abandoned attempt not counted:\n%s", m)
	}
}

// The same kill point on the embedded store (issue 10): once Begin has
// committed, the store file is made immutable (chattr +i), so every
// later write of the process fails with EPERM and nothing more reaches
// the file. The upstream then answers; the gateway reads the answer and
// its Complete fails (gateway_store_errors_total{op="complete"}), which
// it retries; the process is killed while it retries. The next process
// on the same file finds the task processing at fence 1, takes it over
// and marks the dead leader's attempt abandoned.
func TestKilledAfterAnswerBeforeCompleteEmbedded(t *testing.T) {
	const answer = "the answer the dead leader read and never recorded"
	up := startGatedUpstream(t, answer)
	dbPath := filepath.Join(t.TempDir(), "gw.db")
	cfg := testConfig(t, up.url, fmt.Sprintf("store: {kind: embedded, path: %q}\ndedupe: {lease: 1s, wait_timeout: 20s}\n", dbPath))
	p := startProcess(t, cfg)

	body := chatBody("m", "answer then die", false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		req := newPost(t, p.URL+"/v1/chat/completions", body, "Idempotency-Key", "after-answer")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitChan(t, up.called, "the upstream call")
	if out, err := exec.Command("chattr", "+i", dbPath).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i %s (needs root and a filesystem with the immutable flag): %v %s", dbPath, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", dbPath).Run() })
	close(up.release)
	waitChan(t, up.answered, "the upstream answer")
	waitFor(t, 10*time.Second, "the gateway's Complete to fail on the immutable file", func() bool {
		return strings.Contains(scrape(t, p.URL), `gateway_store_errors_total{store="record",op="complete"}`)
	})
	p.kill()
	<-done
	if out, err := exec.Command("chattr", "-i", dbPath).CombinedOutput(); err != nil {
		t.Fatalf("chattr -i: %v %s", err, out)
	}

	g := startGateway(t, cfg)
	_, task := adminTask(t, g.URL, "after-answer", "team-a")
	if task["status"] != "processing" || task["fence"].(float64) != 1 {
		t.Fatalf("the killed leader's Complete reached the store: %v", task)
	}
	resp, b := post(t, g.URL, "/v1/chat/completions", body, "Idempotency-Key", "after-answer")
	if resp.StatusCode != 200 || !strings.Contains(string(b), answer) {
		t.Fatalf("retry: %d %s", resp.StatusCode, b)
	}
	_, task = adminTask(t, g.URL, "after-answer", "team-a")
	if task["status"] != "completed" || task["fence"].(float64) != 2 {
		t.Fatalf("task after take-over: %v", task)
	}
	checkAbandonedLedger(t, task, "success")
	if m := scrape(t, g.URL); !strings.Contains(m, `gateway_attempts_abandoned_total{provider="fake"} 1`) {
		t.Fatalf("abandoned attempt not counted:\n%s", m)
	}
}
