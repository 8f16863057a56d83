package ledgerpage

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/dedupe"
)

// base is what every page needs: the CSRF token of its forms, and
// whether to offer the logout button.
type base struct {
	CSRF   string
	Authed bool
}

func pageBase(ctx *fasthttp.RequestCtx) base { return base{CSRF: csrfToken(ctx)} }

// signedIn is pageBase for a signed-in admin.
func signedIn(ctx *fasthttp.RequestCtx) base { return base{CSRF: csrfToken(ctx), Authed: true} }

type loginView struct {
	base
	Error string
}

type errorView struct {
	base
	Message string
}

// listView is the task list page.
type listView struct {
	base
	Filter   dedupe.ListQuery
	Since    string
	Until    string
	Statuses []string
	Rows     []listRow
	Error    string
	// Next is the URL of the next page ("" after the last).
	Next string
}

type listRow struct {
	dedupe.TaskSummary
	URL       string
	Created   string
	Outcome   string // CSS class of the last outcome
	Providers string
}

// timeFormat is how the page shows a time: UTC, to the millisecond.
const timeFormat = "2006-01-02 15:04:05.000Z"

func showTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

// outcomeClass is the CSS class of an attempt outcome; an outcome the
// stylesheet does not know gets a neutral one.
func outcomeClass(o string) string {
	switch o {
	case "success", "started", "timeout", "error", "rate_limited", "cut", "skipped", "abandoned":
		return "o-" + o
	}
	return "o-other"
}

func list(ctx *fasthttp.RequestCtx, b Backend) {
	v := listView{base: signedIn(ctx), Statuses: []string{"processing", "completed", "failed"}}
	args := ctx.QueryArgs()
	q, err := dedupe.ParseListQuery(func(name string) string { return string(args.Peek(name)) })
	status := 200
	var pe *dedupe.ListParamError
	if errors.As(err, &pe) {
		// Keep the form as typed, so the mistake can be fixed in place.
		v.Filter = dedupe.ListQuery{Tenant: string(args.Peek("tenant")), Route: string(args.Peek("route"))}
		v.Since, v.Until = string(args.Peek("since")), string(args.Peek("until"))
		v.Error = pe.Error()
		render(ctx, 400, "list", v)
		return
	}
	v.Filter = q
	v.Since, v.Until = string(args.Peek("since")), string(args.Peek("until"))
	page, err := b.List(q)
	if err != nil {
		v.Error = err.Error()
		status = 503
		if errors.Is(err, dedupe.ErrBadCursor) {
			status = 400
		}
		render(ctx, status, "list", v)
		return
	}
	for _, t := range page.Tasks {
		r := listRow{TaskSummary: t, Created: showTime(t.CreatedAt), Outcome: outcomeClass(t.LastOutcome)}
		r.URL = taskPath + "?" + url.Values{"tenant": {t.Tenant}, "key_hash": {t.KeyHash}}.Encode()
		for i, p := range t.Providers {
			if i > 0 {
				r.Providers += ", "
			}
			r.Providers += p
		}
		v.Rows = append(v.Rows, r)
	}
	if page.Next != "" {
		next := url.Values{"cursor": {page.Next}}
		for _, name := range []string{"tenant", "status", "route", "since", "until", "limit"} {
			if val := string(args.Peek(name)); val != "" {
				next.Set(name, val)
			}
		}
		v.Next = Prefix + "?" + next.Encode()
	}
	render(ctx, status, "list", v)
}

// taskView is the detail page of one task.
type taskView struct {
	base
	Task
	Created, Updated, Expires string
	Bars                      []bar
	// Axis is the time span the bars cover, as text.
	AxisStart, AxisSpan string
	// What dedupe saved: the task's recorded usage times the duplicates
	// it served.
	ServedTotal int64
	SavedTokens int64
	SavedUSD    string
	Priced      bool
}

// bar is one attempt on the time axis, in 0..1000 units of the axis.
type bar struct {
	dedupe.Attempt
	X, W     string
	Class    string
	Start    string
	Offset   string
	Duration string
	// Open: the end is not known (started, or abandoned by its leader).
	Open bool
}

