package dedupe

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// lockBackend is what Local and Redis both implement; the behaviour
// tests below run against each (TestLocal*, TestRedis*).
type lockBackend interface {
	Locker
	Notifier
	Live
}

// waitLong bounds waits for things that must happen "soon"; it is
// generous so that a loaded CI machine does not fail the tests.
const waitLong = 10 * time.Second

// testLockBackend runs the behaviour tests on b.
func testLockBackend(t *testing.T, b lockBackend) {
	runLockCases(t, func(t *testing.T, test func(*testing.T, lockBackend)) { test(t, b) })
}

// runLockCases runs each behaviour test as a subtest; run hands it a
// backend.
func runLockCases(t *testing.T, run func(t *testing.T, test func(*testing.T, lockBackend))) {
	cases := []struct {
		name string
		test func(*testing.T, lockBackend)
	}{
		{"OneOfManyAcquires", testOneOfManyAcquires},
		{"ExpiryAndStaleHolder", testExpiryAndStaleHolder},
		{"NotifierWakesAll", testNotifierWakesAll},
		{"SubscribeNoLeak", testSubscribeNoLeak},
		{"FollowFromStart", testFollowFromStart},
		{"FollowFromK", testFollowFromK},
		{"FollowBeforeCreation", testFollowBeforeCreation},
		{"FollowNotFound", testFollowNotFound},
		{"FollowCancel", testFollowCancel},
		{"FollowDeadline", testFollowDeadline},
		{"Expire", testExpire},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { run(t, c.test) })
	}
}

// TestLocal runs each case on its own Local in a testing/synctest bubble:
// Local runs on this process's timers, so lease expiries, idle waits and
// deadlines take no real time, and the goroutines a case waits for have
// ended before the bubble's clock moves on.
func TestLocal(t *testing.T) {
	runLockCases(t, func(t *testing.T, test func(*testing.T, lockBackend)) {
		synctest.Test(t, func(t *testing.T) { test(t, NewLocal()) })
	})
}

func testOneOfManyAcquires(t *testing.T, b lockBackend) {
	ctx := context.Background()
	const n = 20
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []Lock
		errs    []error
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			l, ok, err := b.TryAcquire(ctx, "race", time.Minute)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				winners = append(winners, l)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("TryAcquire errors: %v", errs)
	}
	if len(winners) != 1 {
		t.Fatalf("%d of %d TryAcquire won; want exactly 1", len(winners), n)
	}
	if err := winners[0].Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	// Released: the name is free again.
	l, ok, err := b.TryAcquire(ctx, "race", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryAcquire after Release = %v, %v; want true, nil", ok, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// acquireEventually retries TryAcquire until the name is free.
func acquireEventually(t *testing.T, b Locker, name string, ttl time.Duration) Lock {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		l, ok, err := b.TryAcquire(context.Background(), name, ttl)
		if err != nil {
			t.Fatalf("TryAcquire: %v", err)
		}
		if ok {
			return l
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("lock %q never became free", name)
	return nil
}

func testExpiryAndStaleHolder(t *testing.T, b lockBackend) {
	ctx := context.Background()
	// A long first lease, so a stall of a loaded machine cannot expire it
	// before the Extend below; the Extend then shortens it for the expiry.
	old, ok, err := b.TryAcquire(ctx, "expiry", 5*time.Second)
	if err != nil || !ok {
		t.Fatalf("TryAcquire = %v, %v; want true, nil", ok, err)
	}
	// The holder can extend while it owns the lock.
	if ok, err := old.Extend(ctx, 50*time.Millisecond); err != nil || !ok {
		t.Fatalf("Extend of a held lock = %v, %v; want true, nil", ok, err)
	}
	cur := acquireEventually(t, b, "expiry", time.Minute)

	if ok, err := old.Extend(ctx, time.Minute); err != nil || ok {
		t.Fatalf("stale holder's Extend = %v, %v; want false, nil", ok, err)
	}
	if err := old.Release(ctx); err != nil {
		t.Fatalf("stale holder's Release: %v", err)
	}
	// The stale holder's Release must not have deleted the current lock.
	if _, ok, err := b.TryAcquire(ctx, "expiry", time.Minute); err != nil || ok {
		t.Fatalf("TryAcquire after a non-owner's Release = %v, %v; want false, nil", ok, err)
	}
	if ok, err := cur.Extend(ctx, time.Minute); err != nil || !ok {
		t.Fatalf("current holder's Extend = %v, %v; want true, nil", ok, err)
	}
	if err := cur.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if ok, err := cur.Extend(ctx, time.Minute); err != nil || ok {
		t.Fatalf("Extend after Release = %v, %v; want false, nil", ok, err)
	}
}

func testNotifierWakesAll(t *testing.T, b lockBackend) {
	ctx := context.Background()
	const n = 10
	var chans []<-chan struct{}
	for range n {
		ch, cancel, err := b.Subscribe(ctx, "job")
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		t.Cleanup(cancel)
		chans = append(chans, ch)
	}
	other, cancel, err := b.Subscribe(ctx, "other-job")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer cancel()

	// Subscribe returned, so the subscriptions are active: one publish
	// reaches them all.
	if err := b.Publish(ctx, "job"); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for i, ch := range chans {
		select {
		case <-ch:
		case <-time.After(waitLong):
			t.Fatalf("subscriber %d was not woken", i)
		}
	}

	// A subscriber that does not read keeps one pending wake-up and does
	// not hold up the publisher.
	for range 3 {
		if err := b.Publish(ctx, "other-job"); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	select {
	case <-other:
	case <-time.After(waitLong):
		t.Fatalf("subscriber of other-job was not woken")
	}
	// Publishing to other-job must not have woken job's subscribers,
	// which were drained above.
	for i, ch := range chans {
		select {
		case <-ch:
			t.Fatalf("subscriber %d of job woken by a publish to other-job", i)
		default:
		}
	}
}

// waitGoroutines waits until the goroutine count is at most want.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), want, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testSubscribeNoLeak(t *testing.T, b lockBackend) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	var cancels []func()
	for range 10 {
		_, cancel, err := b.Subscribe(ctx, "leak")
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		cancels = append(cancels, cancel)
	}
	if err := b.Publish(ctx, "leak"); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for _, cancel := range cancels {
		cancel()
		cancel() // idempotent
	}
	// A little tolerance for goroutines of the client's connection pool.
	waitGoroutines(t, before+2)
}

// collectLive reads ch to its close and returns the events and the follow's
// error.
func collectLive(t *testing.T, ch <-chan LiveEvent, errf func() error) ([]LiveEvent, error) {
	t.Helper()
	var evs []LiveEvent
	timeout := time.After(waitLong)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return evs, errf()
			}
			evs = append(evs, ev)
		case <-timeout:
			t.Fatalf("follow did not end; got %d events", len(evs))
		}
	}
}

