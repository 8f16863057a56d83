package upstreamtest

import (
	"strings"
	"testing"
)

// EchoAuthorization quotes the caller's Authorization header in the
// scripted error, and only there.
func TestEchoAuthorization(t *testing.T) {
	s := startServer(t)
	s.SetBehavior("echo", Behavior{Status: 401, EchoAuthorization: true})
	s.SetBehavior("plain", Behavior{Status: 401})
	status, body := post(t, nil, s.URL+"/chat/completions", `{"model":"echo","messages":[]}`, "Authorization", "Bearer sk-echo-me")
	if status != 401 || !strings.Contains(string(body), `Bearer sk-echo-me`) {
		t.Fatalf("echo: %d %s", status, body)
	}
	status, body = post(t, nil, s.URL+"/chat/completions", `{"model":"plain","messages":[]}`, "Authorization", "Bearer sk-echo-me")
	if status != 401 || strings.Contains(string(body), "sk-echo-me") {
		t.Fatalf("plain: %d %s", status, body)
	}
}
