package dedupe

import (
	"context"
	"errors"
	"time"
)

// ErrLockUnavailable wraps errors of a lock backend that cannot be
// reached; callers fall back to the record store alone (degraded).
var ErrLockUnavailable = errors.New("dedupe: lock backend unavailable")

// Lock is a held lock; its token is only known to its holder.
type Lock interface {
	// Extend renews the lock if this holder still owns it (compare-and-extend);
	// it returns false when the lock was lost.
	Extend(ctx context.Context, ttl time.Duration) (bool, error)
	// Release deletes the lock if this holder still owns it (compare-and-delete).
	Release(ctx context.Context) error
}

// Locker hands out short-lived named locks. A lock only spares the record
// store the losers' round trips; correctness rests on the store's fence.
type Locker interface {
	// TryAcquire makes one attempt; ok is false when someone else holds the name.
	TryAcquire(ctx context.Context, name string, ttl time.Duration) (l Lock, ok bool, err error)
}

// Notifier wakes waiters when a task finishes, on this node and others.
type Notifier interface {
	// Subscribe returns a channel that receives a value (best effort) each
	// time name is published, and a function that ends the subscription.
	// The subscription is active when Subscribe returns.
	Subscribe(ctx context.Context, name string) (<-chan struct{}, func(), error)
	// Publish wakes every subscriber of name.
	Publish(ctx context.Context, name string) error
}

// LiveEvent is one entry of a live stream: an SSE event's raw bytes, or
// the end marker.
type LiveEvent struct {
	// Data is one SSE event exactly as the upstream sent it, without the
	// blank line that ends it.
	Data []byte
	// End is set on the last entry; Err describes a failed stream ("" = clean end).
	End bool
	Err string
	// Continues is set on every entry after the leader's first one in
	// this backend: Redis refuses it for a stream it does not hold
	// (ErrLiveLost), so a Redis restarted empty under a running leader
	// never holds a stream without its start, which a joiner would
	// relay as a whole, shorter answer (found by the chaos run).
	Continues bool
}

// Live carries the events of a running stream from its leader to joiners,
// who read it from the start and then follow the live tail.
type Live interface {
	// Append adds one event to the named stream.
	Append(ctx context.Context, name string, ev LiveEvent) error
	// Follow sends the stream's events from index from (0 = the first) to
	// the returned channel, in order, and closes it after the End event,
	// when ctx is done, or on a backend error (the error func then tells it).
	// A stream that has no entries yet is waited for up to idle.
	Follow(ctx context.Context, name string, from int, idle time.Duration) (<-chan LiveEvent, func() error)
	// Expire schedules the stream's deletion after ttl (called once it ended).
	Expire(ctx context.Context, name string, ttl time.Duration) error
}
