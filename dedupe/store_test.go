package dedupe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

// The semantics suite: every Store implementation must pass it unchanged
// (postgres_test.go and embedded_test.go run it), so the gateway behaves
// the same on one node and in a cluster.

// Durations of the lease tests. A lease of storeShortLease is certainly
// over after storeExpiryWait; the waits only go one way (something must
// have expired), so a slow machine cannot make them fail.
const (
	storeShortLease = 50 * time.Millisecond
	storeExpiryWait = 100 * time.Millisecond
)

func storeReq(tenant, keyHash, fingerprint string) BeginRequest {
	return BeginRequest{
		Tenant: tenant, KeyHash: keyHash, Fingerprint: fingerprint,
		Model: "content-writer", Owner: "owner-a",
		Lease: time.Hour, MaxProcessing: time.Hour,
	}
}

func storeBegin(t *testing.T, s Store, req BeginRequest, want Outcome) Task {
	t.Helper()
	res, err := s.Begin(context.Background(), req)
	if err != nil {
		t.Fatalf("Begin(%s/%s): %v", req.Tenant, req.KeyHash, err)
	}
	if res.Outcome != want {
		t.Fatalf("Begin(%s/%s): outcome %d, want %d (task %+v)", req.Tenant, req.KeyHash, res.Outcome, want, res.Task)
	}
	return res.Task
}

func storeGet(t *testing.T, s Store, tenant, keyHash string) (Task, []Attempt) {
	t.Helper()
	task, attempts, err := s.Get(context.Background(), tenant, keyHash)
	if err != nil {
		t.Fatalf("Get(%s/%s): %v", tenant, keyHash, err)
	}
	return task, attempts
}

func storeComplete(t *testing.T, s Store, tenant, keyHash string, fence int64, c Completion) {
	t.Helper()
	if err := s.Complete(context.Background(), tenant, keyHash, fence, c); err != nil {
		t.Fatalf("Complete(%s/%s, fence %d): %v", tenant, keyHash, fence, err)
	}
}

func storeWantFenced(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("%s: got error %v, want ErrFenced", what, err)
	}
}

// storeCompletion is a response with bytes that a lossy encoding would
// change (NUL, invalid UTF-8, CRLF).
func storeCompletion(ttl time.Duration) Completion {
	return Completion{
		Response: Response{
			Status:      201,
			ContentType: "text/event-stream",
			Body:        []byte("data: {\"x\":\"\x00\xff\"}\r\n\ndata: [DONE]\n\n"),
		},
		Usage: Usage{PromptTokens: 11, CompletionTokens: 22},
		TTL:   ttl,
	}
}

