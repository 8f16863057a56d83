package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/idemgw/gateway/dedupe/dedupetest"
)

// redisServer is a throwaway redis-server on a free port, for tests that
// stop or freeze Redis: the machine's shared Redis is never touched.
type redisServer struct {
	addr string
	port int
	cmd  *exec.Cmd
}

func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	r := &redisServer{port: freePort(t)}
	r.addr = fmt.Sprintf("127.0.0.1:%d", r.port)
	r.start(t)
	return r
}

// start runs redis-server on r's port (again, after stop).
func (r *redisServer) start(t *testing.T) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is needed to stop Redis mid-test: %v", err)
	}
	r.cmd = exec.Command(bin, "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := r.cmd
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c := redis.NewClient(&redis.Options{Addr: r.addr})
	defer c.Close()
	waitFor(t, 10*time.Second, "redis-server", func() bool { return c.Ping(context.Background()).Err() == nil })
}

// stop kills the server: connections are refused from now on.
func (r *redisServer) stop() {
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
}

// freeze stops the process without closing its sockets: Redis accepts
// connections and answers nothing, the worst kind of outage.
func (r *redisServer) freeze(t *testing.T) {
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

func (r *redisServer) thaw(t *testing.T) {
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// readyz returns the status and decoded body of GET /readyz.
func readyz(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("GET /readyz: %d %q is not JSON", resp.StatusCode, b)
	}
	return resp.StatusCode, body
}

// The three states of /readyz (DESIGN.md section 5): ok; degraded but
// ready while only Redis is down (requests still deduplicate); 503 while
// the record store does not answer.
func TestReadyzStates(t *testing.T) {
	pgURL := dedupetest.PostgresURL(t)
	fake := startFake(t)
	rs := startRedisServer(t)
	host := strings.SplitN(strings.TrimPrefix(pgURL, "postgres://postgres@"), "/", 2)
	pgProxy := startProxy(t, host[0])
	store := fmt.Sprintf("store: {kind: postgres, url: %q}\n", "postgres://postgres@"+pgProxy.Addr()+"/"+host[1])
	lock := fmt.Sprintf("lock: {kind: redis, redis: {addrs: [%q], key_prefix: %q}}\n", rs.addr, dedupetest.KeyPrefix(t))
	g := startGateway(t, testConfig(t, fake.URL, store+lock))

	if code, body := readyz(t, g.URL); code != 200 || len(body) != 1 || body["status"] != "ok" {
		t.Fatalf("readyz with everything up: %d %v, want 200 {\"status\":\"ok\"}", code, body)
	}

	rs.stop()
	code, body := readyz(t, g.URL)
	if code != 200 || body["status"] != "degraded" || body["redis"] == nil || body["redis"] == "" {
		t.Fatalf("readyz with Redis down: %d %v, want 200 degraded with the reason", code, body)
	}
	t.Logf("degraded: %v", body["redis"])
	// Still correct through the record store alone.
	chat := chatBody("m", "redis down", false)
	if r, b := post(t, g.URL, "/v1/chat/completions", chat, "Idempotency-Key", "rd-1"); r.StatusCode != 200 {
		t.Fatalf("request with Redis down: %d %s", r.StatusCode, b)
	}
	if r, _ := post(t, g.URL, "/v1/chat/completions", chat, "Idempotency-Key", "rd-1"); r.Header.Get("Idempotent-Replayed") != "true" || fake.Calls() != 1 {
		t.Fatalf("retry with Redis down: replayed %q, upstream calls %d", r.Header.Get("Idempotent-Replayed"), fake.Calls())
	}

	rs.start(t)
	waitFor(t, 10*time.Second, "readyz ok after Redis came back", func() bool {
		code, body := readyz(t, g.URL)
		return code == 200 && body["status"] == "ok"
	})
	logs := g.logs.String()
	if n := strings.Count(logs, "redis is unreachable"); n != 1 {
		t.Fatalf("%d warnings that Redis is unreachable, want one per outage:\n%s", n, logs)
	}
	if n := strings.Count(logs, "redis answers again"); n != 1 {
		t.Fatalf("%d notes that Redis is back, want 1:\n%s", n, logs)
	}

	pgProxy.cut()
	code, body = readyz(t, g.URL)
	e, _ := body["error"].(map[string]any)
	if code != 503 || e == nil || e["code"] != "not_ready" || !strings.Contains(fmt.Sprint(e["message"]), "record store") {
		t.Fatalf("readyz with the record store down: %d %v, want 503 not_ready naming the record store", code, body)
	}
}

// A Redis that stops answering costs requests nothing once it is known
// to be down (issue 10): the background probe alone pays Redis's
// timeouts, however far apart the requests come (wider than the 2 s skip
// window that used to expire and make the next request dial again).
func TestRedisDownCostsRequestsNothing(t *testing.T) {
	pgURL := dedupetest.PostgresURL(t)
	fake := startFake(t)
	rs := startRedisServer(t)
	store := fmt.Sprintf("store: {kind: postgres, url: %q}\n", pgURL)
	lock := fmt.Sprintf("lock: {kind: redis, redis: {addrs: [%q], key_prefix: %q}}\n", rs.addr, dedupetest.KeyPrefix(t))
	g := startGateway(t, testConfig(t, fake.URL, store+lock))
	if r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", "warm", false), "Idempotency-Key", "warm"); r.StatusCode != 200 {
		t.Fatalf("warm-up: %d %s", r.StatusCode, b)
	}

	rs.freeze(t)
	// The first to meet the frozen Redis (here /readyz) pays its timeout
	// and marks it down.
	if code, body := readyz(t, g.URL); code != 200 || body["status"] != "degraded" {
		t.Fatalf("readyz with Redis frozen: %d %v", code, body)
	}
	// Well under the Redis client's dial (500 ms) and read (1 s)
	// timeouts; the store answers in milliseconds.
	const bound = 500 * time.Millisecond
	for i := range 3 {
		time.Sleep(2500 * time.Millisecond)
		start := time.Now()
		r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", fmt.Sprint("down ", i), false), "Idempotency-Key", fmt.Sprint("down-", i))
		took := time.Since(start)
		if r.StatusCode != 200 {
			t.Fatalf("request %d with Redis frozen: %d %s", i, r.StatusCode, b)
		}
		t.Logf("request %d with Redis frozen took %v", i, took)
		if took >= bound {
			t.Fatalf("request %d with Redis frozen took %v, want under %v: it waited for Redis", i, took, bound)
		}
	}

	rs.thaw(t)
	waitFor(t, 10*time.Second, "Redis to be used again", func() bool {
		return strings.Contains(g.logs.String(), "redis answers again")
	})
	if r, b := post(t, g.URL, "/v1/chat/completions", chatBody("m", "back", false), "Idempotency-Key", "back"); r.StatusCode != 200 {
		t.Fatalf("after Redis came back: %d %s", r.StatusCode, b)
	}
}

// SIGTERM makes /readyz answer 503 at once while requests are still
// served for shutdown_delay, then the process exits cleanly.
func TestReadyzDraining(t *testing.T) {
	fake := startFake(t)
	p := startProcess(t, testConfig(t, fake.URL, "shutdown_delay: 3s\n"))
	if code, body := readyz(t, p.URL); code != 200 || body["status"] != "ok" {
		t.Fatalf("readyz before SIGTERM: %d %v", code, body)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "readyz to answer 503", func() bool {
		code, _ := readyz(t, p.URL)
		return code == 503
	})
	_, body := readyz(t, p.URL)
	if e, _ := body["error"].(map[string]any); e == nil || e["code"] != "not_ready" || !strings.Contains(fmt.Sprint(e["message"]), "draining") {
		t.Fatalf("readyz while draining: %v", body)
	}
	if r, b := post(t, p.URL, "/v1/chat/completions", chatBody("m", "while draining", false)); r.StatusCode != 200 {
		t.Fatalf("a request while draining: %d %s", r.StatusCode, b)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs.String())
	}
}
