package dedupe

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// migrationFiles holds the Postgres schema, one file per version, named
// NNNN_description.sql. Files are never edited once released: a schema
// change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLockID is the pg_advisory_lock key every gateway process takes
// before migrating, so that concurrent starts apply each version once.
// Any fixed number works as long as it is the same in every release.
const migrateLockID int64 = 0x69646d67775f6d67 // "idmgw_mg"

// migration is one embedded schema version.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations returns the embedded migrations ordered by version.
func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("cannot list migrations: %w", err)
	}
	ms := make([]migration, 0, len(names))
	seen := make(map[int]string, len(names))
	for _, name := range names {
		base := path.Base(name)
		prefix, _, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("cannot parse migration name %q: want NNNN_description.sql", base)
		}
		v, err := strconv.Atoi(prefix)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("cannot parse migration version of %q: want a positive number before '_'", base)
		}
		if other, ok := seen[v]; ok {
			return nil, fmt.Errorf("cannot load migration %q: version %d is also used by %q", base, v, other)
		}
		seen[v] = base
		data, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("cannot read migration %q: %w", base, err)
		}
		ms = append(ms, migration{version: v, name: base, sql: string(data)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// Migrate applies the embedded schema migrations that the database at
// url has not seen yet, each in its own transaction, and records them in
// schema_migrations. It holds a session-level advisory lock for the whole
// run, so gateways that start at the same time wait for each other instead
// of applying a version twice; the lock dies with the connection if the
// process does.
func Migrate(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("cannot connect to the database to migrate it: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return migrateConn(ctx, conn)
}

func migrateConn(ctx context.Context, conn *pgx.Conn) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockID); err != nil {
		return fmt.Errorf("cannot take the migration lock %d: %w", migrateLockID, err)
	}
	// Unlock even when ctx is already done; if this fails, closing the
	// connection (Migrate does) releases the lock anyway.
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockID) //nolint:errcheck

	const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`
	if _, err := conn.Exec(ctx, createTable); err != nil {
		return fmt.Errorf("cannot create table %q: %w", "schema_migrations", err)
	}
	applied, err := appliedVersions(ctx, conn)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if err := applyMigration(ctx, conn, m); err != nil {
			return err
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[int]bool, error) {
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("cannot read %q: %w", "schema_migrations", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("cannot read %q: %w", "schema_migrations", err)
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[int(v)] = true
	}
	return applied, nil
}

func applyMigration(ctx context.Context, conn *pgx.Conn, m migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("cannot apply migration %q: %w", m.name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	// A file holds several statements: run it through the simple protocol,
	// which accepts them in one round trip.
	if _, err := tx.Conn().PgConn().Exec(ctx, m.sql).ReadAll(); err != nil {
		return fmt.Errorf("cannot apply migration %q: %w", m.name, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
		return fmt.Errorf("cannot record migration %q: %w", m.name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("cannot commit migration %q: %w", m.name, err)
	}
	return nil
}
