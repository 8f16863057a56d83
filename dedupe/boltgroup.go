package dedupe

import (
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// Group commit of the embedded store (issue 10). bbolt runs one write
// transaction at a time, each ending in two fdatasyncs, so a transaction
// per request caps a node at a few hundred writes a second. The writes
// that arrive while a commit is in flight wait for it and then go out
// together, as one transaction and one commit. This is db.Batch without
// its timer: db.Batch closes a batch MaxBatchDelay after its first call
// and queues the next one behind it, so under load it commits many small
// batches one after the other; here a batch takes whatever queued during
// the commit before it, however long that took, and a lone write goes out
// at once. Every caller's answer comes after its commit is durable.

// boltGroupMax bounds one transaction.
const boltGroupMax = 1000

// boltOp is one write waiting for its transaction. fn may run more than
// once (see run): it must only read the transaction and overwrite its
// results.
type boltOp struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// boltGroup runs the functions handed to update in shared transactions.
type boltGroup struct {
	db  *bolt.DB
	ops chan *boltOp

	// commits counts the transactions run (the benchmark's commits/task).
	commits atomic.Int64

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

func newBoltGroup(db *bolt.DB) *boltGroup {
	g := &boltGroup{db: db, ops: make(chan *boltOp, boltGroupMax)}
	g.wg.Go(g.loop)
	return g
}

// update runs fn in the next transaction and returns once it committed.
func (g *boltGroup) update(fn func(*bolt.Tx) error) error {
	op := &boltOp{fn: fn, done: make(chan error, 1)}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return errStoreClosed
	}
	g.ops <- op
	g.mu.RUnlock()
	return <-op.done
}

// close stops the writer once the writes already handed over ran.
func (g *boltGroup) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.ops)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *boltGroup) loop() {
	batch := make([]*boltOp, 0, boltGroupMax)
	for {
		op, ok := <-g.ops
		if !ok {
			return
		}
		batch = append(batch[:0], op)
	fill:
		for len(batch) < boltGroupMax {
			select {
			case op, ok := <-g.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
			default:
				break fill
			}
		}
		g.run(batch)
	}
}

// run commits batch in one transaction. A function that fails rolls the
// transaction back (its writes may be half done): it then runs alone, for
// its own answer, and the others run again together without it.
func (g *boltGroup) run(batch []*boltOp) {
	for len(batch) > 0 {
		failed := -1
		g.commits.Add(1)
		err := g.db.Update(func(tx *bolt.Tx) error {
			for i, op := range batch {
				if err := op.fn(tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			// Committed, or the commit itself failed: the same for all.
			for _, op := range batch {
				op.done <- err
			}
			return
		}
		op := batch[failed]
		op.done <- g.db.Update(op.fn)
		batch = append(batch[:failed], batch[failed+1:]...)
	}
}
