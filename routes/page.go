package routes

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/routes/ledgerpage"
)

// isPagePath reports whether path belongs to the ledger page: all of
// /admin/ but the JSON API's own paths.
func isPagePath(path string) bool {
	return strings.HasPrefix(path, ledgerpage.Prefix) &&
		!strings.HasPrefix(path, adminTaskListPath) && path != adminUpstreamsPath
}

// ledgerPage serves the ledger page (issue 16); it checks the admin key
// itself, from its session cookie or the bearer header.
func (s *Server) ledgerPage(ctx *fasthttp.RequestCtx, c *call) error {
	ledgerpage.Serve(ctx, c.st.Config.Auth.AdminKey, pageBackend{s: s, c: c})
	return nil
}

// errStoreDown is what the page shows when the store fails; the cause
// goes to the request's log line only.
var errStoreDown = errors.New("the record store did not answer; try again")

// pageBackend reads the page's tasks for one request.
type pageBackend struct {
	s *Server
	c *call
}

func (b pageBackend) store() (dedupe.Store, error) {
	if b.s.coord == nil {
		return nil, errors.New("deduplication is disabled on this gateway: there are no tasks")
	}
	return b.s.coord.Store(), nil
}

func (b pageBackend) List(q dedupe.ListQuery) (dedupe.ListPage, error) {
	st, err := b.store()
	if err != nil {
		return dedupe.ListPage{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	page, err := st.List(ctx, q)
	switch {
	case errors.Is(err, dedupe.ErrBadCursor):
		return dedupe.ListPage{}, err
	case err != nil:
		b.c.err = err
		return dedupe.ListPage{}, errStoreDown
	}
	return page, nil
}

func (b pageBackend) Task(tenant, keyHash string) (ledgerpage.Task, error) {
	st, err := b.store()
	if err != nil {
		return ledgerpage.Task{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	task, attempts, err := st.Get(ctx, tenant, keyHash)
	if errors.Is(err, dedupe.ErrNotFound) {
		return ledgerpage.Task{}, dedupe.ErrNotFound
	}
	var served dedupe.Served
	if err == nil {
		served, err = st.Served(ctx, tenant, keyHash)
	}
	if err != nil {
		b.c.err = err
		return ledgerpage.Task{}, errStoreDown
	}
	t := ledgerpage.Task{Task: task, Attempts: attempts, Served: served}
	if ch := b.c.st.Registry.ChainFor(task.Model); ch != nil {
		t.Price = ch.SavedPrice()
	}
	return t, nil
}
