package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idemgw/gateway/dedupe/dedupetest"
)

// The binary for multi-process tests is built once per test run, into
// a directory removed when the run ends.
var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func gatewayBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gwbin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "gateway")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("cannot build the gateway: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// clusterConfig is the shared-store part of a config: Postgres and Redis
// from the test environment, with a fresh database and key prefix.
type cluster struct {
	pgURL    string
	redisURL string
	prefix   string
}

func newCluster(t testing.TB) cluster {
	t.Helper()
	return cluster{pgURL: dedupetest.PostgresURL(t), redisURL: dedupetest.RedisURL(t), prefix: dedupetest.KeyPrefix(t)}
}

// yaml renders the store and lock sections; redisAddr overrides the
// Redis address (e.g. a proxy) when set.
func (c cluster) yaml(t testing.TB, redisAddr string) string {
	t.Helper()
	if redisAddr == "" {
		u, err := url.Parse(c.redisURL)
		if err != nil {
			t.Fatal(err)
		}
		redisAddr = u.Host
	}
	return fmt.Sprintf("store: {kind: postgres, url: %q}\nlock: {kind: redis, redis: {addrs: [%q], key_prefix: %q}}\n", c.pgURL, redisAddr, c.prefix)
}

// proc is a gateway running as its own process.
type proc struct {
	URL  string
	cmd  *exec.Cmd
	logs *syncBuffer
}

// startProcess runs `gateway serve` on a free loopback port.
func startProcess(t *testing.T, yamlText string) *proc {
	t.Helper()
	p, _ := startProcessFile(t, yamlText)
	return p
}

// startProcessFile runs `gateway serve` on a free loopback port and
// returns the config file's path, so a test can rewrite it and send SIGHUP.
func startProcessFile(t *testing.T, yamlText string) (*proc, string) {
	t.Helper()
	port := freePort(t)
	yamlText = fmt.Sprintf("listen: 127.0.0.1:%d\n", port) + removeListen(yamlText)
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &proc{URL: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &syncBuffer{}}
	p.cmd = exec.Command(gatewayBinary(t), "serve", "-config", path)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	// If the test binary dies (a suite timeout), the gateway dies with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	waitFor(t, 20*time.Second, "the gateway process", func() bool {
		resp, err := http.Get(p.URL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return p, path
}

// kill stops the process with SIGKILL: no graceful anything.
func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// removeListen drops the listen line testConfig writes.
func removeListen(y string) string {
	const l = "listen: 127.0.0.1:0\n"
	if len(y) >= len(l) && y[:len(l)] == l {
		return y[len(l):]
	}
	return y
}

// tcpProxy forwards a loopback port to a target and can be cut, to stop
// Redis or Postgres "mid-run" without touching the shared servers.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func startProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
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
		if p.closed {
			p.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

// cut closes the listener and every forwarded connection: the server
// behind it looks dead (connection refused from now on).
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}
