package dedupe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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

// appendScript adds a stream's entries in order, in one round trip, and
// then sets the stream's expiry: the ttl of ARGV[4] (ms) for an ended
// stream (Expire's linger), else the safety expiry when the key has none
// yet (its first append); a later ARGV[4] replaces the safety expiry,
// which the script then leaves alone. Entries that continue a stream
// (ARGV[3] = 1) are refused when the stream is gone
// (LiveEvent.Continues). After ARGV[4], each entry is its field count n
// and then its n field names and values.
var appendScript = redis.NewScript(`
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
	return redis.error_reply('LIVELOST the live stream is gone')
end
local i = 5
while i <= #ARGV do
	local n = tonumber(ARGV[i])
	redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, i + 1, i + n))
	i = i + n + 1
end
if ARGV[4] ~= '0' then
	redis.call('PEXPIRE', KEYS[1], ARGV[4])
elseif redis.call('TTL', KEYS[1]) == -1 then
	redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1`)

// appendArgs starts appendScript's arguments.
func appendArgs(continues bool, expire time.Duration) []any {
	c := "0"
	if continues {
		c = "1"
	}
	var ms int64
	if expire > 0 {
		ms = lockMillis(expire)
	}
	// Room for a few entries of three values (a flush of a busy stream).
	args := make([]any, 4, 4+3*8)
	args[0], args[1], args[2], args[3] = liveMaxLen, int64(liveSafetyTTL/time.Second), c, ms
	return args
}

// appendEntry adds one entry's fields to appendScript's arguments: d=<data>,
// plus e=1 and err=<msg> on the End event, and lost=1 on an End that
// follows entries the stream missed (see LiveWriter).
func appendEntry(args []any, ev LiveEvent, lost bool) []any {
	n := 2
	if ev.End {
		n += 2
		if ev.Err != "" {
			n += 2
		}
		if lost {
			n += 2
		}
	}
	args = append(args, n, "d", ev.Data)
	if ev.End {
		args = append(args, "e", "1")
		if ev.Err != "" {
			args = append(args, "err", ev.Err)
		}
		if lost {
			args = append(args, "lost", "1")
		}
	}
	return args
}

// Append implements Live with one XADD (see appendScript). A leader
// appends through a LiveWriter instead, which batches.
func (r *Redis) Append(ctx context.Context, name string, ev LiveEvent) error {
	args := appendEntry(appendArgs(ev.Continues, 0), ev, false)
	if err := appendScript.Run(ctx, r.client, []string{r.prefix + "live:" + name}, args...).Err(); err != nil {
		return appendError(name, err)
	}
	return nil
}

func appendError(name string, err error) error {
	if redis.HasErrorPrefix(err, "LIVELOST") {
		return fmt.Errorf("cannot append to live stream %q: %w", name, ErrLiveLost)
	}
	return lockUnavailable("append to live stream", name, err)
}

// ErrLiveLost: Redis no longer holds a running stream (it restarted
// empty); its joiners finish from the record.
var ErrLiveLost = errors.New("dedupe: the live stream is gone from Redis")

