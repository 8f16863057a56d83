package dedupe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// beginRetries bounds how often Begin re-reads a row after losing a race
// on a conditional update (another gateway changed the row in between).
// Each lost race means someone else made progress, so a few are plenty.
const beginRetries = 8

// defaultPoolConns is the connection pool's size unless the URL sets
// pool_max_conns: the group writers' batches in flight (groupWriters),
// and room beside them for the reads of existing keys, heartbeats,
// take-overs and the reaper.
const defaultPoolConns = 16

// reclaimedTTL is how long a task failed by ReclaimZombies is kept. The
// reaper has no key_ttl at hand; an hour keeps the failed record and its
// attempt log visible in /admin while the client retries (a retry
// restarts it with fence+1 anyway), without letting abandoned keys pile up.
const reclaimedTTL = time.Hour

// reclaimedError is the Error of a task failed by ReclaimZombies.
const reclaimedError = "lease expired: reclaimed"

// Postgres is the Store shared by a cluster of gateways. Every decision
// that depends on time uses the database clock (now()), so gateways with
// skewed clocks still agree on who holds a lease.
type Postgres struct {
	pool *pgxpool.Pool
	// group batches the writes of new tasks and their outcomes (pggroup.go).
	group *groupWriter
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to the database at url and checks that it answers.
// With migrate set it first applies pending migrations (see Migrate).
// Statements go through pgx's default statement cache, i.e. they are
// prepared once per connection.
func OpenPostgres(ctx context.Context, url string, migrate bool) (*Postgres, error) {
	if migrate {
		if err := Migrate(ctx, url); err != nil {
			return nil, err
		}
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors redact the password.
		return nil, fmt.Errorf("cannot parse the postgres url: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgx's default (4 on this machine's 2 cores) would leave the
		// group writers and everything else queueing for a connection.
		cfg.MaxConns = max(cfg.MaxConns, defaultPoolConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot open postgres pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot connect to postgres %q: %w", cfg.ConnConfig.Host, err)
	}
	return &Postgres{pool: pool, group: newGroupWriter(pool)}, nil
}

// taskColumns is what every query that returns a task selects, in the
// order scanTask reads.
const taskColumns = `id, tenant, key_hash, fingerprint, status, fence, lease_owner, lease_until,
	stream, model, created_at, updated_at, started_at, expires_at, prompt_tokens, completion_tokens,
	too_large, error, resp_status, resp_content_type, resp_body`

// micros turns a duration into the bigint the queries multiply by
// interval '1 microsecond' (the precision of timestamptz).
func micros(d time.Duration) int64 { return d.Microseconds() }

// scanTask reads taskColumns (then extra) from row.
func scanTask(row pgx.Row, extra ...any) (id int64, t Task, err error) {
	var (
		status      string
		leaseUntil  *time.Time
		expiresAt   *time.Time
		respStatus  *int32
		contentType *string
		body        []byte
	)
	dest := []any{&id, &t.Tenant, &t.KeyHash, &t.Fingerprint, &status, &t.Fence, &t.LeaseOwner, &leaseUntil,
		&t.Stream, &t.Model, &t.CreatedAt, &t.UpdatedAt, &t.StartedAt, &expiresAt,
		&t.Usage.PromptTokens, &t.Usage.CompletionTokens, &t.TooLarge, &t.Error,
		&respStatus, &contentType, &body}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return 0, Task{}, err
	}
	t.Status = Status(status)
	if leaseUntil != nil {
		t.LeaseUntil = *leaseUntil
	}
	if expiresAt != nil {
		t.ExpiresAt = *expiresAt
	}
	if respStatus != nil {
		t.Response = &Response{Status: int(*respStatus), Body: body}
		if contentType != nil {
			t.Response.ContentType = *contentType
		}
	}
	return id, t, nil
}

// taskName names a task in error messages.
func taskName(tenant, keyHash string) string { return tenant + "/" + keyHash }

// beginAction is what Begin does with an existing task.
type beginAction int

const (
	actRestartExpired beginAction = iota + 1
	actMismatch
	actReplay
	actRestartFailed
	actTakeOver
	actInFlight
)

// decideBegin applies DESIGN.md section 2 to an existing task; both stores
// use it so their semantics cannot drift apart. expired says the finished
// task's expiry passed; zombie says the processing task's lease ran out or
// it outlived max_processing.
// fresh (BeginRequest.Fresh) restarts any finished task.
func decideBegin(t Task, fingerprint string, expired, zombie, fresh bool) beginAction {
	switch {
	case t.Status != StatusProcessing && (expired || fresh):
		// The record is due for deletion: the key is free again.
		return actRestartExpired
	case t.Fingerprint != fingerprint:
		return actMismatch
	case t.Status == StatusCompleted:
		return actReplay
	case t.Status == StatusFailed:
		// Failures are never replayed: a failed LLM call has no effect
		// but its cost.
		return actRestartFailed
	case zombie:
		return actTakeOver
	default:
		return actInFlight
	}
}

// mismatched hides the stored response from a request whose body
// differs: it must not be replayed to it.
func mismatched(t Task) Task {
	t.Response = nil
	return t
}

// replayable clears what a completed task must not expose.
func replayable(t Task) Task {
	if t.TooLarge {
		t.Response = nil
	}
	return t
}

const (
	// A new key: the task and its first attempt (started) in one
	// statement, so one round trip and one commit (DESIGN.md section 3).
	sqlInsertTask = `WITH t AS (
		INSERT INTO tasks (tenant, key_hash, fingerprint, status, fence, lease_owner, lease_until,
			started_at, created_at, updated_at, stream, model)
		VALUES ($1, $2, $3, 'processing', 1, $4, now() + $5::bigint * interval '1 microsecond',
			now(), now(), now(), $6, $7)
		ON CONFLICT (tenant, key_hash) DO NOTHING
		RETURNING ` + taskColumns + `
	), s AS (
		INSERT INTO attempts (task_id, n, fence, provider, model, outcome, error, started_at)
		SELECT t.id, x.ord, 1, x.p, x.m, 'skipped', x.e, now()
		FROM t, unnest($10::text[], $11::text[], $12::text[]) WITH ORDINALITY AS x(p, m, e, ord)
	), a AS (
		INSERT INTO attempts (task_id, n, fence, provider, model, outcome, started_at)
		SELECT id, cardinality($10::text[]) + 1, 1, $8, $9, 'started', now() FROM t WHERE $8::text <> ''
	)
	SELECT * FROM t`

	// The targets a new leader of an existing task skips before its first
	// call (BeginRequest.Skipped), after the task's earlier attempts.
	sqlSkipFirst = `INSERT INTO attempts (task_id, n, fence, provider, model, outcome, error, started_at)
	SELECT $1, b.m + x.ord, $2, x.p, x.m, 'skipped', x.e, now()
	FROM (SELECT COALESCE(max(n), 0) AS m FROM attempts WHERE task_id = $1) b,
		unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS x(p, m, e, ord)`

	// A new leader of an existing task marks the started attempts of the
	// previous fences abandoned: their leader died mid-call.
	sqlAbandonAttempts = `UPDATE attempts SET outcome = 'abandoned', error = $3
	WHERE task_id = $1 AND fence < $2 AND outcome = 'started'
	RETURNING n, fence, provider, model, started_at`

	// key_attempts: the attempts of the task (any fence) that started
	// within the window and may have been called. The primary key
	// (task_id, n) bounds the scan to the task's few rows.
	sqlRecentAttempts = `SELECT count(*) FROM attempts
	WHERE task_id = $1 AND outcome <> 'skipped' AND started_at > now() - $2::bigint * interval '1 microsecond'`

	// The first attempt of a new leader of an existing task goes after
	// the task's earlier attempts (the row is locked by this transaction,
	// so no other leader adds one meanwhile).
	sqlStartFirst = `INSERT INTO attempts (task_id, n, fence, provider, model, outcome, started_at)
	VALUES ($1, (SELECT COALESCE(max(n), 0) + 1 FROM attempts WHERE task_id = $1), $2, $3, $4, 'started', now())
	RETURNING n`

	// The two booleans are computed by the database so that its clock
	// alone decides expiry and lease ownership.
	sqlSelectForBegin = `SELECT ` + taskColumns + `,
		((expires_at IS NOT NULL AND expires_at < now()) OR
		 ($4::bigint > 0 AND status <> 'processing' AND updated_at < now() - $4::bigint * interval '1 microsecond')),
		COALESCE(lease_until < now() OR ($3::bigint > 0 AND started_at < now() - $3::bigint * interval '1 microsecond'), false)
	FROM tasks WHERE tenant = $1 AND key_hash = $2`

	// The key expired: the task starts over as if new, with the next
	// fence (never 1 again, so a long-lost leader of the old task cannot
	// write into the new one). Its earlier attempts stay in the ledger
	// until they are older than key_ttl ($9): a key restarted by
	// derive_window or derive: retries must not erase calls it paid for;
	// the new ones are numbered after them.
	sqlRestartExpired = `WITH u AS (
		UPDATE tasks SET fence = fence + 1, status = 'processing', fingerprint = $3, stream = $4, model = $5,
			lease_owner = $6, lease_until = now() + $7::bigint * interval '1 microsecond',
			started_at = now(), created_at = now(), updated_at = now(), expires_at = NULL,
			prompt_tokens = 0, completion_tokens = 0, too_large = false, error = '',
			resp_status = NULL, resp_content_type = NULL, resp_body = NULL
		WHERE id = $1 AND fence = $2 AND status <> 'processing' AND (expires_at < now() OR $8)
		RETURNING ` + taskColumns + `
	), d AS (
		DELETE FROM attempts WHERE task_id IN (SELECT id FROM u)
			AND started_at < now() - $9::bigint * interval '1 microsecond'
	)
	SELECT * FROM u`

	sqlRestartFailed = `UPDATE tasks SET fence = fence + 1, status = 'processing', stream = $3, model = $4,
		lease_owner = $5, lease_until = now() + $6::bigint * interval '1 microsecond',
		started_at = now(), updated_at = now(), expires_at = NULL, error = ''
	WHERE id = $1 AND fence = $2 AND status = 'failed'
	RETURNING ` + taskColumns

	sqlTakeOver = `UPDATE tasks SET fence = fence + 1, lease_owner = $3,
		lease_until = now() + $4::bigint * interval '1 microsecond', started_at = now(), updated_at = now()
	WHERE id = $1 AND fence = $2 AND status = 'processing'
		AND (lease_until < now() OR ($5::bigint > 0 AND started_at < now() - $5::bigint * interval '1 microsecond'))
	RETURNING ` + taskColumns
)

// Begin implements Store.
func (p *Postgres) Begin(ctx context.Context, req BeginRequest) (BeginResult, error) {
	res, err := p.begin(ctx, req)
	if err != nil {
		return BeginResult{}, fmt.Errorf("cannot begin task %q: %w", taskName(req.Tenant, req.KeyHash), err)
	}
	return res, nil
}

func (p *Postgres) begin(ctx context.Context, req BeginRequest) (BeginResult, error) {
	lease, maxProc := micros(req.Lease), micros(req.MaxProcessing)
	for range beginRetries {
		var t Task
		err := p.group.do(ctx, sqlInsertTask, insertArgs(req), func(row pgx.Row) (err error) {
			_, t, err = scanTask(row)
			return err
		})
		if err == nil {
			res := BeginResult{Verdict: VerdictLeader, Task: t}
			if req.First.Provider != "" {
				a := startedAttempt(req.First, len(req.Skipped)+1, 1, t.StartedAt)
				res.Started = &a
			}
			return res, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return BeginResult{}, err
		}

		var expired, zombie bool
		id, t, err := scanTask(p.pool.QueryRow(ctx, sqlSelectForBegin, req.Tenant, req.KeyHash, maxProc, micros(req.MaxAge)), &expired, &zombie)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // deleted by the reaper since the insert: insert again
		}
		if err != nil {
			return BeginResult{}, err
		}

		var (
			q       string
			args    []any
			verdict Verdict
		)
		switch decideBegin(t, req.Fingerprint, expired, zombie, req.Fresh) {
		case actMismatch:
			return BeginResult{Verdict: VerdictMismatch, Task: mismatched(t)}, nil
		case actReplay:
			return BeginResult{Verdict: VerdictCompleted, Task: replayable(t)}, nil
		case actInFlight:
			return BeginResult{Verdict: VerdictInFlight, Task: t}, nil
		case actRestartExpired:
			q, args = sqlRestartExpired, []any{id, t.Fence,
				req.Fingerprint, req.Stream, req.Model, req.Owner, lease, req.Fresh || expired, micros(req.AttemptRetention)}
			verdict = VerdictLeader
		case actRestartFailed:
			q, args = sqlRestartFailed, []any{id, t.Fence, req.Stream, req.Model, req.Owner, lease}
			verdict = VerdictLeader
		case actTakeOver:
			q, args = sqlTakeOver, []any{id, t.Fence, req.Owner, lease, maxProc}
			verdict = VerdictReclaimed
		default:
			panic("BUG: unknown begin action")
		}
		res, ok, err := p.lead(ctx, req, q, args)
		if err != nil {
			return BeginResult{}, err
		}
		if !ok {
			continue // another gateway changed the row first: look again
		}
		res.Verdict = verdict
		return res, nil
	}
	return BeginResult{}, fmt.Errorf("the task kept changing under %d attempts to decide", beginRetries)
}

// lead makes the caller the leader of an existing task: q updates the
// row to the caller's fence (ok is false when another gateway changed it
// first), then, in the same transaction, the started attempts of earlier
// fences are marked abandoned and the caller's first attempt is started.
// A transaction and not one statement: the attempt statements must see
// every attempt a previous leader committed before the row was locked,
// which a single statement's snapshot, taken before it waited for the
// lock, would not. Only restarts and take-overs pay for it; a new key
// is one statement.
func (p *Postgres) lead(ctx context.Context, req BeginRequest, q string, args []any) (res BeginResult, ok bool, err error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return BeginResult{}, false, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	id, t, err := scanTask(tx.QueryRow(ctx, q, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return BeginResult{}, false, nil
	}
	if err != nil {
		return BeginResult{}, false, err
	}
	res.Task = t
	rows, err := tx.Query(ctx, sqlAbandonAttempts, id, t.Fence, abandonedError)
	if err != nil {
		return BeginResult{}, false, err
	}
	res.Abandoned, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Attempt, error) {
		a := Attempt{Outcome: AttemptAbandoned, Error: abandonedError}
		var n int32
		err := row.Scan(&n, &a.Fence, &a.Provider, &a.Model, &a.StartedAt)
		a.N = int(n)
		return a, err
	})
	if err != nil {
		return BeginResult{}, false, err
	}
	if req.AttemptWindow > 0 {
		var n int64
		if err := tx.QueryRow(ctx, sqlRecentAttempts, id, micros(req.AttemptWindow)).Scan(&n); err != nil {
			return BeginResult{}, false, err
		}
		res.RecentAttempts = int(n)
	}
	// A key past its budget makes no call: nothing to record.
	spent := overBudget(req, res.RecentAttempts)
	if !spent && len(req.Skipped) > 0 {
		if _, err := tx.Exec(ctx, sqlSkipFirst, append([]any{id, t.Fence}, skippedColumns(req.Skipped)...)...); err != nil {
			return BeginResult{}, false, err
		}
	}
	if req.First.Provider != "" && !spent {
		var n int32
		if err := tx.QueryRow(ctx, sqlStartFirst, id, t.Fence, req.First.Provider, req.First.Model).Scan(&n); err != nil {
			return BeginResult{}, false, err
		}
		a := startedAttempt(req.First, int(n), t.Fence, t.StartedAt)
		res.Started = &a
	}
	if err := tx.Commit(ctx); err != nil {
		return BeginResult{}, false, err
	}
	return res, true, nil
}

