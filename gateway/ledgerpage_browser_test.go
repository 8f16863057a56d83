package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// The ledger page in a real browser (issue 16): headless Chromium, driven
// over the DevTools protocol, logs in, filters the task list, opens a
// task whose first leader was killed mid-call (an abandoned attempt) and
// whose take-over fell back to a second provider, checks what the page
// shows, and saves screenshots under the test's temporary directory (and
// in $LEDGER_SCREENSHOTS when set, which is how the README's are made).

// chromiumPackage is the Debian package of the browser; CI installs it.
const chromiumPackage = "chromium"

// chromium returns the browser's path, or skips (fails in CI) the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no chromium on PATH; CI must install Debian's %q package", chromiumPackage)
	}
	t.Skipf("no chromium on PATH; install Debian's %q package (apt-get install -y %s) to run the browser test", chromiumPackage, chromiumPackage)
	return ""
}

// browser starts a headless Chromium with a fresh profile, and returns a
// context whose actions run in its one tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	ctx, cancelTime := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("cannot start chromium: %v", err)
	}
	return ctx
}

// screenshot saves the whole page as name under the test's directory
// and, with $LEDGER_SCREENSHOTS set, there too.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if len(png) < 1000 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG (%d bytes)", name, len(png))
	}
	dirs := []string{dir}
	if d := os.Getenv("LEDGER_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot %s: %d bytes", filepath.Join(dir, name), len(png))
}

