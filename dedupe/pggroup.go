package dedupe

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Group commit of the Postgres store (issue 10): the new-key Begins, the
// Completes and the Fails that arrive while an earlier write is in flight
// go out together as one pgx.Batch. A batch is one round trip, and since
// it carries no BEGIN, Postgres runs it as one implicit transaction that
// it commits at the batch's Sync: one commit and one WAL flush for all of
// them. Nothing waits for company: a lone write goes out at once, and a
// batch grows only while the writes before it are in flight, so its size
// follows the load and batching adds no delay of its own.
// synchronous_commit is untouched: every caller's answer comes after the
// commit of its batch is durable.

const (
	// groupWriters is how many batches may be in flight at once. One
	// would serialise every write behind the slowest batch; a second
	// keeps a slow batch (a lock wait) from stalling the rest.
	groupWriters = 4
	// groupMax bounds one batch, so that one transaction never holds
	// many row locks for long.
	groupMax = 64
)

// errStoreClosed answers a write sent after Close.
var errStoreClosed = errors.New("the store is closed")

// groupOp is one statement waiting for its batch. scan reads its one
// result row (pgx.ErrNoRows when there is none); it may run more than
// once (see run) and must set every result it reports each time.
type groupOp struct {
	ctx  context.Context
	sql  string
	args []any
	scan func(pgx.Row) error
	done chan error
}

// groupWriter sends the statements handed to do in batches.
type groupWriter struct {
	pool *pgxpool.Pool
	ops  chan *groupOp

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

func newGroupWriter(pool *pgxpool.Pool) *groupWriter {
	w := &groupWriter{pool: pool, ops: make(chan *groupOp, 4*groupMax)}
	for range groupWriters {
		w.wg.Go(w.loop)
	}
	return w
}

// do runs sql with args in the next batch and scans its row with scan.
// It returns once the batch committed (or failed): the caller may act on
// the result, which is durable. It waits for the batch even when ctx is
// done meanwhile, so that scan never runs after do returned; a batch
// takes at most the latest deadline of its statements.
func (w *groupWriter) do(ctx context.Context, sql string, args []any, scan func(pgx.Row) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &groupOp{ctx: ctx, sql: sql, args: args, scan: scan, done: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return errStoreClosed
	}
	w.ops <- op
	w.mu.RUnlock()
	return <-op.done
}

// close stops the writers once the statements already handed over ran.
func (w *groupWriter) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ops)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// loop takes the first waiting statement and every other one already
// queued behind it, up to groupMax, and runs them as one batch.
func (w *groupWriter) loop() {
	batch := make([]*groupOp, 0, groupMax)
	for {
		op, ok := <-w.ops
		if !ok {
			return
		}
		batch = append(batch[:0], op)
	fill:
		for len(batch) < groupMax {
			select {
			case op, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
			default:
				break fill
			}
		}
		w.run(batch)
	}
}

// run sends a batch and answers each of its statements. A statement that
// the server refused (a *pgconn.PgError, e.g. a deadlock between two
// batches) rolled the whole batch back, so every statement of it then
// runs again on its own: the refused one gets its own error, the others
// their own results. Any other failure of the batch (the connection) is
// every statement's answer, as it would be for one statement sent alone.
func (w *groupWriter) run(batch []*groupOp) {
	live := batch[:0]
	for _, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.done <- err
			continue
		}
		live = append(live, op)
	}
	if len(live) == 0 {
		return
	}
	if len(live) == 1 {
		w.solo(live[0])
		return
	}
	ctx, cancel := batchContext(live)
	defer cancel()
	b := &pgx.Batch{}
	for _, op := range live {
		b.Queue(op.sql, op.args...)
	}
	br := w.pool.SendBatch(ctx, b)
	errs := make([]error, len(live))
	refused := false
	for i, op := range live {
		errs[i] = op.scan(br.QueryRow())
		refused = refused || isPgError(errs[i])
	}
	cerr := br.Close()
	refused = refused || isPgError(cerr)
	switch {
	case refused:
		for _, op := range live {
			w.solo(op)
		}
	case cerr != nil:
		for _, op := range live {
			op.done <- cerr
		}
	default:
		for i, op := range live {
			op.done <- errs[i]
		}
	}
}

// solo runs one statement alone, in its own transaction.
func (w *groupWriter) solo(op *groupOp) {
	op.done <- op.scan(w.pool.QueryRow(op.ctx, op.sql, op.args...))
}

// batchContext ends when the last of the statements' deadlines passed
// (never, when one has none): a short deadline of one caller must not
// cancel the others' writes.
func batchContext(ops []*groupOp) (context.Context, context.CancelFunc) {
	var last time.Time
	for _, op := range ops {
		d, ok := op.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.Background())
		}
		if d.After(last) {
			last = d
		}
	}
	return context.WithDeadline(context.Background(), last)
}

func isPgError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}