// insertArgs are the parameters of sqlInsertTask for req.
func insertArgs(req BeginRequest) []any {
	return append([]any{req.Tenant, req.KeyHash, req.Fingerprint, req.Owner, micros(req.Lease), req.Stream, req.Model,
		req.First.Provider, req.First.Model}, skippedColumns(req.Skipped)...)
}

// skippedColumns are the provider, model and error arrays of skipped
// attempts, as the unnest of sqlInsertTask and sqlSkipFirst reads them.
func skippedColumns(as []Attempt) []any {
	p, m, e := make([]string, len(as)), make([]string, len(as)), make([]string, len(as))
	for i, a := range as {
		p[i], m[i], e[i] = a.Provider, a.Model, a.Error
	}
	return []any{p, m, e}
}

// attemptColumns are the columns an attempt row is written with, in the
// order of attemptArgs.
const attemptColumns = `n, provider, model, outcome, http_status, error, started_at, duration_ms, prompt_tokens, completion_tokens, continues`

// attemptParams is the number of parameters of one attempt (attemptArgs).
const attemptParams = 11

// upsertAttempt writes the attempt given as parameters $first.. (in
// attemptArgs order) of the task the CTE t returned, at fence $fence: a
// new row, or the final version of its started row. n = 0 writes nothing.
func upsertAttempt(first, fence int) string {
	ps := make([]any, attemptParams)
	for i := range ps {
		ps[i] = first + i
	}
	return fmt.Sprintf(`INSERT INTO attempts (task_id, fence, `+attemptColumns+`)
		SELECT t.id, $%d::bigint, $%d::int, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d::int FROM t WHERE $%d::int > 0
		ON CONFLICT (task_id, n) DO UPDATE SET provider = EXCLUDED.provider, model = EXCLUDED.model,
			outcome = EXCLUDED.outcome, http_status = EXCLUDED.http_status, error = EXCLUDED.error,
			started_at = EXCLUDED.started_at, duration_ms = EXCLUDED.duration_ms,
			prompt_tokens = EXCLUDED.prompt_tokens, completion_tokens = EXCLUDED.completion_tokens,
			continues = EXCLUDED.continues
		WHERE attempts.fence = EXCLUDED.fence`, append([]any{fence}, append(ps, first)...)...)
}

