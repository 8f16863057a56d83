package main

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// Issue 11, acceptance 2: what a request pays when its first target is
// open (skipped: a breaker decision, a skipped attempt row, the next
// target at once) against one whose first target answers. One client,
// one request at a time, so ns/op is the latency of a request.
func BenchmarkFirstTarget(b *testing.B) {
	run := func(b *testing.B, dedupe string, open bool) {
		f := startFake(b)
		f.SetMaxRequests(0)
		first := "mok"
		if open {
			f.SetBehavior("mdead", upstreamtest.Behavior{Status: 503})
			first = "mdead"
		}
		g := startGateway(b, fmt.Sprintf(`listen: 127.0.0.1:0
auth: {mode: keys, keys: [{tenant: team-a, key: %s}]}
log: {level: warn, format: json}
store: {kind: embedded, path: %q}
dedupe: {derive: %s}
resilience: {breaker: {failures: 1, cooldown: 1h, max_cooldown: 1h}}
providers:
  first: {base_url: %q, api_key: k, timeout: 30s}
  second: {base_url: %q, api_key: k, timeout: 30s}
routes:
  - model: bench
    targets: [{provider: first, model: %s}, {provider: second, model: mok}]
`, testClientKey, b.TempDir()+"/gw.db", dedupe, f.URL, f.URL, first))
		c := benchClient(1)
		var seq atomic.Int64
		send := func() {
			body := []byte(chatBody("bench", "prompt "+strconv.FormatInt(seq.Add(1), 10), false))
			if _, _, err := doChat(c, chatRequest(g.URL, body, "")); err != nil {
				b.Fatal(err)
			}
		}
		send() // opens the first target when it fails
		want := "mok"
		if open {
			want = "mdead"
		}
		f.ResetCounters()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			send()
		}
		b.StopTimer()
		if open && f.CallsForModel(want) != 0 {
			b.Fatalf("the open target was called %d times", f.CallsForModel(want))
		}
		if f.Calls() != b.N {
			b.Fatalf("%d upstream calls for %d requests", f.Calls(), b.N)
		}
	}
	for _, d := range []string{"off", "body"} {
		b.Run("dedupe="+d+"/healthy", func(b *testing.B) { run(b, d, false) })
		b.Run("dedupe="+d+"/open", func(b *testing.B) { run(b, d, true) })
	}
}
