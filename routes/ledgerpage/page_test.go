package ledgerpage

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/dedupe"
)

const testKey = "page-admin-key"

// hostile is text an attacker controls: a tenant name, an upstream's
// error text, a provider's model name.
const hostile = `"><script>alert(1)</script><img src=x onerror=alert(2)>'&`

// fakeBackend serves fixed tasks, with hostile text in every field.
type fakeBackend struct {
	page dedupe.ListPage
	task Task
	err  error
	got  dedupe.ListQuery
}

func (f *fakeBackend) List(q dedupe.ListQuery) (dedupe.ListPage, error) {
	f.got = q
	return f.page, f.err
}

func (f *fakeBackend) Task(tenant, keyHash string) (Task, error) {
	if f.err != nil {
		return Task{}, f.err
	}
	if tenant != f.task.Tenant || keyHash != f.task.KeyHash {
		return Task{}, fmt.Errorf("cannot get task: %w", dedupe.ErrNotFound)
	}
	return f.task, nil
}

func newFake() *fakeBackend {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	task := dedupe.Task{Tenant: hostile, KeyHash: "ab" + hostile, Status: dedupe.StatusCompleted, Fence: 2, Model: hostile,
		CreatedAt: t0, UpdatedAt: t0.Add(3 * time.Second), Usage: dedupe.Usage{PromptTokens: 100, CompletionTokens: 50}, Error: hostile}
	return &fakeBackend{
		page: dedupe.ListPage{Tasks: []dedupe.TaskSummary{{Tenant: hostile, KeyHash: task.KeyHash, Status: dedupe.StatusCompleted,
			Model: hostile, CreatedAt: t0, Attempts: 3, Providers: []string{hostile, "b"}, LastOutcome: hostile,
			Served: dedupe.Served{Replays: 7}}}, Next: "cur" + hostile},
		task: Task{Task: task, Served: dedupe.Served{Replays: 2, Joins: 1}, Price: &config.Price{PromptPer1M: 10, CompletionPer1M: 20},
			Attempts: []dedupe.Attempt{
				{N: 1, Fence: 1, Provider: "primary", Model: hostile, Outcome: dedupe.AttemptAbandoned, Error: hostile, StartedAt: t0},
				{N: 2, Fence: 2, Provider: "primary", Outcome: "timeout", StartedAt: t0.Add(time.Second), DurationMS: 1000},
				{N: 3, Fence: 2, Provider: hostile, Outcome: "success", HTTPStatus: 200, StartedAt: t0.Add(2 * time.Second), DurationMS: 500,
					Usage: dedupe.Usage{PromptTokens: 100, CompletionTokens: 50}},
			}},
	}
}

// do runs one request through Serve.
func do(b Backend, method, uri string, setup func(r *fasthttp.Request)) *fasthttp.Response {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.SetHost("gw.example")
	if setup != nil {
		setup(&ctx.Request)
	}
	Serve(&ctx, testKey, b)
	resp := &fasthttp.Response{}
	ctx.Response.CopyTo(resp)
	return resp
}

func withSession(r *fasthttp.Request) { r.Header.SetCookie(sessionCookie, sessionToken(testKey)) }

// wantEscaped fails when the hostile text reached the page as markup.
func wantEscaped(t *testing.T, body string) {
	t.Helper()
	for _, raw := range []string{"<script", "<img", `'&`} {
		if strings.Contains(body, raw) {
			t.Fatalf("the page carries %q unescaped:\n%s", raw, body)
		}
	}
}

func TestPageEscapesEverything(t *testing.T) {
	f := newFake()
	list := do(f, "GET", "/admin/", withSession)
	if list.StatusCode() != 200 {
		t.Fatalf("list: %d %s", list.StatusCode(), list.Body())
	}
	wantEscaped(t, string(list.Body()))
	if !strings.Contains(string(list.Body()), "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("the hostile tenant is not shown as text:\n%s", list.Body())
	}
	detail := do(f, "GET", "/admin/task?tenant="+urlEscape(hostile)+"&key_hash="+urlEscape("ab"+hostile), withSession)
	if detail.StatusCode() != 200 {
		t.Fatalf("detail: %d %s", detail.StatusCode(), detail.Body())
	}
	wantEscaped(t, string(detail.Body()))
	// A hostile filter is echoed into the form as text too.
	echo := do(f, "GET", "/admin/?tenant="+urlEscape(hostile)+"&route="+urlEscape(hostile), withSession)
	wantEscaped(t, string(echo.Body()))
	if f.got.Tenant != hostile || f.got.Route != hostile {
		t.Fatalf("filters reached the backend as %+v", f.got)
	}
	bad := do(f, "GET", "/admin/?since="+urlEscape(hostile), withSession)
	if bad.StatusCode() != 400 {
		t.Fatalf("a bad since: %d", bad.StatusCode())
	}
	wantEscaped(t, string(bad.Body()))
}

