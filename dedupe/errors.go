package dedupe

import "errors"

// Decisions that end a request before any upstream call. Each maps to one
// status and error code in routes (DESIGN.md section 2).
var (
	// ErrInProgress: another request with the key is running (409).
	ErrInProgress error = &RefusedError{DecisionConflict, "dedupe: a request with this idempotency key is in progress"}
	// ErrMismatch: the key was used with a different body (422).
	ErrMismatch error = &RefusedError{DecisionMismatch, "dedupe: idempotency key reused with a different request body"}
	// ErrTooLarge: the task completed but its response was over
	// max_record_bytes, so it cannot be replayed (409).
	ErrTooLarge error = &RefusedError{DecisionConflict, "dedupe: the response of this idempotency key was too large to record and cannot be replayed"}
	// ErrStore: the record store failed; wraps the cause (503, or a
	// DecisionBypassed ticket when the request asked for BypassOnStoreError).
	ErrStore = errors.New("dedupe: record store unavailable")
)
