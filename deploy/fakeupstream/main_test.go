package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The command serves the fake on the address given, prints its base URL,
// answers by the model-name convention, and stops cleanly.
func TestServesUntilStopped(t *testing.T) {
	pr, pw := io.Pipe()
	stop := make(chan struct{})
	code := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		code <- run([]string{"-listen", "127.0.0.1:0"}, pw, &stderr, stop)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no start-up line: %v (stderr %q)", err, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	base := strings.TrimSpace(strings.TrimPrefix(line, "fake upstream listening on "))
	if !strings.HasPrefix(base, "http://127.0.0.1:") || !strings.HasSuffix(base, "/v1") {
		t.Fatalf("start-up line %q does not end with the base URL", line)
	}
	f := func(model string, wantStatus int) {
		t.Helper()
		body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
		resp, err := http.Post(base+"/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("model %s: %v", model, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Fatalf("model %s: status %d, want %d: %s", model, resp.StatusCode, wantStatus, b)
		}
	}
	f("fake-gpt", http.StatusOK)
	f("fail-503", http.StatusServiceUnavailable)
	close(stop)
	if c := <-code; c != 0 {
		t.Fatalf("exit code %d, want 0 (stderr %q)", c, stderr.String())
	}
}

func TestBadFlags(t *testing.T) {
	f := func(args ...string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if c := run(args, &out, &errOut, nil); c != 2 || errOut.Len() == 0 {
			t.Fatalf("run(%q) = %d, stderr %q; want 2 and a message", args, c, errOut.String())
		}
	}
	f("-no-such-flag")
	f("-listen")
	f("extra")
}