func urlEscape(s string) string {
	var a fasthttp.Args
	a.Set("x", s)
	return strings.TrimPrefix(a.String(), "x=")
}

// The detail page shows the attempts on one axis, the open end of the
// abandoned one, and what the replays and joins saved.
func TestPageTaskDetail(t *testing.T) {
	f := newFake()
	f.task.Tenant, f.task.KeyHash = "team-a", "abc"
	r := do(f, "GET", "/admin/task?tenant=team-a&key_hash=abc", withSession)
	body := string(r.Body())
	for _, want := range []string{
		`class="attempt o-abandoned" data-n="1"`, `class="attempt o-timeout" data-n="2"`, `class="attempt o-success" data-n="3"`,
		"unknown (never ended)", "1000 ms", "500 ms", "fence 1", "fence 2", "&#43;1s", "HTTP 200", "100 + 50 tokens",
		`<dd id="replays">2</dd>`, `<dd id="joins">1</dd>`, `<dd id="saved-tokens">450</dd>`,
		// 3 × (100 × $10 + 50 × $20) per million tokens
		`<dd id="saved-cost">$0.006000</dd>`,
		// The axis spans 2.5s: the success bar starts at 80% and is 20% wide.
		`x="800.0" y="0" width="200.0"`, `class="bar o-abandoned open" x="0.0" y="0" width="400.0"`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("the detail page lacks %q:\n%s", want, body)
		}
	}
	f.task.Price = nil
	if body := string(do(f, "GET", "/admin/task?tenant=team-a&key_hash=abc", withSession).Body()); !strings.Contains(body, "not priced") {
		t.Fatalf("an unpriced task:\n%s", body)
	}
	if r := do(f, "GET", "/admin/task?tenant=team-a&key_hash=other", withSession); r.StatusCode() != 404 {
		t.Fatalf("an unknown task: %d", r.StatusCode())
	}
	if r := do(f, "GET", "/admin/task?tenant=team-a", withSession); r.StatusCode() != 400 {
		t.Fatalf("a task without key_hash: %d", r.StatusCode())
	}
	f.err = errors.New("the record store did not answer")
	if r := do(f, "GET", "/admin/task?tenant=team-a&key_hash=abc", withSession); r.StatusCode() != 503 {
		t.Fatalf("a store that is down: %d", r.StatusCode())
	}
	if r := do(f, "GET", "/admin/", withSession); r.StatusCode() != 503 {
		t.Fatalf("a store that is down, list: %d", r.StatusCode())
	}
}

// cookieOf returns the Set-Cookie of name in r.
func cookieOf(r *fasthttp.Response, name string) string {
	var out string
	r.Header.VisitAllCookie(func(k, v []byte) {
		if string(k) == name {
			out = string(v)
		}
	})
	return out
}