func dataEvent(i int) LiveEvent {
	return LiveEvent{Data: fmt.Appendf(nil, "data: {\"i\":%d}", i)}
}

func appendAll(t *testing.T, b Live, name string, evs []LiveEvent) {
	t.Helper()
	for _, ev := range evs {
		if err := b.Append(context.Background(), name, ev); err != nil {
			t.Errorf("Append: %v", err)
			return
		}
	}
}

func testFollowFromStart(t *testing.T, b lockBackend) {
	ctx := context.Background()
	var want []LiveEvent
	for i := range 300 {
		want = append(want, dataEvent(i))
	}
	want = append(want, LiveEvent{End: true, Err: "upstream timed out"})

	appendAll(t, b, "start", want[:3])
	ch, errf := b.Follow(ctx, "start", 0, waitLong)
	done := make(chan struct{})
	go func() {
		defer close(done)
		appendAll(t, b, "start", want[3:])
	}()
	got, err := collectLive(t, ch, errf)
	<-done
	if err != nil {
		t.Fatalf("follow error: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("followed %d events, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}

	// A second follower of the finished stream reads it all again.
	got, err = followAll(t, b, ctx, "start", 0, waitLong)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("second follower got %d events (error %v), want %d", len(got), err, len(want))
	}
}

// followAll follows a stream to its end.
func followAll(t *testing.T, b Live, ctx context.Context, name string, from int, idle time.Duration) ([]LiveEvent, error) {
	t.Helper()
	ch, errf := b.Follow(ctx, name, from, idle)
	return collectLive(t, ch, errf)
}

