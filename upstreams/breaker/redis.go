package breaker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis layout (every key starts with Options.Prefix):
//
//	breaker:{P/M}        hash of target (P, M): s (1 open), f (consecutive
//	                     failures), u (open until, unix ms), c (cooldown
//	                     ms), r (reason), l (last failure class), la (its
//	                     unix ms)
//	breaker:{P/M}:probe  the cluster's probe grant: a token, SET NX PX
//	breaker:{P}          hash of provider P: au (auth cooling until, unix
//	                     ms), la
//
// The braces are a Redis Cluster hash tag: a target's hash and probe key
// share a slot, so one script may touch both. Times are the nodes' clocks
// (passed in, so tests can use a fake one); nodes are assumed to agree
// within a fraction of a cooldown.

// stateFields are the fields of a target hash, in script order.
var stateFields = []string{"s", "f", "u", "c", "r", "l", "la"}

// retention keeps a target hash this long past its open-until: a target
// nobody called for that long starts afresh (closed, no failures).
const retention = time.Hour

var (
	// allowScript takes a half-open target's probe. ARGV: now (ms), token,
	// probe ttl (ms), force (1 takes it before the cooldown ended). Returns
	// {code, probe pttl, state fields...}: code 0 closed (call), 1 probe
	// granted, 2 still open, 3 another request holds the probe.
	allowScript = redis.NewScript(`
local st = redis.call('HMGET', KEYS[1], 's', 'f', 'u', 'c', 'r', 'l', 'la')
for i = 1, 7 do st[i] = st[i] or '' end
local code, pttl = 0, 0
if st[1] == '1' then
	if ARGV[4] ~= '1' and (tonumber(st[3]) or 0) > tonumber(ARGV[1]) then
		code = 2
	elseif redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
		code = 1
	else
		code = 3
		pttl = redis.call('PTTL', KEYS[2])
	end
end
return {code, pttl, st[1], st[2], st[3], st[4], st[5], st[6], st[7]}`)

	// reportScript applies one result; it is the twin of state.report and
	// must make the same decisions. ARGV: now (ms), class, probe token (""
	// when not a probe), failures, cooldown (ms), max cooldown (ms),
	// rate-limit cooling (ms), retention (ms). Returns {to, state
	// fields...}, to being "open", "closed" or "" (no transition).
	reportScript = redis.NewScript(`
local now, class = tonumber(ARGV[1]), ARGV[2]
local h = redis.call('HMGET', KEYS[1], 's', 'f', 'u', 'c', 'r', 'l', 'la')
local s, f, u, c = h[1] == '1', tonumber(h[2]) or 0, tonumber(h[3]) or 0, tonumber(h[4]) or 0
local r, l, la = h[5] or '', h[6] or '', h[7] or ''
local probe = false
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then
	probe = true
	redis.call('DEL', KEYS[2])
end
local wasOpen = s and u > now
local to = ''
if class == 'success' then
	if s then to = 'closed' end
	s, f, u, c, r = false, 0, 0, 0, ''
elseif class == 'rate_limited' then
	l, la, s = class, now, true
	local nu = now + tonumber(ARGV[7])
	if nu > u then u, r = nu, class end
elseif class == 'auth' then
	l, la = class, now
elseif class == 'connect' or class == 'timeout' or class == 'server_error' or class == 'cut' then
	l, la, f = class, now, f + 1
	if probe then
		if c > 0 then c = math.min(c * 2, tonumber(ARGV[6])) else c = tonumber(ARGV[5]) end
		s, u, r = true, now + c, 'failures'
	elseif not s and f >= tonumber(ARGV[4]) then
		c = tonumber(ARGV[5])
		s, u, r = true, now + c, 'failures'
	end
end
if to == '' and not wasOpen and s and u > now then to = 'open' end
local sv = '0'
if s then sv = '1' end
redis.call('HSET', KEYS[1], 's', sv, 'f', f, 'u', u, 'c', c, 'r', r, 'l', l, 'la', la)
local keep = tonumber(ARGV[8])
if u > now then keep = keep + (u - now) end
redis.call('PEXPIRE', KEYS[1], keep)
return {to, sv, f, u, c, r, l, la}`)

	// coolScript starts or extends a provider's auth cooling. ARGV: now
	// (ms), until (ms), retention (ms). Returns {1 when the provider was
	// not cooling, until}.
	coolScript = redis.NewScript(`
local now, nu = tonumber(ARGV[1]), tonumber(ARGV[2])
local au = tonumber(redis.call('HGET', KEYS[1], 'au') or '0') or 0
local fresh = 0
if au <= now then fresh = 1 end
if nu > au then au = nu end
redis.call('HSET', KEYS[1], 'au', au, 'la', now)
redis.call('PEXPIRE', KEYS[1], au - now + tonumber(ARGV[3]))
return {fresh, au}`)
)

