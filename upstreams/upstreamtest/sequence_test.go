package upstreamtest

import (
	"net/http"
	"testing"
)

// SetSequence answers successive calls with successive behaviors, the
// last one repeating; RetryAfter and RetryAfterMs reach the client (a 429's Retry-After).
func TestSequenceAndHeader(t *testing.T) {
	s := startServer(t)
	s.SetSequence("m",
		Behavior{Status: 429, RetryAfter: "2", RetryAfterMs: "1500"},
		Behavior{Status: 503},
		Behavior{},
	)
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	want := []int{429, 503, 200, 200}
	for i, w := range want {
		resp, err := doPost(nil, s.URL+"/chat/completions", body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != w {
			t.Fatalf("call %d: status %d, want %d", i+1, resp.StatusCode, w)
		}
		if i == 0 && (resp.Header.Get("Retry-After") != "2" || resp.Header.Get("retry-after-ms") != "1500") {
			t.Fatalf("429 headers = %v, want Retry-After 2 and retry-after-ms 1500", resp.Header)
		}
		if i > 0 && resp.Header.Get("Retry-After") != "" {
			t.Fatalf("call %d carries Retry-After %q", i+1, resp.Header.Get("Retry-After"))
		}
	}
	if n := s.CallsForModel("m"); n != len(want) {
		t.Fatalf("calls = %d, want %d", n, len(want))
	}
	// SetBehavior replaces a sequence.
	s.SetSequence("m", Behavior{Status: 500}, Behavior{Status: 502})
	s.SetBehavior("m", Behavior{})
	resp, err := doPost(nil, s.URL+"/chat/completions", body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after SetBehavior: status %d, want 200", resp.StatusCode)
	}
}
