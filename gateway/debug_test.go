package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// getDebug fetches a /debug/pprof/ path with an optional bearer key.
func getDebug(t *testing.T, url, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// The profiles are off by default, and when on they go only to the admin
// key: the bench reads its allocation counts from them.
func TestPprofOptIn(t *testing.T) {
	f := startFake(t)
	off := startGateway(t, testConfig(t, f.URL, ""))
	if code, _ := getDebug(t, off.URL+"/debug/pprof/", testAdminKey); code != 404 {
		t.Fatalf("debug.pprof off: GET /debug/pprof/ = %d, want 404", code)
	}

	on := startGateway(t, testConfig(t, f.URL, "debug: {pprof: true}\n"))
	if code, body := getDebug(t, on.URL+"/debug/pprof/allocs?debug=1", ""); code != 401 || !strings.Contains(body, "invalid_api_key") {
		t.Fatalf("debug.pprof on, no key: %d %s, want 401 invalid_api_key", code, body)
	}
	if code, _ := getDebug(t, on.URL+"/debug/pprof/allocs?debug=1", testClientKey); code != 401 {
		t.Fatalf("debug.pprof on, a client key: %d, want 401", code)
	}
	code, body := getDebug(t, on.URL+"/debug/pprof/allocs?debug=1", testAdminKey)
	if code != 200 || !strings.Contains(body, "# Mallocs = ") {
		t.Fatalf("debug.pprof on, admin key: %d, want 200 with MemStats; body starts %.200q", code, body)
	}
	// Without an admin key, a loopback client (the test) is served.
	cfg := strings.Replace(testConfig(t, f.URL, "debug: {pprof: true}\n"), "  admin_key: "+testAdminKey+"\n", "", 1)
	local := startGateway(t, cfg)
	if code, body := getDebug(t, local.URL+"/debug/pprof/goroutine?debug=1", ""); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("debug.pprof on, no admin key, loopback: %d %.200q", code, body)
	}
}
