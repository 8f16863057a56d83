package dedupe

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bucket names of the embedded store.
const (
	// bucketTasks maps taskKey to the JSON of a Task.
	bucketTasks = "tasks"
	// bucketAttempts maps taskKey + 0x00 + big-endian uint32 n to the JSON
	// of an Attempt, so a prefix scan yields a task's attempts in order.
	bucketAttempts = "attempts"
	// bucketExpiry indexes finished tasks: big-endian expires_at (Unix
	// nanoseconds) + taskKey -> nothing. DeleteExpired walks it from the
	// start, so a batch costs what it deletes, not a scan of every task.
	bucketExpiry = "expiry"
	// bucketProcessing is the set of processing task keys, the only
	// candidates ReclaimZombies has to look at.
	bucketProcessing = "processing"
)

// Embedded is the Store of a single-node gateway: one bbolt file, no
// server. bbolt runs one write transaction at a time, which makes every
// Begin atomic without the conditional updates Postgres needs. It uses
// the local clock (time.Now) for leases and expiry.
type Embedded struct {
	db *bolt.DB
	// scanBudget is listScanBudget (tests lower it).
	scanBudget int
	// group runs concurrent writes in shared transactions (boltgroup.go).
	group *boltGroup
}

var _ Store = (*Embedded)(nil)

// OpenEmbedded opens (or creates, with its parent directories) the store
// file at path. bbolt locks the file, so a second process opening it
// gets an error after one second instead of waiting forever.
func OpenEmbedded(path string) (*Embedded, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the directory of store file %q: %w", path, err)
	}
	// The free page list is not written with every commit (bbolt
	// rebuilds it when it opens the file), which saves a page write per
	// commit; the hashmap list allocates in constant time.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("cannot open store file %q: store file is locked by another process: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open store file %q: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{bucketTasks, bucketAttempts, bucketExpiry, bucketProcessing, bucketCreated, bucketServed} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("cannot create bucket %q: %w", name, err)
			}
		}
		return backfillCreated(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot initialise store file %q: %w", path, err)
	}
	return &Embedded{db: db, scanBudget: listScanBudget, group: newBoltGroup(db)}, nil
}

// boltTaskKey is the key of a task in bucketTasks. Key hashes are hex, so the
// 0x00 separator cannot occur inside them.
func boltTaskKey(tenant, keyHash string) []byte {
	k := make([]byte, 0, len(tenant)+1+len(keyHash))
	k = append(k, tenant...)
	k = append(k, 0)
	return append(k, keyHash...)
}

// attemptPrefix is the common prefix of a task's keys in bucketAttempts.
func attemptPrefix(key []byte) []byte {
	return append(bytes.Clone(key), 0)
}

func attemptKey(key []byte, n int) []byte {
	return binary.BigEndian.AppendUint32(attemptPrefix(key), uint32(n))
}

func expiryKey(at time.Time, key []byte) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(key)), uint64(at.UnixNano()))
	return append(k, key...)
}

// nowLocal is the embedded store's clock, without the monotonic reading
// (stored times lose it anyway, and mixing both confuses comparisons).
func nowLocal() time.Time { return time.Now().Round(0) }

// embeddedTx wraps a write transaction with the task helpers.
type embeddedTx struct {
	tx                                  *bolt.Tx
	tasks, attempts, expiry, processing *bolt.Bucket
}

func newEmbeddedTx(tx *bolt.Tx) embeddedTx {
	return embeddedTx{
		tx:         tx,
		tasks:      tx.Bucket([]byte(bucketTasks)),
		attempts:   tx.Bucket([]byte(bucketAttempts)),
		expiry:     tx.Bucket([]byte(bucketExpiry)),
		processing: tx.Bucket([]byte(bucketProcessing)),
	}
}

// load returns the task at key; ok is false when there is none.
func (e embeddedTx) load(key []byte) (t Task, ok bool, err error) {
	v := e.tasks.Get(key)
	if v == nil {
		return Task{}, false, nil
	}
	if err := json.Unmarshal(v, &t); err != nil {
		return Task{}, false, fmt.Errorf("cannot decode task %q: %w", key, err)
	}
	return t, true, nil
}

// unindex removes old's entry from the index it is in.
func (e embeddedTx) unindex(key []byte, old Task) error {
	if old.Status == StatusProcessing {
		return e.processing.Delete(key)
	}
	return e.expiry.Delete(expiryKey(old.ExpiresAt, key))
}

