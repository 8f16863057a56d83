package dedupe

import (
	"testing"
)

// benchChatRequest is a ~2 KB chat completion request the way the OpenAI
// Python SDK sends it: compact, keys in the SDK's order (not sorted), a
// system prompt with escapes, a few turns, tools and a big integer seed.
const benchChatRequest = `{"messages":[{"role":"system","content":"You are a careful assistant for a content pipeline. Answer in Markdown, keep paragraphs short, never invent sources, and when a question is ambiguous ask one clarifying question first.\nRules:\n1. Use <em> for emphasis only when asked.\n2. Quote \"exact\" titles.\n3. Prices in EUR & USD."},{"role":"user","content":"Write a 150-word product description for a stainless steel water bottle that keeps drinks cold for 24 hours and hot for 12. Audience: hikers and commuters. Tone: friendly, concrete, no superlatives. Mention the lifetime warranty, the dishwasher-safe lid, the recycled packaging and that the bottle fits standard car cup holders and bike cages."},{"role":"assistant","content":"Meet the bottle that keeps up with you. Double-wall vacuum insulation keeps water cold for a full day on the trail and coffee hot through a long commute. The powder-coated steel shell resists dents and sweat-free walls keep your bag dry. A wide mouth fits ice cubes and makes cleaning easy; the leak-proof lid clicks shut with one hand."},{"role":"user","content":"Good. Now a German version, same length, and add a line about the 750 ml capacity. Caf\u00e9-friendly wording please \u2014 no anglicisms."}],"model":"content-writer","frequency_penalty":0,"max_completion_tokens":600,"n":1,"presence_penalty":0,"response_format":{"type":"text"},"seed":12345678901234567890,"stream":false,"temperature":0.7,"top_p":1,"tools":[{"type":"function","function":{"name":"lookup_product","description":"Look up a product in the catalogue by SKU and return its specifications.","parameters":{"type":"object","properties":{"sku":{"type":"string","description":"Stock keeping unit, e.g. WB-750-SS"},"locale":{"type":"string","enum":["en-GB","de-DE","fr-FR"]}},"required":["sku"],"additionalProperties":false},"strict":true}}],"tool_choice":"auto","user":"pipeline-worker-7","metadata":{"job":"desc-2291","batch":"2024-06-01"}}`

func BenchmarkCanonical(b *testing.B) {
	body := []byte(benchChatRequest)
	if _, err := Canonical(nil, body, nil); err != nil {
		b.Fatal(err)
	}
	b.Run("whole", func(b *testing.B) {
		var dst []byte
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var err error
			if dst, err = Canonical(dst[:0], body, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fields", func(b *testing.B) {
		fields := []string{"model", "messages", "temperature", "tools"}
		var dst []byte
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var err error
			if dst, err = Canonical(dst[:0], body, fields); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fresh-buffer", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := Canonical(nil, body, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
