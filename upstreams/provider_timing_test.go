package upstreams

import (
	"testing"
	"time"

	"github.com/idemgw/gateway/config"
)

// BenchmarkUpstreamRequest builds the request sent upstream from the
// client's (the header half of the proxy's copying: the gateway sends its
// own key and the headers the call needs, never the client's), for both
// kinds of provider. The answer's half is routes' BenchmarkResponseHeaders.
func BenchmarkUpstreamRequest(b *testing.B) {
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hello"}],"stream":true}`)
	for _, kind := range []config.ProviderKind{config.ProviderOpenAI, config.ProviderAnthropic} {
		p, err := NewProvider(&config.Provider{Name: "fake", Kind: kind, BaseURL: "http://127.0.0.1:9/v1", APIKey: "sk-upstream-bench-key",
			Timeout: time.Minute, FirstByteTimeout: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		call := Call{Path: "/v1/chat/completions", Body: body, Stream: true, IdempotencyKey: "req-2b7f0c4e-9a61-4f5e"}
		b.Run(string(kind), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.newExchange(call, time.Now()).free()
			}
		})
	}
}
