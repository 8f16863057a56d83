package dedupe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemgw/gateway/dedupe/dedupetest"
)

func cachedTask(tenant, keyHash, fp, body string, created time.Time, fence int64) Task {
	return Task{Tenant: tenant, KeyHash: keyHash, Fingerprint: fp, Status: StatusCompleted, Fence: fence,
		CreatedAt: created, UpdatedAt: created, ExpiresAt: created.Add(time.Hour),
		Response: &Response{Status: 200, ContentType: "application/json", Body: []byte(body)}}
}

// What the cache may serve: only the task of the same tenant, key and
// fingerprint, before its expiry, within a request's max age, and never
// an older version of the record than this node has led.
func TestReplayCacheRules(t *testing.T) {
	now := time.Now()
	gen := now.Add(-time.Minute)
	var c replayCache
	c.put(cachedTask("a", "k", "fp", "A", gen, 1), now)
	req := Request{Tenant: "a", KeyHash: "k", Fingerprint: "fp"}
	if got, ok := c.get(req, now); !ok || string(got.Response.Body) != "A" {
		t.Fatalf("get = %+v, %v; want A", got, ok)
	}
	for name, r := range map[string]Request{
		"another tenant":      {Tenant: "b", KeyHash: "k", Fingerprint: "fp"},
		"another key":         {Tenant: "a", KeyHash: "k2", Fingerprint: "fp"},
		"another fingerprint": {Tenant: "a", KeyHash: "k", Fingerprint: "fp2"},
		"past max age":        {Tenant: "a", KeyHash: "k", Fingerprint: "fp", MaxAge: time.Second},
	} {
		if got, ok := c.get(r, now); ok {
			t.Errorf("%s: served %+v", name, got)
		}
	}
	if _, ok := c.get(req, now.Add(replayCacheTTL)); ok {
		t.Error("served replayCacheTTL after the read")
	}

	// The task's expiry comes first when it is sooner.
	exp := cachedTask("a", "soon", "fp", "S", gen, 1)
	exp.ExpiresAt = now.Add(replayCacheTTL / 10)
	c.put(exp, now)
	if _, ok := c.get(Request{Tenant: "a", KeyHash: "soon", Fingerprint: "fp"}, exp.ExpiresAt); ok {
		t.Error("served at the task's expiry")
	}

	// This node leads the key at fence 2: the answer of fence 1, from a
	// read that began earlier, must not come back.
	c.drop("a", "k", gen, 2, now)
	if _, ok := c.get(req, now); ok {
		t.Error("served after drop")
	}
	c.put(cachedTask("a", "k", "fp", "old", gen, 1), now)
	if got, ok := c.get(req, now); ok {
		t.Errorf("an older fence came back: %q", got.Response.Body)
	}
	c.put(cachedTask("a", "k", "fp", "new", gen, 2), now)
	if got, ok := c.get(req, now); !ok || string(got.Response.Body) != "new" {
		t.Errorf("get after the new fence completed = %+v, %v", got, ok)
	}
	// A new generation (the record was deleted and begun again) starts at
	// fence 1 and is still newer.
	c.drop("a", "k", now, 1, now)
	c.put(cachedTask("a", "k", "fp", "new", gen, 2), now)
	if _, ok := c.get(req, now); ok {
		t.Error("the old generation came back")
	}

	// Not replayable: not kept.
	big := cachedTask("a", "big", "fp", strings.Repeat("x", replayCacheMaxEntry), gen, 1)
	tooLarge := cachedTask("a", "tl", "fp", "T", gen, 1)
	tooLarge.TooLarge = true
	failed := cachedTask("a", "f", "fp", "F", gen, 1)
	failed.Status = StatusFailed
	for _, tk := range []Task{big, tooLarge, failed} {
		c.put(tk, now)
		if _, ok := c.get(Request{Tenant: "a", KeyHash: tk.KeyHash, Fingerprint: "fp"}, now); ok {
			t.Errorf("kept %s", tk.KeyHash)
		}
	}
}