// decodeLive is the inverse of appendEntry's fields; lost reports an End
// that follows missed entries.
func decodeLive(values map[string]any) (ev LiveEvent, lost bool) {
	if d, ok := values["d"].(string); ok && d != "" {
		ev.Data = []byte(d)
	}
	if e, _ := values["e"].(string); e == "1" {
		ev.End = true
		ev.Err, _ = values["err"].(string)
		lost = values["lost"] == "1"
	}
	return ev, lost
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
				ev, lost := decodeLive(m.Values)
				if lost {
					// The stream missed entries: the rest comes from the
					// record (Join), not from an end that would make it
					// look whole.
					return fmt.Errorf("cannot follow live stream %q: %w", name, ErrLiveLost)
				}
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

// liveFlushTimeout bounds one flush of the live queue (one pipeline).
const liveFlushTimeout = 5 * time.Second

// LiveWriter appends one leader's live stream to Redis through the
// backend's queue (Redis.Writer): Append never waits for Redis, and all
// the entries queued while a flush is on its way go out together in the
// next one, one round trip for every stream of the node (issue 14). The
// leader's own client and this node's joiners read the node's copy
// (Local), so only joiners on other nodes see an entry a flush later.
// Once an append fails or is refused, the writer drops the stream's
// later entries, and its End is marked lost, so that remote joiners finish
// from the record instead of relaying a stream with a hole in it.
type LiveWriter struct {
	q      *liveQueue
	name   string
	key    string
	failed func(error)

	// Leader only: an entry was queued (the next ones continue the
	// stream), and the End was.
	queued, ended bool
	// down: an append failed, was refused, or the leader stopped
	// appending; set by either side, read by both.
	down atomic.Bool

	// Flusher only: an entry reached Redis, and this writer's place in
	// the flush being built (-1: none).
	started bool
	slot    int
}

// Writer returns the writer of the named live stream; failed is called
// (from the queue's goroutine) with each backend error, not with a
// refusal of a stream Redis lost (ErrLiveLost).
func (r *Redis) Writer(name string, failed func(error)) *LiveWriter {
	return &LiveWriter{q: r.queue(), name: name, key: r.prefix + "live:" + name, failed: failed, slot: -1}
}

// Append queues one data event; its Data must not change afterwards.
func (w *LiveWriter) Append(ev LiveEvent) {
	if w.ended || w.down.Load() {
		return
	}
	ev.Continues = w.queued
	w.queued = true
	w.q.push(liveItem{w: w, ev: ev, hasEv: true})
}

// Down reports whether the writer drops entries.
func (w *LiveWriter) Down() bool { return w.down.Load() }

// End queues the end marker (once: a second one only sets the expiry)
// and then the stream's expiry after ttl. ev.Continues is the leader's:
// set when the stream had events, so that a Redis that lost them refuses
// the end too. lost tells that the leader stopped appending before the
// end (e.g. while Redis was skipped): the End is then marked lost.
func (w *LiveWriter) End(ev LiveEvent, ttl time.Duration, lost bool) {
	it := liveItem{w: w, expire: ttl, lost: lost}
	if !w.ended {
		ev.End, ev.Continues = true, ev.Continues || w.queued
		it.ev, it.hasEv = ev, true
		w.ended = true
	}
	w.q.push(it)
}

// Finish releases lock (when it is one of this backend's) and wakes the
// waiters of name on every node, in the next flush, after the entries
// queued before it; done receives the first error. It is the end of a
// task in Redis (Coordinator's leader), in the same round trip as the
// end of its live stream.
func (r *Redis) Finish(lock Lock, name string, done func(error)) {
	r.queue().push(liveItem{lock: lock, publish: r.prefix + "done:" + name, done: done})
}

// liveItem is one queued operation: an entry and/or expiry of a writer's
// stream, or the release and wake-up of a finished task.
type liveItem struct {
	w      *LiveWriter
	ev     LiveEvent
	hasEv  bool
	lost   bool
	expire time.Duration

	lock    Lock
	publish string
	done    func(error)
}

// liveQueue is a Redis backend's queue of live entries and task ends,
// written by one goroutine that flushes everything queued since the last
// flush in one pipeline, as soon as the last one returned: no timer, so
// an idle node adds no delay, and a busy one sends one round trip per
// flush instead of one per event.
type liveQueue struct {
	client redis.UniversalClient

	mu     sync.Mutex
	items  []liveItem
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

// queue returns the backend's queue, starting its goroutine on first use.
func (r *Redis) queue() *liveQueue {
	r.queueOnce.Do(func() {
		r.live = &liveQueue{client: r.client, wake: make(chan struct{}, 1), done: make(chan struct{})}
		go r.live.run()
	})
	return r.live
}

// errLiveQueueClosed answers what is queued after Close.
var errLiveQueueClosed = errors.New("dedupe: the Redis backend is closed")

func (q *liveQueue) push(it liveItem) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		if it.done != nil {
			it.done(lockUnavailable("finish", it.publish, errLiveQueueClosed))
		}
		return
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close flushes what is queued and stops the goroutine.
func (q *liveQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	<-q.done
}

func (q *liveQueue) run() {
	defer close(q.done)
	var batch []liveItem
	for {
		q.mu.Lock()
		for len(q.items) == 0 && !q.closed {
			q.mu.Unlock()
			<-q.wake
			q.mu.Lock()
		}
		if len(q.items) == 0 {
			q.mu.Unlock()
			return
		}
		batch, q.items = q.items, batch[:0]
		q.mu.Unlock()
		q.flush(batch)
		clear(batch)
	}
}

// liveCall is one command of a flush: a writer's appendScript call, or a
// finished task's release and publish.
type liveCall struct {
	w       *LiveWriter
	args    []any
	entries int
	expire  time.Duration

	it      *liveItem
	release *redis.Cmd
	pub     *redis.IntCmd
	cmd     *redis.Cmd
}

// flush writes batch in one pipeline. A writer's entries become one
// appendScript call at the place of its first one, so the order of each
// stream holds, and a task's end comes after its stream's End.
func (q *liveQueue) flush(batch []liveItem) {
	calls := make([]liveCall, 0, len(batch))
	for i := range batch {
		it := &batch[i]
		w := it.w
		if w == nil {
			calls = append(calls, liveCall{it: it})
			continue
		}
		if w.slot < 0 {
			w.slot = len(calls)
			calls = append(calls, liveCall{w: w})
		}
		c := &calls[w.slot]
		if it.expire > 0 {
			c.expire = it.expire
		}
		if !it.hasEv || (!it.ev.End && w.down.Load()) {
			continue
		}
		if c.entries == 0 {
			// The first entry of this flush decides: it continues the
			// stream when an earlier one was queued (or reached Redis).
			c.args = appendArgs(it.ev.Continues || w.started, 0)
		}
		c.args = appendEntry(c.args, it.ev, it.ev.End && (it.lost || w.down.Load()))
		c.entries++
	}
	ctx, cancel := context.WithTimeout(context.Background(), liveFlushTimeout)
	defer cancel()
	pipe := q.client.Pipeline()
	for i := range calls {
		c := &calls[i]
		switch {
		case c.w != nil:
			c.w.slot = -1
			if c.entries == 0 && c.expire == 0 {
				continue
			}
			if c.entries == 0 {
				c.args = appendArgs(false, 0)
			}
			c.args[3] = lockMillis(c.expire)
			if c.expire <= 0 {
				c.args[3] = int64(0)
			}
			c.cmd = appendScript.EvalSha(ctx, pipe, []string{c.w.key}, c.args...)
		default:
			if l, ok := c.it.lock.(*redisLock); ok {
				c.release = releaseScript.EvalSha(ctx, pipe, []string{l.key}, l.token)
			}
			c.pub = pipe.Publish(ctx, c.it.publish, "1")
		}
	}
	_, _ = pipe.Exec(ctx) // each command's error is read below
	for i := range calls {
		c := &calls[i]
		switch {
		case c.cmd != nil:
			err := c.cmd.Err()
			if isNoScript(err) {
				err = appendScript.Run(ctx, q.client, []string{c.w.key}, c.args...).Err()
			}
			q.appended(c.w, err)
		case c.it != nil:
			var err error
			if l, ok := c.it.lock.(*redisLock); ok {
				err = c.release.Err()
				if isNoScript(err) {
					err = l.Release(ctx)
				} else if err != nil {
					err = lockUnavailable("release lock", l.name, err)
				}
			} else if c.it.lock != nil {
				err = c.it.lock.Release(ctx)
			}
			if perr := c.pub.Err(); perr != nil && err == nil {
				err = lockUnavailable("publish", c.it.publish, perr)
			}
			c.it.done(err)
		}
	}
}

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

// appended takes in the result of one writer's appendScript call.
func (q *liveQueue) appended(w *LiveWriter, err error) {
	if err == nil {
		w.started = true
		return
	}
	w.down.Store(true)
	if err := appendError(w.name, err); !errors.Is(err, ErrLiveLost) {
		w.failed(err)
	}
}
