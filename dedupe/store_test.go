package dedupe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
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

func storeBegin(t *testing.T, s Store, req BeginRequest, want Verdict) Task {
	t.Helper()
	res, err := s.Begin(context.Background(), req)
	if err != nil {
		t.Fatalf("Begin(%s/%s): %v", req.Tenant, req.KeyHash, err)
	}
	if res.Verdict != want {
		t.Fatalf("Begin(%s/%s): verdict %d, want %d (task %+v)", req.Tenant, req.KeyHash, res.Verdict, want, res.Task)
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

func storeFail(t *testing.T, s Store, tenant, keyHash string, fence int64, reason string, ttl time.Duration) {
	t.Helper()
	if err := s.Fail(context.Background(), tenant, keyHash, fence, Failure{Reason: reason, TTL: ttl}); err != nil {
		t.Fatalf("Fail(%s/%s, fence %d): %v", tenant, keyHash, fence, err)
	}
}

// storeLedgerReq is a Begin request whose first attempt goes to provider.
func storeLedgerReq(tenant, keyHash, fingerprint, provider string) BeginRequest {
	req := storeReq(tenant, keyHash, fingerprint)
	req.First = Attempt{Provider: provider, Model: provider + "-model"}
	return req
}

// storeBeginLedger is storeBegin returning the whole result.
func storeBeginLedger(t *testing.T, s Store, req BeginRequest, want Verdict) BeginResult {
	t.Helper()
	res, err := s.Begin(context.Background(), req)
	if err != nil {
		t.Fatalf("Begin(%s/%s): %v", req.Tenant, req.KeyHash, err)
	}
	if res.Verdict != want {
		t.Fatalf("Begin(%s/%s): verdict %d, want %d (task %+v)", req.Tenant, req.KeyHash, res.Verdict, want, res.Task)
	}
	return res
}

// storeWantAttempts checks n, fence, provider and outcome of the stored attempts.
func storeWantAttempts(t *testing.T, got []Attempt, want ...Attempt) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d attempts, want %d:\ngot  %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.N != w.N || g.Fence != w.Fence || g.Provider != w.Provider || g.Outcome != w.Outcome || g.StartedAt.IsZero() {
			t.Fatalf("attempt %d:\ngot  %+v\nwant n %d, fence %d, provider %q, outcome %q and a start time",
				i, g, w.N, w.Fence, w.Provider, w.Outcome)
		}
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

// testStoreSemantics runs the suite on stores made by open. With bubble,
// each case runs in a testing/synctest bubble, where the sleeps that wait
// out a lease take no real time; that fits a store on this process's
// clock (Embedded), never one that reads a server's clock (Postgres).
func testStoreSemantics(t *testing.T, bubble bool, open func(t *testing.T) Store) {
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			if bubble {
				synctest.Test(t, f)
				return
			}
			f(t)
		})
	}
	ctx := context.Background()

	run("NewIsLeaderAtFence1", func(t *testing.T) {
		s := open(t)
		req := storeReq("t1", "k1", "fp1")
		req.Stream = true
		task := storeBegin(t, s, req, VerdictLeader)
		if task.Fence != 1 || task.Status != StatusProcessing || task.LeaseOwner != "owner-a" ||
			task.LeaseUntil.IsZero() || !task.ExpiresAt.IsZero() || !task.Stream || task.Model != "content-writer" {
			t.Fatalf("unexpected new task: %+v", task)
		}
		got, attempts := storeGet(t, s, "t1", "k1")
		if got.Fence != 1 || got.Status != StatusProcessing || got.Fingerprint != "fp1" || len(attempts) != 0 || got.Response != nil {
			t.Fatalf("unexpected stored task: %+v, attempts %v", got, attempts)
		}
	})

	run("ConcurrentBeginOneLeader", func(t *testing.T) {
		s := open(t)
		const n = 50
		var (
			wg       sync.WaitGroup
			start    = make(chan struct{})
			verdicts = make([]Verdict, n)
			errs     = make([]error, n)
		)
		for i := range n {
			wg.Go(func() {
				<-start
				req := storeReq("t1", "k1", "fp1")
				req.Owner = fmt.Sprintf("owner-%d", i)
				res, err := s.Begin(ctx, req)
				verdicts[i], errs[i] = res.Verdict, err
			})
		}
		close(start)
		wg.Wait()
		counts := map[Verdict]int{}
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Begin %d: %v", i, errs[i])
			}
			counts[verdicts[i]]++
		}
		if counts[VerdictLeader] != 1 || counts[VerdictInFlight] != n-1 {
			t.Fatalf("verdicts %v, want 1 leader and %d in flight", counts, n-1)
		}
	})

	run("CompleteThenReplay", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictLeader)
		c := storeCompletion(time.Hour)
		storeComplete(t, s, "t1", "k1", 1, c)

		task := storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictCompleted)
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

	run("MismatchTouchesNothing", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "done", "fp1"), VerdictLeader)
		storeComplete(t, s, "t1", "done", 1, storeCompletion(time.Hour))
		storeBegin(t, s, storeReq("t1", "busy", "fp1"), VerdictLeader)

		for _, key := range []string{"done", "busy"} {
			before, beforeAttempts := storeGet(t, s, "t1", key)
			task := storeBegin(t, s, storeReq("t1", key, "fp2"), VerdictMismatch)
			if task.Response != nil {
				t.Fatalf("%s: a mismatch exposed the stored response", key)
			}
			after, afterAttempts := storeGet(t, s, "t1", key)
			if !reflect.DeepEqual(before, after) || !reflect.DeepEqual(beforeAttempts, afterAttempts) {
				t.Fatalf("%s: mismatch changed the task:\nbefore %+v\nafter  %+v", key, before, after)
			}
		}
	})

	run("FailedRestartsAtFence2", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictLeader)
		storeFail(t, s, "t1", "k1", 1, "all targets failed", time.Hour)
		got, _ := storeGet(t, s, "t1", "k1")
		if got.Status != StatusFailed || got.Error != "all targets failed" || got.ExpiresAt.IsZero() || got.Response != nil {
			t.Fatalf("unexpected failed task: %+v", got)
		}
		req := storeReq("t1", "k1", "fp1")
		req.Owner = "owner-b"
		task := storeBegin(t, s, req, VerdictLeader)
		if task.Fence != 2 || task.Status != StatusProcessing || task.LeaseOwner != "owner-b" || !task.ExpiresAt.IsZero() {
			t.Fatalf("unexpected restarted task: %+v", task)
		}
		storeWantFenced(t, "Complete at the failed fence", s.Complete(ctx, "t1", "k1", 1, storeCompletion(time.Hour)))
		storeComplete(t, s, "t1", "k1", 2, storeCompletion(time.Hour))
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictCompleted)
	})

	run("ZombieReclaimedAndStaleFenceRefused", func(t *testing.T) {
		s := open(t)
		req := storeReq("t1", "k1", "fp1")
		req.Lease = storeShortLease
		storeBegin(t, s, req, VerdictLeader)
		time.Sleep(storeExpiryWait)

		req = storeReq("t1", "k1", "fp1")
		req.Owner = "owner-b"
		task := storeBegin(t, s, req, VerdictReclaimed)
		if task.Fence != 2 || task.LeaseOwner != "owner-b" || task.Status != StatusProcessing {
			t.Fatalf("unexpected reclaimed task: %+v", task)
		}
		// The acceptance criterion: a late write with fence 1 is refused.
		storeWantFenced(t, "Complete(fence 1)", s.Complete(ctx, "t1", "k1", 1, storeCompletion(time.Hour)))
		storeWantFenced(t, "Fail(fence 1)", s.Fail(ctx, "t1", "k1", 1, Failure{Reason: "late", TTL: time.Hour}))
		storeWantFenced(t, "Heartbeat(fence 1)", s.Heartbeat(ctx, "t1", "k1", 1, time.Hour))
		storeWantFenced(t, "StartAttempt(fence 1)", s.StartAttempt(ctx, "t1", "k1", 1,
			AttemptStart{Next: Attempt{N: 1, Provider: "p"}, Lease: time.Hour}))
		got, attempts := storeGet(t, s, "t1", "k1")
		if got.Fence != 2 || got.Status != StatusProcessing || got.LeaseOwner != "owner-b" || len(attempts) != 0 {
			t.Fatalf("a stale write changed the task: %+v, attempts %v", got, attempts)
		}
		// The new leader is not disturbed by the old one.
		if err := s.StartAttempt(ctx, "t1", "k1", 2, AttemptStart{Next: Attempt{N: 1, Provider: "p"}, Lease: time.Hour}); err != nil {
			t.Fatalf("StartAttempt(fence 2): %v", err)
		}
		storeComplete(t, s, "t1", "k1", 2, storeCompletion(time.Hour))
	})

	run("HeartbeatPreventsTakeOver", func(t *testing.T) {
		s := open(t)
		req := storeReq("t1", "k1", "fp1")
		// Without the heartbeat this lease would be over after the sleep.
		req.Lease = 2 * storeShortLease
		storeBegin(t, s, req, VerdictLeader)
		if err := s.Heartbeat(ctx, "t1", "k1", 1, time.Hour); err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
		storeWantFenced(t, "Heartbeat(fence 2)", s.Heartbeat(ctx, "t1", "k1", 2, time.Hour))
		time.Sleep(3 * storeShortLease)
		task := storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictInFlight)
		if task.Fence != 1 || task.LeaseOwner != "owner-a" {
			t.Fatalf("unexpected in-flight task: %+v", task)
		}
		if r, err := s.ReclaimZombies(ctx, time.Hour, 10); err != nil || r.Tasks != 0 {
			t.Fatalf("ReclaimZombies = %+v, %v; want 0 (lease was extended)", r, err)
		}
	})

	run("MaxProcessingTakeOver", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictLeader)
		time.Sleep(storeExpiryWait)
		// The lease (1h) is valid: only max_processing may end it.
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictInFlight)
		req := storeReq("t1", "k1", "fp1")
		req.MaxProcessing = storeShortLease
		req.Owner = "owner-b"
		task := storeBegin(t, s, req, VerdictReclaimed)
		if task.Fence != 2 || task.LeaseOwner != "owner-b" {
			t.Fatalf("unexpected reclaimed task: %+v", task)
		}
		// The take-over restarted the max_processing clock.
		req.Owner = "owner-c"
		req.MaxProcessing = time.Hour
		storeBegin(t, s, req, VerdictInFlight)
	})

	run("TenantIsolation", func(t *testing.T) {
		s := open(t)
		a := storeBegin(t, s, storeReq("tenant-a", "same", "fp-a"), VerdictLeader)
		// Same key hash, other tenant, other body: a new task, no mismatch.
		b := storeBegin(t, s, storeReq("tenant-b", "same", "fp-b"), VerdictLeader)
		if a.Fence != 1 || b.Fence != 1 {
			t.Fatalf("fences %d and %d, want 1 and 1", a.Fence, b.Fence)
		}
		storeComplete(t, s, "tenant-a", "same", 1, storeCompletion(time.Hour))
		storeBegin(t, s, storeReq("tenant-b", "same", "fp-b"), VerdictInFlight)
		storeBegin(t, s, storeReq("tenant-a", "same", "fp-a"), VerdictCompleted)
		if got, _ := storeGet(t, s, "tenant-b", "same"); got.Status != StatusProcessing || got.Response != nil {
			t.Fatalf("tenant-b's task changed: %+v", got)
		}
	})

	run("LedgerNewTask", func(t *testing.T) {
		s := open(t)
		// Begin writes the first attempt as started, with the task.
		res := storeBeginLedger(t, s, storeLedgerReq("t1", "k1", "fp1", "gemini"), VerdictLeader)
		if res.Started == nil || res.Started.N != 1 || res.Started.Fence != 1 || res.Started.Outcome != AttemptStarted || len(res.Abandoned) != 0 {
			t.Fatalf("Begin of a new key: started %+v, abandoned %v", res.Started, res.Abandoned)
		}
		_, attempts := storeGet(t, s, "t1", "k1")
		storeWantAttempts(t, attempts, Attempt{N: 1, Fence: 1, Provider: "gemini", Outcome: AttemptStarted})
		// Complete finalises it.
		started := time.Now().Truncate(time.Millisecond) // microseconds: what both stores keep
		final := Attempt{N: 1, Provider: "gemini", Model: "gemini-model", Outcome: "success", HTTPStatus: 200,
			StartedAt: started, DurationMS: 800, Usage: Usage{PromptTokens: 5, CompletionTokens: 7}}
		c := storeCompletion(time.Hour)
		c.Attempt = &final
		storeComplete(t, s, "t1", "k1", 1, c)
		_, attempts = storeGet(t, s, "t1", "k1")
		final.Fence = 1
		if len(attempts) != 1 || !attempts[0].StartedAt.Equal(started) {
			t.Fatalf("attempts after Complete: %+v, want one started at %v", attempts, started)
		}
		attempts[0].StartedAt, final.StartedAt = time.Time{}, time.Time{}
		if attempts[0] != final {
			t.Fatalf("attempt after Complete:\ngot  %+v\nwant %+v", attempts[0], final)
		}
		// Without First no attempt is written.
		if res := storeBeginLedger(t, s, storeReq("t1", "k2", "fp1"), VerdictLeader); res.Started != nil {
			t.Fatalf("Begin without First started %+v", res.Started)
		}
	})

	run("LedgerFurtherAttempts", func(t *testing.T) {
		s := open(t)
		storeBeginLedger(t, s, storeLedgerReq("t1", "k1", "fp1", "gemini"), VerdictLeader)
		// One write finishes attempt 1 and starts attempt 2.
		err := s.StartAttempt(ctx, "t1", "k1", 1, AttemptStart{
			Finished: &Attempt{N: 1, Provider: "gemini", Outcome: "timeout", Error: "first byte timeout", DurationMS: 30000},
			Next:     Attempt{N: 2, Provider: "openrouter", Model: "m2"},
			Lease:    time.Hour,
		})
		if err != nil {
			t.Fatalf("StartAttempt: %v", err)
		}
		_, attempts := storeGet(t, s, "t1", "k1")
		storeWantAttempts(t, attempts,
			Attempt{N: 1, Fence: 1, Provider: "gemini", Outcome: "timeout"},
			Attempt{N: 2, Fence: 1, Provider: "openrouter", Outcome: AttemptStarted})
		if attempts[0].Error != "first byte timeout" || attempts[0].DurationMS != 30000 || attempts[1].Model != "m2" {
			t.Fatalf("attempts %+v", attempts)
		}
		// Fail finalises the last one.
		if err := s.Fail(ctx, "t1", "k1", 1, Failure{Reason: "all targets failed", TTL: time.Hour,
			Attempt: &Attempt{N: 2, Provider: "openrouter", Outcome: "error", HTTPStatus: 502}}); err != nil {
			t.Fatalf("Fail: %v", err)
		}
		// The retry's first attempt comes after them, at fence 2; nothing
		// was left started, so nothing is abandoned.
		res := storeBeginLedger(t, s, storeLedgerReq("t1", "k1", "fp1", "gemini"), VerdictLeader)
		if res.Started == nil || res.Started.N != 3 || res.Started.Fence != 2 || len(res.Abandoned) != 0 {
			t.Fatalf("restart: started %+v, abandoned %v; want attempt 3 at fence 2", res.Started, res.Abandoned)
		}
		_, attempts = storeGet(t, s, "t1", "k1")
		storeWantAttempts(t, attempts,
			Attempt{N: 1, Fence: 1, Provider: "gemini", Outcome: "timeout"},
			Attempt{N: 2, Fence: 1, Provider: "openrouter", Outcome: "error"},
			Attempt{N: 3, Fence: 2, Provider: "gemini", Outcome: AttemptStarted})
		// A stale leader cannot rewrite an attempt of another fence.
		storeWantFenced(t, "StartAttempt(fence 1)", s.StartAttempt(ctx, "t1", "k1", 1,
			AttemptStart{Finished: &Attempt{N: 2, Outcome: "success"}, Next: Attempt{N: 3, Provider: "x"}, Lease: time.Hour}))
		// StartAttempt extends the lease as a heartbeat does.
		before, _ := storeGet(t, s, "t1", "k1")
		if err := s.StartAttempt(ctx, "t1", "k1", 2, AttemptStart{
			Finished: &Attempt{N: 3, Provider: "gemini", Outcome: "error"}, Next: Attempt{N: 4, Provider: "groq"}, Lease: 2 * time.Hour,
		}); err != nil {
			t.Fatalf("StartAttempt(fence 2): %v", err)
		}
		after, attempts := storeGet(t, s, "t1", "k1")
		if !after.LeaseUntil.After(before.LeaseUntil) {
			t.Fatalf("StartAttempt did not extend the lease: %v then %v", before.LeaseUntil, after.LeaseUntil)
		}
		storeWantAttempts(t, attempts[2:],
			Attempt{N: 3, Fence: 2, Provider: "gemini", Outcome: "error"},
			Attempt{N: 4, Fence: 2, Provider: "groq", Outcome: AttemptStarted})
	})

	run("LedgerTakeOverAbandons", func(t *testing.T) {
		s := open(t)
		req := storeLedgerReq("t1", "k1", "fp1", "gemini")
		req.Lease = storeShortLease
		storeBeginLedger(t, s, req, VerdictLeader)
		if err := s.StartAttempt(ctx, "t1", "k1", 1, AttemptStart{
			Finished: &Attempt{N: 1, Provider: "gemini", Outcome: "error"}, Next: Attempt{N: 2, Provider: "openrouter"}, Lease: storeShortLease,
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(storeExpiryWait)
		// The leader died mid-call: the take-over marks its started
		// attempt abandoned and starts its own after it, in one transaction.
		req = storeLedgerReq("t1", "k1", "fp1", "gemini")
		req.Owner = "owner-b"
		res := storeBeginLedger(t, s, req, VerdictReclaimed)
		if len(res.Abandoned) != 1 || res.Abandoned[0].N != 2 || res.Abandoned[0].Fence != 1 || res.Abandoned[0].Provider != "openrouter" {
			t.Fatalf("abandoned %+v, want attempt 2 of fence 1 (openrouter)", res.Abandoned)
		}
		if res.Started == nil || res.Started.N != 3 || res.Started.Fence != 2 {
			t.Fatalf("started %+v, want attempt 3 at fence 2", res.Started)
		}
		_, attempts := storeGet(t, s, "t1", "k1")
		storeWantAttempts(t, attempts,
			Attempt{N: 1, Fence: 1, Provider: "gemini", Outcome: "error"},
			Attempt{N: 2, Fence: 1, Provider: "openrouter", Outcome: AttemptAbandoned},
			Attempt{N: 3, Fence: 2, Provider: "gemini", Outcome: AttemptStarted})
		if attempts[1].Error == "" {
			t.Fatalf("an abandoned attempt says nothing: %+v", attempts[1])
		}
		// The dead leader's late final record is refused.
		storeWantFenced(t, "Complete(fence 1)", s.Complete(ctx, "t1", "k1", 1, Completion{TTL: time.Hour,
			Attempt: &Attempt{N: 2, Provider: "openrouter", Outcome: "success"}}))
		if _, again := storeGet(t, s, "t1", "k1"); again[1].Outcome != AttemptAbandoned {
			t.Fatalf("a fenced Complete rewrote the abandoned attempt: %+v", again[1])
		}
	})

	run("LedgerReclaimAbandons", func(t *testing.T) {
		s := open(t)
		for _, key := range []string{"z1", "z2"} {
			req := storeLedgerReq("t1", key, "fp1", "gemini")
			req.Lease = storeShortLease
			storeBeginLedger(t, s, req, VerdictLeader)
		}
		// Finished attempts are not abandoned.
		req := storeLedgerReq("t1", "z3", "fp1", "groq")
		req.Lease = storeShortLease
		storeBeginLedger(t, s, req, VerdictLeader)
		if err := s.StartAttempt(ctx, "t1", "z3", 1, AttemptStart{
			Finished: &Attempt{N: 1, Provider: "groq", Outcome: "timeout"}, Next: Attempt{N: 2, Provider: "openrouter"}, Lease: storeShortLease,
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(storeExpiryWait)
		r, err := s.ReclaimZombies(ctx, time.Hour, 10)
		if err != nil || r.Tasks != 3 || r.Abandoned["gemini"] != 2 || r.Abandoned["openrouter"] != 1 || r.Abandoned["groq"] != 0 {
			t.Fatalf("ReclaimZombies = %+v, %v; want 3 tasks, abandoned gemini 2 and openrouter 1", r, err)
		}
		_, attempts := storeGet(t, s, "t1", "z3")
		storeWantAttempts(t, attempts,
			Attempt{N: 1, Fence: 1, Provider: "groq", Outcome: "timeout"},
			Attempt{N: 2, Fence: 1, Provider: "openrouter", Outcome: AttemptAbandoned})
		// The client's retry starts after them; nothing is left to abandon.
		res := storeBeginLedger(t, s, storeLedgerReq("t1", "z3", "fp1", "groq"), VerdictLeader)
		if res.Task.Fence != 3 || res.Started == nil || res.Started.N != 3 || len(res.Abandoned) != 0 {
			t.Fatalf("restart after reclaim: %+v", res)
		}
	})

	run("LedgerExpiredRestartsAtOne", func(t *testing.T) {
		s := open(t)
		storeBeginLedger(t, s, storeLedgerReq("t1", "k1", "fp1", "gemini"), VerdictLeader)
		c := storeCompletion(time.Millisecond)
		c.Attempt = &Attempt{N: 1, Provider: "gemini", Outcome: "success"}
		storeComplete(t, s, "t1", "k1", 1, c)
		time.Sleep(storeExpiryWait)
		res := storeBeginLedger(t, s, storeLedgerReq("t1", "k1", "fp2", "groq"), VerdictLeader)
		if res.Started == nil || res.Started.N != 1 || res.Started.Fence != 2 {
			t.Fatalf("restart of an expired key: started %+v, want attempt 1 at fence 2", res.Started)
		}
		_, attempts := storeGet(t, s, "t1", "k1")
		storeWantAttempts(t, attempts, Attempt{N: 1, Fence: 2, Provider: "groq", Outcome: AttemptStarted})
	})

	// A key restarted before it expired (derive: retries, derive_window)
	// keeps the attempts it paid for within key_ttl: the ledger is the
	// bill, and the new generation's calls are numbered after them.
	run("LedgerRestartKeepsPaidAttempts", func(t *testing.T) {
		s := open(t)
		storeBeginLedger(t, s, storeLedgerReq("t1", "k1", "fp1", "gemini"), VerdictLeader)
		c := storeCompletion(time.Hour)
		c.Attempt = &Attempt{N: 1, Provider: "gemini", Outcome: "success"}
		storeComplete(t, s, "t1", "k1", 1, c)
		req := storeLedgerReq("t1", "k1", "fp1", "groq")
		req.Fresh, req.AttemptRetention = true, time.Hour
		res := storeBeginLedger(t, s, req, VerdictLeader)
		if res.Started == nil || res.Started.N != 2 || res.Started.Fence != 2 {
			t.Fatalf("fresh restart: started %+v, want attempt 2 at fence 2", res.Started)
		}
		_, attempts := storeGet(t, s, "t1", "k1")
		storeWantAttempts(t, attempts,
			Attempt{N: 1, Fence: 1, Provider: "gemini", Outcome: "success"},
			Attempt{N: 2, Fence: 2, Provider: "groq", Outcome: AttemptStarted})
	})

	run("GetUnknown", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictLeader)
		for _, tk := range [][2]string{{"t1", "nope"}, {"t2", "k1"}} {
			if _, _, err := s.Get(ctx, tk[0], tk[1]); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(%s/%s): %v, want ErrNotFound", tk[0], tk[1], err)
			}
		}
	})

	run("ReclaimZombies", func(t *testing.T) {
		s := open(t)
		short := storeReq("t1", "zombie", "fp1")
		short.Lease = storeShortLease
		storeBegin(t, s, short, VerdictLeader)
		storeBegin(t, s, storeReq("t1", "valid", "fp1"), VerdictLeader)
		storeBegin(t, s, storeReq("t1", "valid2", "fp1"), VerdictLeader)
		storeBegin(t, s, storeReq("t1", "done", "fp1"), VerdictLeader)
		storeComplete(t, s, "t1", "done", 1, storeCompletion(time.Hour))
		time.Sleep(storeExpiryWait)

		if r, err := s.ReclaimZombies(ctx, time.Hour, 10); err != nil || r.Tasks != 1 {
			t.Fatalf("ReclaimZombies = %+v, %v; want 1", r, err)
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
		if r, err := s.ReclaimZombies(ctx, time.Hour, 10); err != nil || r.Tasks != 0 {
			t.Fatalf("second ReclaimZombies = %+v, %v; want 0", r, err)
		}
		// max_processing: both tasks with a valid lease started more than
		// storeShortLease ago; the limit caps each pass.
		if r, err := s.ReclaimZombies(ctx, storeShortLease, 1); err != nil || r.Tasks != 1 {
			t.Fatalf("ReclaimZombies(limit 1) = %+v, %v; want 1", r, err)
		}
		if r, err := s.ReclaimZombies(ctx, storeShortLease, 10); err != nil || r.Tasks != 1 {
			t.Fatalf("ReclaimZombies(rest) = %+v, %v; want 1", r, err)
		}
		for _, key := range []string{"valid", "valid2"} {
			if v, _ := storeGet(t, s, "t1", key); v.Status != StatusFailed || v.Fence != 2 {
				t.Fatalf("%s: task past max_processing not reclaimed: %+v", key, v)
			}
		}
		// The client's retry restarts the reclaimed task.
		if task := storeBegin(t, s, storeReq("t1", "zombie", "fp1"), VerdictLeader); task.Fence != 3 {
			t.Fatalf("restart after reclaim: fence %d, want 3", task.Fence)
		}
	})

	run("DeleteExpiredInBatches", func(t *testing.T) {
		s := open(t)
		const expired = 25
		for i := range expired {
			key := fmt.Sprintf("old-%02d", i)
			storeBegin(t, s, storeLedgerReq("t1", key, "fp1", "p"), VerdictLeader)
			if i%5 == 0 {
				storeFail(t, s, "t1", key, 1, "boom", time.Millisecond)
			} else {
				storeComplete(t, s, "t1", key, 1, storeCompletion(time.Millisecond))
			}
		}
		short := storeReq("t1", "processing", "fp1")
		short.Lease = time.Millisecond // even a zombie is not deleted, only reclaimed
		storeBegin(t, s, short, VerdictLeader)
		storeBegin(t, s, storeReq("t1", "fresh", "fp1"), VerdictLeader)
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
		task := storeBegin(t, s, storeReq("t1", "old-03", "fp1"), VerdictLeader)
		if _, attempts := storeGet(t, s, "t1", "old-03"); task.Fence != 1 || len(attempts) != 0 {
			t.Fatalf("re-created task: fence %d, %d attempts; want 1 and 0", task.Fence, len(attempts))
		}
	})

	run("ExpiredTaskRestarts", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeLedgerReq("t1", "k1", "fp1", "p"), VerdictLeader)
		storeComplete(t, s, "t1", "k1", 1, storeCompletion(time.Millisecond))
		time.Sleep(storeExpiryWait)
		// Not yet deleted by the reaper, but expired: the key is free, even
		// for another body.
		task := storeBegin(t, s, storeReq("t1", "k1", "fp2"), VerdictLeader)
		if task.Fence != 2 || task.Fingerprint != "fp2" || task.Response != nil || task.Usage != (Usage{}) || !task.ExpiresAt.IsZero() {
			t.Fatalf("unexpected restarted task: %+v", task)
		}
		got, attempts := storeGet(t, s, "t1", "k1")
		if got.Status != StatusProcessing || got.Response != nil || len(attempts) != 0 {
			t.Fatalf("restarted task kept old data: %+v, attempts %v", got, attempts)
		}
		storeWantFenced(t, "Complete of the expired fence", s.Complete(ctx, "t1", "k1", 1, storeCompletion(time.Hour)))
	})

	run("StaleGenerationRefused", func(t *testing.T) {
		s := open(t)
		old := storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictLeader)
		storeFail(t, s, "t1", "k1", 1, "gone", time.Millisecond)
		time.Sleep(storeExpiryWait)
		if n, err := s.DeleteExpired(ctx, 10); err != nil || n != 1 {
			t.Fatalf("DeleteExpired = %d, %v", n, err)
		}
		// The key is used again: a new task, at fence 1 again.
		fresh := storeBegin(t, s, storeReq("t1", "k1", "fp2"), VerdictLeader)
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

	run("MaxAgeRestartsOldAnswers", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictLeader)
		storeComplete(t, s, "t1", "k1", 1, storeCompletion(time.Hour))
		young := storeReq("t1", "k1", "fp1")
		young.MaxAge = time.Hour
		storeBegin(t, s, young, VerdictCompleted)
		time.Sleep(storeExpiryWait)
		old := storeReq("t1", "k1", "fp1")
		old.MaxAge = time.Millisecond
		if task := storeBegin(t, s, old, VerdictLeader); task.Fence != 2 || task.Response != nil {
			t.Fatalf("an answer older than MaxAge was not restarted: %+v", task)
		}
		// MaxAge never touches a running task.
		storeBegin(t, s, old, VerdictInFlight)
	})

	run("TooLargeReplaysWithoutResponse", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictLeader)
		c := storeCompletion(time.Hour)
		c.TooLarge = true
		storeComplete(t, s, "t1", "k1", 1, c)
		task := storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictCompleted)
		if !task.TooLarge || task.Response != nil || task.Usage != c.Usage {
			t.Fatalf("unexpected too-large replay: %+v", task)
		}
		if got, _ := storeGet(t, s, "t1", "k1"); !got.TooLarge || got.Response != nil {
			t.Fatalf("unexpected too-large task: %+v", got)
		}
	})

	run("EmptyBodyReplays", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictLeader)
		storeComplete(t, s, "t1", "k1", 1, Completion{Response: Response{Status: 204}, TTL: time.Hour})
		task := storeBegin(t, s, storeReq("t1", "k1", "fp1"), VerdictCompleted)
		if task.Response == nil || task.Response.Status != 204 || len(task.Response.Body) != 0 {
			t.Fatalf("unexpected replay of an empty response: %+v", task.Response)
		}
	})

	run("Health", func(t *testing.T) {
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
		storeBegin(t, s, storeReq("t1", "old", "fp1"), VerdictLeader)
		time.Sleep(storeExpiryWait)
		storeBegin(t, s, storeReq("t1", "young", "fp1"), VerdictLeader)
		storeBegin(t, s, storeReq("t1", "done", "fp1"), VerdictLeader)
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

	run("RecentAttemptsCountTheKeyBudget", func(t *testing.T) {
		s := open(t)
		req := storeLedgerReq("t1", "k1", "fp1", "p1")
		req.AttemptWindow, req.AttemptBudget = 10*time.Minute, 3
		if res := storeBeginLedger(t, s, req, VerdictLeader); res.RecentAttempts != 0 || res.Started == nil {
			t.Fatalf("new task: recent %d, started %v; want 0 and a first attempt", res.RecentAttempts, res.Started)
		}
		now := time.Now()
		// n1 error, n2 skipped (not called: free), n3 error.
		for _, st := range []AttemptStart{
			{Finished: &Attempt{N: 1, Provider: "p1", Outcome: "error", StartedAt: now}, Next: Attempt{N: 2, Provider: "p2", StartedAt: now}},
			{Finished: &Attempt{N: 2, Provider: "p2", Outcome: AttemptSkipped, StartedAt: now}, Next: Attempt{N: 3, Provider: "p3", StartedAt: now}},
		} {
			st.Lease = time.Hour
			if err := s.StartAttempt(ctx, "t1", "k1", 1, st); err != nil {
				t.Fatalf("StartAttempt: %v", err)
			}
		}
		if err := s.Fail(ctx, "t1", "k1", 1, Failure{Reason: "all failed", TTL: time.Hour,
			Attempt: &Attempt{N: 3, Provider: "p3", Outcome: "error", StartedAt: now}}); err != nil {
			t.Fatalf("Fail: %v", err)
		}
		// The retry: two attempts spent, one left; its first is written.
		res := storeBeginLedger(t, s, req, VerdictLeader)
		if res.RecentAttempts != 2 || res.Started == nil || res.Started.N != 4 {
			t.Fatalf("retry: recent %d, started %+v; want 2 and attempt 4", res.RecentAttempts, res.Started)
		}
		if err := s.Fail(ctx, "t1", "k1", 2, Failure{Reason: "failed", TTL: time.Hour,
			Attempt: &Attempt{N: 4, Provider: "p1", Outcome: "timeout", StartedAt: time.Now()}}); err != nil {
			t.Fatalf("Fail: %v", err)
		}
		// Spent: the leader gets no first attempt, it makes no call.
		res = storeBeginLedger(t, s, req, VerdictLeader)
		if res.RecentAttempts != 3 || res.Started != nil {
			t.Fatalf("spent key: recent %d, started %+v; want 3 and none", res.RecentAttempts, res.Started)
		}
		storeFail(t, s, "t1", "k1", 3, "attempt budget exhausted", time.Hour)
		if _, attempts := storeGet(t, s, "t1", "k1"); len(attempts) != 4 {
			t.Fatalf("attempts after the refused leader = %+v, want the 4 made", attempts)
		}
		// Outside the window nothing counts.
		req.AttemptWindow = time.Microsecond
		time.Sleep(2 * time.Millisecond)
		if res := storeBeginLedger(t, s, req, VerdictLeader); res.RecentAttempts != 0 || res.Started == nil {
			t.Fatalf("window over: recent %d, started %v; want 0 and a first attempt", res.RecentAttempts, res.Started)
		}
	})

	run("SkippedBeforeTheFirstAttempt", func(t *testing.T) {
		s := open(t)
		req := storeLedgerReq("t1", "k1", "fp1", "p3")
		req.Skipped = []Attempt{{Provider: "p1", Model: "m1", Error: "breaker open until 12:00:30 UTC"}, {Provider: "p2", Error: "no api_key"}}
		res := storeBeginLedger(t, s, req, VerdictLeader)
		if res.Started == nil || res.Started.N != 3 || res.Started.Provider != "p3" {
			t.Fatalf("Started = %+v, want attempt 3 to p3", res.Started)
		}
		_, attempts := storeGet(t, s, "t1", "k1")
		storeWantAttempts(t, attempts,
			Attempt{N: 1, Fence: 1, Provider: "p1", Outcome: AttemptSkipped},
			Attempt{N: 2, Fence: 1, Provider: "p2", Outcome: AttemptSkipped},
			Attempt{N: 3, Fence: 1, Provider: "p3", Outcome: AttemptStarted})
		if attempts[0].Error != "breaker open until 12:00:30 UTC" || attempts[0].Model != "m1" || attempts[1].Error != "no api_key" {
			t.Fatalf("skipped rows lost their reason: %+v", attempts[:2])
		}
		if err := s.Fail(ctx, "t1", "k1", 1, Failure{Reason: "x", TTL: time.Hour,
			Attempt: &Attempt{N: 3, Provider: "p3", Outcome: "error", StartedAt: time.Now()}}); err != nil {
			t.Fatalf("Fail: %v", err)
		}
		// A restart skips after the earlier attempts.
		req.Skipped = req.Skipped[:1]
		if res := storeBeginLedger(t, s, req, VerdictLeader); res.Started == nil || res.Started.N != 5 || res.Started.Fence != 2 {
			t.Fatalf("restart: Started = %+v, want attempt 5 at fence 2", res.Started)
		}
		_, attempts = storeGet(t, s, "t1", "k1")
		storeWantAttempts(t, attempts[3:],
			Attempt{N: 4, Fence: 2, Provider: "p1", Outcome: AttemptSkipped},
			Attempt{N: 5, Fence: 2, Provider: "p3", Outcome: AttemptStarted})
	})

	run("Ping", func(t *testing.T) {
		s := open(t)
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

// testStoreDurable checks that what one store wrote is there after it was
// closed and another opened on the same data.
func testStoreDurable(t *testing.T, s Store, reopen func() Store) {
	storeBegin(t, s, storeLedgerReq("t1", "done", "fp1", "gemini"), VerdictLeader)
	c := storeCompletion(time.Hour)
	c.Attempt = &Attempt{N: 1, Provider: "gemini", Outcome: "success", HTTPStatus: 200}
	storeComplete(t, s, "t1", "done", 1, c)
	storeBegin(t, s, storeReq("t1", "busy", "fp1"), VerdictLeader)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = reopen()
	task := storeBegin(t, s, storeReq("t1", "done", "fp1"), VerdictCompleted)
	if task.Response == nil || !bytes.Equal(task.Response.Body, c.Response.Body) || task.Usage != c.Usage {
		t.Fatalf("completed task lost across reopen: %+v", task)
	}
	if _, attempts := storeGet(t, s, "t1", "done"); len(attempts) != 1 || attempts[0].Provider != "gemini" {
		t.Fatalf("attempts lost across reopen: %+v", attempts)
	}
	storeBegin(t, s, storeReq("t1", "busy", "fp1"), VerdictInFlight)
	storeComplete(t, s, "t1", "busy", 1, c)
}
