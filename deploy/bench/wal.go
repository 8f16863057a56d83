package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

// walMark is where the WAL was when a measured window began. Its
// connection holds a temporary replication slot, so that the server keeps
// the window's WAL until it is read back (a busy shared server recycles
// segments within seconds); the slot goes with the connection.
type walMark struct {
	conn     *pgx.Conn
	lsn, end string
}

// startWAL notes the WAL position of the Postgres at url (-wal-url),
// after making sure pg_walinspect is there to read the window back.
func startWAL(url string) (*walMark, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to -wal-url: %w", err)
	}
	m := &walMark{conn: conn}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_walinspect"); err != nil {
		m.close()
		return nil, fmt.Errorf("cannot create pg_walinspect (needs a superuser): %w", err)
	}
	slot := fmt.Sprintf("bench_wal_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, true, true)", slot); err != nil {
		m.close()
		return nil, fmt.Errorf("cannot create a temporary replication slot to keep the WAL: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&m.lsn); err != nil {
		m.close()
		return nil, fmt.Errorf("cannot read the WAL position: %w", err)
	}
	return m, nil
}

func (m *walMark) close() { _ = m.conn.Close(context.Background()) }

// walUsage is what one database wrote to the WAL in a window.
type walUsage struct {
	commits int64
	bytes   int64
}

// sqlWALOfDatabase reads the WAL records between $1 and $2 and keeps those
// of the current database: the records of its relations (block
// references name database/relation), and the commit records of the
// transactions that wrote them. The server is shared (other databases
// write to the same WAL), so a WAL position delta alone would count
// their writes too. One pass and a hash join (xid as bigint: xid has no
// ordering; nested loops are off, since the planner takes the function
// for 1000 rows and a window holds hundreds of thousands).
const sqlWALOfDatabase = `WITH r AS MATERIALIZED (
	SELECT xid::text::bigint AS xid, record_length AS len,
		resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%' AS is_commit,
		COALESCE(block_ref LIKE '%/' || (SELECT oid FROM pg_database WHERE datname = current_database()) || '/%', false) AS mine
	FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
), x AS (
	SELECT xid, bool_or(mine) AS mine_tx FROM r WHERE xid <> 0 GROUP BY xid
)
SELECT count(*) FILTER (WHERE r.is_commit AND x.mine_tx),
	COALESCE(sum(r.len) FILTER (WHERE r.mine OR (r.is_commit AND x.mine_tx)), 0)
FROM r LEFT JOIN x USING (xid)`

// mark notes where the WAL is at the end of the window (cheap: the
// load still runs).
func (m *walMark) mark() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&m.end); err != nil {
		m.close()
		return fmt.Errorf("cannot read the WAL position: %w", err)
	}
	return nil
}

// read reads the window back once the load stopped: the commits and WAL
// bytes of the database. It ends the mark (and its slot).
func (m *walMark) read() (walUsage, error) {
	defer m.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var u walUsage
	if m.end == m.lsn {
		return u, nil // nothing written (pg_walinspect refuses an empty range)
	}
	if _, err := m.conn.Exec(ctx, "SET enable_nestloop = off"); err != nil {
		return walUsage{}, fmt.Errorf("cannot set enable_nestloop: %w", err)
	}
	if err := m.conn.QueryRow(ctx, sqlWALOfDatabase, m.lsn, m.end).Scan(&u.commits, &u.bytes); err != nil {
		return walUsage{}, fmt.Errorf("cannot read the WAL of the window: %w", err)
	}
	return u, nil
}