func task(ctx *fasthttp.RequestCtx, b Backend) {
	args := ctx.QueryArgs()
	tenant, keyHash := string(args.Peek("tenant")), string(args.Peek("key_hash"))
	if tenant == "" || keyHash == "" {
		render(ctx, 400, "error", errorView{base: signedIn(ctx), Message: "a task is named by tenant and key_hash"})
		return
	}
	t, err := b.Task(tenant, keyHash)
	if errors.Is(err, dedupe.ErrNotFound) {
		render(ctx, 404, "error", errorView{base: signedIn(ctx), Message: "no task " + tenant + "/" + keyHash})
		return
	}
	if err != nil {
		render(ctx, 503, "error", errorView{base: signedIn(ctx), Message: err.Error()})
		return
	}
	v := taskView{base: signedIn(ctx), Task: t,
		Created: showTime(t.CreatedAt), Updated: showTime(t.UpdatedAt), Expires: showTime(t.ExpiresAt)}
	v.Bars, v.AxisStart, v.AxisSpan = timeline(t.Attempts, time.Now())
	v.ServedTotal = t.Served.Replays + t.Served.Joins
	v.SavedTokens = v.ServedTotal * (t.Usage.PromptTokens + t.Usage.CompletionTokens)
	if t.Price != nil {
		v.Priced = true
		usd := float64(v.ServedTotal) * (float64(t.Usage.PromptTokens)*t.Price.PromptPer1M + float64(t.Usage.CompletionTokens)*t.Price.CompletionPer1M) / 1e6
		v.SavedUSD = strconv.FormatFloat(usd, 'f', 6, 64)
	}
	render(ctx, 200, "task", v)
}

// timeline lays the attempts out on one time axis, from the first
// start to the last known end. An attempt without an end (started, or
// abandoned: its leader died mid-call) is drawn to the start of the next
// one, or to now for the last one that is still running.
func timeline(as []dedupe.Attempt, now time.Time) (bars []bar, start, span string) {
	if len(as) == 0 {
		return nil, "", ""
	}
	t0, t1 := as[0].StartedAt, as[0].StartedAt
	ends := make([]time.Time, len(as))
	for i, a := range as {
		t0 = minTime(t0, a.StartedAt)
		ends[i] = a.StartedAt.Add(time.Duration(a.DurationMS) * time.Millisecond)
	}
	for i, a := range as {
		if a.DurationMS > 0 || (a.Outcome != dedupe.AttemptStarted && a.Outcome != dedupe.AttemptAbandoned) {
			continue
		}
		switch {
		case i+1 < len(as):
			ends[i] = maxTime(a.StartedAt, as[i+1].StartedAt)
		case a.Outcome == dedupe.AttemptStarted:
			ends[i] = maxTime(a.StartedAt, now)
		}
	}
	for _, e := range ends {
		t1 = maxTime(t1, e)
	}
	total := t1.Sub(t0)
	if total < time.Millisecond {
		total = time.Millisecond
	}
	units := func(d time.Duration) float64 { return float64(d) / float64(total) * 1000 }
	for i, a := range as {
		x := units(a.StartedAt.Sub(t0))
		w := max(units(ends[i].Sub(a.StartedAt)), 4) // a zero-length call stays visible
		x = min(x, 1000-w)
		open := a.DurationMS == 0 && (a.Outcome == dedupe.AttemptStarted || a.Outcome == dedupe.AttemptAbandoned)
		d := fmt.Sprintf("%d ms", a.DurationMS)
		if open {
			d = "unknown (never ended)"
			if a.Outcome == dedupe.AttemptStarted {
				d = "running"
			}
		}
		bars = append(bars, bar{
			Attempt: a, X: strconv.FormatFloat(x, 'f', 1, 64), W: strconv.FormatFloat(w, 'f', 1, 64),
			Class: outcomeClass(a.Outcome), Start: showTime(a.StartedAt),
			Offset: "+" + a.StartedAt.Sub(t0).Round(time.Millisecond).String(), Duration: d, Open: open,
		})
	}
	return bars, showTime(t0), total.Round(time.Millisecond).String()
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
