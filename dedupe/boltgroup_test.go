package dedupe

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// queuedBoltGroup hands n functions to a group whose writer starts only
// once all n are queued, so that they share one transaction.
func queuedBoltGroup(t *testing.T, s *Embedded, n int, fn func(i int) func(*bolt.Tx) error) []error {
	t.Helper()
	g := &boltGroup{db: s.db, ops: make(chan *boltOp, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = g.update(fn(i)) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(g.ops) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d writes queued", len(g.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
	g.wg.Go(g.loop)
	wg.Wait()
	g.close()
	return errs
}

// Writes queued behind each other share one transaction (one commit);
// one that fails is rolled back alone: the others are committed, once.
func TestBoltGroupSharesCommits(t *testing.T) {
	s := openTestEmbedded(t, filepath.Join(t.TempDir(), "gateway.db"))
	const n = 30
	refused := errors.New("refused")
	var mu sync.Mutex
	committed := map[*bolt.Tx]int{} // writes per committed transaction
	errs := queuedBoltGroup(t, s, n, func(i int) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			tx.OnCommit(func() {
				mu.Lock()
				committed[tx]++
				mu.Unlock()
			})
			b := tx.Bucket([]byte(bucketTasks))
			if err := b.Put([]byte(fmt.Sprint("k-", i)), []byte("v")); err != nil {
				return err
			}
			if i == 7 {
				return refused // after a write: the batch must not keep it
			}
			return nil
		}
	})
	for i, err := range errs {
		if (i == 7) != errors.Is(err, refused) {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	// The batch was rolled back, the refused write alone too, and the
	// batch again without it committed once.
	if len(committed) != 1 {
		t.Fatalf("%d commits (%v), want 1", len(committed), committed)
	}
	for _, writes := range committed {
		if writes != n-1 {
			t.Fatalf("%d writes in the commit, want %d", writes, n-1)
		}
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketTasks))
		for i := range n {
			if got := b.Get([]byte(fmt.Sprint("k-", i))) != nil; got != (i != 7) {
				return fmt.Errorf("key %d stored: %v", i, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Concurrent Begins of one key that share a transaction make exactly
// one leader; keys of their own all lead.
func TestBoltGroupOneLeader(t *testing.T) {
	s := openTestEmbedded(t, filepath.Join(t.TempDir(), "gateway.db"))
	const n = 40
	verdicts := make([]Verdict, n)
	queuedBoltGroup(t, s, n, func(i int) func(*bolt.Tx) error {
		key := "shared"
		if i%2 == 1 {
			key = fmt.Sprint("own-", i)
		}
		return func(tx *bolt.Tx) error {
			// Begin's own function, run through this group's transaction.
			var res BeginResult
			err := newEmbeddedTx(tx).begin(storeReq("t1", key, "fp1"), &res)
			verdicts[i] = res.Verdict
			return err
		}
	})
	leaders := 0
	for i, v := range verdicts {
		if i%2 == 1 && v != VerdictLeader {
			t.Fatalf("Begin of its own key %d: %v", i, v)
		}
		if i%2 == 0 && v == VerdictLeader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders of the shared key, want 1", leaders)
	}
	if _, err := s.Begin(context.Background(), storeReq("t1", "shared", "fp1")); err != nil {
		t.Fatal(err)
	}
}

// A write after Close is refused instead of waiting forever.
func TestBoltGroupClosed(t *testing.T) {
	s := openTestEmbedded(t, filepath.Join(t.TempDir(), "gateway.db"))
	s.group.close()
	if _, err := s.Begin(context.Background(), storeReq("t1", "k", "fp")); !errors.Is(err, errStoreClosed) {
		t.Fatalf("write after close: %v, want errStoreClosed", err)
	}
}