// attemptArgs are the parameters of upsertAttempt; nil writes nothing.
func attemptArgs(a *Attempt) []any {
	if a == nil {
		return []any{0, "", "", "", 0, "", time.Time{}, int64(0), int64(0), int64(0), 0}
	}
	startedAt := a.StartedAt
	if startedAt.IsZero() {
		startedAt = time.Now()
	}
	return []any{a.N, a.Provider, a.Model, a.Outcome, a.HTTPStatus, a.Error, startedAt,
		a.DurationMS, a.Usage.PromptTokens, a.Usage.CompletionTokens, a.Continues}
}

// fenced turns "no row matched the fence" into ErrFenced.
func fenced(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrFenced
	}
	return nil
}

// Heartbeat implements Store.
func (p *Postgres) Heartbeat(ctx context.Context, tenant, keyHash string, fence int64, lease time.Duration) error {
	const q = `UPDATE tasks SET lease_until = now() + $4::bigint * interval '1 microsecond', updated_at = now()
	WHERE tenant = $1 AND key_hash = $2 AND fence = $3 AND status = 'processing'`
	if err := fenced(p.pool.Exec(ctx, q, tenant, keyHash, fence, micros(lease))); err != nil {
		return fmt.Errorf("cannot extend the lease of task %q at fence %d: %w", taskName(tenant, keyHash), fence, err)
	}
	return nil
}