func testStoreSemantics(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("NewIsLeaderAtFence1", func(t *testing.T) {
		s := open(t)
		req := storeReq("t1", "k1", "fp1")
		req.Stream = true
		task := storeBegin(t, s, req, OutcomeLeader)
		if task.Fence != 1 || task.Status != StatusProcessing || task.LeaseOwner != "owner-a" ||
			task.LeaseUntil.IsZero() || !task.ExpiresAt.IsZero() || !task.Stream || task.Model != "content-writer" {
			t.Fatalf("unexpected new task: %+v", task)
		}
		got, attempts := storeGet(t, s, "t1", "k1")
		if got.Fence != 1 || got.Status != StatusProcessing || got.Fingerprint != "fp1" || len(attempts) != 0 || got.Response != nil {
			t.Fatalf("unexpected stored task: %+v, attempts %v", got, attempts)
		}
	})

	t.Run("ConcurrentBeginOneLeader", func(t *testing.T) {
		s := open(t)
		const n = 50
		var (
			wg       sync.WaitGroup
			start    = make(chan struct{})
			outcomes = make([]Outcome, n)
			errs     = make([]error, n)
		)
		for i := range n {
			wg.Go(func() {
				<-start
				req := storeReq("t1", "k1", "fp1")
				req.Owner = fmt.Sprintf("owner-%d", i)
				res, err := s.Begin(ctx, req)
				outcomes[i], errs[i] = res.Outcome, err
			})
		}
		close(start)
		wg.Wait()
		counts := map[Outcome]int{}
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Begin %d: %v", i, errs[i])
			}
			counts[outcomes[i]]++
		}
		if counts[OutcomeLeader] != 1 || counts[OutcomeInFlight] != n-1 {
			t.Fatalf("outcomes %v, want 1 leader and %d in flight", counts, n-1)
		}
	})

	t.Run("CompleteThenReplay", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeLeader)
		c := storeCompletion(time.Hour)
		storeComplete(t, s, "t1", "k1", 1, c)

		task := storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeCompleted)
		r := task.Response
		if r == nil || r.Status != 201 || r.ContentType != "text/event-stream" || !bytes.Equal(r.Body, c.Response.Body) {
			t.Fatalf("replayed response %+v, want %+v", r, c.Response)
		}
		if task.Usage != c.Usage || task.TooLarge || task.Fence != 1 || task.Status != StatusCompleted {
			t.Fatalf("unexpected replayed task: %+v", task)
		}
		got, _ := storeGet(t, s, "t1", "k1")
		if got.ExpiresAt.IsZero() || !got.LeaseUntil.IsZero() || got.LeaseOwner != "" || got.Response == nil ||
			!bytes.Equal(got.Response.Body, c.Response.Body) {
			t.Fatalf("unexpected completed task: %+v", got)
		}
		// A finished task takes no more writes, even at its own fence.
		storeWantFenced(t, "second Complete", s.Complete(ctx, "t1", "k1", 1, c))
		storeWantFenced(t, "Heartbeat after Complete", s.Heartbeat(ctx, "t1", "k1", 1, time.Hour))
	})

	t.Run("MismatchTouchesNothing", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "done", "fp1"), OutcomeLeader)
		storeComplete(t, s, "t1", "done", 1, storeCompletion(time.Hour))
		storeBegin(t, s, storeReq("t1", "busy", "fp1"), OutcomeLeader)

		for _, key := range []string{"done", "busy"} {
			before, beforeAttempts := storeGet(t, s, "t1", key)
			task := storeBegin(t, s, storeReq("t1", key, "fp2"), OutcomeMismatch)
			if task.Response != nil {
				t.Fatalf("%s: a mismatch exposed the stored response", key)
			}
			after, afterAttempts := storeGet(t, s, "t1", key)
			if !reflect.DeepEqual(before, after) || !reflect.DeepEqual(beforeAttempts, afterAttempts) {
				t.Fatalf("%s: mismatch changed the task:\nbefore %+v\nafter  %+v", key, before, after)
			}
		}
	})

	t.Run("FailedRestartsAtFence2", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeLeader)
		if err := s.Fail(ctx, "t1", "k1", 1, "all targets failed", time.Hour); err != nil {
			t.Fatalf("Fail: %v", err)
		}
		got, _ := storeGet(t, s, "t1", "k1")
		if got.Status != StatusFailed || got.Error != "all targets failed" || got.ExpiresAt.IsZero() || got.Response != nil {
			t.Fatalf("unexpected failed task: %+v", got)
		}
		req := storeReq("t1", "k1", "fp1")
		req.Owner = "owner-b"
		task := storeBegin(t, s, req, OutcomeLeader)
		if task.Fence != 2 || task.Status != StatusProcessing || task.LeaseOwner != "owner-b" || !task.ExpiresAt.IsZero() {
			t.Fatalf("unexpected restarted task: %+v", task)
		}
		storeWantFenced(t, "Complete at the failed fence", s.Complete(ctx, "t1", "k1", 1, storeCompletion(time.Hour)))
		storeComplete(t, s, "t1", "k1", 2, storeCompletion(time.Hour))
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeCompleted)
	})

	t.Run("ZombieReclaimedAndStaleFenceRefused", func(t *testing.T) {
		s := open(t)
		req := storeReq("t1", "k1", "fp1")
		req.Lease = storeShortLease
		storeBegin(t, s, req, OutcomeLeader)
		time.Sleep(storeExpiryWait)

		req = storeReq("t1", "k1", "fp1")
		req.Owner = "owner-b"
		task := storeBegin(t, s, req, OutcomeReclaimed)
		if task.Fence != 2 || task.LeaseOwner != "owner-b" || task.Status != StatusProcessing {
			t.Fatalf("unexpected reclaimed task: %+v", task)
		}
		// The acceptance criterion: a late write with fence 1 is refused.
		storeWantFenced(t, "Complete(fence 1)", s.Complete(ctx, "t1", "k1", 1, storeCompletion(time.Hour)))
		storeWantFenced(t, "Fail(fence 1)", s.Fail(ctx, "t1", "k1", 1, "late", time.Hour))
		storeWantFenced(t, "Heartbeat(fence 1)", s.Heartbeat(ctx, "t1", "k1", 1, time.Hour))
		storeWantFenced(t, "AddAttempt(fence 1)", s.AddAttempt(ctx, "t1", "k1", 1, Attempt{Provider: "p"}))
		got, attempts := storeGet(t, s, "t1", "k1")
		if got.Fence != 2 || got.Status != StatusProcessing || got.LeaseOwner != "owner-b" || len(attempts) != 0 {
			t.Fatalf("a stale write changed the task: %+v, attempts %v", got, attempts)
		}
		// The new leader is not disturbed by the old one.
		if err := s.AddAttempt(ctx, "t1", "k1", 2, Attempt{Provider: "p"}); err != nil {
			t.Fatalf("AddAttempt(fence 2): %v", err)
		}
		storeComplete(t, s, "t1", "k1", 2, storeCompletion(time.Hour))
	})

	t.Run("HeartbeatPreventsTakeOver", func(t *testing.T) {
		s := open(t)
		req := storeReq("t1", "k1", "fp1")
		// Without the heartbeat this lease would be over after the sleep.
		req.Lease = 2 * storeShortLease
		storeBegin(t, s, req, OutcomeLeader)
		if err := s.Heartbeat(ctx, "t1", "k1", 1, time.Hour); err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
		storeWantFenced(t, "Heartbeat(fence 2)", s.Heartbeat(ctx, "t1", "k1", 2, time.Hour))
		time.Sleep(3 * storeShortLease)
		task := storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeInFlight)
		if task.Fence != 1 || task.LeaseOwner != "owner-a" {
			t.Fatalf("unexpected in-flight task: %+v", task)
		}
		if n, err := s.ReclaimZombies(ctx, time.Hour, 10); err != nil || n != 0 {
			t.Fatalf("ReclaimZombies = %d, %v; want 0 (lease was extended)", n, err)
		}
	})

	t.Run("MaxProcessingTakeOver", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeLeader)
		time.Sleep(storeExpiryWait)
		// The lease (1h) is valid: only max_processing may end it.
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeInFlight)
		req := storeReq("t1", "k1", "fp1")
		req.MaxProcessing = storeShortLease
		req.Owner = "owner-b"
		task := storeBegin(t, s, req, OutcomeReclaimed)
		if task.Fence != 2 || task.LeaseOwner != "owner-b" {
			t.Fatalf("unexpected reclaimed task: %+v", task)
		}
		// The take-over restarted the max_processing clock.
		req.Owner = "owner-c"
		req.MaxProcessing = time.Hour
		storeBegin(t, s, req, OutcomeInFlight)
	})

	t.Run("TenantIsolation", func(t *testing.T) {
		s := open(t)
		a := storeBegin(t, s, storeReq("tenant-a", "same", "fp-a"), OutcomeLeader)
		// Same key hash, other tenant, other body: a new task, no mismatch.
		b := storeBegin(t, s, storeReq("tenant-b", "same", "fp-b"), OutcomeLeader)
		if a.Fence != 1 || b.Fence != 1 {
			t.Fatalf("fences %d and %d, want 1 and 1", a.Fence, b.Fence)
		}
		storeComplete(t, s, "tenant-a", "same", 1, storeCompletion(time.Hour))
		storeBegin(t, s, storeReq("tenant-b", "same", "fp-b"), OutcomeInFlight)
		storeBegin(t, s, storeReq("tenant-a", "same", "fp-a"), OutcomeCompleted)
		if got, _ := storeGet(t, s, "tenant-b", "same"); got.Status != StatusProcessing || got.Response != nil {
			t.Fatalf("tenant-b's task changed: %+v", got)
		}
	})

	t.Run("AttemptsInOrder", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeLeader)
		// Microseconds: the precision both stores keep.
		started := time.Now().Truncate(time.Millisecond)
		want := []Attempt{
			{Provider: "gemini", Model: "gemini-2.0-flash", Outcome: "timeout", Error: "first byte timeout", StartedAt: started, DurationMS: 30000},
			{Provider: "openrouter", Model: "google/gemini", Outcome: "error", HTTPStatus: 502, Error: "bad gateway", StartedAt: started.Add(time.Second), DurationMS: 12},
			{Provider: "groq", Model: "llama", Outcome: "success", HTTPStatus: 200, StartedAt: started.Add(2 * time.Second), DurationMS: 800, Usage: Usage{PromptTokens: 5, CompletionTokens: 7}},
		}
		for i, a := range want[:2] {
			a.N, a.Fence = 99, 99 // assigned by the store, not the caller
			if err := s.AddAttempt(ctx, "t1", "k1", 1, a); err != nil {
				t.Fatalf("AddAttempt %d: %v", i, err)
			}
		}
		if err := s.Fail(ctx, "t1", "k1", 1, "all targets failed", time.Hour); err != nil {
			t.Fatalf("Fail: %v", err)
		}
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeLeader)
		if err := s.AddAttempt(ctx, "t1", "k1", 2, want[2]); err != nil {
			t.Fatalf("AddAttempt at fence 2: %v", err)
		}
		for i := range want {
			want[i].N = i + 1
			want[i].Fence = 1
		}
		want[2].Fence = 2

		_, got := storeGet(t, s, "t1", "k1")
		if len(got) != len(want) {
			t.Fatalf("got %d attempts, want %d: %+v", len(got), len(want), got)
		}
		for i := range want {
			g, w := got[i], want[i]
			if !g.StartedAt.Equal(w.StartedAt) {
				t.Errorf("attempt %d: started %v, want %v", i, g.StartedAt, w.StartedAt)
			}
			g.StartedAt, w.StartedAt = time.Time{}, time.Time{}
			if g != w {
				t.Errorf("attempt %d:\ngot  %+v\nwant %+v", i, g, w)
			}
		}
	})

	t.Run("ConcurrentAttemptsNumbered", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeLeader)
		const n = 10
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { errs[i] = s.AddAttempt(ctx, "t1", "k1", 1, Attempt{Provider: "p", Outcome: "error"}) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("AddAttempt %d: %v", i, err)
			}
		}
		_, got := storeGet(t, s, "t1", "k1")
		if len(got) != n {
			t.Fatalf("got %d attempts, want %d", len(got), n)
		}
		for i, a := range got {
			if a.N != i+1 || a.Fence != 1 || a.StartedAt.IsZero() {
				t.Fatalf("attempt %d: %+v, want n=%d fence=1 and a start time", i, a, i+1)
			}
		}
	})

	t.Run("GetUnknown", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeLeader)
		for _, tk := range [][2]string{{"t1", "nope"}, {"t2", "k1"}} {
			if _, _, err := s.Get(ctx, tk[0], tk[1]); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(%s/%s): %v, want ErrNotFound", tk[0], tk[1], err)
			}
		}
	})

	t.Run("ReclaimZombies", func(t *testing.T) {
		s := open(t)
		short := storeReq("t1", "zombie", "fp1")
		short.Lease = storeShortLease
		storeBegin(t, s, short, OutcomeLeader)
		storeBegin(t, s, storeReq("t1", "valid", "fp1"), OutcomeLeader)
		storeBegin(t, s, storeReq("t1", "valid2", "fp1"), OutcomeLeader)
		storeBegin(t, s, storeReq("t1", "done", "fp1"), OutcomeLeader)
		storeComplete(t, s, "t1", "done", 1, storeCompletion(time.Hour))
		time.Sleep(storeExpiryWait)

		if n, err := s.ReclaimZombies(ctx, time.Hour, 10); err != nil || n != 1 {
			t.Fatalf("ReclaimZombies = %d, %v; want 1", n, err)
		}
		z, _ := storeGet(t, s, "t1", "zombie")
		if z.Status != StatusFailed || z.Fence != 2 || z.Error != "lease expired: reclaimed" || z.ExpiresAt.IsZero() || z.LeaseOwner != "" {
			t.Fatalf("unexpected reclaimed task: %+v", z)
		}
		storeWantFenced(t, "Complete of the reclaimed worker", s.Complete(ctx, "t1", "zombie", 1, storeCompletion(time.Hour)))
		if v, _ := storeGet(t, s, "t1", "valid"); v.Status != StatusProcessing || v.Fence != 1 {
			t.Fatalf("a task with a valid lease was touched: %+v", v)
		}
		if d, _ := storeGet(t, s, "t1", "done"); d.Status != StatusCompleted || d.Fence != 1 {
			t.Fatalf("a completed task was touched: %+v", d)
		}
		if n, err := s.ReclaimZombies(ctx, time.Hour, 10); err != nil || n != 0 {
			t.Fatalf("second ReclaimZombies = %d, %v; want 0", n, err)
		}
		// max_processing: both tasks with a valid lease started more than
		// storeShortLease ago; the limit caps each pass.
		if n, err := s.ReclaimZombies(ctx, storeShortLease, 1); err != nil || n != 1 {
			t.Fatalf("ReclaimZombies(limit 1) = %d, %v; want 1", n, err)
		}
		if n, err := s.ReclaimZombies(ctx, storeShortLease, 10); err != nil || n != 1 {
			t.Fatalf("ReclaimZombies(rest) = %d, %v; want 1", n, err)
		}
		for _, key := range []string{"valid", "valid2"} {
			if v, _ := storeGet(t, s, "t1", key); v.Status != StatusFailed || v.Fence != 2 {
				t.Fatalf("%s: task past max_processing not reclaimed: %+v", key, v)
			}
		}
		// The client's retry restarts the reclaimed task.
		if task := storeBegin(t, s, storeReq("t1", "zombie", "fp1"), OutcomeLeader); task.Fence != 3 {
			t.Fatalf("restart after reclaim: fence %d, want 3", task.Fence)
		}
	})

	t.Run("DeleteExpiredInBatches", func(t *testing.T) {
		s := open(t)
		const expired = 25
		for i := range expired {
			key := fmt.Sprintf("old-%02d", i)
			storeBegin(t, s, storeReq("t1", key, "fp1"), OutcomeLeader)
			if err := s.AddAttempt(ctx, "t1", key, 1, Attempt{Provider: "p"}); err != nil {
				t.Fatalf("AddAttempt: %v", err)
			}
			if i%5 == 0 {
				if err := s.Fail(ctx, "t1", key, 1, "boom", time.Millisecond); err != nil {
					t.Fatalf("Fail: %v", err)
				}
			} else {
				storeComplete(t, s, "t1", key, 1, storeCompletion(time.Millisecond))
			}
		}
		short := storeReq("t1", "processing", "fp1")
		short.Lease = time.Millisecond // even a zombie is not deleted, only reclaimed
		storeBegin(t, s, short, OutcomeLeader)
		storeBegin(t, s, storeReq("t1", "fresh", "fp1"), OutcomeLeader)
		storeComplete(t, s, "t1", "fresh", 1, storeCompletion(time.Hour))
		time.Sleep(storeExpiryWait)

		for i, want := range []int{10, 10, 5, 0} {
			n, err := s.DeleteExpired(ctx, 10)
			if err != nil || n != want {
				t.Fatalf("DeleteExpired pass %d = %d, %v; want %d", i, n, err, want)
			}
		}
		for i := range expired {
			if _, _, err := s.Get(ctx, "t1", fmt.Sprintf("old-%02d", i)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("old-%02d: %v, want ErrNotFound", i, err)
			}
		}
		storeGet(t, s, "t1", "processing")
		storeGet(t, s, "t1", "fresh")
		// A deleted key is new again, without the old attempts.
		task := storeBegin(t, s, storeReq("t1", "old-03", "fp1"), OutcomeLeader)
		if _, attempts := storeGet(t, s, "t1", "old-03"); task.Fence != 1 || len(attempts) != 0 {
			t.Fatalf("re-created task: fence %d, %d attempts; want 1 and 0", task.Fence, len(attempts))
		}
	})

	t.Run("ExpiredTaskRestarts", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeLeader)
		if err := s.AddAttempt(ctx, "t1", "k1", 1, Attempt{Provider: "p"}); err != nil {
			t.Fatalf("AddAttempt: %v", err)
		}
		storeComplete(t, s, "t1", "k1", 1, storeCompletion(time.Millisecond))
		time.Sleep(storeExpiryWait)
		// Not yet deleted by the reaper, but expired: the key is free, even
		// for another body.
		task := storeBegin(t, s, storeReq("t1", "k1", "fp2"), OutcomeLeader)
		if task.Fence != 2 || task.Fingerprint != "fp2" || task.Response != nil || task.Usage != (Usage{}) || !task.ExpiresAt.IsZero() {
			t.Fatalf("unexpected restarted task: %+v", task)
		}
		got, attempts := storeGet(t, s, "t1", "k1")
		if got.Status != StatusProcessing || got.Response != nil || len(attempts) != 0 {
			t.Fatalf("restarted task kept old data: %+v, attempts %v", got, attempts)
		}
		storeWantFenced(t, "Complete of the expired fence", s.Complete(ctx, "t1", "k1", 1, storeCompletion(time.Hour)))
	})

	t.Run("StaleGenerationRefused", func(t *testing.T) {
		s := open(t)
		old := storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeLeader)
		if err := s.Fail(ctx, "t1", "k1", 1, "gone", time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(storeExpiryWait)
		if n, err := s.DeleteExpired(ctx, 10); err != nil || n != 1 {
			t.Fatalf("DeleteExpired = %d, %v", n, err)
		}
		// The key is used again: a new task, at fence 1 again.
		fresh := storeBegin(t, s, storeReq("t1", "k1", "fp2"), OutcomeLeader)
		if fresh.Fence != 1 || fresh.CreatedAt.Equal(old.CreatedAt) {
			t.Fatalf("new task: fence %d, created %v (old %v)", fresh.Fence, fresh.CreatedAt, old.CreatedAt)
		}
		stale := storeCompletion(time.Hour)
		stale.Generation = old.CreatedAt
		storeWantFenced(t, "Complete by the old task's leader", s.Complete(ctx, "t1", "k1", 1, stale))
		current := storeCompletion(time.Hour)
		current.Generation = fresh.CreatedAt
		storeComplete(t, s, "t1", "k1", 1, current)
	})

	t.Run("MaxAgeRestartsOldAnswers", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeLeader)
		storeComplete(t, s, "t1", "k1", 1, storeCompletion(time.Hour))
		young := storeReq("t1", "k1", "fp1")
		young.MaxAge = time.Hour
		storeBegin(t, s, young, OutcomeCompleted)
		time.Sleep(storeExpiryWait)
		old := storeReq("t1", "k1", "fp1")
		old.MaxAge = time.Millisecond
		if task := storeBegin(t, s, old, OutcomeLeader); task.Fence != 2 || task.Response != nil {
			t.Fatalf("an answer older than MaxAge was not restarted: %+v", task)
		}
		// MaxAge never touches a running task.
		storeBegin(t, s, old, OutcomeInFlight)
	})

	t.Run("TooLargeReplaysWithoutResponse", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeLeader)
		c := storeCompletion(time.Hour)
		c.TooLarge = true
		storeComplete(t, s, "t1", "k1", 1, c)
		task := storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeCompleted)
		if !task.TooLarge || task.Response != nil || task.Usage != c.Usage {
			t.Fatalf("unexpected too-large replay: %+v", task)
		}
		if got, _ := storeGet(t, s, "t1", "k1"); !got.TooLarge || got.Response != nil {
			t.Fatalf("unexpected too-large task: %+v", got)
		}
	})

	t.Run("EmptyBodyReplays", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeLeader)
		storeComplete(t, s, "t1", "k1", 1, Completion{Response: Response{Status: 204}, TTL: time.Hour})
		task := storeBegin(t, s, storeReq("t1", "k1", "fp1"), OutcomeCompleted)
		if task.Response == nil || task.Response.Status != 204 || len(task.Response.Body) != 0 {
			t.Fatalf("unexpected replay of an empty response: %+v", task.Response)
		}
	})

	t.Run("Health", func(t *testing.T) {
		s := open(t)
		h, err := s.Health(ctx)
		if err != nil {
			t.Fatalf("Health: %v", err)
		}
		if len(h.Tables) == 0 || h.OldestProcessing != 0 {
			t.Fatalf("Health of an empty store: %+v", h)
		}
		for _, tb := range h.Tables {
			if tb.Name == "" || tb.Bytes <= 0 {
				t.Fatalf("table health %+v: want a name and a size", tb)
			}
		}
		storeBegin(t, s, storeReq("t1", "old", "fp1"), OutcomeLeader)
		time.Sleep(storeExpiryWait)
		storeBegin(t, s, storeReq("t1", "young", "fp1"), OutcomeLeader)
		storeBegin(t, s, storeReq("t1", "done", "fp1"), OutcomeLeader)
		storeComplete(t, s, "t1", "done", 1, storeCompletion(time.Hour))
		if h, err = s.Health(ctx); err != nil || h.OldestProcessing < storeExpiryWait || h.OldestProcessing > time.Hour {
			t.Fatalf("Health = %+v, %v; want the oldest processing task over %v old", h, err, storeExpiryWait)
		}
		storeComplete(t, s, "t1", "old", 1, storeCompletion(time.Hour))
		storeComplete(t, s, "t1", "young", 1, storeCompletion(time.Hour))
		if h, err = s.Health(ctx); err != nil || h.OldestProcessing != 0 {
			t.Fatalf("Health = %+v, %v; want no processing task", h, err)
		}
	})

	t.Run("Ping", func(t *testing.T) {
		s := open(t)
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

// testStoreDurable checks that what one store wrote is there after it was
// closed and another opened on the same data.
func testStoreDurable(t *testing.T, s Store, reopen func() Store) {
	ctx := context.Background()
	storeBegin(t, s, storeReq("t1", "done", "fp1"), OutcomeLeader)
	if err := s.AddAttempt(ctx, "t1", "done", 1, Attempt{Provider: "gemini", Outcome: "success", HTTPStatus: 200}); err != nil {
		t.Fatalf("AddAttempt: %v", err)
	}
	c := storeCompletion(time.Hour)
	storeComplete(t, s, "t1", "done", 1, c)
	storeBegin(t, s, storeReq("t1", "busy", "fp1"), OutcomeLeader)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = reopen()
	task := storeBegin(t, s, storeReq("t1", "done", "fp1"), OutcomeCompleted)
	if task.Response == nil || !bytes.Equal(task.Response.Body, c.Response.Body) || task.Usage != c.Usage {
		t.Fatalf("completed task lost across reopen: %+v", task)
	}
	if _, attempts := storeGet(t, s, "t1", "done"); len(attempts) != 1 || attempts[0].Provider != "gemini" {
		t.Fatalf("attempts lost across reopen: %+v", attempts)
	}
	storeBegin(t, s, storeReq("t1", "busy", "fp1"), OutcomeInFlight)
	storeComplete(t, s, "t1", "busy", 1, c)
}
