package dedupe

import (
	"errors"
	"fmt"
	"testing"
)

// The words are a contract: gateway_dedupe_total's outcome label
// (DESIGN.md section 6) and the log's dedupe field.
func TestDecisionWords(t *testing.T) {
	f := func(d Decision, want string) {
		t.Helper()
		if got := d.String(); got != want {
			t.Errorf("Decision(%d).String() = %q, want %q", d, got, want)
		}
	}
	f(DecisionNone, "")
	f(DecisionOff, "off")
	f(DecisionNew, "new")
	f(DecisionReclaimed, "reclaimed")
	f(DecisionReplayed, "replayed")
	f(DecisionJoined, "joined")
	f(DecisionConflict, "conflict")
	f(DecisionMismatch, "mismatch")
	f(DecisionBypassed, "bypassed")
	f(DecisionBypassed+1, "Decision(9)")
}

func TestDecisionOf(t *testing.T) {
	f := func(err error, want Decision) {
		t.Helper()
		if got := DecisionOf(err); got != want {
			t.Errorf("DecisionOf(%v) = %v, want %v", err, got, want)
		}
	}
	f(nil, DecisionNone)
	f(ErrInProgress, DecisionConflict)
	f(ErrTooLarge, DecisionConflict)
	f(ErrMismatch, DecisionMismatch)
	f(fmt.Errorf("cannot begin: %w", ErrMismatch), DecisionMismatch)
	f(fmt.Errorf("%w: cannot begin: %w", ErrStore, errors.New("down")), DecisionNone)
	f(errors.New("context canceled"), DecisionNone)
}
