package dedupe

import (
	"errors"
	"strconv"
)

// Decision is what deduplication decided for one request. Its String is
// both the outcome label of gateway_dedupe_total (DESIGN.md section 6)
// and the dedupe word of the request's log line. Begin counts each of its
// decisions once; DecisionNone and DecisionOff are never counted.
type Decision uint8

// Decisions.
const (
	// DecisionNone: the request ended before a decision (bad input, a
	// store failure under on_store_error: fail, a cancelled wait).
	DecisionNone Decision = iota
	// DecisionOff: deduplication does not apply (disabled, or no key with
	// derive: off).
	DecisionOff
	// DecisionNew: the request leads a new task, or a new attempt of a
	// failed one.
	DecisionNew
	// DecisionReclaimed: the request leads, taking over a zombie.
	DecisionReclaimed
	// DecisionReplayed: a completed task's stored response is sent again.
	DecisionReplayed
	// DecisionJoined: the request follows a running leader's live stream.
	DecisionJoined
	// DecisionConflict: refused with 409 (the key is in progress, or its
	// response was too large to record).
	DecisionConflict
	// DecisionMismatch: refused with 422 (the key was used with another
	// body).
	DecisionMismatch
	// DecisionBypassed: forwarded without a record: a fresh first try
	// while an identical one runs, or a store failure under
	// on_store_error: open.
	DecisionBypassed
)

var decisionWords = [...]string{
	DecisionNone: "", DecisionOff: "off", DecisionNew: "new", DecisionReclaimed: "reclaimed", DecisionReplayed: "replayed",
	DecisionJoined: "joined", DecisionConflict: "conflict", DecisionMismatch: "mismatch", DecisionBypassed: "bypassed",
}

func (d Decision) String() string {
	if int(d) < len(decisionWords) {
		return decisionWords[d]
	}
	return "Decision(" + strconv.Itoa(int(d)) + ")"
}

// RefusedError is a decision that ends a request before any upstream
// call; Begin returns one of ErrInProgress, ErrTooLarge, ErrMismatch.
type RefusedError struct {
	Decision Decision
	msg      string
}

func (e *RefusedError) Error() string { return e.msg }

// DecisionOf is the decision a Begin error carries: DecisionConflict or
// DecisionMismatch for a refusal, DecisionNone for any other error.
func DecisionOf(err error) Decision {
	var r *RefusedError
	if errors.As(err, &r) {
		return r.Decision
	}
	return DecisionNone
}
