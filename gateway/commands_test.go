package main

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// writeConfig writes a config file for the commands.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// `gateway migrate` applies the schema (twice is fine) and `gateway reap`
// runs one pass that fails a zombie left by a killed process.
func TestMigrateAndReapCommands(t *testing.T) {
	cl := newCluster(t)
	fake := startFake(t)
	cfgText := testConfig(t, fake.URL, cl.yaml(t, "")+"store: {kind: postgres, url: \""+cl.pgURL+"\", migrate: manual}\n")
	// The cluster yaml already has a store line; keep the manual one.
	cfgText = strings.Replace(cfgText, "store: {kind: postgres, url: \""+cl.pgURL+"\"}\n", "", 1)
	path := writeConfig(t, cfgText)
	for i := 0; i < 2; i++ {
		var out, errOut bytes.Buffer
		if code := run([]string{"migrate", "-config", path}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "migrations applied") {
			t.Fatalf("migrate #%d: exit %d\n%s%s", i+1, code, out.String(), errOut.String())
		}
	}
	fake.SetBehavior("slow", upstreamtest.Behavior{FirstByteDelay: 3 * time.Second})
	zombieCfg := strings.Replace(cfgText, "store:", "dedupe: {lease: 300ms}\nstore:", 1)
	killLeaderMidCall(t, fake, zombieCfg, "reap-cmd", chatBody("slow", "reap command", false))
	// A pass finds nothing until the dead leader's lease has run out
	// (300ms after its last heartbeat, on Postgres's clock); then one pass
	// reclaims the zombie. Polling instead of sleeping past the lease.
	reapCfg := writeConfig(t, zombieCfg)
	waitFor(t, 20*time.Second, "a reap pass that reclaims the zombie", func() bool {
		var out, errOut bytes.Buffer
		if code := run([]string{"reap", "-config", reapCfg}, &out, &errOut); code != 0 {
			t.Fatalf("reap: exit %d\n%s", code, errOut.String())
		}
		switch {
		case strings.Contains(out.String(), "reclaimed 1 zombie tasks"):
			return true
		case strings.Contains(out.String(), "reclaimed 0 zombie tasks"):
			return false
		}
		t.Fatalf("reap output: %s", out.String())
		return false
	})
}

// The production binary carries no test helpers: the fake upstream runs as
// its own command (deploy/fakeupstream), so upstreams/upstreamtest, or any
// later "...test" helper package of the module, must not be a dependency
// of package main here (tests may import them; go list -deps without -test
// leaves test files out).
func TestBinaryImportsNoTestHelpers(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const module = "github.com/idemgw/gateway"
	seen := false
	for _, pkg := range strings.Fields(string(out)) {
		if !strings.HasPrefix(pkg, module+"/") {
			continue
		}
		seen = true
		if strings.HasSuffix(path.Base(pkg), "test") {
			t.Errorf("the gateway binary imports the test helper package %s", pkg)
		}
	}
	if !seen {
		t.Fatalf("go list -deps named none of the module's packages:\n%s", out)
	}
}
