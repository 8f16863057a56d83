// Package ledgerpage serves the ledger page at /admin/ (issue 16): the
// recent tasks with filters, and one task's attempts on a time axis with
// what dedupe saved. Server-rendered from html/template with its
// stylesheet embedded, no JavaScript; behind the admin key, given once in
// a login form and then kept as a session cookie (or sent as a bearer
// header by a script).
package ledgerpage

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/dedupe"
)

// Paths of the page; everything under Prefix that is not the admin API.
const (
	Prefix     = "/admin/"
	taskPath   = "/admin/task"
	loginPath  = "/admin/login"
	logoutPath = "/admin/logout"
	stylePath  = "/admin/assets/style.css"
)

// Cookie names. Path /admin/ keeps them off every other request.
const (
	sessionCookie = "gw_admin"
	csrfCookie    = "gw_csrf"
)

// sessionLabel is what the session token is an HMAC of, keyed by the
// admin key: the cookie never holds the key itself, and changing the
// admin key ends every session.
const sessionLabel = "idemgw ledger page session v1"

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed assets/style.css
var styleCSS []byte

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
}).ParseFS(templateFiles, "templates/*.html"))

// Task is one task as the detail page shows it.
type Task struct {
	dedupe.Task
	Attempts []dedupe.Attempt
	Served   dedupe.Served
	// Price is the pricing of what a replay or join saved (the route
	// model's, else its first target's), nil when not priced.
	Price *config.Price
}

// Backend reads what the page shows. Errors are shown as their text
// (without their cause); one that wraps dedupe.ErrNotFound is a 404.
type Backend interface {
	List(q dedupe.ListQuery) (dedupe.ListPage, error)
	Task(tenant, keyHash string) (Task, error)
}

// Serve answers a request under Prefix. adminKey is the configured one
// ("" turns the page off: every request gets the login form refused).
func Serve(ctx *fasthttp.RequestCtx, adminKey string, b Backend) {
	h := &ctx.Response.Header
	// The page needs nothing from elsewhere, so it forbids everything
	// else: no script at all, styles from our own file, no framing.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer browsers send
	// "Origin: null" with the page's own form posts, which checkPost
	// cannot tell from a sandboxed frame elsewhere.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	path := string(ctx.Path())
	switch {
	case path == stylePath:
		ctx.SetContentType("text/css; charset=utf-8")
		h.Set("Cache-Control", "max-age=3600")
		ctx.SetBody(styleCSS)
		return
	case path == loginPath:
		login(ctx, adminKey)
		return
	case path == logoutPath:
		logout(ctx)
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		h.Set("Allow", "GET")
		render(ctx, 405, "error", errorView{base: pageBase(ctx), Message: "use GET"})
		return
	}
	if !authed(ctx, adminKey) {
		render(ctx, 401, "login", loginView{base: pageBase(ctx)})
		return
	}
	switch path {
	case Prefix:
		list(ctx, b)
	case taskPath:
		task(ctx, b)
	default:
		render(ctx, 404, "error", errorView{base: signedIn(ctx), Message: "no such page"})
	}
}

// sessionToken is the session cookie's value for adminKey.
func sessionToken(adminKey string) string {
	m := hmac.New(sha256.New, []byte(adminKey))
	m.Write([]byte(sessionLabel))
	return hex.EncodeToString(m.Sum(nil))
}

// authed accepts the session cookie or an Authorization: Bearer header
// with the admin key, each compared in constant time.
func authed(ctx *fasthttp.RequestCtx, adminKey string) bool {
	if adminKey == "" {
		return false
	}
	if c := ctx.Request.Header.Cookie(sessionCookie); len(c) > 0 {
		if subtle.ConstantTimeCompare(c, []byte(sessionToken(adminKey))) == 1 {
			return true
		}
	}
	h := ctx.Request.Header.Peek("Authorization")
	if len(h) < 7 || !bytes.EqualFold(h[:7], []byte("Bearer ")) {
		return false
	}
	a, k := sha256.Sum256(bytes.TrimSpace(h[7:])), sha256.Sum256([]byte(adminKey))
	return subtle.ConstantTimeCompare(a[:], k[:]) == 1
}

// setCookie sets an HttpOnly, SameSite=Strict cookie on /admin/ (Secure
// over TLS); maxAge < 0 deletes it, 0 keeps it for the browser session.
func setCookie(ctx *fasthttp.RequestCtx, name, value string, maxAge int) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(name)
	c.SetValue(value)
	c.SetPath(Prefix)
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	c.SetSecure(ctx.IsTLS())
	if maxAge < 0 {
		c.SetMaxAge(-1)
		c.SetValue("")
	} else if maxAge > 0 {
		c.SetMaxAge(maxAge)
	}
	ctx.Response.Header.SetCookie(c)
}

// csrfToken returns the request's CSRF token, setting a new one as a
// cookie when it has none. The forms carry it back in a hidden field.
func csrfToken(ctx *fasthttp.RequestCtx) string {
	if c := ctx.Request.Header.Cookie(csrfCookie); len(c) == 32 {
		if _, err := hex.DecodeString(string(c)); err == nil {
			return string(c)
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	setCookie(ctx, csrfCookie, tok, 0)
	return tok
}

// errForged is why a POST is refused.
var errForged = errors.New("the form did not come from this page: reload it and try again")

// checkPost refuses a login or logout that is not a POST from our own
// form: a cross-site page can neither read the CSRF cookie to echo it
// (double submit), nor send the SameSite=Strict cookies along, and when
// the browser names the page it came from (Origin), it must be ours.
func checkPost(ctx *fasthttp.RequestCtx) error {
	if !ctx.IsPost() {
		return errors.New("use POST")
	}
	if o := ctx.Request.Header.Peek("Origin"); len(o) > 0 {
		u, err := url.Parse(string(o))
		if err != nil || !strings.EqualFold(u.Host, string(ctx.Host())) {
			return errForged
		}
	}
	cookie := ctx.Request.Header.Cookie(csrfCookie)
	field := ctx.PostArgs().Peek("csrf")
	if len(cookie) == 0 || subtle.ConstantTimeCompare(cookie, field) != 1 {
		return errForged
	}
	return nil
}

func login(ctx *fasthttp.RequestCtx, adminKey string) {
	if err := checkPost(ctx); err != nil {
		render(ctx, 403, "login", loginView{base: pageBase(ctx), Error: err.Error()})
		return
	}
	key := ctx.PostArgs().Peek("key")
	a, k := sha256.Sum256(key), sha256.Sum256([]byte(adminKey))
	if adminKey == "" || subtle.ConstantTimeCompare(a[:], k[:]) != 1 {
		render(ctx, 401, "login", loginView{base: pageBase(ctx), Error: "wrong admin key"})
		return
	}
	setCookie(ctx, sessionCookie, sessionToken(adminKey), 0)
	ctx.Redirect(Prefix, fasthttp.StatusSeeOther)
}

func logout(ctx *fasthttp.RequestCtx) {
	if err := checkPost(ctx); err != nil {
		render(ctx, 403, "error", errorView{base: pageBase(ctx), Message: err.Error()})
		return
	}
	setCookie(ctx, sessionCookie, "", -1)
	ctx.Redirect(Prefix, fasthttp.StatusSeeOther)
}

// render writes the named template with v as a whole HTML answer.
func render(ctx *fasthttp.RequestCtx, status int, name string, v any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, v); err != nil {
		ctx.Response.ResetBody()
		ctx.SetStatusCode(500)
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("cannot render the page")
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(buf.Bytes())
}
