package dedupe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrLiveNotFound ends a Follow of a stream that had no entries within
// its idle time: the leader never started it, or it already expired.
var ErrLiveNotFound = errors.New("dedupe: live stream not found")

// liveFollowBuffer is the capacity of a follower's channel: it lets the
// follower read ahead of a slow client by a few events.
const liveFollowBuffer = 64

// followResult holds why a Follow stopped; get may be called at any time
// and returns nil while the follow runs or after a clean End.
type followResult struct {
	mu  sync.Mutex
	err error
}

func (r *followResult) set(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

func (r *followResult) get() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// localStream is one live stream of a Local. Its fields are guarded by
// Local.mu. events only grows, so a follower may read events[:n] it got
// under the lock after releasing it.
type localStream struct {
	events []LiveEvent
	// changed is closed and replaced on every append: a broadcast that
	// followers can select on together with their ctx.
	changed chan struct{}
	// expiry deletes the stream: the safety expiry from its creation, then
	// the one set by Expire. A timer is not a goroutine until it fires.
	expiry *time.Timer
}

// Append implements Live. The event's Data is copied, so the caller may
// reuse its buffer.
func (l *Local) Append(_ context.Context, name string, ev LiveEvent) error {
	ev.Data = append([]byte(nil), ev.Data...)
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.streams[name]
	if s == nil {
		s = &localStream{changed: make(chan struct{})}
		s.expiry = l.expireAfter(name, s, liveSafetyTTL)
		l.streams[name] = s
		close(l.created)
		l.created = make(chan struct{})
	}
	s.events = append(s.events, ev)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// expireAfter deletes s after ttl unless name has become another stream
// by then. Must be called with l.mu held.
func (l *Local) expireAfter(name string, s *localStream, ttl time.Duration) *time.Timer {
	return time.AfterFunc(ttl, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.streams[name] == s {
			delete(l.streams, name)
		}
	})
}

// Expire implements Live. Followers that already hold the stream read it
// to its end; the memory goes when the last of them stops.
func (l *Local) Expire(_ context.Context, name string, ttl time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.streams[name]
	if s == nil {
		return nil
	}
	s.expiry.Stop()
	if ttl <= 0 {
		delete(l.streams, name)
		return nil
	}
	s.expiry = l.expireAfter(name, s, ttl)
	return nil
}

// Follow implements Live. The follower goroutine lives only as long as
// the follow: it ends at End, when ctx is done, or after idle without a
// stream (with an error wrapping ErrLiveNotFound).
func (l *Local) Follow(ctx context.Context, name string, from int, idle time.Duration) (<-chan LiveEvent, func() error) {
	out := make(chan LiveEvent, liveFollowBuffer)
	res := &followResult{}
	go func() {
		// Deferred calls run last-in first-out: the result is set before
		// out is closed.
		defer close(out)
		res.set(l.follow(ctx, name, from, idle, out))
	}()
	return out, res.get
}

func (l *Local) follow(ctx context.Context, name string, from int, idle time.Duration, out chan<- LiveEvent) error {
	s, err := l.waitStream(ctx, name, idle)
	if err != nil {
		return err
	}
	i := max(from, 0)
	for {
		l.mu.Lock()
		events, changed := s.events, s.changed
		l.mu.Unlock()
		if n := len(events); n > 0 && events[n-1].End && i >= n {
			// from lies past the end: nothing more will come.
			return nil
		}
		for ; i < len(events); i++ {
			select {
			case out <- events[i]:
			case <-ctx.Done():
				return fmt.Errorf("cannot follow live stream %q: %w", name, ctx.Err())
			}
			if events[i].End {
				return nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("cannot follow live stream %q: %w", name, ctx.Err())
		}
	}
}

// waitStream returns the named stream, waiting up to idle for its first
// append.
func (l *Local) waitStream(ctx context.Context, name string, idle time.Duration) (*localStream, error) {
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		l.mu.Lock()
		s, created := l.streams[name], l.created
		l.mu.Unlock()
		if s != nil {
			return s, nil
		}
		select {
		case <-created:
		case <-timer.C:
			return nil, fmt.Errorf("cannot follow live stream %q: %w", name, ErrLiveNotFound)
		case <-ctx.Done():
			return nil, fmt.Errorf("cannot follow live stream %q: %w", name, ctx.Err())
		}
	}
}
