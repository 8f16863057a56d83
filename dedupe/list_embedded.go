package dedupe

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the task list (issue 16).
const (
	// bucketCreated indexes every task by creation: big-endian created_at
	// (Unix nanoseconds) + taskKey -> nothing. The list walks it from the
	// end, newest first; a cursor is the index key to continue below.
	bucketCreated = "created"
	// bucketServed maps taskKey to the JSON of a servedEntry.
	bucketServed = "served"
)

// servedEntry is what bucketServed keeps of a task generation.
type servedEntry struct {
	Generation time.Time `json:"generation"`
	Served
}

// skipJSON decodes nothing: a task read for the list skips its stored
// answer instead of decoding (and base64-decoding) the body.
type skipJSON struct{}

func (*skipJSON) UnmarshalJSON([]byte) error { return nil }

// taskMeta is a boltRecord of the earlier JSON encoding decoded without
// its Response.
type taskMeta struct {
	boltRecord
	Response skipJSON
}

// createdKey is the bucketCreated key of the task at key.
func createdKey(at time.Time, key []byte) []byte {
	return expiryKey(at, key) // same layout: time, then the task key
}

// indexCreated keeps bucketCreated in step when put writes t over old
// (nil for a new task): only a new task or a restart changes CreatedAt.
func (e embeddedTx) indexCreated(key []byte, old *Task, t Task) error {
	b := e.tx.Bucket([]byte(bucketCreated))
	if old != nil {
		if old.CreatedAt.Equal(t.CreatedAt) {
			return nil
		}
		if err := b.Delete(createdKey(old.CreatedAt, key)); err != nil {
			return err
		}
	}
	return b.Put(createdKey(t.CreatedAt, key), nil)
}

// unlist removes the list entries of the task at key before it is
// deleted: its bucketCreated key and its served counts.
func (e embeddedTx) unlist(key []byte) error {
	t, ok, err := e.loadMeta(key)
	if err != nil || !ok {
		return err
	}
	if err := e.tx.Bucket([]byte(bucketCreated)).Delete(createdKey(t.CreatedAt, key)); err != nil {
		return err
	}
	return e.tx.Bucket([]byte(bucketServed)).Delete(key)
}