func firstDiff(a, b []LiveEvent) int {
	for i := range min(len(a), len(b)) {
		if !reflect.DeepEqual(a[i], b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}

func testFollowFromK(t *testing.T, b lockBackend) {
	ctx := context.Background()
	var all []LiveEvent
	for i := range 10 {
		all = append(all, dataEvent(i))
	}
	all = append(all, LiveEvent{Data: []byte("data: [DONE]"), End: true})
	appendAll(t, b, "fromk", all)

	f := func(from int, want []LiveEvent) {
		t.Helper()
		ch, errf := b.Follow(ctx, "fromk", from, waitLong)
		got, err := collectLive(t, ch, errf)
		if err != nil {
			t.Fatalf("from %d: follow error: %v", from, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("from %d: got %d events, want %d; first difference at %d", from, len(got), len(want), firstDiff(got, want))
		}
	}
	f(0, all)
	f(4, all[4:])
	f(10, all[10:])
	// Past the end: nothing, and no waiting forever.
	f(11, nil)
	f(50, nil)
}

func testFollowBeforeCreation(t *testing.T, b lockBackend) {
	ctx := context.Background()
	ch, errf := b.Follow(ctx, "late", 0, waitLong)
	want := []LiveEvent{dataEvent(0), dataEvent(1), {End: true}}
	appendAll(t, b, "late", want)
	got, err := collectLive(t, ch, errf)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %d events (error %v), want %d", len(got), err, len(want))
	}
}

func testFollowNotFound(t *testing.T, b lockBackend) {
	ch, errf := b.Follow(context.Background(), "never", 0, 200*time.Millisecond)
	got, err := collectLive(t, ch, errf)
	if len(got) != 0 {
		t.Fatalf("got %d events from a stream that never existed", len(got))
	}
	if !errors.Is(err, ErrLiveNotFound) {
		t.Fatalf("error = %v; want ErrLiveNotFound", err)
	}
	if errors.Is(err, ErrLockUnavailable) {
		t.Fatalf("error = %v; must not count as an unavailable backend", err)
	}
}

func testFollowCancel(t *testing.T, b lockBackend) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	appendAll(t, b, "cancel", []LiveEvent{dataEvent(0)})
	ch, errf := b.Follow(ctx, "cancel", 0, waitLong)
	select {
	case ev := <-ch:
		if !reflect.DeepEqual(ev, dataEvent(0)) {
			t.Fatalf("got %q, want the first event", ev.Data)
		}
	case <-time.After(waitLong):
		t.Fatalf("no event")
	}
	// The stream has no End: only the cancellation ends the follow.
	cancel()
	got, err := collectLive(t, ch, errf)
	if len(got) != 0 {
		t.Fatalf("got %d more events", len(got))
	}
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrLockUnavailable) {
		t.Fatalf("error = %v; want context.Canceled only", err)
	}
	waitGoroutines(t, before+2)
}

func testFollowDeadline(t *testing.T, b lockBackend) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	appendAll(t, b, "deadline", []LiveEvent{dataEvent(0)})
	got, err := followAll(t, b, ctx, "deadline", 0, waitLong)
	if len(got) != 1 {
		t.Fatalf("got %d events, want 1", len(got))
	}
	// A caller's deadline is not a backend failure.
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrLockUnavailable) {
		t.Fatalf("error = %v; want context.DeadlineExceeded only", err)
	}
}

func testExpire(t *testing.T, b lockBackend) {
	ctx := context.Background()
	appendAll(t, b, "expire", []LiveEvent{dataEvent(0), {End: true}})
	if err := b.Expire(ctx, "expire", 50*time.Millisecond); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	deadline := time.Now().Add(waitLong)
	for {
		ch, errf := b.Follow(ctx, "expire", 0, 10*time.Millisecond)
		_, err := collectLive(t, ch, errf)
		if errors.Is(err, ErrLiveNotFound) {
			break
		}
		if err != nil {
			t.Fatalf("follow error: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Expire(ctx, "missing", time.Second); err != nil {
		t.Fatalf("Expire of a missing stream: %v", err)
	}
}

// TestLocalReleasesMemory checks that ended subscriptions, expired
// streams and abandoned locks leave nothing behind.
func TestLocalReleasesMemory(t *testing.T) {
	ctx := context.Background()
	l := NewLocal()

	_, cancel, err := l.Subscribe(ctx, "a")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	cancel()
	if len(l.subs) != 0 {
		t.Fatalf("%d subscription sets left after cancel", len(l.subs))
	}

	appendAll(t, l, "s", []LiveEvent{{End: true}})
	if err := l.Expire(ctx, "s", 0); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	if len(l.streams) != 0 {
		t.Fatalf("%d streams left after Expire(0)", len(l.streams))
	}
	appendAll(t, l, "s", []LiveEvent{{End: true}})
	if err := l.Expire(ctx, "s", time.Millisecond); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	deadline := time.Now().Add(waitLong)
	for {
		l.mu.Lock()
		n := len(l.streams)
		l.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream not deleted after its ttl")
		}
		time.Sleep(time.Millisecond)
	}

	// Holders that never release: the expired entries are swept as new
	// names come, so the map stays bounded.
	for i := range 10 * localSweepMin {
		if _, ok, err := l.TryAcquire(ctx, fmt.Sprint(i), 0); err != nil || !ok {
			t.Fatalf("TryAcquire = %v, %v", ok, err)
		}
	}
	if n := len(l.locks); n > localSweepMin {
		t.Fatalf("%d lock entries kept, want at most %d", n, localSweepMin)
	}
}

// TestLocalAppendCopies checks that a leader may reuse its buffer.
func TestLocalAppendCopies(t *testing.T) {
	l := NewLocal()
	buf := []byte("data: one")
	if err := l.Append(context.Background(), "s", LiveEvent{Data: buf}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	copy(buf, "XXXX")
	appendAll(t, l, "s", []LiveEvent{{End: true}})
	got, err := followAll(t, l, context.Background(), "s", 0, waitLong)
	if err != nil || len(got) != 2 || string(got[0].Data) != "data: one" {
		t.Fatalf("got %+v (error %v), want the data as appended", got, err)
	}
}