// The cache stays within its bounds however many keys are replayed.
func TestReplayCacheBounded(t *testing.T) {
	now := time.Now()
	var c replayCache
	body := strings.Repeat("x", 64<<10)
	for i := range 2 * replayCacheEntries {
		c.put(cachedTask("a", fmt.Sprint(i), "fp", body, now, 1), now)
		if len(c.m) > replayCacheEntries || c.bytes > replayCacheBytes {
			t.Fatalf("after %d puts: %d entries, %d bytes", i+1, len(c.m), c.bytes)
		}
	}
	var sum int
	for _, e := range c.m {
		sum += e.size
	}
	if sum != c.bytes {
		t.Fatalf("bytes = %d, entries sum to %d", c.bytes, sum)
	}
}

// Gets, puts and drops from many goroutines (run under -race): every
// answer served is one the key really had.
func TestReplayCacheConcurrent(t *testing.T) {
	var c replayCache
	gen := time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				now := time.Now()
				key := fmt.Sprint(i % 16)
				switch i % 4 {
				case 0:
					c.put(cachedTask("a", key, "fp", "body-"+key, gen, int64(w)), now)
				case 1:
					c.drop("a", key, gen, int64(w), now)
				default:
					if got, ok := c.get(Request{Tenant: "a", KeyHash: key, Fingerprint: "fp"}, now); ok && string(got.Response.Body) != "body-"+key {
						t.Errorf("key %s served %q", key, got.Response.Body)
					}
				}
			}
		})
	}
	wg.Wait()
}

// replayStores runs test on each store beside a second coordinator (node)
// on the same store.
func replayStores(t *testing.T, test func(t *testing.T, s Store, opts Options)) {
	opts := Options{Owner: "o", Lease: time.Minute, MaxProcessing: time.Minute, KeyTTL: time.Hour, WaitTimeout: time.Second, MaxRecordBytes: 1 << 20}
	t.Run("embedded", func(t *testing.T) {
		test(t, openTestEmbedded(t, filepath.Join(t.TempDir(), "gateway.db")), opts)
	})
	t.Run("postgres", func(t *testing.T) {
		test(t, openTestPostgres(t, dedupetest.PostgresURL(t), true), opts)
	})
}

func beginWant(t *testing.T, c *Coordinator, r Request, want Decision) *Ticket {
	t.Helper()
	tk, err := c.Begin(context.Background(), r)
	if err != nil || tk.Decision != want {
		t.Fatalf("Begin %s: %+v, %v; want %s", r.KeyHash, tk, err, want)
	}
	return tk
}

func replayWant(t *testing.T, c *Coordinator, r Request, body string) {
	t.Helper()
	tk := beginWant(t, c, r, DecisionReplayed)
	if got := string(tk.Task.Response.Body); got != body {
		t.Fatalf("replayed %q, want %q", got, body)
	}
}

func completeWith(t *testing.T, tk *Ticket, body string) {
	t.Helper()
	if err := tk.Complete(context.Background(), Response{Status: 200, ContentType: "application/json", Body: []byte(body)}, Usage{}); err != nil {
		t.Fatalf("Complete: %v", err)
	}
}

// Tenants share no answers, even under the same key hash; a lean Lookup
// reads what Get reads.
func TestReplayCacheTenants(t *testing.T) {
	replayStores(t, func(t *testing.T, s Store, opts Options) {
		c := NewCoordinator(s, nil, opts)
		defer c.Close()
		for _, tenant := range []string{"a", "b"} {
			completeWith(t, beginWant(t, c, Request{Tenant: tenant, KeyHash: "k", Fingerprint: "fp"}, DecisionNew), "answer of "+tenant)
		}
		for range 3 {
			for _, tenant := range []string{"a", "b"} {
				replayWant(t, c, Request{Tenant: tenant, KeyHash: "k", Fingerprint: "fp"}, "answer of "+tenant)
			}
		}
		if _, err := c.Begin(context.Background(), Request{Tenant: "a", KeyHash: "k", Fingerprint: "other"}); !errors.Is(err, ErrMismatch) {
			t.Fatalf("another body under a cached key: %v, want ErrMismatch", err)
		}
		got, err := s.Lookup(context.Background(), "a", "k")
		want, _, _ := s.Get(context.Background(), "a", "k")
		if err != nil || !bytes.Equal(got.Response.Body, want.Response.Body) || got.Fence != want.Fence || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Fatalf("Lookup = %+v, %v; Get = %+v", got, err, want)
		}
		if _, err := s.Lookup(context.Background(), "a", "missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Lookup of a missing key: %v", err)
		}
	})
}

