package limit

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis bounds: a limit check must never hold a request up for long, and
// after a failure Redis is left alone for a pause, so that a dead Redis
// costs each request nothing instead of a timeout (as dedupe does).
const (
	redisTimeout = 250 * time.Millisecond
	redisPause   = 2 * time.Second
)

// bucketScript is the shared token bucket: KEYS[1] is a hash of the
// tokens left and the time (ms) of the last take, ARGV[1] the size and
// refill per minute. It reads Redis's own clock, so that nodes with skewed
// clocks share one bucket fairly (Redis 5 and later replicate a script's
// effects, so TIME is allowed). A bucket left alone for a minute is full
// again, so it expires then. The tokens go back as a string: Redis turns
// Lua numbers into integers.
var bucketScript = redis.NewScript(`
local size = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(b[1]), tonumber(b[2])
if tokens == nil or at == nil then
	tokens, at = size, now
end
if now > at then
	tokens = tokens + (now - at) * size / 60000
	at = now
end
if tokens > size then
	tokens = size
end
local ok = 0
if tokens >= 1 then
	tokens = tokens - 1
	ok = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], 60000)
return {ok, tostring(tokens)}`)

// shared is the cluster's buckets in Redis.
type shared struct {
	client redis.UniversalClient
	prefix string
	onErr  func(error)
	// downUntil (unix nanoseconds) skips Redis after a failure.
	downUntil atomic.Int64
}

// Share makes the token buckets cluster-wide through client, under keys
// prefix+"limit:"+Rule.ID. onErr (may be nil) hears each Redis failure
// that sends the decisions to this node's buckets for a pause. Call it
// before the first request.
func (l *Limiter) Share(client redis.UniversalClient, prefix string, onErr func(error)) {
	l.shared = &shared{client: client, prefix: prefix, onErr: onErr}
}

func (s *shared) skipped(now time.Time) bool { return now.UnixNano() < s.downUntil.Load() }

func (s *shared) failed(now time.Time, err error) {
	s.downUntil.Store(now.Add(redisPause).UnixNano())
	if s.onErr != nil {
		s.onErr(err)
	}
}

// take runs the bucket script for r. The wait is bounded here rather
// than by the client: go-redis applies a context's deadline to its socket
// only with ContextTimeoutEnabled, and the call left behind ends at the
// client's own read timeout.
func (s *shared) take(r Rule) (bool, float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	done := make(chan *redis.Cmd, 1)
	go func() { done <- bucketScript.Run(ctx, s.client, []string{s.prefix + "limit:" + r.ID}, r.PerMinute) }()
	var cmd *redis.Cmd
	select {
	case cmd = <-done:
	case <-ctx.Done():
		return false, 0, fmt.Errorf("cannot take a token of %q: %w", r.Tenant, ctx.Err())
	}
	res, err := cmd.Slice()
	if err != nil {
		return false, 0, fmt.Errorf("cannot take a token of %q: %w", r.Tenant, err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("cannot take a token of %q: the script answered %v", r.Tenant, res)
	}
	ok, _ := res[0].(int64)
	str, _ := res[1].(string)
	tokens, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return false, 0, fmt.Errorf("cannot take a token of %q: the script answered %v", r.Tenant, res)
	}
	return ok == 1, tokens, nil
}
