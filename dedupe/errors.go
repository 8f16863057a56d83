package dedupe

import "errors"

// Decisions that end a request before any upstream call. Each maps to one
// status and error code in routes (DESIGN.md section 2).
var (
	// ErrInProgress: another request with the key is running (409).
	ErrInProgress = errors.New("dedupe: a request with this idempotency key is in progress")
	// ErrMismatch: the key was used with a different body (422).
	ErrMismatch = errors.New("dedupe: idempotency key reused with a different request body")
	// ErrTooLarge: the task completed but its response was over
	// max_record_bytes, so it cannot be replayed (409).
	ErrTooLarge = errors.New("dedupe: the response of this idempotency key was too large to record and cannot be replayed")
	// ErrStore: the record store failed; wraps the cause (503 or bypass).
	ErrStore = errors.New("dedupe: record store unavailable")
)