// backfillCreated indexes the tasks of a store file written before
// bucketCreated existed; it does nothing once the index has entries.
func backfillCreated(tx *bolt.Tx) error {
	created := tx.Bucket([]byte(bucketCreated))
	if k, _ := created.Cursor().First(); k != nil {
		return nil
	}
	for _, name := range []string{bucketTasks, bucketProcessing} {
		err := tx.Bucket([]byte(name)).ForEach(func(k, v []byte) error {
			if len(v) == 0 {
				return nil // the earlier layout's processing index
			}
			var t boltRecord
			if err := decodeRecord(v, &t, false); err != nil {
				return fmt.Errorf("cannot decode task %q: %w", k, err)
			}
			return created.Put(createdKey(t.CreatedAt, k), nil)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// loadMeta is load without the stored answer.
func (e embeddedTx) loadMeta(key []byte) (boltRecord, bool, error) {
	v := e.value(key)
	if v == nil {
		return boltRecord{}, false, nil
	}
	var t boltRecord
	if err := decodeRecord(v, &t, false); err != nil {
		return boltRecord{}, false, fmt.Errorf("cannot decode task %q: %w", key, err)
	}
	return t, true, nil
}

// servedOf returns the counts of t's generation.
func (e embeddedTx) servedOf(key []byte, t Task) (Served, error) {
	v := e.tx.Bucket([]byte(bucketServed)).Get(key)
	if v == nil {
		return Served{}, nil
	}
	var se servedEntry
	if err := json.Unmarshal(v, &se); err != nil {
		return Served{}, fmt.Errorf("cannot decode the served counts of %q: %w", key, err)
	}
	if !se.Generation.Equal(t.CreatedAt) {
		return Served{}, nil
	}
	return se.Served, nil
}

// listBound is where a page starts: below the cursor, and below Until.
func listBound(q ListQuery) ([]byte, error) {
	var bound []byte
	if q.Cursor != "" {
		rest, ok := strings.CutPrefix(q.Cursor, "e")
		b, err := base64.RawURLEncoding.DecodeString(rest)
		if !ok || err != nil || len(b) < 9 {
			return nil, ErrBadCursor
		}
		bound = b
	}
	if !q.Until.IsZero() {
		u := binary.BigEndian.AppendUint64(nil, uint64(q.Until.UnixNano()))
		if bound == nil || bytes.Compare(u, bound) < 0 {
			bound = u
		}
	}
	return bound, nil
}

// List implements Store. It walks bucketCreated down from the page's
// bound, reads the tenant from the index key and the task only when the
// tenant passes, and examines at most its scan budget (listScanBudget) a page.
func (s *Embedded) List(ctx context.Context, q ListQuery) (ListPage, error) {
	if err := ctx.Err(); err != nil {
		return ListPage{}, fmt.Errorf("cannot list tasks: %w", err)
	}
	bound, err := listBound(q)
	if err != nil {
		return ListPage{}, err
	}
	page := ListPage{Tasks: []TaskSummary{}}
	var since uint64
	if !q.Since.IsZero() {
		since = uint64(q.Since.UnixNano())
	}
	tenantPrefix := []byte(q.Tenant + "\x00")
	err = s.db.View(func(tx *bolt.Tx) error {
		e := newEmbeddedTx(tx)
		c := tx.Bucket([]byte(bucketCreated)).Cursor()
		var k []byte
		if bound == nil {
			k, _ = c.Last()
		} else if k, _ = c.Seek(bound); k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		var last []byte // the index key of the page's last task
		for scanned := 0; k != nil; k, _ = c.Prev() {
			if len(k) < 9 || binary.BigEndian.Uint64(k[:8]) < since {
				break
			}
			if scanned++; scanned > s.scanBudget {
				// Continue below the last key examined, the one above k.
				prev, _ := c.Next()
				page.Next = encodeEmbeddedCursor(prev)
				return nil
			}
			key := k[8:]
			if q.Tenant != "" && !bytes.HasPrefix(key, tenantPrefix) {
				continue
			}
			t, ok, err := e.loadMeta(key)
			if err != nil {
				return err
			}
			if !ok || !q.matches(&t.Task) {
				continue
			}
			if len(page.Tasks) == q.limit() {
				// A further task matches: there is a next page.
				page.Next = encodeEmbeddedCursor(last)
				return nil
			}
			sum, err := e.summary(key, t)
			if err != nil {
				return err
			}
			page.Tasks = append(page.Tasks, sum)
			last = bytes.Clone(k)
		}
		return nil
	})
	if err != nil {
		return ListPage{}, fmt.Errorf("cannot list tasks: %w", err)
	}
	return page, nil
}

// summary is the list form of the record r at key.
func (e embeddedTx) summary(key []byte, r boltRecord) (TaskSummary, error) {
	t := r.Task
	s := TaskSummary{
		Tenant: t.Tenant, KeyHash: t.KeyHash, Status: t.Status, Fence: t.Fence, Model: t.Model, Stream: t.Stream,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, Usage: t.Usage, Error: t.Error,
	}
	attempts := r.Attempts
	providers, outcomes := make([]string, len(attempts)), make([]string, len(attempts))
	for i, a := range attempts {
		providers[i], outcomes[i] = a.Provider, a.Outcome
	}
	s.summarise(providers, outcomes)
	var err error
	s.Served, err = e.servedOf(key, t)
	return s, err
}

func encodeEmbeddedCursor(k []byte) string {
	return "e" + base64.RawURLEncoding.EncodeToString(k)
}

// AddServed implements Store, in one write transaction.
func (s *Embedded) AddServed(ctx context.Context, counts []ServedCount) error {
	err := s.update(ctx, func(e embeddedTx) error {
		b := e.tx.Bucket([]byte(bucketServed))
		for _, c := range counts {
			key := boltTaskKey(c.Tenant, c.KeyHash)
			t, ok, err := e.loadMeta(key)
			if err != nil {
				return err
			}
			if !ok || !t.CreatedAt.Equal(c.Generation) {
				continue
			}
			cur, err := e.servedOf(key, t.Task)
			if err != nil {
				return err
			}
			se := servedEntry{Generation: t.CreatedAt, Served: Served{Replays: cur.Replays + c.Replays, Joins: cur.Joins + c.Joins}}
			v, err := json.Marshal(se)
			if err != nil {
				return fmt.Errorf("cannot encode the served counts of %q: %w", key, err)
			}
			if err := b.Put(key, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot add the served counts of %d tasks: %w", len(counts), err)
	}
	return nil
}

// Served implements Store.
func (s *Embedded) Served(ctx context.Context, tenant, keyHash string) (Served, error) {
	if err := ctx.Err(); err != nil {
		return Served{}, fmt.Errorf("cannot read the served counts of task %q: %w", taskName(tenant, keyHash), err)
	}
	var out Served
	err := s.db.View(func(tx *bolt.Tx) error {
		e := newEmbeddedTx(tx)
		key := boltTaskKey(tenant, keyHash)
		t, ok, err := e.loadMeta(key)
		if err != nil || !ok {
			return err
		}
		out, err = e.servedOf(key, t.Task)
		return err
	})
	if err != nil {
		return Served{}, fmt.Errorf("cannot read the served counts of task %q: %w", taskName(tenant, keyHash), err)
	}
	return out, nil
}
