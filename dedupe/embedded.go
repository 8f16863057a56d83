package dedupe

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bucket names of the embedded store.
//
// Layout (issue 10): a task's record is one value, the JSON of a
// boltRecord (the Task and its attempt ledger), so a write of a task is
// one Put. While a task is processing its record lives in
// bucketProcessing, which holds only the tasks in flight: a few leaf
// pages that every Begin, heartbeat and StartAttempt of a batch share.
// Complete or Fail moves it to bucketTasks, the big bucket whose random
// keys cost a page each: one random page per task instead of four
// (Begin and Complete each wrote a task and an attempt in buckets of
// random keys). Files of the earlier layout are moved over on open
// (migrateLayout).
const (
	// bucketTasks maps taskKey to the record of a finished task.
	bucketTasks = "tasks"
	// bucketAttempts is the earlier layout's attempt ledger: taskKey +
	// 0x00 + big-endian uint32 n -> the JSON of an Attempt. migrateLayout
	// moves its attempts into their records and deletes it.
	bucketAttempts = "attempts"
	// bucketExpiry indexes finished tasks: big-endian expires_at (Unix
	// nanoseconds) + taskKey -> nothing. DeleteExpired walks it from the
	// start, so a batch costs what it deletes, not a scan of every task.
	bucketExpiry = "expiry"
	// bucketProcessing maps taskKey to the record of a processing task,
	// the only candidates ReclaimZombies has to look at. (The earlier
	// layout kept the key alone, with the record in bucketTasks.)
	bucketProcessing = "processing"
)

// boltRecord is the stored value of a task: the Task's fields (as the
// earlier layout stored them) and its attempts in order of N.
type boltRecord struct {
	Task
	Attempts []Attempt `json:",omitempty"`
}

// attempt returns the attempt numbered n, nil when there is none.
func (r *boltRecord) attempt(n int) *Attempt {
	i, found := slices.BinarySearchFunc(r.Attempts, n, func(a Attempt, n int) int { return cmp.Compare(a.N, n) })
	if !found {
		return nil
	}
	return &r.Attempts[i]
}

// setAttempt writes a over the attempt of its number, or inserts it in
// order.
func (r *boltRecord) setAttempt(a Attempt) {
	i, found := slices.BinarySearchFunc(r.Attempts, a.N, func(x Attempt, n int) int { return cmp.Compare(x.N, n) })
	if found {
		r.Attempts[i] = a
		return
	}
	r.Attempts = slices.Insert(r.Attempts, i, a)
}

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
		for _, name := range []string{bucketTasks, bucketExpiry, bucketProcessing, bucketCreated, bucketServed} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("cannot create bucket %q: %w", name, err)
			}
		}
		if err := backfillCreated(tx); err != nil {
			return err
		}
		return migrateLayout(tx)
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

func expiryKey(at time.Time, key []byte) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(key)), uint64(at.UnixNano()))
	return append(k, key...)
}

// nowLocal is the embedded store's clock, without the monotonic reading
// (stored times lose it anyway, and mixing both confuses comparisons).
func nowLocal() time.Time { return time.Now().Round(0) }

// embeddedTx wraps a write transaction with the task helpers.
type embeddedTx struct {
	tx                        *bolt.Tx
	tasks, expiry, processing *bolt.Bucket
}

func newEmbeddedTx(tx *bolt.Tx) embeddedTx {
	return embeddedTx{
		tx:         tx,
		tasks:      tx.Bucket([]byte(bucketTasks)),
		expiry:     tx.Bucket([]byte(bucketExpiry)),
		processing: tx.Bucket([]byte(bucketProcessing)),
	}
}

// value is the stored record at key, nil when there is none.
func (e embeddedTx) value(key []byte) []byte {
	if v := e.processing.Get(key); len(v) > 0 {
		return v
	}
	if v := e.tasks.Get(key); len(v) > 0 {
		return v
	}
	return nil
}

// load returns the record at key; ok is false when there is none.
func (e embeddedTx) load(key []byte) (r boltRecord, ok bool, err error) {
	v := e.value(key)
	if v == nil {
		return boltRecord{}, false, nil
	}
	if err := decodeRecord(v, &r, true); err != nil {
		return boltRecord{}, false, fmt.Errorf("cannot decode task %q: %w", key, err)
	}
	return r, true, nil
}

// store writes r at key in the bucket of its status.
func (e embeddedTx) store(key []byte, r *boltRecord) error {
	size := 160 + 96*len(r.Attempts)
	if r.Response != nil {
		size += len(r.Response.ContentType) + len(r.Response.Body)
	}
	v := encodeRecord(make([]byte, 0, size), r)
	if r.Status == StatusProcessing {
		return e.processing.Put(key, v)
	}
	return e.tasks.Put(key, v)
}

