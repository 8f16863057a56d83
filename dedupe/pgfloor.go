package dedupe

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Querier is what PlainTask needs of a connection or a pool.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// PlainTask runs on db, one statement at a time, the SQL that a new task
// succeeding on its first target costs the Postgres store: Begin's insert
// (the task and its first attempt, started) and Complete (the answer and
// that attempt's final record), each its own round trip and its own
// commit, as nothing batches them. deploy/bench runs it from a plain pgx
// loop as the floor of the gateway's write path, so the floor's SQL is
// the store's own. c is completed with the task's generation and the
// attempt's final record (outcome done, as the chain reports it).
func PlainTask(ctx context.Context, db Querier, req BeginRequest, c Completion, done string) error {
	_, t, err := scanTask(db.QueryRow(ctx, sqlInsertTask, insertArgs(req)...))
	if err != nil {
		return fmt.Errorf("cannot insert task %q: %w", taskName(req.Tenant, req.KeyHash), err)
	}
	a := startedAttempt(req.First, len(req.Skipped)+1, t.Fence, t.StartedAt)
	a.Outcome, a.HTTPStatus, a.Usage = done, c.Response.Status, c.Usage
	c.Generation, c.Attempt = t.CreatedAt, &a
	if err := fencedCount(db.QueryRow(ctx, sqlComplete, completeArgs(req.Tenant, req.KeyHash, t.Fence, c)...)); err != nil {
		return fmt.Errorf("cannot complete task %q: %w", taskName(req.Tenant, req.KeyHash), err)
	}
	return nil
}
