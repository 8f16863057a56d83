package dedupe

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// What dedupe saved, per task (issue 16): how many replays and joins each
// task served. Counting each one with a write would put a commit on the
// replay path, which reads only; so the coordinator counts in memory and
// adds the counts to the store in one statement every few seconds, off
// the request path. The counts are best effort: those of a node that dies
// between two flushes are lost, and a node that has more than
// maxServedTasks distinct tasks to count between two flushes leaves the
// rest uncounted. They are kept per task generation (its CreatedAt): a key
// that expired and started over counts from zero again.

// Served is what a task served without an upstream call.
type Served struct {
	// Replays counts the stored answers it sent (waits included).
	Replays int64 `json:"replays"`
	// Joins counts the duplicate streams that followed its live stream.
	Joins int64 `json:"joins"`
}

// ServedCount is the counts to add to one generation of a task.
type ServedCount struct {
	Tenant     string
	KeyHash    string
	Generation time.Time
	Served
}

const (
	// servedFlushInterval is how often RunReaper writes the counts.
	servedFlushInterval = 5 * time.Second
	// maxServedTasks bounds the tasks counted between two flushes.
	maxServedTasks = 10000
)

// servedCounts accumulates the counts of a node between two flushes.
type servedCounts struct {
	mu sync.Mutex
	m  map[string]*ServedCount
}

// add counts one replay or join of task t; other decisions count nothing.
func (s *servedCounts) add(t Task, d Decision) {
	if d != DecisionReplayed && d != DecisionJoined || t.KeyHash == "" {
		return
	}
	k := t.Tenant + "\x00" + t.KeyHash + "\x00" + strconv.FormatInt(t.CreatedAt.UnixNano(), 10)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[k]
	if c == nil {
		if len(s.m) >= maxServedTasks {
			return
		}
		if s.m == nil {
			s.m = map[string]*ServedCount{}
		}
		c = &ServedCount{Tenant: t.Tenant, KeyHash: t.KeyHash, Generation: t.CreatedAt}
		s.m[k] = c
	}
	if d == DecisionReplayed {
		c.Replays++
	} else {
		c.Joins++
	}
}

// take returns the counts so far and starts over.
func (s *servedCounts) take() []ServedCount {
	s.mu.Lock()
	m := s.m
	s.m = nil
	s.mu.Unlock()
	out := make([]ServedCount, 0, len(m))
	for _, c := range m {
		out = append(out, *c)
	}
	return out
}

// FlushServed adds the replays and joins counted since the last flush to
// the store. RunReaper calls it every few seconds; call it once more at
// shutdown, before the store closes.
func (c *Coordinator) FlushServed(ctx context.Context) error {
	counts := c.served.take()
	if len(counts) == 0 {
		return nil
	}
	sctx, cancel := c.ctx(ctx)
	defer cancel()
	if err := c.store.AddServed(sctx, counts); err != nil {
		return c.storeError("add_served", err)
	}
	return nil
}