// sqlComplete stores the answer of the task and the final record of its
// last attempt in one statement: one commit.
var sqlComplete = `WITH t AS (
	UPDATE tasks SET status = 'completed', lease_owner = '', lease_until = NULL,
		expires_at = now() + $4::bigint * interval '1 microsecond', updated_at = now(),
		prompt_tokens = $5, completion_tokens = $6, too_large = $7, error = '',
		resp_status = $8, resp_content_type = $9, resp_body = $10
	WHERE tenant = $1 AND key_hash = $2 AND fence = $3 AND status = 'processing'
		AND ($11::timestamptz IS NULL OR created_at = $11)
	RETURNING id
	), a AS (` + upsertAttempt(12, 3) + `)
	SELECT count(*) FROM t`

// Complete implements Store.
func (p *Postgres) Complete(ctx context.Context, tenant, keyHash string, fence int64, c Completion) error {
	err := p.group.do(ctx, sqlComplete, completeArgs(tenant, keyHash, fence, c), fencedCount)
	if err != nil {
		return fmt.Errorf("cannot complete task %q at fence %d: %w", taskName(tenant, keyHash), fence, err)
	}
	return nil
}

// completeArgs are the parameters of sqlComplete.
func completeArgs(tenant, keyHash string, fence int64, c Completion) []any {
	var generation *time.Time
	if !c.Generation.IsZero() {
		generation = &c.Generation
	}
	var (
		status      *int32
		contentType *string
		body        []byte
	)
	if !c.TooLarge {
		s := int32(c.Response.Status)
		status, contentType = &s, &c.Response.ContentType
		body = c.Response.Body
		if body == nil {
			body = []byte{} // NULL would read back as "no response"
		}
	}
	return append([]any{tenant, keyHash, fence, micros(c.TTL),
		c.Usage.PromptTokens, c.Usage.CompletionTokens, c.TooLarge, status, contentType, body, generation},
		attemptArgs(c.Attempt)...)
}

