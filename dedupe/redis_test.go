package dedupe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
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
