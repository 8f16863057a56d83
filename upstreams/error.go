// Package upstreams calls OpenAI-compatible providers: one client per
// provider, a chain that tries a route's targets in order, and the record
// of every attempt.
package upstreams

import (
	"errors"
	"fmt"
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
	Err     error
}

func (e *Error) Error() string {
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
)