// Fail implements Store.
func (p *Postgres) Fail(ctx context.Context, tenant, keyHash string, fence int64, f Failure) error {
	q := `WITH t AS (
		UPDATE tasks SET status = 'failed', lease_owner = '', lease_until = NULL,
			expires_at = now() + $4::bigint * interval '1 microsecond', updated_at = now(), error = $5
		WHERE tenant = $1 AND key_hash = $2 AND fence = $3 AND status = 'processing'
		RETURNING id
	), a AS (` + upsertAttempt(6, 3) + `)
	SELECT count(*) FROM t`
	args := append([]any{tenant, keyHash, fence, micros(f.TTL), f.Reason}, attemptArgs(f.Attempt)...)
	if err := p.group.do(ctx, q, args, fencedCount); err != nil {
		return fmt.Errorf("cannot fail task %q at fence %d: %w", taskName(tenant, keyHash), fence, err)
	}
	return nil
}

// StartAttempt implements Store: one statement, so one commit. Its update
// of the task row locks it, so a take-over either sees the new attempt
// (and marks it abandoned) or has already bumped the fence, and then
// nothing is written and the call does not go out.
func (p *Postgres) StartAttempt(ctx context.Context, tenant, keyHash string, fence int64, st AttemptStart) error {
	q := `WITH t AS (
		UPDATE tasks SET lease_until = now() + $4::bigint * interval '1 microsecond', updated_at = now()
		WHERE tenant = $1 AND key_hash = $2 AND fence = $3 AND status = 'processing'
		RETURNING id
	), f AS (` + upsertAttempt(5, 3) + `
	), s AS (` + upsertAttempt(5+attemptParams, 3) + `)
	SELECT count(*) FROM t`
	next := startedAttempt(st.Next, st.Next.N, fence, time.Now())
	args := append([]any{tenant, keyHash, fence, micros(st.Lease)}, attemptArgs(st.Finished)...)
	args = append(args, attemptArgs(&next)...)
	if err := fencedCount(p.pool.QueryRow(ctx, q, args...)); err != nil {
		return fmt.Errorf("cannot start attempt %d of task %q at fence %d: %w", st.Next.N, taskName(tenant, keyHash), fence, err)
	}
	return nil
}