// A key that expired is led again, not replayed from the cache, on the
// node that cached it and on the others.
func TestReplayAfterExpiry(t *testing.T) {
	replayStores(t, func(t *testing.T, s Store, opts Options) {
		opts.KeyTTL = replayCacheTTL / 4
		a, b := NewCoordinator(s, nil, opts), NewCoordinator(s, nil, opts)
		defer a.Close()
		defer b.Close()
		r := Request{Tenant: "t", KeyHash: "k", Fingerprint: "fp"}
		completeWith(t, beginWant(t, a, r, DecisionNew), "v1")
		replayWant(t, a, r, "v1")
		replayWant(t, b, r, "v1")
		time.Sleep(opts.KeyTTL + 50*time.Millisecond)
		if _, err := s.DeleteExpired(context.Background(), 10); err != nil {
			t.Fatal(err)
		}
		completeWith(t, beginWant(t, b, r, DecisionNew), "v2")
		replayWant(t, a, r, "v2")
		replayWant(t, b, r, "v2")
	})
}

// A zombie taken over by another node: every node replays the answer of
// the new fence, and the old leader's late write is refused.
func TestReplayAfterTakeOver(t *testing.T) {
	replayStores(t, func(t *testing.T, s Store, opts Options) {
		a, b := NewCoordinator(s, nil, opts), NewCoordinator(s, nil, opts)
		defer a.Close()
		defer b.Close()
		ctx := context.Background()
		// A leader that dies at once: its lease is short and nobody
		// heartbeats it.
		req := storeReq("t", "k", "fp")
		req.Lease = 50 * time.Millisecond
		zombie := storeBegin(t, s, req, VerdictLeader)
		time.Sleep(100 * time.Millisecond)
		r := Request{Tenant: "t", KeyHash: "k", Fingerprint: "fp"}
		completeWith(t, beginWant(t, b, r, DecisionReclaimed), "taken over")
		replayWant(t, a, r, "taken over")
		replayWant(t, b, r, "taken over")
		err := s.Complete(ctx, "t", "k", zombie.Fence, Completion{Response: Response{Status: 200, Body: []byte("late")}, TTL: time.Hour})
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("the zombie's late Complete: %v, want ErrFenced", err)
		}
		replayWant(t, a, r, "taken over")
	})
}

// A record changed behind a node's back (here a first try under derive:
// retries on another node replaces it) reaches that node's replays within
// replayCacheTTL; on the node that changed it, at once.
func TestReplayCacheStalenessBound(t *testing.T) {
	replayStores(t, func(t *testing.T, s Store, opts Options) {
		a, b := NewCoordinator(s, nil, opts), NewCoordinator(s, nil, opts)
		defer a.Close()
		defer b.Close()
		r := Request{Tenant: "t", KeyHash: "k", Fingerprint: "fp"}
		completeWith(t, beginWant(t, a, r, DecisionNew), "v1")
		replayWant(t, a, r, "v1")
		replayWant(t, b, r, "v1")
		fresh := r
		fresh.Fresh = true
		completeWith(t, beginWant(t, b, fresh, DecisionNew), "v2")
		replayWant(t, b, r, "v2")
		time.Sleep(replayCacheTTL)
		replayWant(t, a, r, "v2")
	})
}
