package dedupe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrLiveNotFound ends a Follow of a stream that had no entries within
// its idle time: the leader never started it, or it already expired.
var ErrLiveNotFound = errors.New("dedupe: live stream not found")

// ErrLiveTrimmed ends a Follow that starts before the events a trimmed
// stream still holds (see Local.Trim).
var ErrLiveTrimmed = errors.New("dedupe: live stream was trimmed past the requested position")

// liveFollowBuffer is the capacity of a follower's channel: it lets the
// follower read ahead of a slow client by a few events. Every open stream
// has one, so it stays small (issue 14): the live stream keeps the events
// a slow client has not read yet anyway.
const liveFollowBuffer = 8

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
	// events[i] is the stream's event number base+i: Trim drops the ones
	// every follower has read.
	events []LiveEvent
	base   int
	// positions are the next event numbers of the running followers.
	positions map[*atomic.Int64]struct{}
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
	s := l.open(name)
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
	// A follower of an existing stream holds its position from now on,
	// so Trim cannot drop events it has not been handed yet.
	pos := new(atomic.Int64)
	l.mu.Lock()
	s := l.streams[name]
	if s != nil && from >= s.base {
		pos.Store(int64(max(from, 0)))
		s.positions[pos] = struct{}{}
	}
	l.mu.Unlock()
	go func() {
		// Deferred calls run last-in first-out: the result is set before
		// out is closed.
		defer close(out)
		res.set(l.follow(ctx, name, from, idle, out, s, pos))
	}()
	return out, res.get
}

// Open creates the named stream if it does not exist yet, so that its
// followers can hold their positions before the first event.
func (l *Local) Open(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open(name)
}

// open returns the named stream, creating it. Must be called with l.mu held.
func (l *Local) open(name string) *localStream {
	s := l.streams[name]
	if s == nil {
		s = &localStream{changed: make(chan struct{}), positions: map[*atomic.Int64]struct{}{}}
		s.expiry = l.expireAfter(name, s, liveSafetyTTL)
		l.streams[name] = s
		close(l.created)
		l.created = make(chan struct{})
	}
	return s
}

func (l *Local) follow(ctx context.Context, name string, from int, idle time.Duration, out chan<- LiveEvent, held *localStream, pos *atomic.Int64) error {
	s := held
	i := max(from, 0)
	registered := false
	if s != nil {
		l.mu.Lock()
		_, registered = s.positions[pos]
		l.mu.Unlock()
	}
	if !registered {
		var err error
		if s, err = l.waitStream(ctx, name, idle); err != nil {
			return err
		}
		l.mu.Lock()
		if i < s.base {
			l.mu.Unlock()
			return fmt.Errorf("cannot follow live stream %q from %d: %w", name, i, ErrLiveTrimmed)
		}
		pos.Store(int64(i))
		s.positions[pos] = struct{}{}
		l.mu.Unlock()
	}
	defer func() {
		l.mu.Lock()
		delete(s.positions, pos)
		l.mu.Unlock()
	}()
	for {
		l.mu.Lock()
		events, base, changed := s.events, s.base, s.changed
		l.mu.Unlock()
		if n := base + len(events); n > 0 && len(events) > 0 && events[len(events)-1].End && i >= n {
			// from lies past the end: nothing more will come.
			return nil
		}
		for ; i < base+len(events); i++ {
			select {
			case out <- events[i-base]:
			case <-ctx.Done():
				return fmt.Errorf("cannot follow live stream %q: %w", name, ctx.Err())
			}
			if events[i-base].End {
				return nil
			}
			pos.Store(int64(i + 1))
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

// Trim drops the events of a stream that every running follower has
// already read, so a stream too large to record keeps in memory only
// what its slowest reader still needs. Followers that start later from
// a dropped position get ErrLiveTrimmed.
func (l *Local) Trim(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.streams[name]
	if s == nil {
		return
	}
	low := s.base + len(s.events)
	for p := range s.positions {
		low = min(low, int(p.Load()))
	}
	if drop := low - s.base; drop > 0 {
		// A new slice, so followers holding the old one keep valid events.
		s.events = append([]LiveEvent(nil), s.events[drop:]...)
		s.base = low
	}
}