// fencedCount turns a count of 0 matched tasks into ErrFenced.
func fencedCount(row pgx.Row) error {
	var n int64
	if err := row.Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrFenced
	}
	return nil
}

// sqlSelectTask reads one task through the unique index on (tenant, key_hash).
const sqlSelectTask = `SELECT ` + taskColumns + ` FROM tasks WHERE tenant = $1 AND key_hash = $2`

// Lookup implements Store: one statement (prepared once per connection by
// pgx's statement cache), no attempts.
func (p *Postgres) Lookup(ctx context.Context, tenant, keyHash string) (Task, error) {
	_, t, err := scanTask(p.pool.QueryRow(ctx, sqlSelectTask, tenant, keyHash))
	if errors.Is(err, pgx.ErrNoRows) {
		return Task{}, fmt.Errorf("cannot look up task %q: %w", taskName(tenant, keyHash), ErrNotFound)
	}
	if err != nil {
		return Task{}, fmt.Errorf("cannot look up task %q: %w", taskName(tenant, keyHash), err)
	}
	return replayable(t), nil
}

// Get implements Store.
func (p *Postgres) Get(ctx context.Context, tenant, keyHash string) (Task, []Attempt, error) {
	id, t, err := scanTask(p.pool.QueryRow(ctx, sqlSelectTask, tenant, keyHash))
	if errors.Is(err, pgx.ErrNoRows) {
		return Task{}, nil, fmt.Errorf("cannot get task %q: %w", taskName(tenant, keyHash), ErrNotFound)
	}
	if err != nil {
		return Task{}, nil, fmt.Errorf("cannot get task %q: %w", taskName(tenant, keyHash), err)
	}
	const q = `SELECT n, fence, provider, model, outcome, http_status, error, started_at, duration_ms,
		prompt_tokens, completion_tokens, continues
	FROM attempts WHERE task_id = $1 ORDER BY n`
	rows, err := p.pool.Query(ctx, q, id)
	if err != nil {
		return Task{}, nil, fmt.Errorf("cannot get the attempts of task %q: %w", taskName(tenant, keyHash), err)
	}
	attempts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Attempt, error) {
		var a Attempt
		var n, httpStatus, continues int32
		err := row.Scan(&n, &a.Fence, &a.Provider, &a.Model, &a.Outcome, &httpStatus, &a.Error,
			&a.StartedAt, &a.DurationMS, &a.Usage.PromptTokens, &a.Usage.CompletionTokens, &continues)
		a.N, a.HTTPStatus, a.Continues = int(n), int(httpStatus), int(continues)
		return a, err
	})
	if err != nil {
		return Task{}, nil, fmt.Errorf("cannot get the attempts of task %q: %w", taskName(tenant, keyHash), err)
	}
	return replayable(t), attempts, nil
}

