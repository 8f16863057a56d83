package dedupe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisForTest connects to GATEWAY_TEST_REDIS_URL and returns the client
// and a key prefix unique to this test, whose keys are deleted at the end.
func redisForTest(t *testing.T) (*redis.Client, string) {
	t.Helper()
	url := os.Getenv("GATEWAY_TEST_REDIS_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("GATEWAY_TEST_REDIS_URL must be set in CI")
		}
		t.Skip("GATEWAY_TEST_REDIS_URL not set; skipping Redis test")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("cannot parse GATEWAY_TEST_REDIS_URL: %v", err)
	}
	client := redis.NewClient(opt)
	ctx := context.Background()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("cannot ping %s: %v", url, err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	prefix := "gwtest:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cannot clean up %s*: %v", prefix, err)
		}
		_ = client.Close()
	})
	return client, prefix
}

func TestRedis(t *testing.T) {
	client, prefix := redisForTest(t)
	testLockBackend(t, NewRedis(client, prefix))
}

// TestRedisKeys checks the key layout and expiries that other tools
// (and operators) rely on.
func TestRedisKeys(t *testing.T) {
	client, prefix := redisForTest(t)
	r := NewRedis(client, prefix)
	ctx := context.Background()

	l, ok, err := r.TryAcquire(ctx, "k", 30*time.Second)
	if err != nil || !ok {
		t.Fatalf("TryAcquire = %v, %v", ok, err)
	}
	token, err := client.Get(ctx, prefix+"lock:k").Result()
	if err != nil || len(token) != 32 {
		t.Fatalf("lock key holds %q (error %v); want a 32-digit hex token", token, err)
	}
	if ttl := client.PTTL(ctx, prefix+"lock:k").Val(); ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("lock PTTL = %v; want (0, 30s]", ttl)
	}
	// The scripts still run after the server forgot them (EVALSHA falls
	// back to EVAL).
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	if ok, err := l.Extend(ctx, time.Minute); err != nil || !ok {
		t.Fatalf("Extend after SCRIPT FLUSH = %v, %v", ok, err)
	}
	if ttl := client.PTTL(ctx, prefix+"lock:k").Val(); ttl <= 30*time.Second {
		t.Fatalf("lock PTTL after Extend = %v; want > 30s", ttl)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if n := client.Exists(ctx, prefix+"lock:k").Val(); n != 0 {
		t.Fatalf("lock key still exists after Release")
	}

	appendAll(t, r, "s", []LiveEvent{dataEvent(0)})
	if ttl := client.TTL(ctx, prefix+"live:s").Val(); ttl <= 0 || ttl > liveSafetyTTL {
		t.Fatalf("live stream TTL = %v; want the safety expiry", ttl)
	}
	appendAll(t, r, "s", []LiveEvent{{End: true, Err: "boom"}})
	if err := r.Expire(ctx, "s", 20*time.Second); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	if ttl := client.PTTL(ctx, prefix+"live:s").Val(); ttl <= 0 || ttl > 20*time.Second {
		t.Fatalf("live stream PTTL after Expire = %v; want (0, 20s]", ttl)
	}
	msgs, err := client.XRange(ctx, prefix+"live:s", "-", "+").Result()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("XRANGE = %d entries (error %v); want 2", len(msgs), err)
	}
	if got := msgs[1].Values; got["e"] != "1" || got["err"] != "boom" {
		t.Fatalf("End entry fields = %v; want e=1 err=boom", got)
	}
}

// TestRedisUnavailable checks that a backend that cannot be reached
// fails fast with ErrLockUnavailable, so callers fall back to the store.
func TestRedisUnavailable(t *testing.T) {
	client := redis.NewClient(&redis.Options{
		Addr:        "127.0.0.1:1", // nothing listens on port 1
		DialTimeout: 200 * time.Millisecond,
		MaxRetries:  -1,
		// One dial attempt per command keeps the test short.
		DialerRetries: 1,
	})
	defer client.Close()
	r := NewRedis(client, "gwtest:")
	ctx := context.Background()

	// Generous: the point is that nothing waits for a lock ttl or idle.
	const quick = 5 * time.Second
	f := func(op string, call func() error) {
		t.Helper()
		start := time.Now()
		err := call()
		if !errors.Is(err, ErrLockUnavailable) {
			t.Errorf("%s error = %v; want ErrLockUnavailable", op, err)
		}
		if d := time.Since(start); d > quick {
			t.Errorf("%s took %v", op, d)
		}
	}
	f("TryAcquire", func() error {
		_, _, err := r.TryAcquire(ctx, "x", time.Minute)
		return err
	})
	f("Subscribe", func() error {
		_, _, err := r.Subscribe(ctx, "x")
		return err
	})
	f("Publish", func() error { return r.Publish(ctx, "x") })
	f("Append", func() error { return r.Append(ctx, "x", dataEvent(0)) })
	f("Expire", func() error { return r.Expire(ctx, "x", time.Minute) })
	f("Follow", func() error {
		_, err := followAll(t, r, ctx, "x", 0, time.Minute)
		return err
	})
	f("Extend", func() error {
		_, err := (&redisLock{r: r, name: "x", key: "gwtest:lock:x", token: "t"}).Extend(ctx, time.Minute)
		return err
	})
	f("Release", func() error {
		return (&redisLock{r: r, name: "x", key: "gwtest:lock:x", token: "t"}).Release(ctx)
	})
}

