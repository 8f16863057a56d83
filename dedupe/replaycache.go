package dedupe

import (
	"sync"
	"time"
)

// The replay cache (issue 14) keeps the completed tasks this node read
// from the record store for a short while, so that the replays of a hot
// key cost no round trip: a completed task is immutable until it expires,
// is restarted (a first try under derive: retries, or max age of a derived
// key) or is deleted, and the checks below cover each of these on this
// node. What another node or an operator changes is not seen here: such a
// change reaches this node's replays at most replayCacheTTL later (the
// staleness bound stated in the README).
const (
	// replayCacheTTL is how long an entry is served after the read that
	// filled it began.
	replayCacheTTL = time.Second
	// replayCacheEntries and replayCacheBytes bound the cache; an answer
	// over replayCacheMaxEntry is never kept.
	replayCacheEntries  = 4096
	replayCacheBytes    = 32 << 20
	replayCacheMaxEntry = 1 << 20
	// replayEntryOverhead is what an entry costs beside its body.
	replayEntryOverhead = 512
)

type replayEntry struct {
	// task is the completed task; a tombstone (see drop) has none.
	task  *Task
	until time.Time
	// generation and fence order the versions of the record: a read that
	// began before this node led the task anew must not put the old
	// answer back.
	generation time.Time
	fence      int64
	size       int
}

// newerThan reports whether e is a later version of the record than
// (generation, fence).
func (e replayEntry) newerThan(generation time.Time, fence int64) bool {
	if !e.generation.Equal(generation) {
		return e.generation.After(generation)
	}
	return e.fence > fence
}

type replayCache struct {
	mu    sync.RWMutex
	m     map[string]replayEntry
	bytes int
}

func replayCacheKey(tenant, keyHash string) string { return tenant + "\x00" + keyHash }

// get returns the task to replay to r, if the cache holds one that r may
// be given: same tenant and fingerprint, not expired, and within r's max
// age. Anything else goes to the record store, which decides.
func (c *replayCache) get(r Request, now time.Time) (Task, bool) {
	c.mu.RLock()
	e, ok := c.m[replayCacheKey(r.Tenant, r.KeyHash)]
	c.mu.RUnlock()
	switch {
	case !ok || e.task == nil || !now.Before(e.until):
		return Task{}, false
	case e.task.Tenant != r.Tenant || e.task.KeyHash != r.KeyHash || e.task.Fingerprint != r.Fingerprint:
		return Task{}, false
	case r.MaxAge > 0 && now.Sub(e.task.UpdatedAt) > r.MaxAge:
		return Task{}, false
	}
	return *e.task, true
}

// put keeps t, a completed task the store returned from a read that began
// at read, unless the cache knows a newer version of the record.
func (c *replayCache) put(t Task, read time.Time) {
	if t.Status != StatusCompleted || t.TooLarge || t.Response == nil || t.KeyHash == "" {
		return
	}
	size := replayEntryOverhead + len(t.Response.Body) + len(t.Response.ContentType)
	if size > replayCacheMaxEntry {
		return
	}
	until := read.Add(replayCacheTTL)
	if !t.ExpiresAt.IsZero() && t.ExpiresAt.Before(until) {
		until = t.ExpiresAt
	}
	resp := *t.Response
	t.Response = &resp
	c.set(replayCacheKey(t.Tenant, t.KeyHash),
		replayEntry{task: &t, until: until, generation: t.CreatedAt, fence: t.Fence, size: size})
}

// drop forgets the key's answer because this node now leads the task at
// (generation, fence); a tombstone keeps older reads in flight from
// putting the old answer back.
func (c *replayCache) drop(tenant, keyHash string, generation time.Time, fence int64, now time.Time) {
	c.set(replayCacheKey(tenant, keyHash),
		replayEntry{until: now.Add(replayCacheTTL), generation: generation, fence: fence, size: replayEntryOverhead})
}

func (c *replayCache) set(k string, e replayEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok {
		if old.newerThan(e.generation, e.fence) && time.Now().Before(old.until) {
			return
		}
		delete(c.m, k)
		c.bytes -= old.size
	}
	if c.m == nil {
		c.m = map[string]replayEntry{}
	}
	// Full: evict entries in map order, which is as good as random and
	// costs nothing to keep.
	for victim, v := range c.m {
		if len(c.m) < replayCacheEntries && c.bytes+e.size <= replayCacheBytes {
			break
		}
		delete(c.m, victim)
		c.bytes -= v.size
	}
	c.m[k] = e
	c.bytes += e.size
}
