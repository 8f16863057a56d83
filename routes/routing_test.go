package routes_test

import "testing"

// A known path with the wrong method is 405 with an Allow header, before
// any key is checked.
func TestMethodNotAllowed(t *testing.T) {
	g := startGW(t, gwOptions{})
	f := func(method, path, allow string) {
		t.Helper()
		a := g.do(method, path, "", "Authorization", "")
		wantError(t, a, 405, "invalid_request_error", "method_not_allowed", "")
		wantHeader(t, a, "Allow", allow)
	}
	for _, p := range []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"} {
		f("GET", p, "POST")
		f("PUT", p, "POST")
	}
	f("POST", "/v1/models", "GET")
	f("DELETE", "/v1/models", "GET")
	f("POST", "/admin/tasks/some-key", "GET")
	if n := g.fake.Calls(); n != 0 {
		t.Fatalf("%d upstream calls for refused methods", n)
	}
}

// Unknown paths are 404 not_found in OpenAI's shape, with or without a key.
func TestUnknownPath(t *testing.T) {
	g := startGW(t, gwOptions{})
	f := func(method, path string, headers ...string) {
		t.Helper()
		wantError(t, g.do(method, path, "", headers...), 404, "invalid_request_error", "not_found", "")
	}
	f("GET", "/")
	f("GET", "/v2/models")
	f("POST", "/v1/chat/completions/extra")
	f("POST", "/v1/chat")
	f("GET", "/admin/tasks/") // no key in the path
	f("GET", "/adminx")
	f("GET", "/metrics") // served by the gateway's own handler, not routes
	f("GET", "/nowhere", "Authorization", "")
}