// put stores t at key and moves it between the indexes; old is the
// previous version (nil for a new task).
func (e embeddedTx) put(key []byte, old *Task, t Task) error {
	if old != nil {
		if err := e.unindex(key, *old); err != nil {
			return err
		}
	}
	var err error
	if t.Status == StatusProcessing {
		err = e.processing.Put(key, nil)
	} else {
		err = e.expiry.Put(expiryKey(t.ExpiresAt, key), nil)
	}
	if err != nil {
		return err
	}
	if err := e.indexCreated(key, old, t); err != nil {
		return err
	}
	v, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("cannot encode task %q: %w", key, err)
	}
	return e.tasks.Put(key, v)
}

// deleteAttemptsBefore removes the attempts of the task at key that
// started before cutoff.
func (e embeddedTx) deleteAttemptsBefore(key []byte, cutoff time.Time) error {
	all, err := e.attemptsOf(key)
	if err != nil {
		return err
	}
	for _, a := range all {
		if a.StartedAt.Before(cutoff) {
			if err := e.attempts.Delete(attemptKey(key, a.N)); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteAttempts removes every attempt of the task at key.
func (e embeddedTx) deleteAttempts(key []byte) error {
	prefix := attemptPrefix(key)
	var keys [][]byte
	c := e.attempts.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	// Deleting while iterating would make the cursor skip keys.
	for _, k := range keys {
		if err := e.attempts.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// attempts returns the task's attempts in order.
func (e embeddedTx) attemptsOf(key []byte) ([]Attempt, error) {
	var out []Attempt
	prefix := attemptPrefix(key)
	c := e.attempts.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var a Attempt
		if err := json.Unmarshal(v, &a); err != nil {
			return nil, fmt.Errorf("cannot decode attempt %q: %w", k, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// putAttempt writes a (a new row, or the final version of its started
// row) under the task at key.
func (e embeddedTx) putAttempt(key []byte, a Attempt) error {
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("cannot encode attempt: %w", err)
	}
	return e.attempts.Put(attemptKey(key, a.N), v)
}

// putFinal writes a leader's final record of an attempt at fence,
// unless it is nil or would overwrite an attempt of another fence.
func (e embeddedTx) putFinal(key []byte, fence int64, a *Attempt) error {
	if a == nil || a.N <= 0 {
		return nil
	}
	if v := e.attempts.Get(attemptKey(key, a.N)); v != nil {
		var old Attempt
		if err := json.Unmarshal(v, &old); err != nil {
			return fmt.Errorf("cannot decode attempt %d of %q: %w", a.N, key, err)
		}
		if old.Fence != fence {
			return nil
		}
	}
	final := *a
	final.Fence = fence
	if final.StartedAt.IsZero() {
		final.StartedAt = nowLocal()
	}
	return e.putAttempt(key, final)
}

// abandon marks the started attempts of fences before fence abandoned
// and returns them with the task's highest attempt number and how many
// attempts started after since (recentAttempts).
func (e embeddedTx) abandon(key []byte, fence int64, since time.Time) (abandoned []Attempt, last, recent int, err error) {
	all, err := e.attemptsOf(key)
	if err != nil {
		return nil, 0, 0, err
	}
	recent = recentAttempts(all, since)
	for _, a := range all {
		last = max(last, a.N)
		if a.Outcome != AttemptStarted || a.Fence >= fence {
			continue
		}
		a.Outcome, a.Error = AttemptAbandoned, abandonedError
		if err := e.putAttempt(key, a); err != nil {
			return nil, 0, 0, err
		}
		abandoned = append(abandoned, a)
	}
	return abandoned, last, recent, nil
}

// update runs fn in a write transaction unless ctx is already done
// (bbolt itself takes no context). Transactions of concurrent requests
// share one commit (boltGroup); fn may run more than once (again, when
// another function of its batch failed), so every fn only reads the
// transaction and overwrites its results.
func (s *Embedded) update(ctx context.Context, fn func(e embeddedTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.group.update(func(tx *bolt.Tx) error { return fn(newEmbeddedTx(tx)) })
}

// Begin implements Store.
func (s *Embedded) Begin(ctx context.Context, req BeginRequest) (BeginResult, error) {
	var res BeginResult
	err := s.update(ctx, func(e embeddedTx) error { return e.begin(req, &res) })
	if err != nil {
		return BeginResult{}, fmt.Errorf("cannot begin task %q: %w", taskName(req.Tenant, req.KeyHash), err)
	}
	return res, nil
}

// begin is Begin's transaction; it sets all of *res, since it may run
// more than once (see update).
func (e embeddedTx) begin(req BeginRequest, res *BeginResult) error {
	*res = BeginResult{}
	now := nowLocal()
	key := boltTaskKey(req.Tenant, req.KeyHash)
	old, ok, err := e.load(key)
	if err != nil {
		return err
	}
	if !ok {
		t := Task{
			Tenant: req.Tenant, KeyHash: req.KeyHash, Fingerprint: req.Fingerprint,
			Status: StatusProcessing, Fence: 1, LeaseOwner: req.Owner, LeaseUntil: now.Add(req.Lease),
			Stream: req.Stream, Model: req.Model, CreatedAt: now, UpdatedAt: now, StartedAt: now,
		}
		*res = BeginResult{Verdict: VerdictLeader, Task: t}
		if err := e.put(key, nil, t); err != nil {
			return err
		}
		return e.startFirst(key, req, res, 0)
	}

	expired := old.Status != StatusProcessing && (old.ExpiresAt.Before(now) ||
		req.MaxAge > 0 && old.UpdatedAt.Add(req.MaxAge).Before(now))
	zombie := old.Status == StatusProcessing && (old.LeaseUntil.Before(now) ||
		req.MaxProcessing > 0 && old.StartedAt.Before(now.Add(-req.MaxProcessing)))
	t := old
	switch decideBegin(old, req.Fingerprint, expired, zombie, req.Fresh) {
	case actMismatch:
		*res = BeginResult{Verdict: VerdictMismatch, Task: mismatched(old)}
		return nil
	case actReplay:
		*res = BeginResult{Verdict: VerdictCompleted, Task: replayable(old)}
		return nil
	case actInFlight:
		*res = BeginResult{Verdict: VerdictInFlight, Task: old}
		return nil
	case actRestartExpired:
		// Same as Postgres: a new task that keeps counting fences,
		// so a long-lost leader of the old one cannot write into it.
		// Earlier attempts stay until they are older than key_ttl, as on
		// Postgres: a restarted key keeps the calls it paid for.
		t = Task{Tenant: req.Tenant, KeyHash: req.KeyHash, Fingerprint: req.Fingerprint, CreatedAt: now}
		if err := e.deleteAttemptsBefore(key, now.Add(-req.AttemptRetention)); err != nil {
			return err
		}
		res.Verdict = VerdictLeader
	case actRestartFailed:
		t.Error = ""
		res.Verdict = VerdictLeader
	case actTakeOver:
		res.Verdict = VerdictReclaimed
	default:
		panic("BUG: unknown begin action")
	}
	if res.Verdict != VerdictReclaimed {
		// A restart (not a take-over) may change how the task is served.
		t.Stream, t.Model = req.Stream, req.Model
	}
	t.Fence = old.Fence + 1
	t.Status = StatusProcessing
	t.LeaseOwner, t.LeaseUntil = req.Owner, now.Add(req.Lease)
	t.StartedAt, t.UpdatedAt, t.ExpiresAt = now, now, time.Time{}
	res.Task = t
	if err := e.put(key, &old, t); err != nil {
		return err
	}
	abandoned, last, recent, err := e.abandon(key, t.Fence, now.Add(-req.AttemptWindow))
	if err != nil {
		return err
	}
	res.Abandoned = abandoned
	if req.AttemptWindow > 0 {
		res.RecentAttempts = recent
	}
	if overBudget(req, res.RecentAttempts) {
		res.Started = nil
		return nil
	}
	return e.startFirst(key, req, res, last)
}

// startFirst writes the targets the new leader skips (skipped) and its
// first attempt (started), after the task's attempt last.
func (e embeddedTx) startFirst(key []byte, req BeginRequest, res *BeginResult, last int) error {
	res.Started = nil
	for _, s := range req.Skipped {
		last++
		a := startedAttempt(s, last, res.Task.Fence, res.Task.StartedAt)
		a.Outcome, a.Error = AttemptSkipped, s.Error
		if err := e.putAttempt(key, a); err != nil {
			return err
		}
	}
	if req.First.Provider == "" {
		return nil
	}
	a := startedAttempt(req.First, last+1, res.Task.Fence, res.Task.StartedAt)
	res.Started = &a
	return e.putAttempt(key, a)
}

// updateFenced applies fn to the task held at fence, or fails with
// ErrFenced when the task is gone, finished, or at another fence.
func (s *Embedded) updateFenced(ctx context.Context, tenant, keyHash string, fence int64, fn func(e embeddedTx, key []byte, t *Task, now time.Time) error) error {
	return s.update(ctx, func(e embeddedTx) error {
		key := boltTaskKey(tenant, keyHash)
		old, ok, err := e.load(key)
		if err != nil {
			return err
		}
		if !ok || old.Fence != fence || old.Status != StatusProcessing {
			return ErrFenced
		}
		t := old
		now := nowLocal()
		t.UpdatedAt = now
		if err := fn(e, key, &t, now); err != nil {
			return err
		}
		return e.put(key, &old, t)
	})
}

// Heartbeat implements Store.
func (s *Embedded) Heartbeat(ctx context.Context, tenant, keyHash string, fence int64, lease time.Duration) error {
	err := s.updateFenced(ctx, tenant, keyHash, fence, func(_ embeddedTx, _ []byte, t *Task, now time.Time) error {
		t.LeaseUntil = now.Add(lease)
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot extend the lease of task %q at fence %d: %w", taskName(tenant, keyHash), fence, err)
	}
	return nil
}

// finishTask ends the lease of a task that is leaving processing.
func finishTask(t *Task, status Status, now time.Time, ttl time.Duration) {
	t.Status = status
	t.LeaseOwner, t.LeaseUntil = "", time.Time{}
	t.ExpiresAt = now.Add(ttl)
}

// Complete implements Store.
func (s *Embedded) Complete(ctx context.Context, tenant, keyHash string, fence int64, c Completion) error {
	err := s.updateFenced(ctx, tenant, keyHash, fence, func(e embeddedTx, key []byte, t *Task, now time.Time) error {
		if !c.Generation.IsZero() && !t.CreatedAt.Equal(c.Generation) {
			return ErrFenced
		}
		if err := e.putFinal(key, fence, c.Attempt); err != nil {
			return err
		}
		finishTask(t, StatusCompleted, now, c.TTL)
		t.Usage, t.TooLarge, t.Error = c.Usage, c.TooLarge, ""
		t.Response = nil
		if !c.TooLarge {
			r := c.Response
			r.Body = bytes.Clone(r.Body) // the caller may reuse its buffer
			if r.Body == nil {
				r.Body = []byte{}
			}
			t.Response = &r
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot complete task %q at fence %d: %w", taskName(tenant, keyHash), fence, err)
	}
	return nil
}

// Fail implements Store.
func (s *Embedded) Fail(ctx context.Context, tenant, keyHash string, fence int64, f Failure) error {
	err := s.updateFenced(ctx, tenant, keyHash, fence, func(e embeddedTx, key []byte, t *Task, now time.Time) error {
		finishTask(t, StatusFailed, now, f.TTL)
		t.Error = f.Reason
		return e.putFinal(key, fence, f.Attempt)
	})
	if err != nil {
		return fmt.Errorf("cannot fail task %q at fence %d: %w", taskName(tenant, keyHash), fence, err)
	}
	return nil
}

// StartAttempt implements Store.
func (s *Embedded) StartAttempt(ctx context.Context, tenant, keyHash string, fence int64, st AttemptStart) error {
	err := s.updateFenced(ctx, tenant, keyHash, fence, func(e embeddedTx, key []byte, t *Task, now time.Time) error {
		t.LeaseUntil = now.Add(st.Lease)
		if err := e.putFinal(key, fence, st.Finished); err != nil {
			return err
		}
		next := startedAttempt(st.Next, st.Next.N, fence, now)
		return e.putFinal(key, fence, &next)
	})
	if err != nil {
		return fmt.Errorf("cannot start attempt %d of task %q at fence %d: %w", st.Next.N, taskName(tenant, keyHash), fence, err)
	}
	return nil
}

// Lookup implements Store: Get without the attempts.
func (s *Embedded) Lookup(ctx context.Context, tenant, keyHash string) (Task, error) {
	if err := ctx.Err(); err != nil {
		return Task{}, fmt.Errorf("cannot look up task %q: %w", taskName(tenant, keyHash), err)
	}
	var t Task
	err := s.db.View(func(tx *bolt.Tx) error {
		var ok bool
		var err error
		t, ok, err = newEmbeddedTx(tx).load(boltTaskKey(tenant, keyHash))
		if err == nil && !ok {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return Task{}, fmt.Errorf("cannot look up task %q: %w", taskName(tenant, keyHash), err)
	}
	return replayable(t), nil
}

// Get implements Store.
func (s *Embedded) Get(ctx context.Context, tenant, keyHash string) (Task, []Attempt, error) {
	if err := ctx.Err(); err != nil {
		return Task{}, nil, fmt.Errorf("cannot get task %q: %w", taskName(tenant, keyHash), err)
	}
	var (
		t        Task
		attempts []Attempt
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		e := newEmbeddedTx(tx)
		key := boltTaskKey(tenant, keyHash)
		var ok bool
		var err error
		t, ok, err = e.load(key)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		attempts, err = e.attemptsOf(key)
		return err
	})
	if err != nil {
		return Task{}, nil, fmt.Errorf("cannot get task %q: %w", taskName(tenant, keyHash), err)
	}
	return replayable(t), attempts, nil
}

// ReclaimZombies implements Store, with the same result as Postgres: the
// zombie is failed at fence+1 and kept for reclaimedTTL.
func (s *Embedded) ReclaimZombies(ctx context.Context, maxProcessing time.Duration, limit int) (Reclaimed, error) {
	var res Reclaimed
	err := s.update(ctx, func(e embeddedTx) error {
		res = Reclaimed{Abandoned: map[string]int{}}
		now := nowLocal()
		// Collected first: put moves keys out of bucketProcessing, which
		// must not happen under a live cursor. Processing tasks are as
		// many as requests in flight, so the list stays small.
		var keys [][]byte
		c := e.processing.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, key := range keys {
			if res.Tasks >= limit {
				break
			}
			old, ok, err := e.load(key)
			if err != nil {
				return err
			}
			if !ok || old.Status != StatusProcessing {
				continue
			}
			if !old.LeaseUntil.Before(now) && !(maxProcessing > 0 && old.StartedAt.Before(now.Add(-maxProcessing))) {
				continue
			}
			t := old
			finishTask(&t, StatusFailed, now, reclaimedTTL)
			t.Fence++
			t.Error = reclaimedError
			t.UpdatedAt = now
			if err := e.put(key, &old, t); err != nil {
				return err
			}
			abandoned, _, _, err := e.abandon(key, t.Fence, now)
			if err != nil {
				return err
			}
			for _, a := range abandoned {
				res.Abandoned[a.Provider]++
			}
			res.Tasks++
		}
		return nil
	})
	if err != nil {
		return Reclaimed{}, fmt.Errorf("cannot reclaim zombie tasks: %w", err)
	}
	return res, nil
}

// DeleteExpired implements Store. Each call is one short transaction
// over at most limit tasks, found through the expiry index.
func (s *Embedded) DeleteExpired(ctx context.Context, limit int) (int, error) {
	n := 0
	err := s.update(ctx, func(e embeddedTx) error {
		n = 0
		now := uint64(nowLocal().UnixNano())
		var keys [][]byte
		c := e.expiry.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < limit; k, _ = c.Next() {
			if len(k) < 8 || binary.BigEndian.Uint64(k[:8]) >= now {
				break // the index is ordered by expiry: the rest expire later
			}
			keys = append(keys, bytes.Clone(k))
		}
		for _, ik := range keys {
			key := ik[8:]
			if err := e.expiry.Delete(ik); err != nil {
				return err
			}
			if err := e.unlist(key); err != nil {
				return err
			}
			if err := e.tasks.Delete(key); err != nil {
				return err
			}
			if err := e.deleteAttempts(key); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("cannot delete expired tasks: %w", err)
	}
	return n, nil
}

// Health implements Store: the file's size and the age of the oldest
// processing task (the processing index holds only the tasks in flight).
// bbolt has no dead rows: freed pages are reused by later writes.
func (s *Embedded) Health(ctx context.Context) (Health, error) {
	if err := ctx.Err(); err != nil {
		return Health{}, fmt.Errorf("cannot read the health of the embedded store: %w", err)
	}
	// What the file takes on disk, not tx.Size() (the pages in use): bbolt
	// grows its file ahead of the data, and the disk is what runs out.
	fi, err := os.Stat(s.db.Path())
	if err != nil {
		return Health{}, fmt.Errorf("cannot read the size of the embedded store: %w", err)
	}
	h := Health{Tables: []TableHealth{{Name: "file", Bytes: fi.Size(), DeadTuples: -1}}}
	err = s.db.View(func(tx *bolt.Tx) error {
		e := newEmbeddedTx(tx)
		now := nowLocal()
		c := e.processing.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			t, ok, err := e.load(k)
			if err != nil {
				return err
			}
			if ok && t.Status == StatusProcessing {
				h.OldestProcessing = max(h.OldestProcessing, now.Sub(t.StartedAt))
			}
		}
		return nil
	})
	if err != nil {
		return Health{}, fmt.Errorf("cannot read the health of the embedded store %q: %w", s.db.Path(), err)
	}
	return h, nil
}

// Ping implements Store; it fails once the store is closed.
func (s *Embedded) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cannot ping the embedded store: %w", err)
	}
	if err := s.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("cannot ping the embedded store %q: %w", s.db.Path(), err)
	}
	return nil
}

// Close implements Store.
func (s *Embedded) Close() error {
	s.group.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("cannot close the embedded store %q: %w", s.db.Path(), err)
	}
	return nil
}