// A Redis restarted empty under a running leader must not hold its stream
// from the middle: a joiner reading it from the start would relay a
// shorter answer as a whole one (the chaos run). An entry that continues
// a stream is refused once the stream is gone; a first entry starts one.
func TestRedisLiveLost(t *testing.T) {
	client, prefix := redisForTest(t)
	r := NewRedis(client, prefix)
	ctx := context.Background()
	appendAll(t, r, "s", []LiveEvent{dataEvent(0)})
	if err := r.Append(ctx, "s", LiveEvent{Data: []byte("data: 1"), Continues: true}); err != nil {
		t.Fatalf("continuing a stream Redis holds: %v", err)
	}
	// The restart, for this test's keys only: the server is shared.
	if err := client.Del(ctx, prefix+"live:s").Err(); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []LiveEvent{{Data: []byte("data: 2"), Continues: true}, {End: true, Continues: true}} {
		if err := r.Append(ctx, "s", ev); !errors.Is(err, ErrLiveLost) || errors.Is(err, ErrLockUnavailable) {
			t.Fatalf("continuing a lost stream: %v, want ErrLiveLost (Redis itself answers)", err)
		}
	}
	if n := client.Exists(ctx, prefix+"live:s").Val(); n != 0 {
		t.Fatal("a continuing entry recreated the lost stream")
	}
	if err := r.Append(ctx, "s", LiveEvent{Data: []byte("data: 0")}); err != nil {
		t.Fatalf("starting a stream: %v", err)
	}
}

// TestRedisLiveWriter checks the batched writer of a leader's stream:
// entries queued by many streams at once reach Redis in each stream's
// order, the End sets the linger, and Finish then releases the lock and
// wakes the waiters, after its stream's End.
func TestRedisLiveWriter(t *testing.T) {
	client, prefix := redisForTest(t)
	r := NewRedis(client, prefix)
	defer r.Close()
	ctx := context.Background()
	wake, unsub, err := r.Subscribe(ctx, "k0")
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	lock, ok, err := r.TryAcquire(ctx, "k0", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryAcquire = %v, %v", ok, err)
	}
	const streams, events = 20, 30
	var want []LiveEvent
	for i := range events {
		want = append(want, dataEvent(i))
	}
	want = append(want, LiveEvent{End: true, Err: "boom"})
	finished := make(chan error, streams)
	var ws []*LiveWriter
	for s := range streams {
		ws = append(ws, r.Writer(fmt.Sprint("s", s), func(err error) { t.Errorf("stream %d: %v", s, err) }))
	}
	for i := range events {
		for _, w := range ws {
			w.Append(dataEvent(i))
		}
	}
	for s, w := range ws {
		w.End(LiveEvent{Err: "boom", Continues: true}, 20*time.Second, false)
		var l Lock
		if s == 0 {
			l = lock
		}
		r.Finish(l, fmt.Sprint("k", s), func(err error) { finished <- err })
	}
	for range streams {
		if err := <-finished; err != nil {
			t.Fatalf("Finish: %v", err)
		}
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("Finish did not publish the wake-up")
	}
	if n := client.Exists(ctx, prefix+"lock:k0").Val(); n != 0 {
		t.Fatal("Finish did not release the lock")
	}
	for s := range streams {
		name := fmt.Sprint("s", s)
		got, err := followAll(t, r, ctx, name, 0, time.Second)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("stream %s: %d events (error %v); first difference at %d", name, len(got), err, firstDiff(got, want))
		}
		if ttl := client.PTTL(ctx, prefix+"live:"+name).Val(); ttl <= 0 || ttl > 20*time.Second {
			t.Fatalf("stream %s PTTL = %v; want the linger (0, 20s]", name, ttl)
		}
	}
}

// TestRedisLiveWriterLost checks that a writer whose stream Redis lost
// drops the later entries and does not recreate the stream, and that the
// End of a stream whose leader stopped appending sends joiners to the
// record (ErrLiveLost) rather than ending a stream with a hole.
func TestRedisLiveWriterLost(t *testing.T) {
	client, prefix := redisForTest(t)
	r := NewRedis(client, prefix)
	defer r.Close()
	ctx := context.Background()
	sync := func() {
		t.Helper()
		done := make(chan error, 1)
		r.Finish(nil, "x", func(err error) { done <- err })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	failed := func(err error) { t.Errorf("backend error: %v", err) }

	w := r.Writer("lost", failed)
	w.Append(dataEvent(0))
	sync()
	if err := client.Del(ctx, prefix+"live:lost").Err(); err != nil {
		t.Fatal(err)
	}
	w.Append(dataEvent(1))
	sync()
	if !w.Down() {
		t.Fatal("the writer of a lost stream is not down")
	}
	w.Append(dataEvent(2))
	w.End(LiveEvent{Continues: true}, time.Minute, false)
	sync()
	if n := client.Exists(ctx, prefix+"live:lost").Val(); n != 0 {
		t.Fatal("entries after the loss recreated the stream")
	}

	w = r.Writer("stopped", failed)
	w.Append(dataEvent(0))
	w.End(LiveEvent{Continues: true}, time.Minute, true)
	sync()
	got, err := followAll(t, r, ctx, "stopped", 0, time.Second)
	if !errors.Is(err, ErrLiveLost) || len(got) != 1 {
		t.Fatalf("follow of a stopped stream = %d events, %v; want 1 and ErrLiveLost", len(got), err)
	}
}
