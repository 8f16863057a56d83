package dedupe

import (
	"context"
	"sync"
	"time"
)

// Local implements Locker, Notifier and Live within one process, for a
// single node on the embedded store (DESIGN.md section 3). It never fails
// with ErrLockUnavailable. The zero value is not usable; call NewLocal.
type Local struct {
	mu sync.Mutex

	locks map[string]localLockState
	// nextToken makes tokens unique within this Local; nothing outside
	// the process can guess them, so they need not be random.
	nextToken uint64
	// sweepAt is the size of locks at which expired entries of holders
	// that never released are swept (amortised O(1) per acquire).
	sweepAt int

	subs map[string]map[*localSub]struct{}

	streams map[string]*localStream
	// created is closed and replaced whenever a stream is created, to
	// wake followers waiting for a stream that did not exist yet.
	created chan struct{}
}

// NewLocal returns an empty in-process backend.
func NewLocal() *Local {
	return &Local{
		locks:   make(map[string]localLockState),
		sweepAt: localSweepMin,
		subs:    make(map[string]map[*localSub]struct{}),
		streams: make(map[string]*localStream),
		created: make(chan struct{}),
	}
}

const localSweepMin = 64

type localLockState struct {
	token uint64
	until time.Time
}

// TryAcquire implements Locker. A lock whose ttl passed is free, as a
// Redis key that expired would be.
func (l *Local) TryAcquire(_ context.Context, name string, ttl time.Duration) (Lock, bool, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if st, ok := l.locks[name]; ok && now.Before(st.until) {
		return nil, false, nil
	}
	if len(l.locks) >= l.sweepAt {
		for n, st := range l.locks {
			if !now.Before(st.until) {
				delete(l.locks, n)
			}
		}
		l.sweepAt = max(2*len(l.locks), localSweepMin)
	}
	l.nextToken++
	l.locks[name] = localLockState{token: l.nextToken, until: now.Add(ttl)}
	return &localLock{l: l, name: name, token: l.nextToken}, true, nil
}

type localLock struct {
	l     *Local
	name  string
	token uint64
}

// Extend implements Lock: it renews the lock while this holder owns it
// and it has not expired.
func (k *localLock) Extend(_ context.Context, ttl time.Duration) (bool, error) {
	now := time.Now()
	k.l.mu.Lock()
	defer k.l.mu.Unlock()
	st, ok := k.l.locks[k.name]
	if !ok || st.token != k.token || !now.Before(st.until) {
		return false, nil
	}
	k.l.locks[k.name] = localLockState{token: k.token, until: now.Add(ttl)}
	return true, nil
}

// Release implements Lock: it deletes the lock only while this holder
// owns it.
func (k *localLock) Release(context.Context) error {
	k.l.mu.Lock()
	defer k.l.mu.Unlock()
	if st, ok := k.l.locks[k.name]; ok && st.token == k.token {
		delete(k.l.locks, k.name)
	}
	return nil
}

type localSub struct {
	ch chan struct{}
}

// Subscribe implements Notifier; the subscription is active at once and
// lasts until the returned function is called, which the caller must do.
func (l *Local) Subscribe(_ context.Context, name string) (<-chan struct{}, func(), error) {
	s := &localSub{ch: make(chan struct{}, 1)}
	l.mu.Lock()
	set := l.subs[name]
	if set == nil {
		set = make(map[*localSub]struct{})
		l.subs[name] = set
	}
	set[s] = struct{}{}
	l.mu.Unlock()

	cancel := func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		// Look the set up again: it may have been deleted and recreated
		// since, and deleting twice is harmless.
		if set := l.subs[name]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(l.subs, name)
			}
		}
	}
	return s.ch, cancel, nil
}

// Publish implements Notifier. It never blocks: a subscriber that has a
// wake-up pending keeps just that one.
func (l *Local) Publish(_ context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs[name] {
		select {
		case s.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