// ReclaimZombies implements Store. A reclaimed task is failed (so the
// next Begin restarts it) and kept for reclaimedTTL. SKIP LOCKED lets
// several reapers work side by side without waiting on each other.
//
// The candidates come from the partial index on started_at of processing
// tasks (migration 0002): lease_until is not indexed, so that heartbeats
// are HOT updates.
//
// The batch is picked in a MATERIALIZED CTE rather than "WHERE id IN
// (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)": the planner may rescan
// such a sub-select once per outer row, and a rescan with SKIP LOCKED
// returns other rows, so the limit would not hold.
func (p *Postgres) ReclaimZombies(ctx context.Context, maxProcessing time.Duration, limit int) (Reclaimed, error) {
	const q = `WITH batch AS MATERIALIZED (
		SELECT id FROM tasks
		WHERE status = 'processing'
			AND (lease_until < now() OR ($1::bigint > 0 AND started_at < now() - $1::bigint * interval '1 microsecond'))
		ORDER BY started_at
		LIMIT $2
		FOR UPDATE SKIP LOCKED
	)
	UPDATE tasks SET status = 'failed', fence = fence + 1, lease_owner = '', lease_until = NULL,
		error = $3, expires_at = now() + $4::bigint * interval '1 microsecond', updated_at = now()
	FROM batch
	WHERE tasks.id = batch.id AND tasks.status = 'processing'
	RETURNING tasks.id`
	// Marked in a second statement of the same transaction, for the
	// reason given at lead: it must see every attempt committed before
	// the rows were locked.
	const abandon = `UPDATE attempts SET outcome = 'abandoned', error = $2
	WHERE task_id = ANY($1) AND outcome = 'started'
	RETURNING provider`
	res := Reclaimed{Abandoned: map[string]int{}}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q, micros(maxProcessing), limit, reclaimedError, micros(reclaimedTTL))
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil || len(ids) == 0 {
			return err
		}
		res.Tasks = len(ids)
		rows, err = tx.Query(ctx, abandon, ids, abandonedError)
		if err != nil {
			return err
		}
		providers, err := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, pr := range providers {
			res.Abandoned[pr]++
		}
		return err
	})
	if err != nil {
		return Reclaimed{}, fmt.Errorf("cannot reclaim zombie tasks: %w", err)
	}
	return res, nil
}

