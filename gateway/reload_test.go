package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// reloadRoutes is the routes section with route r1 sent to target.
func reloadRoutes(target string) string {
	return fmt.Sprintf("routes:\n  - model: r1\n    targets: [{provider: fake, model: %s}]\n", target)
}

// Acceptance (issue 5): SIGHUP swaps the routes for the next requests
// while an in-flight stream finishes on the old ones; a broken file is
// rejected with its line and the old config keeps serving; SIGTERM exits 0.
func TestSighupReload(t *testing.T) {
	fake := startFake(t)
	slow := upstreamtest.Behavior{Chunks: 30, Interval: 100 * time.Millisecond}
	fake.SetBehavior("up-a", slow)
	fake.SetBehavior("up-b", upstreamtest.Behavior{})
	base := testConfig(t, fake.URL, reloadRoutes("up-a"))
	p, path := startProcessFile(t, base)

	type streamOut struct {
		status int
		body   string
		err    error
	}
	done := make(chan streamOut, 1)
	go func() {
		status, _, body, err := rawDo(p.URL, chatBody("r1", "slow in-flight stream", true))
		done <- streamOut{status, body, err}
	}()
	waitFor(t, 5*time.Second, "the slow stream's upstream call", func() bool { return fake.CallsForModel("up-a") == 1 })

	// Reload: r1 now goes to up-b.
	next := strings.Replace(base, reloadRoutes("up-a"), reloadRoutes("up-b"), 1)
	if next == base {
		t.Fatalf("the routes section was not found in the config")
	}
	if err := os.WriteFile(path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the reload log line", func() bool { return strings.Contains(p.logs.String(), "config reloaded") })
	if r, b := post(t, p.URL, "/v1/chat/completions", chatBody("r1", "after reload", false)); r.StatusCode != 200 {
		t.Fatalf("request after reload: %d %s", r.StatusCode, b)
	}
	if a, b := fake.CallsForModel("up-a"), fake.CallsForModel("up-b"); a != 1 || b != 1 {
		t.Fatalf("after reload: upstream calls up-a=%d up-b=%d, want 1 and 1", a, b)
	}

	select {
	case o := <-done:
		if o.err != nil || o.status != 200 {
			t.Fatalf("in-flight stream: %d %v", o.status, o.err)
		}
		if got, want := deltaTextAll(o.body), upstreamtest.StreamText(slow); got != want || !strings.Contains(o.body, "data: [DONE]") {
			t.Fatalf("in-flight stream across the reload: text %q, want %q; [DONE] present %v", got, want, strings.Contains(o.body, "[DONE]"))
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the in-flight stream did not finish")
	}

	// A broken file: unknown key on a known line.
	broken := next + "bogus_key: 1\n"
	line := strings.Count(broken, "\n")
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wantErr := fmt.Sprintf("%s:%d: bogus_key", path, line)
	waitFor(t, 5*time.Second, "the rejected reload log line", func() bool { return strings.Contains(p.logs.String(), "config reload rejected") })
	if logs := p.logs.String(); !strings.Contains(logs, wantErr) {
		t.Fatalf("the process log does not name %q:\n%s", wantErr, logs)
	}
	if r, b := post(t, p.URL, "/v1/chat/completions", chatBody("r1", "after failed reload", false)); r.StatusCode != 200 {
		t.Fatalf("request after a failed reload: %d %s", r.StatusCode, b)
	}
	if a, b := fake.CallsForModel("up-a"), fake.CallsForModel("up-b"); a != 1 || b != 2 {
		t.Fatalf("after the failed reload: upstream calls up-a=%d up-b=%d, want 1 and 2 (the last good config)", a, b)
	}
	m := scrape(t, p.URL)
	for _, want := range []string{`gateway_config_reloads_total{result="success"} 1`, `gateway_config_reloads_total{result="failure"} 1`} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil || p.cmd.ProcessState.ExitCode() != 0 {
			t.Fatalf("after SIGTERM: %v, exit code %d\n%s", err, p.cmd.ProcessState.ExitCode(), p.logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the process did not exit after SIGTERM")
	}
}

// A reload that changes keys read only at start-up applies the rest and
// warns, naming each such key, instead of logging a plain "config
// reloaded" and silently keeping the old values (issue 9).
func TestReloadWarnsAboutRestartOnlyKeys(t *testing.T) {
	fake := startFake(t)
	base := testConfig(t, fake.URL, reloadRoutes("up-a"))
	path := writeConfigFile(t, base)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g := startGatewayConfig(t, cfg)
	const warning = "need a restart"

	// Only reloadable keys: no warning.
	next := strings.Replace(base, reloadRoutes("up-a"), reloadRoutes("up-b"), 1)
	if err := os.WriteFile(path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.app.reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if logs := g.logs.String(); !strings.Contains(logs, "config reloaded") || strings.Contains(logs, warning) {
		t.Fatalf("a reload of routes only: want \"config reloaded\" and no restart warning:\n%s", logs)
	}

	// listen, dedupe.enabled and dedupe.lease need a restart; the route
	// change next to them is still applied.
	next = strings.Replace(base, "listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1) +
		"dedupe: {enabled: false, lease: 5s, derive: off}\n"
	next = strings.Replace(next, reloadRoutes("up-a"), reloadRoutes("up-c"), 1)
	if err := os.WriteFile(path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.app.reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	var line string
	for _, l := range strings.Split(g.logs.String(), "\n") {
		if strings.Contains(l, warning) {
			line = l
		}
	}
	if !strings.Contains(line, `"level":"WARN"`) || !strings.Contains(line, `"keys":["listen","dedupe.enabled","dedupe.lease"]`) {
		t.Fatalf("restart warning = %q, want a WARN naming listen, dedupe.enabled and dedupe.lease (and not dedupe.derive)\n%s", line, g.logs.String())
	}
	if r, b := post(t, g.URL, "/v1/chat/completions", chatBody("r1", "after reload", false)); r.StatusCode != 200 {
		t.Fatalf("request after reload: %d %s", r.StatusCode, b)
	}
	if n := fake.CallsForModel("up-c"); n != 1 {
		t.Fatalf("upstream calls for up-c = %d, want 1: the reloadable part was not applied", n)
	}
	// Still compared with the running (start-up) values: reverting the
	// file makes the warning go away.
	before := strings.Count(g.logs.String(), warning)
	if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.app.reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if after := strings.Count(g.logs.String(), warning); after != before {
		t.Fatalf("reverting to the running values still warns:\n%s", g.logs.String())
	}
}
