package dedupe

import (
	"context"
	"sync"
	"testing"

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
	testStoreSemantics(t, func(t *testing.T) Store {
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