// Codes of allowScript.
const (
	grantClosed = 0
	grantProbe  = 1
	grantOpen   = 2
	grantBusy   = 3
)

type grant struct {
	code     int64
	probeTTL time.Duration
	st       state
}

// errReply is a script reply of an unexpected shape.
var errReply = errors.New("breaker: unexpected reply from redis")

func (b *Breaker) acquireShared(ctx context.Context, e *entry, token string, s *settings, now time.Time, force bool) (grant, error) {
	forced := "0"
	if force {
		forced = "1"
	}
	var g grant
	err := b.bounded(ctx, func(ctx context.Context) error {
		vals, err := allowScript.Run(ctx, b.opts.Redis, []string{e.key, e.probeKey},
			now.UnixMilli(), token, max(s.probeTTL.Milliseconds(), 1), forced).Slice()
		if err != nil {
			return err
		}
		if len(vals) != 2+len(stateFields) {
			return errReply
		}
		code, err1 := toInt(vals[0])
		pttl, err2 := toInt(vals[1])
		st, err3 := parseState(vals[2:])
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		g = grant{code: code, probeTTL: time.Duration(pttl) * time.Millisecond, st: st}
		return nil
	})
	if err != nil {
		return grant{}, fmt.Errorf("cannot take the probe of %s/%s: %w", e.t.Provider, e.t.Model, err)
	}
	return g, nil
}

type reported struct {
	to    State
	moved bool
	st    state
}

func (b *Breaker) reportShared(e *entry, d Decision, r Result, s *settings, now time.Time) (reported, error) {
	var res reported
	err := b.bounded(context.Background(), func(ctx context.Context) error {
		vals, err := reportScript.Run(ctx, b.opts.Redis, []string{e.key, e.probeKey},
			now.UnixMilli(), r.Class.String(), d.token, s.failures, s.cooldown.Milliseconds(),
			s.maxCooldown.Milliseconds(), s.rateLimitCool(r.RetryAfter).Milliseconds(),
			retention.Milliseconds()).Slice()
		if err != nil {
			return err
		}
		if len(vals) != 1+len(stateFields) {
			return errReply
		}
		to, _ := vals[0].(string)
		st, err := parseState(vals[1:])
		if err != nil {
			return err
		}
		res = reported{st: st}
		switch to {
		case "open":
			res.to, res.moved = Open, true
		case "closed":
			res.to, res.moved = Closed, true
		}
		return nil
	})
	if err != nil {
		return reported{}, fmt.Errorf("cannot record a result of %s/%s: %w", e.t.Provider, e.t.Model, err)
	}
	return res, nil
}

