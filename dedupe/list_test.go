package dedupe

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/idemgw/gateway/dedupe/dedupetest"
)

// The task list suite (issue 16), run on both stores like the semantics
// suite, so the admin API lists the same on one node and in a cluster.

func TestPostgresList(t *testing.T) {
	testStoreList(t, func(t *testing.T) Store { return openTestPostgres(t, dedupetest.PostgresURL(t), true) })
}

func TestEmbeddedList(t *testing.T) {
	testStoreList(t, func(t *testing.T) Store {
		return openTestEmbedded(t, filepath.Join(t.TempDir(), "gateway.db"))
	})
}

// listed is one task the suite made.
type listed struct{ tenant, key string }

// listAll walks every page of q and returns the tasks in order, failing
// on a duplicate.
func listAll(t *testing.T, s Store, q ListQuery) ([]TaskSummary, int) {
	t.Helper()
	var all []TaskSummary
	seen := map[listed]bool{}
	pages := 0
	for {
		page, err := s.List(context.Background(), q)
		if err != nil {
			t.Fatalf("List(%+v): %v", q, err)
		}
		pages++
		for _, ts := range page.Tasks {
			k := listed{ts.Tenant, ts.KeyHash}
			if seen[k] {
				t.Fatalf("page %d lists %v again", pages, k)
			}
			seen[k] = true
			all = append(all, ts)
		}
		if page.Next == "" {
			return all, pages
		}
		if pages > 1000 {
			t.Fatal("more than 1000 pages: the cursor does not advance")
		}
		q.Cursor = page.Next
	}
}

// wantListed checks got is exactly want, newest first.
func wantListed(t *testing.T, what string, got []TaskSummary, want []listed) {
	t.Helper()
	var keys []listed
	for i, ts := range got {
		keys = append(keys, listed{ts.Tenant, ts.KeyHash})
		if i > 0 && ts.CreatedAt.After(got[i-1].CreatedAt) {
			t.Fatalf("%s: task %d (%v) is newer than the one before (%v)", what, i, ts.CreatedAt, got[i-1].CreatedAt)
		}
	}
	w := slices.Clone(want)
	slices.Reverse(w) // want is in creation order
	if !slices.Equal(keys, w) {
		t.Fatalf("%s: listed\n%v\nwant\n%v", what, keys, w)
	}
}

