// Package upstreams calls OpenAI-compatible providers: one client per
// provider, a chain that tries a route's targets in order, and the record
// of every attempt.
package upstreams

import (
	"errors"
	"fmt"
	"time"
)

// Error is a failed upstream call. Status is the upstream HTTP status (0
// when none answered); Body is the upstream's error body, returned to the
// client as is for a final 4xx.
type Error struct {
	Provider string
	Status   int
	// Timeout: no answer in time (first_byte_timeout or timeout).
	Timeout bool
	// Connect: the request provably never reached the upstream.
	Connect bool
	Body    []byte
	// RetryAfter is the wait the upstream asked for in its retry-after-ms
	// or Retry-After header (a 429, often a 503), valid when HasRetryAfter.
	RetryAfter    time.Duration
	HasRetryAfter bool
	Err           error
}

func (e *Error) Error() string {
	if e.Provider == "" {
		return e.Err.Error() // about the route, not one provider
	}
	if e.Status != 0 {
		return fmt.Sprintf("provider %q answered %d: %v", e.Provider, e.Status, e.Err)
	}
	return fmt.Sprintf("provider %q: %v", e.Provider, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Sentinel causes.
var (
	// ErrNoAPIKey: the provider has no api_key configured.
	ErrNoAPIKey = errors.New("upstreams: provider has no api_key configured")
	// ErrStreamCut: the upstream ended a stream without its terminating event.
	ErrStreamCut = errors.New("upstreams: stream ended before [DONE]")
	// ErrFirstByteTimeout: no byte arrived within first_byte_timeout.
	ErrFirstByteTimeout = errors.New("upstreams: first byte timeout")
	// ErrAttemptTimeout: the whole attempt ran past its timeout.
	ErrAttemptTimeout = errors.New("upstreams: attempt timeout")
	// ErrNotRecorded: the ledger could not record an attempt, so its call
	// did not go out (a call that is not in the record could be paid for
	// twice, or never reconciled).
	ErrNotRecorded = errors.New("upstreams: the attempt could not be recorded; it was not sent")
	// ErrNoUsableTarget: no target of the route can be called for a reason
	// no retry can change (no api_key, or a kind that cannot serve the
	// endpoint); nothing was sent.
	ErrNoUsableTarget = errors.New("upstreams: no target of the route can be called")
	// ErrStreamAbandoned: the gateway stopped reading a stream (its client
	// left and nothing records it); the upstream was not at fault.
	ErrStreamAbandoned = errors.New("upstreams: stream abandoned by the gateway")
)
