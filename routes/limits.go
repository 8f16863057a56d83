package routes

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/routes/limit"
)

// limitID names a client key's limit state across reloads and in Redis:
// a hash of the key's hash, so that neither the key nor the hash that
// auth compares is ever written anywhere.
func limitID(sum [sha256.Size]byte) string {
	id := sha256.Sum256(append([]byte("idemgw limit\x00"), sum[:]...))
	return hex.EncodeToString(id[:16])
}

// limitRules are the limits of the configured keys.
func limitRules(keys []clientKey) []limit.Rule {
	var rules []limit.Rule
	for _, k := range keys {
		if k.maxInflight > 0 || k.perMinute > 0 {
			rules = append(rules, limit.Rule{ID: k.limitID, Tenant: k.tenant, MaxInflight: k.maxInflight, PerMinute: k.perMinute})
		}
	}
	return rules
}

// ShareLimits makes the requests_per_minute buckets cluster-wide through
// Redis (lock.kind: redis). Call it before serving.
func (s *Server) ShareLimits(client redis.UniversalClient, prefix string) {
	s.limits.Share(client, prefix, func(err error) {
		s.log.Warn("rate limits are per node until Redis answers again", "error", err.Error())
	})
}

// admit applies the limits of the request's client key (DESIGN.md
// section 8) before anything else happens: a refused request writes no
// record and calls no upstream. An admitted one holds its in-flight place
// until the call finishes.
func (s *Server) admit(ctx *fasthttp.RequestCtx, c *call, k *clientKey) error {
	if k.maxInflight == 0 && k.perMinute == 0 {
		return nil
	}
	v, slot := s.limits.Acquire(k.limitID)
	switch v.Reason {
	case limit.ReasonNone:
		c.slot = slot
		if v.Limit > 0 {
			h := &ctx.Response.Header
			h.Set("x-ratelimit-limit-requests", strconv.Itoa(v.Limit))
			h.Set("x-ratelimit-remaining-requests", strconv.Itoa(v.Remaining))
			h.Set("x-ratelimit-reset-requests", retryText(v.Reset))
		}
		return nil
	case limit.ReasonConcurrency:
		e := &APIError{Status: 429, Type: "requests", Code: "tenant_concurrency_limit",
			Message: "tenant " + strconv.Quote(c.tenant) + " already has " + strconv.Itoa(v.Limit) + " requests in flight (max_inflight); retry when one has finished"}
		e.Headers = limitHeaders(v)
		return e
	default:
		e := &APIError{Status: 429, Type: "requests", Code: "rate_limit_exceeded",
			Message: "tenant " + strconv.Quote(c.tenant) + " is over its limit of " + strconv.Itoa(v.Limit) + " requests per minute; retry in " + retryText(v.RetryAfter)}
		e.Headers = limitHeaders(v)
		return e
	}
}

// rateHeaders are OpenAI's x-ratelimit-*-requests headers; the reset is a
// Go duration ("1s", "6m0s"), as OpenAI writes it.
func rateHeaders(v limit.Verdict) map[string]string {
	return map[string]string{
		"x-ratelimit-limit-requests":     strconv.Itoa(v.Limit),
		"x-ratelimit-remaining-requests": strconv.Itoa(v.Remaining),
		"x-ratelimit-reset-requests":     retryText(v.Reset),
	}
}

// limitHeaders are the headers of a refusal: the rate headers, and
// Retry-After (whole seconds, rounded up so that a client that honours it
// is not refused again) with retry-after-ms for OpenAI's SDKs, which
// retry a 429 on their own after that wait.
func limitHeaders(v limit.Verdict) map[string]string {
	h := rateHeaders(v)
	ms := max(1, (v.RetryAfter+time.Millisecond-1)/time.Millisecond)
	h["Retry-After"] = strconv.FormatInt(int64((ms+999)/1000), 10)
	h["retry-after-ms"] = strconv.FormatInt(int64(ms), 10)
	h["x-should-retry"] = "true"
	return h
}

// retryText is a wait as OpenAI's headers write it, to the millisecond.
func retryText(d time.Duration) string {
	return d.Round(time.Millisecond).String()
}