// put stores r at key, moving it between bucketProcessing and
// bucketTasks and their indexes; old is the previous version of the task
// (nil for a new task).
func (e embeddedTx) put(key []byte, old *Task, r *boltRecord) error {
	wasProcessing := old != nil && old.Status == StatusProcessing
	if old != nil && !wasProcessing {
		if err := e.expiry.Delete(expiryKey(old.ExpiresAt, key)); err != nil {
			return err
		}
	}
	if r.Status == StatusProcessing {
		if old != nil && !wasProcessing {
			if err := e.tasks.Delete(key); err != nil {
				return err
			}
		}
	} else {
		if wasProcessing {
			if err := e.processing.Delete(key); err != nil {
				return err
			}
		}
		if err := e.expiry.Put(expiryKey(r.ExpiresAt, key), nil); err != nil {
			return err
		}
	}
	if err := e.indexCreated(key, old, r.Task); err != nil {
		return err
	}
	return e.store(key, r)
}

// putFinal writes a leader's final record of an attempt at fence into r,
// unless it is nil or would overwrite an attempt of another fence.
func putFinal(r *boltRecord, fence int64, a *Attempt) {
	if a == nil || a.N <= 0 {
		return
	}
	if old := r.attempt(a.N); old != nil && old.Fence != fence {
		return
	}
	final := *a
	final.Fence = fence
	if final.StartedAt.IsZero() {
		final.StartedAt = nowLocal()
	}
	r.setAttempt(final)
}

// abandon marks the started attempts of fences before fence abandoned
// and returns them with the task's highest attempt number and how many
// attempts started after since (recentAttempts).
func abandon(r *boltRecord, fence int64, since time.Time) (abandoned []Attempt, last, recent int) {
	recent = recentAttempts(r.Attempts, since)
	for i := range r.Attempts {
		a := &r.Attempts[i]
		last = max(last, a.N)
		if a.Outcome != AttemptStarted || a.Fence >= fence {
			continue
		}
		a.Outcome, a.Error = AttemptAbandoned, abandonedError
		abandoned = append(abandoned, *a)
	}
	return abandoned, last, recent
}

// migrateLayout moves a store file of the earlier layout (see the bucket
// names) to this one, in the transaction that opens it: the records of
// processing tasks into bucketProcessing, and the attempts of
// bucketAttempts into their records. It does nothing on a file already
// moved, so it runs at every open.
func migrateLayout(tx *bolt.Tx) error {
	e := newEmbeddedTx(tx)
	var keys [][]byte
	c := e.processing.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) == 0 {
			keys = append(keys, bytes.Clone(k))
		}
	}
	for _, k := range keys {
		v := bytes.Clone(e.tasks.Get(k))
		if err := e.tasks.Delete(k); err != nil {
			return err
		}
		if len(v) == 0 {
			if err := e.processing.Delete(k); err != nil {
				return err
			}
			continue
		}
		if err := e.processing.Put(k, v); err != nil {
			return err
		}
	}
	old := tx.Bucket([]byte(bucketAttempts))
	if old == nil {
		return nil
	}
	var (
		key []byte
		rec boltRecord
		ok  bool
	)
	flush := func() error {
		if !ok {
			return nil
		}
		return e.store(key, &rec)
	}
	oc := old.Cursor()
	for k, v := oc.First(); k != nil; k, v = oc.Next() {
		if len(k) < 5 {
			continue
		}
		tk := k[:len(k)-5] // taskKey + 0x00 + uint32 n
		if !bytes.Equal(tk, key) {
			if err := flush(); err != nil {
				return err
			}
			key = bytes.Clone(tk)
			var err error
			if rec, ok, err = e.load(key); err != nil {
				return err
			}
		}
		var a Attempt
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("cannot decode attempt %q: %w", k, err)
		}
		if ok {
			rec.setAttempt(a)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return tx.DeleteBucket([]byte(bucketAttempts))
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
	oldRec, ok, err := e.load(key)
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
		rec := boltRecord{Task: t}
		startFirst(&rec, req, res, 0)
		return e.put(key, nil, &rec)
	}
	old := oldRec.Task

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
		cutoff := now.Add(-req.AttemptRetention)
		oldRec.Attempts = slices.DeleteFunc(oldRec.Attempts, func(a Attempt) bool { return a.StartedAt.Before(cutoff) })
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
	rec := boltRecord{Task: t, Attempts: oldRec.Attempts}
	abandoned, last, recent := abandon(&rec, t.Fence, now.Add(-req.AttemptWindow))
	res.Abandoned = abandoned
	if req.AttemptWindow > 0 {
		res.RecentAttempts = recent
	}
	res.Started = nil
	if !overBudget(req, res.RecentAttempts) {
		startFirst(&rec, req, res, last)
	}
	return e.put(key, &old, &rec)
}

