package limit

import (
	"sync"
	"time"
)

// bucket is one node's token bucket: it holds up to perMinute tokens and
// refills perMinute of them per minute, so a quiet key may burst a whole
// minute's worth at once, as OpenAI's limits do.
type bucket struct {
	mu     sync.Mutex
	tokens float64
	at     time.Time // of the last take; zero = never used, full
}

// take refills the bucket up to now and takes one token if there is one.
// It returns whether it did and the tokens left.
func (b *bucket) take(now time.Time, perMinute int) (bool, float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	size := float64(perMinute)
	switch {
	case b.at.IsZero():
		b.tokens = size
	case now.After(b.at):
		b.tokens += now.Sub(b.at).Minutes() * size
	}
	// Also caps a bucket whose rate a reload lowered.
	b.tokens = min(b.tokens, size)
	if now.After(b.at) {
		b.at = now
	}
	if b.tokens < 1 {
		return false, b.tokens
	}
	b.tokens--
	return true, b.tokens
}