// pageText returns the visible text of the first node matching sel.
func pageText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// pageCount returns how many nodes match sel (0 or more, without waiting).
func pageCount(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
	if err != nil {
		t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

// pageOverflows reports whether the page is wider than the window.
func pageOverflows(t *testing.T, ctx context.Context) bool {
	t.Helper()
	wide, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("document.documentElement.scrollWidth > window.innerWidth"))
	if err != nil {
		t.Fatalf("page width: %v", err)
	}
	return wide
}

func TestLedgerPageInBrowser(t *testing.T) {
	ctx := browser(t)
	fake := startFake(t)
	fake.SetBehavior("slow-primary", upstreamtest.Behavior{FirstByteDelay: 2 * time.Second})
	cfg := testConfig(t, fake.URL, `dedupe: {lease: 1s, wait_timeout: 20s}
pricing:
  slow-primary: {prompt_per_1m: 2.5, completion_per_1m: 10}
  backup-model: {prompt_per_1m: 1, completion_per_1m: 1}
routes:
  - model: ledger-demo
    targets: [{provider: fake, model: slow-primary}, {provider: fake2, model: backup-model}]
  - model: "*"
    targets: [{provider: fake}]
`)
	body := chatBody("ledger-demo", "show me on the page", false)

	// The first leader is SIGKILLed while the primary is answering: its
	// call stays started in the record. Then the primary fails, and the
	// retry's take-over (fence 2) marks that call abandoned, tries the
	// primary again (500) and falls back to the backup.
	killLeaderMidCall(t, fake, cfg, "browser-1", body)
	fake.SetBehavior("slow-primary", upstreamtest.Behavior{Status: 500})
	g := startGateway(t, cfg)
	if resp, b := post(t, g.URL, "/v1/chat/completions", body, "Idempotency-Key", "browser-1"); resp.StatusCode != 200 {
		t.Fatalf("retry: %d %s", resp.StatusCode, b)
	}
	// A duplicate is replayed; the other tasks are there to be filtered out.
	if resp, _ := post(t, g.URL, "/v1/chat/completions", body, "Idempotency-Key", "browser-1"); resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("the duplicate was not replayed")
	}
	for i := range 3 {
		resp, _ := post(t, g.URL, "/v1/chat/completions", chatBody("other", fmt.Sprint("filler ", i), false),
			"Idempotency-Key", fmt.Sprint("filler-", i), "Authorization", "Bearer "+testClientKeyB)
		if resp.StatusCode != 200 {
			t.Fatalf("filler %d: %d", i, resp.StatusCode)
		}
	}
	if err := g.app.coord.FlushServed(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, task := adminTask(t, g.URL, "browser-1", "team-a")
	hash, _ := task["key_hash"].(string)
	shots := t.TempDir()

	// Log in.
	err := chromedp.Do(ctx,
		chromedp.Navigate(g.URL+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SendKeys(chromedp.CSS("#key"), "wrong-key"),
		chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("#login-error")),
	)
	if err != nil {
		t.Fatalf("login with a wrong key: %v", err)
	}
	if got := pageText(t, ctx, "#login-error"); got != "wrong admin key" {
		t.Fatalf("login error %q", got)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#key"), testAdminKey),
		chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("#tasks")),
	)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	rows := pageCount(t, ctx, "#tasks tr.task")
	if rows != 4 {
		t.Fatalf("the list shows %d tasks, want 4", rows)
	}
	screenshot(t, ctx, shots, "ledger-list.png")

	// Filter: team-a's completed tasks of the route ledger-demo.
	err = chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#f-tenant"), "team-a"),
		chromedp.SetValue(chromedp.CSS("#f-route"), "ledger-demo"),
		chromedp.SetValue(chromedp.CSS("#f-status"), "completed"),
	)
	if err != nil {
		t.Fatalf("filter: %v", err)
	}
	// The old list has #tasks too: wait for the new page to load.
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#apply"))); err != nil {
		t.Fatalf("filter: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#tasks"))); err != nil {
		t.Fatalf("filter: %v", err)
	}
	if rows := pageCount(t, ctx, "#tasks tr.task"); rows != 1 {
		t.Fatalf("the filtered list shows %d tasks, want 1", rows)
	}
	location, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(location, "tenant=team-a") || !strings.Contains(location, "route=ledger-demo") {
		t.Fatalf("the filter is not in the URL: %s", location)
	}
	if got := pageText(t, ctx, "#tasks tr.task td[data-label='Providers']"); got != "fake, fake2" {
		t.Fatalf("providers %q", got)
	}
	if got := pageText(t, ctx, "#tasks tr.task td[data-label='Replays']"); got != "1" {
		t.Fatalf("replays in the list %q", got)
	}

	// Open the task.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#tasks a.open")),
		chromedp.WaitVisible(chromedp.CSS("#timeline")),
	)
	if err != nil {
		t.Fatalf("open the task: %v", err)
	}
	attempts, err := chromedp.Run(ctx, chromedp.AttributesAll(chromedp.CSSAll("#timeline li.attempt")))
	if err != nil {
		t.Fatal(err)
	}
	if location, err = chromedp.Run(ctx, chromedp.Location()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(location, "key_hash="+hash) {
		t.Fatalf("opened %s, want the task %s", location, hash)
	}
	want := []struct{ class, text string }{
		{"attempt o-abandoned", "fake slow-primary · fence 1 · abandoned"},
		{"attempt o-error", "fake slow-primary · fence 2 · error · HTTP 500"},
		{"attempt o-success", "fake2 backup-model · fence 2 · success · HTTP 200"},
	}
	if len(attempts) != len(want) {
		t.Fatalf("the timeline shows %d attempts, want %d", len(attempts), len(want))
	}
	for i, w := range want {
		sel := fmt.Sprintf("#timeline li.attempt:nth-child(%d)", i+1)
		if c := attempts[i]["class"]; c != w.class {
			t.Fatalf("attempt %d has class %q, want %q", i+1, c, w.class)
		}
		label := strings.Join(strings.Fields(pageText(t, ctx, sel+" .label")), " ")
		if !strings.Contains(label, w.text) {
			t.Fatalf("attempt %d reads %q, want %q in it", i+1, label, w.text)
		}
	}
	if d := pageText(t, ctx, "#timeline li.attempt:nth-child(1) .duration"); d != "unknown (never ended)" {
		t.Fatalf("the abandoned attempt's duration reads %q", d)
	}
	bar, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#timeline li.attempt:nth-child(1) rect"), "class"))
	if err != nil || bar.Value != "bar o-abandoned open" {
		t.Fatalf("the abandoned bar: class %q, %v", bar.Value, err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(".attempt-error"))); err != nil {
		t.Fatal(err)
	}
	for sel, want := range map[string]string{
		"#t-status": "completed", "#t-fence": "2", "#t-tenant": "team-a",
		"#replays": "1", "#joins": "0",
	} {
		if got := pageText(t, ctx, sel); got != want {
			t.Fatalf("%s reads %q, want %q", sel, got, want)
		}
	}
	// One replay of the answer's tokens, priced as gateway_cost_saved_usd_total
	// prices it: the route's first target model.
	usage, _ := task["usage"].(map[string]any)
	prompt, _ := usage["prompt_tokens"].(float64)
	completion, _ := usage["completion_tokens"].(float64)
	if got, want := pageText(t, ctx, "#saved-tokens"), fmt.Sprint(prompt+completion); got != want || prompt == 0 {
		t.Fatalf("tokens saved %q, want %q", got, want)
	}
	if got, want := pageText(t, ctx, "#saved-cost"), fmt.Sprintf("$%.6f", (prompt*2.5+completion*10)/1e6); got != want {
		t.Fatalf("cost saved %q, want %q", got, want)
	}
	screenshot(t, ctx, shots, "ledger-task.png")

	// At phone width nothing is wider than the screen.
	err = chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("#timeline")),
	)
	if err != nil || pageOverflows(t, ctx) {
		t.Fatalf("at 390 px the task page is wider than the screen (%v)", err)
	}
	screenshot(t, ctx, shots, "ledger-task-phone.png")
	err = chromedp.Do(ctx,
		chromedp.Navigate(g.URL+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#tasks")),
	)
	if err != nil || pageOverflows(t, ctx) {
		t.Fatalf("at 390 px the list is wider than the screen (%v)", err)
	}

	// Log out: the page asks for the key again.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.Navigate(g.URL+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#login")),
	)
	if err != nil {
		t.Fatalf("logout: %v", err)
	}
}
