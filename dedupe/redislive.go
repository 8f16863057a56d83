package dedupe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// liveMaxLen bounds one Redis stream (XADD MAXLEN ~). An LLM stream
	// has one event per few tokens, so this is far beyond any real
	// response; it only stops a runaway leader from filling Redis. A
	// follower of a trimmed stream would miss its beginning.
	liveMaxLen = 100000
	// liveSafetyTTL is set on a stream's first append so that the stream
	// of a leader that died before Expire still vanishes. It exceeds any
	// sane dedupe.max_processing.
	liveSafetyTTL = time.Hour
	// liveReadSlice is the longest single XREAD BLOCK: go-redis does not
	// interrupt a blocked read when ctx ends, so a follower notices a
	// cancelled ctx within this time.
	liveReadSlice = time.Second
	// liveReadCount is how many entries one XREAD returns at most.
	liveReadCount = 256
)

// appendScript adds one entry and, when the key has no expiry yet (the
// first append), sets the safety expiry, in one round trip. Expire later
// replaces it with the short post-completion ttl, which this script then
// leaves alone. An entry that continues a stream (ARGV[3] = 1) is refused
// when the stream is gone (LiveEvent.Continues).
var appendScript = redis.NewScript(`
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
	return redis.error_reply('LIVELOST the live stream is gone')
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 4))
if redis.call('TTL', KEYS[1]) == -1 then
	redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return id`)

// Append implements Live with XADD: d=<data>, plus e=1 and err=<msg> on
// the End event.
func (r *Redis) Append(ctx context.Context, name string, ev LiveEvent) error {
	continues := "0"
	if ev.Continues {
		continues = "1"
	}
	args := []any{liveMaxLen, int64(liveSafetyTTL / time.Second), continues, "d", ev.Data}
	if ev.End {
		args = append(args, "e", "1")
		if ev.Err != "" {
			args = append(args, "err", ev.Err)
		}
	}
	if err := appendScript.Run(ctx, r.client, []string{r.prefix + "live:" + name}, args...).Err(); err != nil {
		if redis.HasErrorPrefix(err, "LIVELOST") {
			return fmt.Errorf("cannot append to live stream %q: %w", name, ErrLiveLost)
		}
		return lockUnavailable("append to live stream", name, err)
	}
	return nil
}

// ErrLiveLost: Redis no longer holds a running stream (it restarted
// empty); its joiners finish from the record.
var ErrLiveLost = errors.New("dedupe: the live stream is gone from Redis")

// decodeLive is the inverse of Append's fields.
func decodeLive(values map[string]any) LiveEvent {
	var ev LiveEvent
	if d, ok := values["d"].(string); ok && d != "" {
		ev.Data = []byte(d)
	}
	if e, _ := values["e"].(string); e == "1" {
		ev.End = true
		ev.Err, _ = values["err"].(string)
	}
	return ev
}

// Follow implements Live with XREAD BLOCK from the stream's start. A
// backend error ends the follow with an error wrapping ErrLockUnavailable,
// a stream that stays empty for idle with one wrapping ErrLiveNotFound,
// and a done ctx with ctx's error.
func (r *Redis) Follow(ctx context.Context, name string, from int, idle time.Duration) (<-chan LiveEvent, func() error) {
	out := make(chan LiveEvent, liveFollowBuffer)
	res := &followResult{}
	go func() {
		// Deferred calls run last-in first-out: the result is set before
		// out is closed, so a reader that saw the close sees the result.
		defer close(out)
		res.set(r.follow(ctx, name, from, idle, out))
	}()
	return out, res.get
}

func (r *Redis) follow(ctx context.Context, name string, from int, idle time.Duration, out chan<- LiveEvent) error {
	key := r.prefix + "live:" + name
	lastID := "0-0"
	// seen counts the entries read so far: entry ids are timestamps, so
	// the index `from` can only be found by counting.
	seen := 0
	deadline := time.Now().Add(idle)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cannot follow live stream %q: %w", name, err)
		}
		block := liveReadSlice
		if seen == 0 {
			block = min(block, time.Until(deadline))
		}
		// BLOCK 0 would mean forever.
		block = max(block, time.Millisecond)
		streams, err := r.client.XRead(ctx, &redis.XReadArgs{
			Streams: []string{key, lastID},
			Count:   liveReadCount,
			Block:   block,
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) { // redis.Nil: the block timed out
			if err := liveCtxErr(ctx); err != nil {
				return fmt.Errorf("cannot follow live stream %q: %w", name, err)
			}
			return lockUnavailable("follow live stream", name, err)
		}
		for _, s := range streams {
			for _, m := range s.Messages {
				lastID = m.ID
				seen++
				ev := decodeLive(m.Values)
				if seen > from {
					select {
					case out <- ev:
					case <-ctx.Done():
						return fmt.Errorf("cannot follow live stream %q: %w", name, ctx.Err())
					}
				}
				if ev.End {
					// Also when End lies before from: nothing follows it.
					return nil
				}
			}
		}
		if seen == 0 && !time.Now().Before(deadline) {
			return fmt.Errorf("cannot follow live stream %q: %w", name, ErrLiveNotFound)
		}
	}
}

// liveCtxErr returns ctx's error, or DeadlineExceeded once its deadline
// passed: go-redis cuts a read at ctx's deadline with an i/o timeout that
// may come a moment before ctx.Err is set, and that is not the backend's
// fault.
func liveCtxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// Expire implements Live with PEXPIRE (DEL for a ttl <= 0).
func (r *Redis) Expire(ctx context.Context, name string, ttl time.Duration) error {
	key := r.prefix + "live:" + name
	var err error
	if ttl <= 0 {
		err = r.client.Del(ctx, key).Err()
	} else {
		err = r.client.PExpire(ctx, key, time.Duration(lockMillis(ttl))*time.Millisecond).Err()
	}
	if err != nil {
		return lockUnavailable("expire live stream", name, err)
	}
	return nil
}
