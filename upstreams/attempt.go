package upstreams

import "time"

// Attempt is the record of one upstream call.
type Attempt struct {
	Provider   string
	Model      string
	Outcome    string
	HTTPStatus int
	Error      string
	Start      time.Time
	Duration   time.Duration
	// TTFB is the time to the first response byte (0 when none arrived).
	TTFB  time.Duration
	Usage Usage
}

// Usage is what the upstream reported in its usage object.
type Usage struct {
	PromptTokens     int64
	CompletionTokens int64
}

// outcomeFor classifies a finished attempt.
func outcomeFor(err *Error) string {
	switch {
	case err == nil:
		return OutcomeSuccess
	case err.Timeout:
		return OutcomeTimeout
	case err.Status == 429:
		return OutcomeRateLimited
	default:
		return OutcomeError
	}
}
