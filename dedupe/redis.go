package dedupe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis implements Locker, Notifier and Live over a go-redis
// UniversalClient, so a single node, Sentinel or Cluster all work
// (DESIGN.md section 3). Every key it touches holds exactly one name, so
// each command and script addresses a single hash slot.
//
// Every error of the backend (including a timeout of the caller's context
// while Redis does not answer) wraps both ErrLockUnavailable and its
// cause, so that callers can fall back to the record store and count the
// degraded request.
type Redis struct {
	client redis.UniversalClient
	prefix string

	subMu   sync.Mutex
	sub     *redis.PubSub
	subDone chan struct{}
	waiters map[string]map[chan struct{}]struct{}

	// live is the queue of the leaders' live entries and task ends,
	// created on first use (redislive.go).
	queueOnce sync.Once
	live      *liveQueue
}

// NewRedis returns a Redis backend whose keys and channels all start with
// prefix (e.g. "gw:"): locks at prefix+"lock:"+name, wake-ups on the
// channel prefix+"done:"+name, live streams at prefix+"live:"+name.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
}

// The scripts are immutable (source and hash only); Run tries EVALSHA and
// falls back to EVAL when the server does not know the script yet.
var (
	// extendScript renews the lock only if it still holds our token, so a
	// holder whose lock expired and was taken cannot steal it back.
	extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)
	// releaseScript deletes the lock only if it still holds our token.
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0`)
)

// lockUnavailable wraps a backend error so that errors.Is finds both
// ErrLockUnavailable and the cause (e.g. context.DeadlineExceeded).
func lockUnavailable(verb, name string, err error) error {
	return fmt.Errorf("cannot %s %q: %w: %w", verb, name, ErrLockUnavailable, err)
}

// lockMillis converts a ttl to whole milliseconds, at least one: PX and
// PEXPIRE reject zero, and a sub-millisecond lock is as good as none.
func lockMillis(ttl time.Duration) int64 {
	if ms := ttl.Milliseconds(); ms > 0 {
		return ms
	}
	return 1
}

// TryAcquire implements Locker with SET NX and a random token (go-redis
// sends PX for sub-second or fractional ttls, EX otherwise).
func (r *Redis) TryAcquire(ctx context.Context, name string, ttl time.Duration) (Lock, bool, error) {
	token, err := newLockToken()
	if err != nil {
		return nil, false, fmt.Errorf("cannot acquire lock %q: %w", name, err)
	}
	key := r.prefix + "lock:" + name
	ok, err := r.client.SetNX(ctx, key, token, time.Duration(lockMillis(ttl))*time.Millisecond).Result()
	if err != nil {
		return nil, false, lockUnavailable("acquire lock", name, err)
	}
	if !ok {
		return nil, false, nil
	}
	return &redisLock{r: r, name: name, key: key, token: token}, true, nil
}

// newLockToken returns 16 random bytes in hex: only the holder knows it,
// so nobody else can extend or release the lock by accident.
func newLockToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

type redisLock struct {
	r     *Redis
	name  string
	key   string
	token string
}

// Extend implements Lock with a compare-and-extend script.
func (l *redisLock) Extend(ctx context.Context, ttl time.Duration) (bool, error) {
	n, err := extendScript.Run(ctx, l.r.client, []string{l.key}, l.token, lockMillis(ttl)).Int64()
	if err != nil {
		return false, lockUnavailable("extend lock", l.name, err)
	}
	return n == 1, nil
}

// Release implements Lock with a compare-and-delete script; releasing a
// lock that was lost is a no-op.
func (l *redisLock) Release(ctx context.Context) error {
	if err := releaseScript.Run(ctx, l.r.client, []string{l.key}, l.token).Err(); err != nil {
		return lockUnavailable("release lock", l.name, err)
	}
	return nil
}

// Subscribe implements Notifier with Redis Pub/Sub. All waiters of a
// process share one pattern subscription (prefix+"done:*") and are woken
// through an in-process fan-out, so a thousand waiting duplicates hold
// one Redis connection, not a thousand. ctx bounds only the set-up of
// that subscription; the returned function ends this waiter's interest
// and must be called.
//
// go-redis pings the subscription's connection and resubscribes after a
// reconnect; a publish sent while disconnected is lost, which is why
// waiters must not rely on the wake-up alone (it is best effort).
func (r *Redis) Subscribe(ctx context.Context, name string) (<-chan struct{}, func(), error) {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	if r.sub == nil {
		if err := r.startSubscription(ctx); err != nil {
			return nil, nil, lockUnavailable("subscribe to", name, err)
		}
	}
	out := make(chan struct{}, 1)
	set := r.waiters[name]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		r.waiters[name] = set
	}
	set[out] = struct{}{}
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			r.subMu.Lock()
			defer r.subMu.Unlock()
			delete(r.waiters[name], out)
			if len(r.waiters[name]) == 0 {
				delete(r.waiters, name)
			}
		})
	}
	return out, cancel, nil
}

// startSubscription opens the shared pattern subscription and its
// fan-out goroutine. Must be called with subMu held.
func (r *Redis) startSubscription(ctx context.Context) error {
	sub := r.client.PSubscribe(ctx, r.prefix+"done:*")
	// Wait for the server's confirmation: a publish sent after Subscribe
	// returns must reach us.
	msg, err := sub.Receive(ctx)
	if err == nil {
		if s, ok := msg.(*redis.Subscription); !ok || s.Kind != "psubscribe" {
			err = fmt.Errorf("unexpected reply %v", msg)
		}
	}
	if err != nil {
		_ = sub.Close()
		return err
	}
	r.sub, r.waiters = sub, map[string]map[chan struct{}]struct{}{}
	r.subDone = make(chan struct{})
	msgs := sub.Channel(redis.WithChannelSize(64))
	go func() {
		defer close(r.subDone)
		// msgs is closed by sub.Close (Close), which ends this goroutine.
		for m := range msgs {
			name := strings.TrimPrefix(m.Channel, r.prefix+"done:")
			r.subMu.Lock()
			for ch := range r.waiters[name] {
				select {
				case ch <- struct{}{}:
				default:
					// A wake-up is already pending; the waiter re-reads
					// the record anyway.
				}
			}
			r.subMu.Unlock()
		}
	}()
	return nil
}

// Close writes what the live queue holds, then ends it and the shared
// subscription (the client is the caller's).
func (r *Redis) Close() error {
	r.queueOnce.Do(func() { r.live = &liveQueue{closed: true} })
	if r.live.done != nil {
		r.live.close()
	}
	r.subMu.Lock()
	sub, done := r.sub, r.subDone
	r.sub = nil
	r.subMu.Unlock()
	if sub == nil {
		return nil
	}
	err := sub.Close()
	<-done
	return err
}

// Ping checks that Redis answers (the background probe of a Redis that
// failed, and /readyz).
func (r *Redis) Ping(ctx context.Context) error {
	return r.client.Ping(ctx).Err()
}

// Publish implements Notifier.
func (r *Redis) Publish(ctx context.Context, name string) error {
	if err := r.client.Publish(ctx, r.prefix+"done:"+name, "1").Err(); err != nil {
		return lockUnavailable("publish", name, err)
	}
	return nil
}
