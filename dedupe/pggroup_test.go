package dedupe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/idemgw/gateway/dedupe/dedupetest"
)

// queuedWriter hands n statements to a group writer whose loop starts
// only once all n are queued, so that they go out as one batch.
func queuedWriter(t *testing.T, p *Postgres, n int, op func(w *groupWriter, i int) error) []error {
	t.Helper()
	w := &groupWriter{pool: p.pool, ops: make(chan *groupOp, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = op(w, i) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(w.ops) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d statements queued", len(w.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
	w.wg.Go(w.loop)
	wg.Wait()
	w.close()
	return errs
}

// beginOp is the new-key insert of Begin through w.
func beginOp(w *groupWriter, req BeginRequest, t *Task) error {
	return w.do(context.Background(), sqlInsertTask, insertArgs(req), func(row pgx.Row) (err error) {
		_, *t, err = scanTask(row)
		return err
	})
}

// Concurrent Begins of one key that share a batch (one transaction)
// still make exactly one leader: the batch's later inserts see the
// first one's row and insert nothing. Keys of their own are all
// inserted, in one transaction: one commit for the whole batch.
func TestGroupWriterOneBatchOneLeader(t *testing.T) {
	p := openTestPostgres(t, dedupetest.PostgresURL(t), true)
	const n = 40
	tasks := make([]Task, n)
	errs := queuedWriter(t, p, n, func(w *groupWriter, i int) error {
		key := "shared"
		if i%2 == 1 {
			key = fmt.Sprint("own-", i)
		}
		req := storeReq("t1", key, "fp1")
		req.Owner = fmt.Sprint("owner-", i)
		return beginOp(w, req, &tasks[i])
	})
	leaders := 0
	for i, err := range errs {
		switch {
		case i%2 == 1 && err != nil:
			t.Fatalf("insert of its own key %d: %v", i, err)
		case i%2 == 0 && err == nil:
			leaders++
		case i%2 == 0 && !errors.Is(err, pgx.ErrNoRows):
			t.Fatalf("insert of the shared key %d: %v, want a row or none", i, err)
		}
	}
	if leaders != 1 {
		t.Fatalf("%d inserts of the shared key made a row, want exactly 1", leaders)
	}
	var rows, xacts int
	if err := p.pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT xmin::text) FROM tasks`).Scan(&rows, &xacts); err != nil {
		t.Fatal(err)
	}
	if rows != n/2+1 || xacts != 1 {
		t.Fatalf("%d rows in %d transactions, want %d rows in 1 (one batch, one commit)", rows, xacts, n/2+1)
	}

	// Through the store, which goes on to read the row and decide: one
	// leader, the rest see it in flight.
	var wg sync.WaitGroup
	verdicts := make([]Verdict, n)
	for i := range n {
		wg.Go(func() {
			req := storeReq("t1", "shared-2", "fp1")
			res, err := p.Begin(context.Background(), req)
			if err != nil {
				t.Errorf("Begin %d: %v", i, err)
			}
			verdicts[i] = res.Verdict
		})
	}
	wg.Wait()
	counts := map[Verdict]int{}
	for _, v := range verdicts {
		counts[v]++
	}
	if counts[VerdictLeader] != 1 || counts[VerdictInFlight] != n-1 {
		t.Fatalf("verdicts %v, want 1 leader and %d in flight", counts, n-1)
	}
}

// A statement the server refuses rolls its whole batch back; the others
// then run on their own and succeed, and only the refused one fails.
func TestGroupWriterRefusedStatement(t *testing.T) {
	p := openTestPostgres(t, dedupetest.PostgresURL(t), true)
	const n = 9
	errs := queuedWriter(t, p, n, func(w *groupWriter, i int) error {
		if i == 4 {
			return w.do(context.Background(), `SELECT 1 / $1::int`, []any{0}, func(row pgx.Row) error {
				var v int
				return row.Scan(&v)
			})
		}
		var task Task
		return beginOp(w, storeReq("t1", fmt.Sprint("k-", i), "fp1"), &task)
	})
	var pe *pgconn.PgError
	if !errors.As(errs[4], &pe) || pe.Code != "22012" {
		t.Fatalf("refused statement: %v, want division_by_zero", errs[4])
	}
	for i, err := range errs {
		if i != 4 && err != nil {
			t.Fatalf("statement %d of the refused batch: %v", i, err)
		}
	}
	var rows int
	if err := p.pool.QueryRow(context.Background(), `SELECT count(*) FROM tasks`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != n-1 {
		t.Fatalf("%d tasks stored, want %d", rows, n-1)
	}
}

// A write after Close is refused instead of waiting forever.
func TestGroupWriterClosed(t *testing.T) {
	p := openTestPostgres(t, dedupetest.PostgresURL(t), true)
	p.Close()
	var task Task
	if err := beginOp(p.group, storeReq("t1", "k", "fp"), &task); !errors.Is(err, errStoreClosed) {
		t.Fatalf("write after Close: %v, want errStoreClosed", err)
	}
}
