package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// testClientKey is the bearer key of tenant "team-a" in test configs;
// "team-b" uses testClientKeyB.
const (
	testClientKey  = "sk-test-team-a"
	testClientKeyB = "sk-test-team-b"
	testAdminKey   = "admin-secret-key"
)

// startFake starts a fake upstream for one test.
func startFake(t testing.TB) *upstreamtest.Server {
	t.Helper()
	f, err := upstreamtest.Start()
	if err != nil {
		t.Fatalf("cannot start fake upstream: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// defaultProviders are three providers on the fake upstream (FAKE_URL).
const defaultProviders = `providers:
  fake: {base_url: FAKE_URL, api_key: upstream-secret-key, timeout: 5s, first_byte_timeout: 3s}
  fake2: {base_url: FAKE_URL, api_key: upstream-secret-key, timeout: 5s, first_byte_timeout: 3s}
  fake3: {base_url: FAKE_URL, api_key: upstream-secret-key, timeout: 5s, first_byte_timeout: 3s}
`

// testConfig renders a gateway.yaml around the fake upstream. extra is
// appended verbatim (routes, dedupe overrides and the like); when it has
// no routes section a default "*" route to the fake is added.
func testConfig(t testing.TB, fakeURL, extra string) string {
	t.Helper()
	if !strings.Contains(extra, "routes:") {
		extra += "routes:\n  - model: \"*\"\n    targets: [{provider: fake}]\n"
	}
	return providerConfig(t, fakeURL, defaultProviders, extra)
}

// providerConfig renders a gateway.yaml with the given providers block,
// where every FAKE_URL is replaced by the fake's base URL, so tests can
// set per-provider timeouts and keys. extra must hold the routes; an
// embedded store in a temporary directory is added when it has no store.
func providerConfig(t testing.TB, fakeURL, providers, extra string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `listen: 127.0.0.1:0
auth:
  mode: keys
  keys:
    - {tenant: team-a, key: %s}
    - {tenant: team-b, key: %s}
  admin_key: %s
log: {level: info, format: json}
`, testClientKey, testClientKeyB, testAdminKey)
	b.WriteString(strings.ReplaceAll(providers, "FAKE_URL", strconv.Quote(fakeURL)))
	b.WriteString(extra)
	if !strings.Contains(extra, "store:") {
		fmt.Fprintf(&b, "store: {kind: embedded, path: %q}\n", t.TempDir()+"/gw.db")
	}
	return b.String()
}

// gw is a gateway running in the test process.
type gw struct {
	URL  string
	app  *app
	logs *syncBuffer
	done chan struct{}
}

// syncBuffer is a log sink tests can read while the gateway writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startGateway runs a gateway from YAML text on a loopback port.
func startGateway(t testing.TB, yamlText string) *gw {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yamlText), nil)
	if err != nil {
		t.Fatalf("cannot parse test config: %v\n%s", err, yamlText)
	}
	return startGatewayConfig(t, cfg)
}

func startGatewayConfig(t testing.TB, cfg *config.Config) *gw {
	t.Helper()
	logs := &syncBuffer{}
	a, err := newApp(cfg, logs)
	if err != nil {
		t.Fatalf("cannot start gateway: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gw{URL: "http://" + ln.Addr().String(), app: a, logs: logs, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		_ = a.serve(ln)
	}()
	t.Cleanup(func() { g.stop(t) })
	return g
}

func (g *gw) stop(t testing.TB) {
	select {
	case <-g.done:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = g.app.shutdown(ctx)
	<-g.done
}

// newPost builds a JSON POST with tenant A's key and the given extra
// headers (name, value pairs; an empty value deletes the header).
func newPost(t testing.TB, url, body string, headers ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// post sends a JSON body to the gateway (see newPost) and reads the answer.
func post(t testing.TB, url, path, body string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(newPost(t, url+path, body, headers...))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return resp, b
}

func chatBody(model, content string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}],"stream":%v}`, model, content, stream)
}
