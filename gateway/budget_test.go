package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// key_attempts counts an idempotency key's attempts across the client's
// retries (from the attempt log): past it, 503 attempt_budget_exhausted
// with x-should-retry: false and no upstream call; skipped rows cost
// nothing. Both stores count the same way.
func TestKeyAttemptBudget(t *testing.T) {
	for _, store := range []string{"embedded", "postgres"} {
		t.Run(store, func(t *testing.T) {
			fake := startFake(t)
			fake.SetBehavior("m503", upstreamtest.Behavior{Status: 503})
			extra := `resilience: {key_attempts: 3}
routes:
  - model: spend
    targets: [{provider: fake, model: m503}, {provider: fake2, model: m503}]
`
			if store == "postgres" {
				extra = newCluster(t).yaml(t, "") + extra
			}
			g := startGateway(t, testConfig(t, fake.URL, extra))
			send := func() (int, string) {
				resp, b := post(t, g.URL, "/v1/chat/completions", chatBody("spend", "same", false), "Idempotency-Key", "budget-key")
				if resp.StatusCode == 503 && strings.Contains(string(b), "attempt_budget_exhausted") {
					if resp.Header.Get("x-should-retry") != "false" {
						t.Fatalf("budget answer without x-should-retry: false: %v", resp.Header)
					}
					return 0, string(b)
				}
				return resp.StatusCode, string(b)
			}
			// 2 attempts, then 1 (the budget's last), then none.
			for i, want := range []int{2, 3} {
				if st, b := send(); st != 503 {
					t.Fatalf("request %d: %d %s, want the upstream's 503", i+1, st, b)
				}
				if n := fake.CallsForModel("m503"); n != want {
					t.Fatalf("after request %d: %d calls, want %d", i+1, n, want)
				}
			}
			for i := range 2 {
				if st, b := send(); st != 0 {
					t.Fatalf("request %d past the budget: %d %s, want 503 attempt_budget_exhausted", i+3, st, b)
				}
			}
			if n := fake.CallsForModel("m503"); n != 3 {
				t.Fatalf("calls past the budget = %d, want still 3", n)
			}
			task := coreAdminTask(t, g.URL, "budget-key")
			if task.Status != "failed" || len(task.Attempts) != 3 {
				t.Fatalf("task %s with attempts %s, want failed with the 3 made", task.Status, attemptsOf(task))
			}
			if m := scrape(t, g.URL); !strings.Contains(m, `gateway_attempt_budget_exhausted_total{route="spend"} 2`) {
				t.Fatalf("budget metric:\n%s", grepLines(m, "gateway_attempt_budget_exhausted_total"))
			}
			// Another key is not affected.
			resp, _ := post(t, g.URL, "/v1/chat/completions", chatBody("spend", "same", false), "Idempotency-Key", "budget-key-2")
			if resp.StatusCode != 503 || fake.CallsForModel("m503") != 5 {
				t.Fatalf("a fresh key: %d with %d calls, want 503 after 2 more calls", resp.StatusCode, fake.CallsForModel("m503"))
			}
		})
	}
}

// Weights within a tier: the first pick follows the weights (3:1 within a
// few percent over a thousand requests), the other target of the tier is
// the fallback, and the next tier comes after.
func TestWeightsWithinATier(t *testing.T) {
	fake := startFake(t)
	g := startGateway(t, testConfig(t, fake.URL, `dedupe: {derive: off}
routes:
  - model: spread
    targets:
      - {provider: fake, model: heavy, tier: 1, weight: 3}
      - {provider: fake2, model: light, tier: 1, weight: 1}
      - {provider: fake3, model: last}
`))
	const n = 1000
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				if resp, b := post(t, g.URL, "/v1/chat/completions", chatBody("spread", fmt.Sprint(i), false)); resp.StatusCode != 200 {
					t.Errorf("request %d: %d %s", i, resp.StatusCode, b)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	heavy, light := fake.CallsForModel("heavy"), fake.CallsForModel("light")
	if heavy+light != n || fake.CallsForModel("last") != 0 {
		t.Fatalf("calls: heavy %d, light %d, last %d; want %d in tier 1", heavy, light, fake.CallsForModel("last"), n)
	}
	// 3:1 is 75%; the binomial's standard deviation is 1.4 points, so 5
	// points is a margin a correct draw misses once in several thousand runs.
	if share := float64(heavy) / n; share < 0.70 || share > 0.80 {
		t.Fatalf("share of the weight-3 target = %.3f, want 0.75 ± 0.05", share)
	}
	// The rest of the tier is the fallback: with heavy failing, light
	// answers, then the next tier.
	fake.SetBehavior("heavy", upstreamtest.Behavior{Status: 500})
	for i := range 20 {
		resp, _ := post(t, g.URL, "/v1/chat/completions", chatBody("spread", fmt.Sprint("f", i), false))
		if resp.StatusCode != 200 || resp.Header.Get("X-Gateway-Provider") != "fake2" {
			t.Fatalf("with heavy failing: %d from %q, want fake2", resp.StatusCode, resp.Header.Get("X-Gateway-Provider"))
		}
	}
}

// The default gateway.yaml with no provider key set answers 502
// no_usable_target with x-should-retry: false (the OpenAI SDK would
// otherwise send it three times), without any upstream call.
func TestDefaultConfigWithoutKeys(t *testing.T) {
	for _, v := range []string{"OPENAI_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY", "GROQ_API_KEY", "ANTHROPIC_API_KEY", "GATEWAY_CLIENT_KEY", "GATEWAY_ADMIN_KEY"} {
		t.Setenv(v, "")
	}
	src, err := os.ReadFile(filepath.Join("..", "gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("gateway.yaml", src, nil)
	if err != nil {
		t.Fatalf("the default gateway.yaml does not load: %v", err)
	}
	cfg.Store.Path = filepath.Join(t.TempDir(), "gw.db")
	g := startGatewayConfig(t, cfg)
	for _, model := range []string{"content-writer", "gpt-4o-mini"} {
		resp, b := post(t, g.URL, "/v1/chat/completions", chatBody(model, "hi", false), "Authorization", "Bearer sk-local-dev")
		if resp.StatusCode != 502 || resp.Header.Get("x-should-retry") != "false" || !strings.Contains(string(b), `"code":"no_usable_target"`) {
			t.Fatalf("%s: %d %v %s, want 502 no_usable_target with x-should-retry: false", model, resp.StatusCode, resp.Header, b)
		}
		if !strings.Contains(string(b), `has no api_key configured`) {
			t.Fatalf("%s: the answer does not say why: %s", model, b)
		}
	}
	// The Anthropic route, asked in Anthropic's dialect with x-api-key,
	// answers the same in Anthropic's error shape (issue 12).
	resp, b := post(t, g.URL, "/v1/messages", `{"model":"claude-writer","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
		"Authorization", "", "x-api-key", "sk-local-dev")
	if resp.StatusCode != 502 || resp.Header.Get("x-should-retry") != "false" || !strings.HasPrefix(string(b), `{"type":"error","error":{"type":"api_error"`) ||
		!strings.Contains(string(b), `provider \"anthropic\" has no api_key configured`) {
		t.Fatalf("claude-writer on /v1/messages: %d %s", resp.StatusCode, b)
	}
	warned := false
	for _, w := range cfg.Warnings() {
		warned = warned || strings.HasPrefix(w, "providers.anthropic.api_key is empty")
	}
	if !warned {
		t.Fatalf("no warning for the missing ANTHROPIC_API_KEY: %q", cfg.Warnings())
	}
}