// coolShared returns when the provider's cooling ends and whether it
// started now.
func (b *Breaker) coolShared(p *provider, until, now time.Time) (time.Time, bool, error) {
	var au, fresh int64
	err := b.bounded(context.Background(), func(ctx context.Context) error {
		vals, err := coolScript.Run(ctx, b.opts.Redis, []string{p.key}, now.UnixMilli(), until.UnixMilli(), retention.Milliseconds()).Slice()
		if err != nil {
			return err
		}
		if len(vals) != 2 {
			return errReply
		}
		f, err1 := toInt(vals[0])
		a, err2 := toInt(vals[1])
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		fresh, au = f, a
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("cannot cool provider %s: %w", p.name, err)
	}
	return time.UnixMilli(au), fresh == 1, nil
}

func (b *Breaker) uncoolShared(p *provider) error {
	err := b.bounded(context.Background(), func(ctx context.Context) error {
		return b.opts.Redis.HDel(ctx, p.key, "au").Err()
	})
	if err != nil {
		return fmt.Errorf("cannot end the cooling of provider %s: %w", p.name, err)
	}
	return nil
}

// errPaused: Refresh was asked while Redis is paused after a failure.
var errPaused = errors.New("breaker: redis paused after a failure")

// Refresh reads the shared state of every target and provider into this
// node's copy, in one pipeline bounded by OpTimeout. A change this node
// made while the read was on its way is kept. The background loop calls
// it every RefreshInterval; Snapshot calls it first.
func (b *Breaker) Refresh(ctx context.Context) error {
	now := b.now()
	if b.opts.Redis == nil {
		return nil
	}
	if !b.shared(now) {
		return errPaused
	}
	m := *b.entries.Load()
	entries := make([]*entry, 0, len(m))
	gens := make([]uint64, 0, len(m))
	for _, e := range m {
		e.mu.Lock()
		entries, gens = append(entries, e), append(gens, e.gen)
		e.mu.Unlock()
	}
	b.mu.Lock()
	provs := make([]*provider, 0, len(b.providers))
	pgens := make([]uint64, 0, len(b.providers))
	for _, p := range b.providers {
		p.mu.Lock()
		provs, pgens = append(provs, p), append(pgens, p.gen)
		p.mu.Unlock()
	}
	b.mu.Unlock()

	var states []state
	var auths []int64
	err := b.bounded(ctx, func(ctx context.Context) error {
		ecmds := make([]*redis.SliceCmd, len(entries))
		pcmds := make([]*redis.SliceCmd, len(provs))
		_, err := b.opts.Redis.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for i, e := range entries {
				ecmds[i] = pl.HMGet(ctx, e.key, stateFields...)
			}
			for i, p := range provs {
				pcmds[i] = pl.HMGet(ctx, p.key, "au")
			}
			return nil
		})
		if err != nil {
			return err
		}
		sts := make([]state, len(entries))
		for i, c := range ecmds {
			st, err := parseState(c.Val())
			if err != nil {
				return err
			}
			sts[i] = st
		}
		aus := make([]int64, len(provs))
		for i, c := range pcmds {
			if v := c.Val(); len(v) == 1 && v[0] != nil {
				ms, err := toInt(v[0])
				if err != nil {
					return err
				}
				if t := time.UnixMilli(ms); t.After(now) {
					aus[i] = t.UnixNano()
				}
			}
		}
		states, auths = sts, aus
		return nil
	})
	if err != nil {
		err = fmt.Errorf("cannot read the breaker state: %w", err)
		b.redisFailed(now, err)
		return err
	}
	b.redisOK()
	for i, e := range entries {
		e.mu.Lock()
		if e.gen == gens[i] {
			e.setState(states[i])
			e.shared = true
		}
		e.mu.Unlock()
	}
	for i, p := range provs {
		p.mu.Lock()
		if p.gen == pgens[i] {
			p.authUntil.Store(auths[i])
		}
		p.mu.Unlock()
	}
	return nil
}

func (b *Breaker) refreshLoop() {
	defer close(b.done)
	t := time.NewTicker(b.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			_ = b.Refresh(context.Background())
		}
	}
}

// parseState reads the fields of a target hash (strings, or integers from
// a script); a missing hash is a closed target.
func parseState(vals []any) (state, error) {
	if len(vals) != len(stateFields) {
		return state{}, errReply
	}
	str := func(v any) string {
		switch v := v.(type) {
		case string:
			return v
		case int64:
			return strconv.FormatInt(v, 10)
		}
		return ""
	}
	num := func(v any) (int64, error) {
		if s := str(v); s != "" {
			return strconv.ParseInt(s, 10, 64)
		}
		return 0, nil
	}
	f, err1 := num(vals[1])
	u, err2 := num(vals[2])
	c, err3 := num(vals[3])
	la, err4 := num(vals[6])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return state{}, fmt.Errorf("%w: %w", errReply, err)
	}
	st := state{
		open:     str(vals[0]) == "1",
		failures: int(f),
		cooldown: time.Duration(c) * time.Millisecond,
		reason:   parseReason(str(vals[4])),
		last:     parseClass(str(vals[5])),
	}
	if u > 0 {
		st.until = time.UnixMilli(u)
	}
	if la > 0 {
		st.lastAt = time.UnixMilli(la)
	}
	return st, nil
}

func toInt(v any) (int64, error) {
	switch v := v.(type) {
	case int64:
		return v, nil
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", errReply, err)
		}
		return n, nil
	}
	return 0, errReply
}