func testStoreList(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("PagesFiltersAndSummaries", func(t *testing.T) {
		s := open(t)
		// 23 tasks over two tenants and two routes, created one after the
		// other (a pause between, so their creation times differ even at
		// Postgres's microseconds), in three states.
		var all, acme, failed, writer []listed
		var mid time.Time
		for i := range 23 {
			tenant, model := "acme", "writer"
			if i%3 == 0 {
				tenant = "zeta"
			}
			if i%2 == 0 {
				model = "coder"
			}
			key := fmt.Sprintf("k%02d", i)
			req := storeLedgerReq(tenant, key, "fp", "p1")
			req.Model = model
			res := storeBeginLedger(t, s, req, VerdictLeader)
			switch i % 4 {
			case 1:
				storeComplete(t, s, tenant, key, 1, Completion{Response: Response{Status: 200, Body: []byte("{}")},
					Usage: Usage{PromptTokens: 3, CompletionTokens: 4}, TTL: time.Hour,
					Attempt: &Attempt{N: res.Started.N, Provider: "p1", Outcome: "success", HTTPStatus: 200}})
			case 2:
				if err := s.StartAttempt(ctx, tenant, key, 1, AttemptStart{
					Finished: &Attempt{N: 1, Provider: "p1", Outcome: "timeout"},
					Next:     Attempt{N: 2, Provider: "p2", Model: "m2"}, Lease: time.Hour,
				}); err != nil {
					t.Fatal(err)
				}
				if err := s.Fail(ctx, tenant, key, 1, Failure{Reason: "all failed", TTL: time.Hour,
					Attempt: &Attempt{N: 2, Provider: "p2", Outcome: "error", HTTPStatus: 500}}); err != nil {
					t.Fatal(err)
				}
				failed = append(failed, listed{tenant, key})
			}
			all = append(all, listed{tenant, key})
			if tenant == "acme" {
				acme = append(acme, listed{tenant, key})
			}
			if model == "writer" {
				writer = append(writer, listed{tenant, key})
			}
			if i == 11 {
				task, _ := storeGet(t, s, tenant, key)
				mid = task.CreatedAt
			}
			time.Sleep(2 * time.Millisecond)
		}

		got, pages := listAll(t, s, ListQuery{Limit: 5})
		wantListed(t, "all, 5 a page", got, all)
		if pages != 5 {
			t.Fatalf("23 tasks at 5 a page took %d pages, want 5", pages)
		}
		got, _ = listAll(t, s, ListQuery{Limit: 23})
		wantListed(t, "all on one page", got, all)
		got, _ = listAll(t, s, ListQuery{Tenant: "acme", Limit: 4})
		wantListed(t, "tenant acme", got, acme)
		got, _ = listAll(t, s, ListQuery{Status: StatusFailed, Limit: 2})
		wantListed(t, "failed", got, failed)
		got, _ = listAll(t, s, ListQuery{Route: "writer", Limit: 3})
		wantListed(t, "route writer", got, writer)
		got, _ = listAll(t, s, ListQuery{Since: mid, Limit: 3})
		wantListed(t, "since task 11", got, all[11:])
		got, _ = listAll(t, s, ListQuery{Until: mid, Limit: 3})
		wantListed(t, "until task 11", got, all[:11])
		got, _ = listAll(t, s, ListQuery{Tenant: "nobody"})
		wantListed(t, "unknown tenant", got, nil)

		// The summaries: k02 failed over from p1 to p2, k01 succeeded.
		byKey := map[string]TaskSummary{}
		got, _ = listAll(t, s, ListQuery{Limit: 50})
		for _, ts := range got {
			byKey[ts.KeyHash] = ts
		}
		if f := byKey["k02"]; f.Status != StatusFailed || f.Attempts != 2 || !slices.Equal(f.Providers, []string{"p1", "p2"}) ||
			f.LastOutcome != "error" || f.Error != "all failed" || f.Tenant != "acme" || f.Model != "coder" {
			t.Fatalf("summary of k02: %+v", f)
		}
		if c := byKey["k01"]; c.Status != StatusCompleted || c.Attempts != 1 || !slices.Equal(c.Providers, []string{"p1"}) ||
			c.LastOutcome != "success" || c.Usage != (Usage{3, 4}) {
			t.Fatalf("summary of k01: %+v", c)
		}
		if p := byKey["k00"]; p.Status != StatusProcessing || p.Attempts != 1 || p.LastOutcome != AttemptStarted {
			t.Fatalf("summary of k00: %+v", p)
		}

		// A cursor of another store, or made up, is refused.
		for _, c := range []string{"x", "p", "e", "pAAAA", "e" + "AAAA", "p!!!"} {
			if _, err := s.List(ctx, ListQuery{Cursor: c}); !errors.Is(err, ErrBadCursor) {
				t.Fatalf("cursor %q: got %v, want ErrBadCursor", c, err)
			}
		}
	})

	t.Run("RestartAndExpiryMoveTheTask", func(t *testing.T) {
		s := open(t)
		storeBegin(t, s, storeReq("t", "old", "fp"), VerdictLeader)
		storeFail(t, s, "t", "old", 1, "boom", time.Millisecond)
		time.Sleep(5 * time.Millisecond)
		storeBegin(t, s, storeReq("t", "mid", "fp"), VerdictLeader)
		time.Sleep(5 * time.Millisecond)
		// The expired key starts over: a new task, now the newest.
		storeBegin(t, s, storeReq("t", "old", "fp"), VerdictLeader)
		got, _ := listAll(t, s, ListQuery{Limit: 1})
		wantListed(t, "after the restart", got, []listed{{"t", "mid"}, {"t", "old"}})
		storeFail(t, s, "t", "old", 2, "boom", time.Millisecond)
		time.Sleep(5 * time.Millisecond)
		if n, err := s.DeleteExpired(ctx, 10); err != nil || n != 1 {
			t.Fatalf("DeleteExpired = %d, %v; want 1", n, err)
		}
		got, _ = listAll(t, s, ListQuery{})
		wantListed(t, "after the expiry", got, []listed{{"t", "mid"}})
	})

	t.Run("ServedCountsPerGeneration", func(t *testing.T) {
		s := open(t)
		task := storeBegin(t, s, storeReq("t", "k", "fp"), VerdictLeader)
		storeComplete(t, s, "t", "k", 1, storeCompletion(time.Millisecond))
		count := ServedCount{Tenant: "t", KeyHash: "k", Generation: task.CreatedAt, Served: Served{Replays: 2, Joins: 1}}
		for range 2 {
			if err := s.AddServed(ctx, []ServedCount{count, {Tenant: "t", KeyHash: "gone", Generation: task.CreatedAt, Served: Served{Replays: 1}}}); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Served(ctx, "t", "k"); err != nil || got != (Served{Replays: 4, Joins: 2}) {
			t.Fatalf("Served = %+v, %v; want 4 replays and 2 joins", got, err)
		}
		page, err := s.List(ctx, ListQuery{})
		if err != nil || len(page.Tasks) != 1 || page.Tasks[0].Served != (Served{Replays: 4, Joins: 2}) {
			t.Fatalf("List = %+v, %v", page, err)
		}
		// The key expires and starts over: the counts of the old answer
		// are not the new task's, and late counts of it are dropped.
		time.Sleep(5 * time.Millisecond)
		storeBegin(t, s, storeReq("t", "k", "fp"), VerdictLeader)
		if err := s.AddServed(ctx, []ServedCount{count}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Served(ctx, "t", "k"); err != nil || got != (Served{}) {
			t.Fatalf("Served of the new generation = %+v, %v; want none", got, err)
		}
		if got, err := s.Served(ctx, "t", "nothing"); err != nil || got != (Served{}) {
			t.Fatalf("Served of no task = %+v, %v", got, err)
		}
	})
}

// The embedded store examines at most its scan budget per page: a filter
// that matches little gives short pages that still reach every task.
func TestEmbeddedListScanBudget(t *testing.T) {
	s := openTestEmbedded(t, filepath.Join(t.TempDir(), "gateway.db"))
	s.scanBudget = 3
	var failed []listed
	for i := range 10 {
		key := fmt.Sprintf("k%d", i)
		storeBegin(t, s, storeReq("t", key, "fp"), VerdictLeader)
		if i%4 == 0 {
			storeFail(t, s, "t", key, 1, "boom", time.Hour)
			failed = append(failed, listed{"t", key})
		}
		time.Sleep(time.Millisecond)
	}
	got, pages := listAll(t, s, ListQuery{Status: StatusFailed})
	wantListed(t, "failed under a budget of 3", got, failed)
	if pages < 4 {
		t.Fatalf("10 tasks at 3 a scan took %d pages, want at least 4", pages)
	}
}

// A store file written before the list index existed gets it on open.
func TestEmbeddedListBackfill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.db")
	s := openTestEmbedded(t, path)
	storeBegin(t, s, storeReq("t", "a", "fp"), VerdictLeader)
	time.Sleep(time.Millisecond)
	storeBegin(t, s, storeReq("t", "b", "fp"), VerdictLeader)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(bucketCreated)) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTestEmbedded(t, path)
	got, _ := listAll(t, s, ListQuery{})
	wantListed(t, "after the backfill", got, []listed{{"t", "a"}, {"t", "b"}})
}
