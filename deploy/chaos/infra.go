package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// freePort asks the kernel for a loopback port nobody listens on.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitUntil polls ok every 50 ms until it holds or d passes.
func waitUntil(d time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// postgres is a throwaway PostgreSQL cluster of the run, so the run may
// restart it in immediate mode (a crash: no checkpoint, WAL replay at start).
type postgres struct {
	bin  string
	dir  string
	port int
	// asPG runs a command as the postgres user when the run is root
	// (PostgreSQL refuses to run as root; deploy/testenv.sh does the same).
	asPG []string
}

// findPostgres returns the directory of pg_ctl and initdb: on PATH, else
// the newest /usr/lib/postgresql/*/bin.
func findPostgres() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("cannot find initdb and pg_ctl (install PostgreSQL, e.g. apt-get install postgresql)")
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func startPostgres(tmp string) (*postgres, error) {
	bin, err := findPostgres()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &postgres{bin: bin, dir: filepath.Join(tmp, "pg"), port: port}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the Postgres directory: %w", err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("cannot run PostgreSQL as root and there is no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(p.dir, uid, gid); err != nil {
			return nil, fmt.Errorf("cannot hand the Postgres directory to the postgres user: %w", err)
		}
		p.asPG = []string{"runuser", "-u", "postgres", "--"}
	}
	if out, err := p.run("initdb", "-D", p.dir, "-U", "postgres", "-A", "trust"); err != nil {
		return nil, fmt.Errorf("cannot initdb: %w\n%s", err, out)
	}
	if out, err := p.run("pg_ctl", "-D", p.dir, "-l", filepath.Join(p.dir, "log"), "-w", "-o", p.options(), "start"); err != nil {
		return nil, fmt.Errorf("cannot start Postgres: %w\n%s", err, out)
	}
	return p, nil
}

// options: fsync stays on, so the immediate restart replays a real WAL.
func (p *postgres) options() string {
	return fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -c max_connections=200", p.port, p.dir)
}

func (p *postgres) run(tool string, args ...string) ([]byte, error) {
	argv := append(append([]string{}, p.asPG...), append([]string{filepath.Join(p.bin, tool)}, args...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
}

func (p *postgres) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// restartImmediate is the fault: pg_ctl restart -m immediate aborts every
// backend without a checkpoint, and the start replays the WAL.
func (p *postgres) restartImmediate() error {
	if out, err := p.run("pg_ctl", "-D", p.dir, "-l", filepath.Join(p.dir, "log"), "-w", "-m", "immediate", "-o", p.options(), "restart"); err != nil {
		return fmt.Errorf("cannot restart Postgres: %w\n%s", err, out)
	}
	return nil
}

// crashFor is the longer fault: an immediate stop, down for d (longer
// than a lease, so running leaders lose theirs), then a start.
func (p *postgres) crashFor(d time.Duration) error {
	if out, err := p.run("pg_ctl", "-D", p.dir, "-m", "immediate", "-w", "stop"); err != nil {
		return fmt.Errorf("cannot stop Postgres: %w\n%s", err, out)
	}
	time.Sleep(d)
	if out, err := p.run("pg_ctl", "-D", p.dir, "-l", filepath.Join(p.dir, "log"), "-w", "-o", p.options(), "start"); err != nil {
		return fmt.Errorf("cannot start Postgres: %w\n%s", err, out)
	}
	return nil
}

func (p *postgres) stop() {
	_, _ = p.run("pg_ctl", "-D", p.dir, "-m", "immediate", "-w", "stop")
}

// redisServer is the run's own Redis, without persistence, so a restart
// after SIGKILL starts empty: no locks, no live streams, no breakers.
type redisServer struct {
	port int
	dir  string
	cmd  *exec.Cmd
}

func startRedis(tmp string) (*redisServer, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("cannot find redis-server (install Redis, e.g. apt-get install redis-server)")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redisServer{port: port, dir: tmp}
	return r, r.start()
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *redisServer) start() error {
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("cannot start redis-server: %w", err)
	}
	if !waitUntil(10*time.Second, r.ping) {
		r.kill()
		return fmt.Errorf("redis-server did not answer PING on %s", r.addr())
	}
	return nil
}

func (r *redisServer) ping() bool {
	c, err := net.DialTimeout("tcp", r.addr(), 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

func (r *redisServer) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		_ = r.cmd.Wait()
	}
}

// node is one gateway process of the cluster, on a fixed port so clients
// reach its successor at the same URL.
type node struct {
	bin, cfg, logPath string
	url               string

	mu  sync.Mutex
	cmd *exec.Cmd
}

func (n *node) up() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// start runs the gateway and waits for /healthz. A start fails while
// Postgres is down (migrate: auto needs it), for up to 4 s in this run,
// so it is tried again for longer than that.
func (n *node) start() error {
	var last error
	for try := 0; try < 20; try++ {
		if last = n.startOnce(); last == nil {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return last
}

func (n *node) startOnce() error {
	logs, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cannot open the node log: %w", err)
	}
	cmd := exec.Command(n.bin, "serve", "-config", n.cfg)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	logs.Close()
	if err != nil {
		return fmt.Errorf("cannot start the gateway: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	healthy := waitUntil(20*time.Second, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		resp, err := http.Get(n.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	select {
	case <-exited:
		return fmt.Errorf("the gateway %s exited at start (see %s)", n.url, n.logPath)
	default:
	}
	if !healthy {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return fmt.Errorf("the gateway %s did not answer /healthz (see %s)", n.url, n.logPath)
	}
	n.mu.Lock()
	n.cmd = cmd
	n.mu.Unlock()
	go func() { <-exited; n.mu.Lock(); n.cmd = nil; n.mu.Unlock() }()
	return nil
}

// kill is the fault: SIGKILL, no drain, no final write.
func (n *node) kill() {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	waitUntil(10*time.Second, func() bool { return !n.up() })
}