// Login takes the admin key once and keeps a session token (not the key)
// in an HttpOnly, SameSite=Strict cookie; login and logout are refused
// without the form's CSRF token or from another origin.
func TestPageLoginLogout(t *testing.T) {
	f := newFake()
	// No session: the login form, with a CSRF cookie.
	r := do(f, "GET", "/admin/", nil)
	if r.StatusCode() != 401 || !strings.Contains(string(r.Body()), `id="login"`) {
		t.Fatalf("no session: %d %s", r.StatusCode(), r.Body())
	}
	csrf := cookieOf(r, csrfCookie)
	if !strings.Contains(csrf, "HttpOnly") || !strings.Contains(csrf, "SameSite=Strict") || !strings.Contains(csrf, "path=/admin/") {
		t.Fatalf("csrf cookie %q", csrf)
	}
	tok := strings.TrimPrefix(strings.Split(csrf, ";")[0], csrfCookie+"=")
	if !strings.Contains(string(r.Body()), `name="csrf" value="`+tok+`"`) {
		t.Fatalf("the form does not carry the csrf token %q:\n%s", tok, r.Body())
	}
	if csp := string(r.Header.Peek("Content-Security-Policy")); !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	post := func(path, form, cookieTok, origin string) *fasthttp.Response {
		return do(f, "POST", path, func(req *fasthttp.Request) {
			req.Header.SetContentType("application/x-www-form-urlencoded")
			req.SetBodyString(form)
			if cookieTok != "" {
				req.Header.SetCookie(csrfCookie, cookieTok)
			}
			if origin != "" {
				req.Header.Set("Origin", origin)
			}
		})
	}
	if r := post("/admin/login", "key="+testKey, tok, ""); r.StatusCode() != 403 {
		t.Fatalf("login without the form's token: %d", r.StatusCode())
	}
	if r := post("/admin/login", "csrf="+tok+"&key="+testKey, "", ""); r.StatusCode() != 403 {
		t.Fatalf("login without the csrf cookie: %d", r.StatusCode())
	}
	if r := post("/admin/login", "csrf="+tok+"&key="+testKey, tok, "http://evil.example"); r.StatusCode() != 403 {
		t.Fatalf("login from another origin: %d", r.StatusCode())
	}
	if r := post("/admin/login", "csrf="+tok+"&key=wrong", tok, "http://gw.example"); r.StatusCode() != 401 || cookieOf(r, sessionCookie) != "" {
		t.Fatalf("a wrong key: %d, cookie %q", r.StatusCode(), cookieOf(r, sessionCookie))
	}
	r = post("/admin/login", "csrf="+tok+"&key="+testKey, tok, "http://gw.example")
	session := cookieOf(r, sessionCookie)
	if r.StatusCode() != 303 || !strings.HasSuffix(string(r.Header.Peek("Location")), "/admin/") ||
		!strings.Contains(session, "HttpOnly") || !strings.Contains(session, "SameSite=Strict") || strings.Contains(session, testKey) {
		t.Fatalf("login: %d, location %q, cookie %q", r.StatusCode(), r.Header.Peek("Location"), session)
	}
	value := strings.TrimPrefix(strings.Split(session, ";")[0], sessionCookie+"=")
	r = do(f, "GET", "/admin/", func(req *fasthttp.Request) { req.Header.SetCookie(sessionCookie, value) })
	if r.StatusCode() != 200 || !strings.Contains(string(r.Body()), `id="logout"`) {
		t.Fatalf("with the session: %d", r.StatusCode())
	}
	// A session of another admin key, and a bad bearer, are no session.
	if r := do(f, "GET", "/admin/", func(req *fasthttp.Request) { req.Header.SetCookie(sessionCookie, sessionToken("old-key")) }); r.StatusCode() != 401 {
		t.Fatalf("an old key's session: %d", r.StatusCode())
	}
	if r := do(f, "GET", "/admin/", func(req *fasthttp.Request) { req.Header.Set("Authorization", "Bearer "+testKey) }); r.StatusCode() != 200 {
		t.Fatalf("the bearer header: %d", r.StatusCode())
	}
	if r := do(f, "GET", "/admin/", func(req *fasthttp.Request) { req.Header.Set("Authorization", "Bearer x"+testKey) }); r.StatusCode() != 401 {
		t.Fatalf("a wrong bearer: %d", r.StatusCode())
	}
	// Logout: a forged one changes nothing, ours deletes the session.
	if r := post("/admin/logout", "", tok, ""); r.StatusCode() != 403 || cookieOf(r, sessionCookie) != "" {
		t.Fatalf("logout without the token: %d", r.StatusCode())
	}
	r = post("/admin/logout", "csrf="+tok, tok, "")
	if out := cookieOf(r, sessionCookie); r.StatusCode() != 303 || !strings.Contains(out, "max-age=0") && !strings.Contains(out, "expires=") {
		t.Fatalf("logout: %d, cookie %q", r.StatusCode(), out)
	}
	if r := do(f, "GET", "/admin/login", nil); r.StatusCode() != 403 {
		t.Fatalf("GET /admin/login: %d", r.StatusCode())
	}
	// No admin key configured: no login works.
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI("/admin/")
	ctx.Request.Header.SetCookie(sessionCookie, sessionToken(""))
	Serve(&ctx, "", f)
	if ctx.Response.StatusCode() != 401 {
		t.Fatalf("without an admin key: %d", ctx.Response.StatusCode())
	}
}

func TestPageAssetsAndPaths(t *testing.T) {
	f := newFake()
	css := do(f, "GET", "/admin/assets/style.css", nil)
	if css.StatusCode() != 200 || !strings.HasPrefix(string(css.Header.ContentType()), "text/css") || !strings.Contains(string(css.Body()), "@media (max-width") {
		t.Fatalf("stylesheet: %d %s", css.StatusCode(), css.Header.ContentType())
	}
	if r := do(f, "GET", "/admin/nothing", withSession); r.StatusCode() != 404 {
		t.Fatalf("unknown page: %d", r.StatusCode())
	}
	if r := do(f, "DELETE", "/admin/", withSession); r.StatusCode() != 405 {
		t.Fatalf("DELETE: %d", r.StatusCode())
	}
	r := do(f, "GET", "/admin/?status=failed&limit=5", withSession)
	if f.got.Status != dedupe.StatusFailed || f.got.Limit != 5 {
		t.Fatalf("filters: %+v", f.got)
	}
	// The next page keeps the filters.
	if !strings.Contains(string(r.Body()), `id="next"`) || !strings.Contains(string(r.Body()), "status=failed") {
		t.Fatalf("next link:\n%s", r.Body())
	}
	for _, b := range [][]byte{css.Body(), r.Body()} {
		if strings.Contains(string(b), "http://") || strings.Contains(string(b), "https://") {
			t.Fatalf("the page loads something from elsewhere:\n%s", b)
		}
	}
}
