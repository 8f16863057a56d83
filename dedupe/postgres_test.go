package dedupe

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemgw/gateway/dedupe/dedupetest"
)

func openTestPostgres(t *testing.T, url string, migrate bool) *Postgres {
	t.Helper()
	s, err := OpenPostgres(context.Background(), url, migrate)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgresStore(t *testing.T) {
	testStoreSemantics(t, false, func(t *testing.T) Store {
		return openTestPostgres(t, dedupetest.PostgresURL(t), true)
	})
}

func TestPostgresStoreDurable(t *testing.T) {
	url := dedupetest.PostgresURL(t)
	s := openTestPostgres(t, url, true)
	// Without migrate: the schema is there already.
	testStoreDurable(t, s, func() Store { return openTestPostgres(t, url, false) })
}

func TestPostgresMigrateConcurrently(t *testing.T) {
	url := dedupetest.PostgresURL(t)
	ms, err := loadMigrations()
	if err != nil {
		t.Fatalf("loadMigrations: %v", err)
	}
	if len(ms) == 0 || ms[0].version != 1 {
		t.Fatalf("embedded migrations %+v, want versions from 1", ms)
	}
	// Gateways starting together: the advisory lock must serialise them.
	const n = 5
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = Migrate(context.Background(), url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Migrate %d: %v", i, err)
		}
	}
	if err := Migrate(context.Background(), url); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}

	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(), "SELECT version FROM schema_migrations ORDER BY version")
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	if len(versions) != len(ms) {
		t.Fatalf("schema_migrations has %v, want one row per migration (%d)", versions, len(ms))
	}
	for i, v := range versions {
		if int(v) != ms[i].version {
			t.Fatalf("schema_migrations has %v, want the versions of %+v", versions, ms)
		}
	}
}

func TestPostgresOpenWithoutSchema(t *testing.T) {
	url := dedupetest.PostgresURL(t)
	s := openTestPostgres(t, url, false)
	// migrate=false on an empty database: open works, queries fail clearly.
	if _, err := s.Begin(context.Background(), storeReq("t1", "k1", "fp1")); err == nil {
		t.Fatalf("Begin on a database without the schema succeeded")
	}
}

// Heartbeats must be HOT updates (issue 10): they may change no column
// that an index covers, as a key or in its predicate.
func TestPostgresHeartbeatTouchesNoIndexedColumn(t *testing.T) {
	url := dedupetest.PostgresURL(t)
	s := openTestPostgres(t, url, true)
	ctx := context.Background()
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT a.attname
	FROM pg_index i
	JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum > 0
		AND (a.attnum = ANY (i.indkey) OR pg_get_expr(i.indpred, i.indrelid) LIKE '%' || a.attname || '%')
	WHERE i.indrelid = 'tasks'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	indexed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, col := range indexed {
		if col == "lease_until" || col == "updated_at" {
			t.Fatalf("column %q, which every heartbeat changes, is indexed (indexed: %v)", col, indexed)
		}
	}
	if !slices.Contains(indexed, "status") || !slices.Contains(indexed, "started_at") {
		t.Fatalf("indexed columns %v: the catalog query is broken", indexed)
	}

	// And Postgres agrees: the heartbeats of a task are counted as HOT.
	storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictLeader)
	const beats = 50
	for range beats {
		if err := s.Heartbeat(ctx, "t1", "k1", 1, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// Backends flush their statistics within seconds of going idle.
	var upd, hot int64
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		err := s.pool.QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'tasks'::regclass`).Scan(&upd, &hot)
		if err != nil {
			t.Fatal(err)
		}
		if upd >= beats {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if upd < beats || float64(hot) < 0.9*float64(upd) {
		t.Fatalf("%d updates, %d of them HOT; want %d heartbeats, over 90%% HOT", upd, hot, beats)
	}
}
