package breaker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/idemgw/gateway/config"
)

// clock is a fake clock; tests move it instead of sleeping. It starts on
// a whole second so times survive Redis's milliseconds unchanged.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testYAML has two providers; p has two targets and a 10s timeout.
const testYAML = `auth: {mode: none}
resilience:
  breaker: {failures: 3, cooldown: 30s, max_cooldown: 2m}
providers:
  p: {base_url: "http://127.0.0.1:1/v1", timeout: 10s}
  q: {base_url: "http://127.0.0.1:2/v1", resilience: {auth_cooldown: 1m}}
routes:
  - model: m
    targets:
      - {provider: p, model: a}
      - {provider: p, model: b}
      - {provider: q, model: a}
  - model: "*"
    targets: [{provider: q}]
`

var (
	pa = Target{Provider: "p", Model: "a"}
	pb = Target{Provider: "p", Model: "b"}
	qa = Target{Provider: "q", Model: "a"}
	q0 = Target{Provider: "q"}
)

func testConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// mode builds breakers over one state: in process, or in one Redis key
// space (so that two of them are two nodes of a cluster).
type mode struct {
	name string
	// redis is nil for the in-process mode.
	redis  redis.UniversalClient
	prefix string
}

func (m mode) new(t testing.TB, clk *clock, yaml string) *Breaker {
	t.Helper()
	// These tests are about decisions: a Redis call slowed past the 250ms
	// default by a loaded machine would make a node decide on its own
	// (tested on purpose in TestRedisHanging and TestRedisUnreachable).
	b := New(testConfig(t, yaml), Options{Redis: m.redis, Prefix: m.prefix, Now: clk.Now, RefreshInterval: -1, OpTimeout: 10 * time.Second})
	t.Cleanup(b.Close)
	return b
}

// modes returns the in-process mode and, with GATEWAY_TEST_REDIS_URL, the
// Redis mode.
func modes(t *testing.T) []mode {
	ms := []mode{{name: "local"}}
	if os.Getenv(redisURLEnv) != "" || os.Getenv("CI") == "true" {
		client, prefix := redisForTest(t)
		ms = append(ms, mode{name: "redis", redis: client, prefix: prefix})
	}
	return ms
}

const redisURLEnv = "GATEWAY_TEST_REDIS_URL"

// redisForTest connects to GATEWAY_TEST_REDIS_URL and returns a client and
// a key prefix of this test, whose keys are deleted at the end. Outside
// CI a missing variable skips the test; in CI it fails it.
func redisForTest(t testing.TB) (*redis.Client, string) {
	t.Helper()
	url := os.Getenv(redisURLEnv)
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s must be set in CI", redisURLEnv)
		}
		t.Skipf("%s is not set; set it to run the Redis tests", redisURLEnv)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("cannot parse %s: %v", redisURLEnv, err)
	}
	client := redis.NewClient(opt)
	ctx := context.Background()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("cannot ping %s: %v", url, err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	prefix := "gwtest:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cannot clean up %s*: %v", prefix, err)
		}
		_ = client.Close()
	})
	return client, prefix
}

// commands counts the Redis commands a client sends (a pipeline counts
// each of its commands).
type commands struct{ n atomic.Int64 }

func (c *commands) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// freePort returns a loopback port nobody listens on (free a moment ago).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// redisServer is a throwaway redis-server on a port of its own, for the
// tests that must stop and restart Redis (never the machine's).
type redisServer struct {
	t    testing.TB
	bin  string
	port int
	cmd  *exec.Cmd
}

func startRedisServer(t testing.TB) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server must be on PATH in CI: %v", err)
		}
		t.Skipf("redis-server not on PATH: %v", err)
	}
	s := &redisServer{t: t, bin: bin, port: freePort(t)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("cannot start redis-server: %v", err)
	}
	s.cmd = cmd
	client := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer client.Close()
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := client.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if i == 100 {
			s.t.Fatalf("redis-server on %s does not answer: %v\n%s", s.addr(), err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// metric reads one series of the breaker's metric set, or -1 when it
// does not exist.
func metric(t testing.TB, b *Breaker, series string) float64 {
	t.Helper()
	var buf bytes.Buffer
	b.Metrics().WritePrometheus(&buf)
	for _, line := range strings.Split(buf.String(), "\n") {
		if name, value, ok := strings.Cut(line, " "); ok && name == series {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

// expect checks a decision.
func expect(t testing.TB, d Decision, call, probe bool, reason Reason, until time.Time) {
	t.Helper()
	if d.Call != call || d.Probe != probe || d.Reason != reason || !d.Until.Equal(until) {
		t.Fatalf("decision for %v = call %v probe %v reason %q until %v (%s); want call %v probe %v reason %q until %v",
			d.Target, d.Call, d.Probe, d.Reason, d.Until, d, call, probe, reason, until)
	}
}

func fail(b *Breaker, t Target, n int, c Class) {
	for i := 0; i < n; i++ {
		b.Report(b.Allow(context.Background(), t), Result{Class: c})
	}
}
