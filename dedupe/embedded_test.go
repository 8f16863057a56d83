package dedupe

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTestEmbedded(t *testing.T, path string) *Embedded {
	t.Helper()
	s, err := OpenEmbedded(path)
	if err != nil {
		t.Fatalf("OpenEmbedded: %v", err)
	}
	t.Cleanup(func() { s.Close() }) // a second Close is harmless
	return s
}

func TestEmbeddedStore(t *testing.T) {
	testStoreSemantics(t, true, func(t *testing.T) Store {
		return openTestEmbedded(t, filepath.Join(t.TempDir(), "gateway.db"))
	})
}

func TestEmbeddedStoreDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "nested", "gateway.db")
	s := openTestEmbedded(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat store file: %v", err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("store file mode %v, want 0600", mode)
	}
	testStoreDurable(t, s, func() Store { return openTestEmbedded(t, path) })
}

func TestEmbeddedStoreLocked(t *testing.T) {
	// In a synctest bubble bbolt's one-second wait for the lock costs no
	// real time.
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "gateway.db")
		openTestEmbedded(t, path)
		// bbolt's flock is per open file description, so a second open in
		// the same process conflicts like a second process would.
		_, err := OpenEmbedded(path)
		if err == nil || !strings.Contains(err.Error(), "locked by another process") {
			t.Fatalf("second OpenEmbedded: %v, want a locked-file error", err)
		}
	})
}

