package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// testSecrets are the secrets of testConfig; none may leave the gateway.
var testSecrets = []string{testClientKey, testClientKeyB, testAdminKey, "upstream-secret-key"}

// leaks returns the secrets found in text.
func leaks(text string) []string {
	var found []string
	for _, s := range testSecrets {
		if strings.Contains(text, s) {
			found = append(found, s)
		}
	}
	return found
}

// Acceptance (issue 13): provider and client keys never appear in a
// response (body or header), a log line, /metrics or `gateway check`,
// even when an upstream quotes the key it was sent in its error, or a
// client puts its key where the gateway quotes it back.
func TestSecretsNeverLeave(t *testing.T) {
	fake := startFake(t)
	for _, st := range []int{400, 401, 429, 500} {
		fake.SetBehavior("echo-"+http.StatusText(st), upstreamtest.Behavior{Status: st, EchoAuthorization: true})
	}
	yamlText := strings.Replace(testConfig(t, fake.URL, ""), "log: {level: info", "log: {level: debug", 1)
	path := writeConfigFile(t, yamlText)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g := startGatewayConfig(t, cfg)

	var seen strings.Builder // every response, headers and body
	do := func(req *http.Request) (int, []byte) {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Header.Write(&seen)
		seen.Write(b)
		if l := leaks(string(b)); len(l) > 0 {
			t.Errorf("%s %s answered %d with %q: %s", req.Method, req.URL.Path, resp.StatusCode, l, b)
		}
		return resp.StatusCode, b
	}
	postTo := func(path, body string, headers ...string) (int, []byte) {
		t.Helper()
		return do(newPost(t, g.URL+path, body, headers...))
	}

	for _, st := range []int{400, 401, 429, 500} {
		model := "echo-" + http.StatusText(st)
		for _, stream := range []bool{false, true} {
			status, b := postTo("/v1/chat/completions", chatBody(model, "echo", stream), "Idempotency-Key", fmt.Sprint("echo-", model, stream))
			if status < 400 {
				t.Fatalf("%s: %d %s", model, status, b)
			}
			if st < 429 && !bytes.Contains(b, []byte("Bearer "+config.RedactedSecret)) {
				t.Fatalf("%s: the passed-through upstream error lost its text: %s", model, b)
			}
		}
	}
	// The fake really was sent, and quoted, the provider key.
	reqs := fake.Requests()
	if len(reqs) == 0 || reqs[0].Authorization != "Bearer upstream-secret-key" {
		t.Fatalf("the fake did not get the provider key: %+v", reqs)
	}
	if status, b := postTo("/v1/"+testClientKey, `{}`); status != 404 || !bytes.Contains(b, []byte(config.RedactedSecret)) {
		t.Fatalf("a key in the path: %d %s", status, b)
	}
	if status, _ := postTo("/v1/chat/completions", chatBody("m", "wrong key", false), "Authorization", "Bearer "+testClientKey+"-typo"); status != 401 {
		t.Fatalf("a wrong key: %d", status)
	}
	if status, b := postTo("/v1/chat/completions", chatBody("m", "fine", false), "Idempotency-Key", "ok-1"); status != 200 {
		t.Fatalf("a good request: %d %s", status, b)
	}
	postTo("/v1/chat/completions", chatBody("m", "fine stream", true))
	for _, key := range []string{"ok-1", "echo-echo-" + http.StatusText(401) + "false"} {
		req, _ := http.NewRequest("GET", g.URL+"/admin/tasks/"+key+"?tenant=team-a&body=1", nil)
		req.Header.Set("Authorization", "Bearer "+testAdminKey)
		do(req)
	}
	for _, p := range []string{"/metrics", "/v1/models", "/readyz"} {
		req, _ := http.NewRequest("GET", g.URL+p, nil)
		req.Header.Set("Authorization", "Bearer "+testClientKey)
		do(req)
	}
	// A reload, whose lines are logged too.
	if err := g.app.reload(); err != nil {
		t.Fatal(err)
	}
	if l := leaks(seen.String()); len(l) > 0 {
		t.Errorf("responses show %q", l)
	}
	logs := g.logs.String()
	if l := leaks(logs); len(l) > 0 {
		t.Errorf("the log shows %q:\n%s", l, logs)
	}
	if !strings.Contains(logs, "/v1/"+config.RedactedSecret) {
		t.Errorf("the log line of the key in the path was not scrubbed:\n%s", logs)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-config", path}, &out, &errOut); code != 0 {
		t.Fatalf("check: %d %s", code, errOut.String())
	}
	if l := leaks(out.String() + errOut.String()); len(l) > 0 {
		t.Errorf("gateway check shows %q", l)
	}
}

// The log handler scrubs messages, strings, errors and groups, passes
// other values (a []string is not comparable) as they are, and follows a
// reloaded scrubber.
func TestScrubHandler(t *testing.T) {
	var buf bytes.Buffer
	var p atomic.Pointer[config.Scrubber]
	p.Store(config.NewScrubber([]string{"sk-secret-one"}))
	log := slog.New(scrubHandler{inner: slog.NewJSONHandler(&buf, nil), scrub: &p})
	log.With("pre", "with sk-secret-one").Info("message sk-secret-one",
		"s", "x sk-secret-one y", "err", errors.New("cause: sk-secret-one"),
		slog.Group("g", "inner", "sk-secret-one"), "keys", []string{"a", "b"}, "n", 3)
	p.Store(config.NewScrubber([]string{"sk-secret-two"}))
	log.Info("clean", "v", "sk-secret-two")
	out := buf.String()
	if strings.Contains(out, "sk-secret") || strings.Count(out, config.RedactedSecret) != 6 ||
		!strings.Contains(out, `"keys":["a","b"]`) || !strings.Contains(out, `"n":3`) {
		t.Fatalf("log:\n%s", out)
	}
}