// DeleteExpired implements Store. One short statement per batch, so the
// reaper never holds a long transaction or a table-wide lock; attempts go
// with their task (ON DELETE CASCADE).
func (p *Postgres) DeleteExpired(ctx context.Context, limit int) (int, error) {
	// The batch is a MATERIALIZED CTE for the reason given at
	// ReclaimZombies; its rows stay locked until the delete, so a Begin
	// restarting one of them waits and then finds it gone (and inserts).
	const q = `WITH batch AS MATERIALIZED (
		SELECT id FROM tasks
		WHERE status <> 'processing' AND expires_at < now()
		ORDER BY expires_at
		LIMIT $1
		FOR UPDATE SKIP LOCKED
	)
	DELETE FROM tasks USING batch
	WHERE tasks.id = batch.id AND tasks.status <> 'processing' AND tasks.expires_at < now()`
	tag, err := p.pool.Exec(ctx, q, limit)
	if err != nil {
		return 0, fmt.Errorf("cannot delete expired tasks: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Health implements Store: the size (with indexes and TOAST) and dead
// tuples of both tables, from the catalog and the statistics collector,
// and the age of the oldest processing task (through the partial index
// on started_at, so the cost follows the tasks in flight).
func (p *Postgres) Health(ctx context.Context) (Health, error) {
	const tables = `SELECT n.name, pg_total_relation_size(c.oid), COALESCE(s.n_dead_tup, 0)
	FROM unnest(ARRAY['tasks', 'attempts']) WITH ORDINALITY AS n(name, i)
	JOIN pg_class c ON c.oid = to_regclass(n.name)
	LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
	ORDER BY n.i`
	const oldest = `SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(started_at)), 0)::float8
	FROM tasks WHERE status = 'processing'`
	var h Health
	rows, err := p.pool.Query(ctx, tables)
	if err != nil {
		return Health{}, fmt.Errorf("cannot read the table sizes: %w", err)
	}
	h.Tables, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (TableHealth, error) {
		var tb TableHealth
		err := row.Scan(&tb.Name, &tb.Bytes, &tb.DeadTuples)
		return tb, err
	})
	if err != nil {
		return Health{}, fmt.Errorf("cannot read the table sizes: %w", err)
	}
	var secs float64
	if err := p.pool.QueryRow(ctx, oldest).Scan(&secs); err != nil {
		return Health{}, fmt.Errorf("cannot read the oldest processing task: %w", err)
	}
	h.OldestProcessing = time.Duration(secs * float64(time.Second))
	return h, nil
}

// Ping implements Store.
func (p *Postgres) Ping(ctx context.Context) error {
	if err := p.pool.Ping(ctx); err != nil {
		return fmt.Errorf("cannot ping postgres: %w", err)
	}
	return nil
}

// Close implements Store; it waits for borrowed connections to return.
func (p *Postgres) Close() error {
	p.group.close()
	p.pool.Close()
	return nil
}