func TestEmbeddedStoreClosed(t *testing.T) {
	s := openTestEmbedded(t, filepath.Join(t.TempDir(), "gateway.db"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Fatalf("Ping after Close succeeded")
	}
}

// Issue 10: a store file of the earlier layout (processing tasks in
// bucketTasks with a key-only processing index, attempts in a bucket of
// their own) is moved to the current one when it opens, and keeps its
// tasks, attempts and leases.
func TestEmbeddedStoreMigratesLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := nowLocal()
	done := Task{Tenant: "t1", KeyHash: "done", Fingerprint: "fp1", Status: StatusCompleted, Fence: 1, Model: "m",
		CreatedAt: now, UpdatedAt: now, StartedAt: now, ExpiresAt: now.Add(time.Hour),
		Response: &Response{Status: 200, ContentType: "application/json", Body: []byte(`{"ok":true}`)}}
	busy := Task{Tenant: "t1", KeyHash: "busy", Fingerprint: "fp1", Status: StatusProcessing, Fence: 2, Model: "m",
		LeaseOwner: "owner-a", LeaseUntil: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now, StartedAt: now}
	attempts := map[string][]Attempt{
		"done": {{N: 1, Fence: 1, Provider: "p1", Model: "m1", Outcome: "success", HTTPStatus: 200, StartedAt: now}},
		"busy": {
			{N: 1, Fence: 1, Provider: "p1", Model: "m1", Outcome: AttemptAbandoned, StartedAt: now},
			{N: 2, Fence: 2, Provider: "p2", Model: "m2", Outcome: AttemptStarted, StartedAt: now},
		},
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := map[string]*bolt.Bucket{}
		for _, name := range []string{bucketTasks, bucketAttempts, bucketExpiry, bucketProcessing, bucketCreated, bucketServed} {
			if b[name], err = tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		for _, task := range []Task{done, busy} {
			key := boltTaskKey(task.Tenant, task.KeyHash)
			v, err := json.Marshal(task)
			if err != nil {
				return err
			}
			if err := b[bucketTasks].Put(key, v); err != nil {
				return err
			}
			if err := b[bucketCreated].Put(createdKey(task.CreatedAt, key), nil); err != nil {
				return err
			}
			if task.Status == StatusProcessing {
				err = b[bucketProcessing].Put(key, nil)
			} else {
				err = b[bucketExpiry].Put(expiryKey(task.ExpiresAt, key), nil)
			}
			if err != nil {
				return err
			}
			for _, a := range attempts[task.KeyHash] {
				v, err := json.Marshal(a)
				if err != nil {
					return err
				}
				k := binary.BigEndian.AppendUint32(append(bytes.Clone(key), 0), uint32(a.N))
				if err := b[bucketAttempts].Put(k, v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := openTestEmbedded(t, path)
	ctx := context.Background()
	for _, task := range []Task{done, busy} {
		got, gotAttempts, err := s.Get(ctx, task.Tenant, task.KeyHash)
		if err != nil {
			t.Fatalf("Get(%s): %v", task.KeyHash, err)
		}
		if got.Status != task.Status || got.Fence != task.Fence {
			t.Fatalf("task %s: %s at fence %d, want %s at %d", task.KeyHash, got.Status, got.Fence, task.Status, task.Fence)
		}
		if len(gotAttempts) != len(attempts[task.KeyHash]) {
			t.Fatalf("task %s: attempts %+v, want %+v", task.KeyHash, gotAttempts, attempts[task.KeyHash])
		}
		for i, a := range gotAttempts {
			if want := attempts[task.KeyHash][i]; a.N != want.N || a.Outcome != want.Outcome || a.Provider != want.Provider {
				t.Fatalf("task %s attempt %d: %+v, want %+v", task.KeyHash, i, a, want)
			}
		}
	}
	storeBegin(t, s, storeReq("t1", "done", "fp1"), VerdictCompleted)
	if err := s.Heartbeat(ctx, "t1", "busy", 2, time.Hour); err != nil {
		t.Fatalf("Heartbeat of the moved processing task: %v", err)
	}
	if err := s.Complete(ctx, "t1", "busy", 2, Completion{Response: Response{Status: 200, Body: []byte("{}")}, TTL: time.Hour,
		Attempt: &Attempt{N: 2, Provider: "p2", Model: "m2", Outcome: "success", HTTPStatus: 200}}); err != nil {
		t.Fatalf("Complete of the moved processing task: %v", err)
	}
	_, gotAttempts, err := s.Get(ctx, "t1", "busy")
	if err != nil || len(gotAttempts) != 2 || gotAttempts[1].Outcome != "success" {
		t.Fatalf("after Complete: %+v, %v", gotAttempts, err)
	}
	page, err := s.List(ctx, ListQuery{})
	if err != nil || len(page.Tasks) != 2 {
		t.Fatalf("List: %+v, %v", page, err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(bucketAttempts)) != nil {
			return errors.New("the attempts bucket is still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A second open finds nothing to move.
	s.Close()
	s = openTestEmbedded(t, path)
	if _, gotAttempts, err := s.Get(ctx, "t1", "done"); err != nil || len(gotAttempts) != 1 {
		t.Fatalf("after reopening: %+v, %v", gotAttempts, err)
	}
}

// The binary record encoding keeps every field, reads the earlier JSON
// encoding, and refuses a truncated value instead of misreading it.
func TestBoltRecordEncoding(t *testing.T) {
	now := nowLocal()
	r := boltRecord{
		Task: Task{Tenant: "t1", KeyHash: "k", Fingerprint: "fp", Status: StatusCompleted, Fence: 3, LeaseOwner: "o",
			LeaseUntil: now.Add(time.Second), Stream: true, Model: "m", CreatedAt: now, UpdatedAt: now.Add(2), StartedAt: now.Add(3),
			ExpiresAt: now.Add(time.Hour), Usage: Usage{PromptTokens: 10, CompletionTokens: 9}, TooLarge: true, Error: "e",
			Response: &Response{Status: 201, ContentType: "text/event-stream", Body: []byte("data: x\n\n")}},
		Attempts: []Attempt{
			{N: 1, Fence: 2, Provider: "p", Model: "m1", Outcome: "cut", HTTPStatus: 200, Error: "x", StartedAt: now, DurationMS: -1, Usage: Usage{PromptTokens: 1, CompletionTokens: 2}},
			{N: 2, Fence: 3, Provider: "q", Model: "m2", Outcome: "success", Continues: 1},
		},
	}
	same := func(a, b boltRecord) bool {
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		return bytes.Equal(ja, jb)
	}
	v := encodeRecord(nil, &r)
	var got boltRecord
	if err := decodeRecord(v, &got, true); err != nil || !same(got, r) {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, r)
	}
	if err := decodeRecord(v, &got, false); err != nil || got.Response != nil || got.Fence != 3 || len(got.Attempts) != 2 {
		t.Fatalf("decoded without the body: %+v, %v", got, err)
	}
	old, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeRecord(old, &got, true); err != nil || !same(got, r) {
		t.Fatalf("decoded the JSON encoding as %+v, %v", got, err)
	}
	for n := range len(v) {
		if err := decodeRecord(v[:n], &got, true); err == nil {
			t.Fatalf("a value cut at %d of %d bytes decoded", n, len(v))
		}
	}
	empty := boltRecord{}
	if err := decodeRecord(encodeRecord(nil, &empty), &got, true); err != nil || !same(got, empty) {
		t.Fatalf("an empty record decoded as %+v, %v", got, err)
	}
}
