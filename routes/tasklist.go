package routes

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/dedupe"
)

// adminTaskListPath is GET /admin/tasks, the task list (issue 16).
const adminTaskListPath = "/admin/tasks"

// listTasks reads a page of the task list for the admin API and the
// ledger page; the error is an *APIError ready for the client.
func (s *Server) listTasks(q dedupe.ListQuery) (dedupe.ListPage, error) {
	if s.coord == nil {
		return dedupe.ListPage{}, errorf(404, "not_found", "deduplication is disabled on this gateway")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	page, err := s.coord.Store().List(sctx, q)
	if errors.Is(err, dedupe.ErrBadCursor) {
		return dedupe.ListPage{}, &APIError{Status: 400, Type: "invalid_request_error", Code: "invalid_parameter", Param: "cursor",
			Message: "invalid cursor: pass the next_cursor of the page before, with the same filters"}
	}
	if err != nil {
		return dedupe.ListPage{}, &APIError{Status: 503, Type: "api_error", Code: "store_unavailable", Message: "cannot list the tasks", Cause: err}
	}
	for i := range page.Tasks {
		t := &page.Tasks[i]
		t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	}
	return page, nil
}

// listQuery parses the list parameters of a request; an unknown
// parameter is refused too, so a typo (?tennant=) does not silently
// list every tenant.
func listQuery(args *fasthttp.Args) (dedupe.ListQuery, error) {
	var unknown string
	args.VisitAll(func(k, _ []byte) {
		if unknown == "" && !slices.Contains(dedupe.ListParams, string(k)) {
			unknown = string(k)
		}
	})
	if unknown != "" {
		return dedupe.ListQuery{}, &APIError{Status: 400, Type: "invalid_request_error", Code: "invalid_parameter",
			Param: truncate(unknown, 64), Message: "unknown parameter; the task list takes tenant, status, route, since, until, limit and cursor"}
	}
	q, err := dedupe.ParseListQuery(func(name string) string { return string(args.Peek(name)) })
	var pe *dedupe.ListParamError
	if errors.As(err, &pe) {
		return dedupe.ListQuery{}, &APIError{Status: 400, Type: "invalid_request_error", Code: "invalid_parameter", Param: pe.Param, Message: pe.Error()}
	}
	return q, err
}

// truncate cuts s to n bytes (for echoing client text in an error).
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// adminTaskList serves GET /admin/tasks?tenant=&status=&route=&since=
// &until=&limit=&cursor=: a page of tasks, newest first, each with its
// attempts summarised, and the cursor of the next page.
func (s *Server) adminTaskList(ctx *fasthttp.RequestCtx, c *call) error {
	if !isAdmin(ctx, c.st.Config.Auth.AdminKey) {
		return errorf(401, "invalid_api_key", "the admin API needs Authorization: Bearer <admin_key>")
	}
	q, err := listQuery(ctx.QueryArgs())
	if err != nil {
		return err
	}
	page, err := s.listTasks(q)
	if err != nil {
		return err
	}
	b, err := json.Marshal(page)
	if err != nil {
		return err
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	return nil
}
