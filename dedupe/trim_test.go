package dedupe

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Trim keeps only what running followers still need; a follower that
// starts before the kept events is refused, one that runs reads on.
func TestLocalTrim(t *testing.T) {
	l := NewLocal()
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		_ = l.Append(ctx, "s", LiveEvent{Data: []byte{byte('a' + i)}})
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, _ := l.Follow(fctx, "s", 0, time.Second)
	for i := 0; i < 3; i++ {
		if ev := <-ch; string(ev.Data) != string(rune('a'+i)) {
			t.Fatalf("event %d = %q", i, ev.Data)
		}
	}
	// The follower has read at least 3 events (it may have buffered more).
	l.Trim("s")
	l.mu.Lock()
	base := l.streams["s"].base
	l.mu.Unlock()
	if base < 3 {
		t.Fatalf("base after trim = %d, want >= 3", base)
	}
	_ = l.Append(ctx, "s", LiveEvent{Data: []byte("f")})
	_ = l.Append(ctx, "s", LiveEvent{End: true})
	var rest string
	for ev := range ch {
		rest += string(ev.Data)
	}
	if rest != "def" {
		t.Fatalf("follower read %q after the trim, want %q", rest, "def")
	}
	late, errf := l.Follow(ctx, "s", 0, time.Second)
	for range late {
		t.Fatal("a follower from a trimmed position got an event")
	}
	if err := errf(); !errors.Is(err, ErrLiveTrimmed) {
		t.Fatalf("late follower error = %v, want ErrLiveTrimmed", err)
	}
}