// startFirst writes into r the targets the new leader skips (skipped)
// and its first attempt (started), after the task's attempt last.
func startFirst(r *boltRecord, req BeginRequest, res *BeginResult, last int) {
	res.Started = nil
	for _, s := range req.Skipped {
		last++
		a := startedAttempt(s, last, res.Task.Fence, res.Task.StartedAt)
		a.Outcome, a.Error = AttemptSkipped, s.Error
		r.setAttempt(a)
	}
	if req.First.Provider == "" {
		return
	}
	a := startedAttempt(req.First, last+1, res.Task.Fence, res.Task.StartedAt)
	res.Started = &a
	r.setAttempt(a)
}

// updateFenced applies fn to the task held at fence, or fails with
// ErrFenced when the task is gone, finished, or at another fence.
func (s *Embedded) updateFenced(ctx context.Context, tenant, keyHash string, fence int64, fn func(r *boltRecord, now time.Time) error) error {
	return s.update(ctx, func(e embeddedTx) error {
		key := boltTaskKey(tenant, keyHash)
		rec, ok, err := e.load(key)
		if err != nil {
			return err
		}
		old := rec.Task
		if !ok || old.Fence != fence || old.Status != StatusProcessing {
			return ErrFenced
		}
		now := nowLocal()
		rec.UpdatedAt = now
		if err := fn(&rec, now); err != nil {
			return err
		}
		return e.put(key, &old, &rec)
	})
}

// Heartbeat implements Store.
func (s *Embedded) Heartbeat(ctx context.Context, tenant, keyHash string, fence int64, lease time.Duration) error {
	err := s.updateFenced(ctx, tenant, keyHash, fence, func(r *boltRecord, now time.Time) error {
		r.LeaseUntil = now.Add(lease)
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
	err := s.updateFenced(ctx, tenant, keyHash, fence, func(r *boltRecord, now time.Time) error {
		t := &r.Task
		if !c.Generation.IsZero() && !t.CreatedAt.Equal(c.Generation) {
			return ErrFenced
		}
		putFinal(r, fence, c.Attempt)
		finishTask(t, StatusCompleted, now, c.TTL)
		t.Usage, t.TooLarge, t.Error = c.Usage, c.TooLarge, ""
		t.Response = nil
		if !c.TooLarge {
			r := c.Response // encoded (copied) before Complete returns
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
	err := s.updateFenced(ctx, tenant, keyHash, fence, func(r *boltRecord, now time.Time) error {
		finishTask(&r.Task, StatusFailed, now, f.TTL)
		r.Error = f.Reason
		putFinal(r, fence, f.Attempt)
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot fail task %q at fence %d: %w", taskName(tenant, keyHash), fence, err)
	}
	return nil
}

// StartAttempt implements Store.
func (s *Embedded) StartAttempt(ctx context.Context, tenant, keyHash string, fence int64, st AttemptStart) error {
	err := s.updateFenced(ctx, tenant, keyHash, fence, func(r *boltRecord, now time.Time) error {
		r.LeaseUntil = now.Add(st.Lease)
		putFinal(r, fence, st.Finished)
		next := startedAttempt(st.Next, st.Next.N, fence, now)
		putFinal(r, fence, &next)
		return nil
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
		rec, ok, err := newEmbeddedTx(tx).load(boltTaskKey(tenant, keyHash))
		t = rec.Task
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
		rec, ok, err := newEmbeddedTx(tx).load(boltTaskKey(tenant, keyHash))
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		t, attempts = rec.Task, rec.Attempts
		return nil
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
			rec, ok, err := e.load(key)
			if err != nil {
				return err
			}
			old := rec.Task
			if !ok || old.Status != StatusProcessing {
				continue
			}
			if !old.LeaseUntil.Before(now) && !(maxProcessing > 0 && old.StartedAt.Before(now.Add(-maxProcessing))) {
				continue
			}
			finishTask(&rec.Task, StatusFailed, now, reclaimedTTL)
			rec.Fence++
			rec.Error = reclaimedError
			rec.UpdatedAt = now
			abandoned, _, _ := abandon(&rec, rec.Fence, now)
			if err := e.put(key, &old, &rec); err != nil {
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
			t, ok, err := e.loadMeta(k)
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
