package dedupe

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// listPostgresSelect is the page query without its conditions: the task
// rows in keyset order (indexes of migration 0003), each with its
// attempts summarised through the attempts primary key and its served
// counts of the current generation.
const listPostgresSelect = `SELECT t.id, t.tenant, t.key_hash, t.status, t.fence, t.model, t.stream,
	t.created_at, t.updated_at, t.prompt_tokens, t.completion_tokens, t.error,
	COALESCE(a.providers, '{}'), COALESCE(a.outcomes, '{}'), COALESCE(s.replays, 0), COALESCE(s.joins, 0)
FROM tasks t
LEFT JOIN LATERAL (
	SELECT array_agg(provider ORDER BY n) AS providers, array_agg(outcome ORDER BY n) AS outcomes
	FROM attempts WHERE task_id = t.id
) a ON true
LEFT JOIN task_served s ON s.task_id = t.id AND s.generation = t.created_at`

// listPostgresSQL builds the page query of q and its arguments. Only the
// filters that are set become conditions, so the planner picks the index
// for what is asked rather than one generic plan for every combination.
func listPostgresSQL(q ListQuery) (string, []any, error) {
	var (
		conds []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Tenant != "" {
		conds = append(conds, "t.tenant = "+arg(q.Tenant))
	}
	if q.Status != "" {
		conds = append(conds, "t.status = "+arg(string(q.Status)))
	}
	if q.Route != "" {
		conds = append(conds, "t.model = "+arg(q.Route))
	}
	if !q.Since.IsZero() {
		conds = append(conds, "t.created_at >= "+arg(q.Since))
	}
	if !q.Until.IsZero() {
		conds = append(conds, "t.created_at < "+arg(q.Until))
	}
	if q.Cursor != "" {
		at, id, err := decodePostgresCursor(q.Cursor)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, "(t.created_at, t.id) < ("+arg(at)+"::timestamptz, "+arg(id)+"::bigint)")
	}
	sql := listPostgresSelect
	if len(conds) > 0 {
		sql += "\nWHERE " + strings.Join(conds, " AND ")
	}
	// One more than the page: its presence says there is a next page.
	sql += "\nORDER BY t.created_at DESC, t.id DESC LIMIT " + arg(q.limit()+1)
	return sql, args, nil
}

// List implements Store.
func (p *Postgres) List(ctx context.Context, q ListQuery) (ListPage, error) {
	sql, args, err := listPostgresSQL(q)
	if err != nil {
		return ListPage{}, err
	}
	rows, err := p.pool.Query(ctx, sql, args...)
	if err != nil {
		return ListPage{}, fmt.Errorf("cannot list tasks: %w", err)
	}
	type row struct {
		id int64
		s  TaskSummary
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var (
			x                   row
			status              string
			providers, outcomes []string
		)
		err := r.Scan(&x.id, &x.s.Tenant, &x.s.KeyHash, &status, &x.s.Fence, &x.s.Model, &x.s.Stream,
			&x.s.CreatedAt, &x.s.UpdatedAt, &x.s.Usage.PromptTokens, &x.s.Usage.CompletionTokens, &x.s.Error,
			&providers, &outcomes, &x.s.Replays, &x.s.Joins)
		x.s.Status = Status(status)
		x.s.summarise(providers, outcomes)
		return x, err
	})
	if err != nil {
		return ListPage{}, fmt.Errorf("cannot list tasks: %w", err)
	}
	page := ListPage{Tasks: make([]TaskSummary, 0, len(got))}
	for i, x := range got {
		if i == q.limit() {
			last := got[i-1]
			page.Next = encodePostgresCursor(last.s.CreatedAt, last.id)
			break
		}
		page.Tasks = append(page.Tasks, x.s)
	}
	return page, nil
}

// A Postgres cursor is "p" and the base64url of the last row's created_at
// (Unix microseconds, the precision of timestamptz) and id.
func encodePostgresCursor(at time.Time, id int64) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(at.UnixMicro()))
	b = binary.BigEndian.AppendUint64(b, uint64(id))
	return "p" + base64.RawURLEncoding.EncodeToString(b)
}

func decodePostgresCursor(c string) (time.Time, int64, error) {
	rest, ok := strings.CutPrefix(c, "p")
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if !ok || err != nil || len(b) != 16 {
		return time.Time{}, 0, ErrBadCursor
	}
	return time.UnixMicro(int64(binary.BigEndian.Uint64(b))), int64(binary.BigEndian.Uint64(b[8:])), nil
}

// AddServed implements Store: one statement for every count of a flush.
// A count whose generation is no longer the task's matches no row.
func (p *Postgres) AddServed(ctx context.Context, counts []ServedCount) error {
	const q = `INSERT INTO task_served (task_id, generation, replays, joins)
	SELECT t.id, t.created_at, v.r, v.j
	FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[]) AS v(tenant, kh, gen, r, j)
	JOIN tasks t ON t.tenant = v.tenant AND t.key_hash = v.kh AND t.created_at = v.gen
	ORDER BY t.id
	ON CONFLICT (task_id) DO UPDATE SET
		replays = CASE WHEN task_served.generation = EXCLUDED.generation
			THEN task_served.replays + EXCLUDED.replays ELSE EXCLUDED.replays END,
		joins = CASE WHEN task_served.generation = EXCLUDED.generation
			THEN task_served.joins + EXCLUDED.joins ELSE EXCLUDED.joins END,
		generation = EXCLUDED.generation`
	// Sorted, so two gateways flushing at once lock the rows in one order.
	counts = slices.Clone(counts)
	slices.SortFunc(counts, func(a, b ServedCount) int {
		return strings.Compare(a.Tenant+"\x00"+a.KeyHash, b.Tenant+"\x00"+b.KeyHash)
	})
	tenants, keys := make([]string, len(counts)), make([]string, len(counts))
	gens, replays, joins := make([]time.Time, len(counts)), make([]int64, len(counts)), make([]int64, len(counts))
	for i, c := range counts {
		tenants[i], keys[i], gens[i], replays[i], joins[i] = c.Tenant, c.KeyHash, c.Generation, c.Replays, c.Joins
	}
	if _, err := p.pool.Exec(ctx, q, tenants, keys, gens, replays, joins); err != nil {
		return fmt.Errorf("cannot add the served counts of %d tasks: %w", len(counts), err)
	}
	return nil
}

// Served implements Store.
func (p *Postgres) Served(ctx context.Context, tenant, keyHash string) (Served, error) {
	const q = `SELECT s.replays, s.joins FROM tasks t
	JOIN task_served s ON s.task_id = t.id AND s.generation = t.created_at
	WHERE t.tenant = $1 AND t.key_hash = $2`
	var s Served
	err := p.pool.QueryRow(ctx, q, tenant, keyHash).Scan(&s.Replays, &s.Joins)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Served{}, fmt.Errorf("cannot read the served counts of task %q: %w", taskName(tenant, keyHash), err)
	}
	return s, nil
}
