package dedupe

import "time"

// The attempt ledger (DESIGN.md section 3): every upstream attempt has a
// row written with outcome started before its call goes out, and
// finalised when it ends, so a leader killed mid-call still leaves its
// possibly paid call in the record. The first attempt is written by
// Begin, the last one by Complete or Fail, each further one by one
// StartAttempt that also finalises the one before: a new task that
// succeeds on its first target costs two durable commits.

// Attempt outcomes the record store writes itself; the others (success,
// timeout, error, rate_limited, cut, skipped) come from the upstream chain.
const (
	AttemptStarted = "started"
	// AttemptAbandoned: the attempt's leader died before finalising it;
	// set by whoever reclaims the task.
	AttemptAbandoned = "abandoned"
	// AttemptSkipped: the attempt was never called.
	AttemptSkipped = "skipped"
)

// abandonedError is the Error of an attempt marked abandoned.
const abandonedError = "its leader died before the attempt ended; the call may have been paid and its answer is lost"

// AttemptStart is the input of Store.StartAttempt.
type AttemptStart struct {
	// Finished, when set, is the final record of the attempt that ended.
	Finished *Attempt
	// Next is the attempt about to be called; its N is the leader's
	// (one more than the last), its outcome started.
	Next Attempt
	// Lease extends the leader's lease, as a heartbeat would.
	Lease time.Duration
}

// Failure is what a leader stores when its task failed.
type Failure struct {
	// Reason is the task's error text.
	Reason string
	// TTL is how long the failed task is kept (key_ttl).
	TTL time.Duration
	// Attempt, when set, is the final record of the last attempt.
	Attempt *Attempt
}

// Reclaimed is what one ReclaimZombies call did.
type Reclaimed struct {
	// Tasks is how many zombies it reclaimed.
	Tasks int
	// Abandoned counts the started attempts it marked abandoned, by provider.
	Abandoned map[string]int
}

// recentAttempts counts the attempts of all that started after since and
// were (or may have been) called: every outcome but skipped.
func recentAttempts(all []Attempt, since time.Time) int {
	n := 0
	for _, a := range all {
		if a.Outcome != AttemptSkipped && a.StartedAt.After(since) {
			n++
		}
	}
	return n
}

// overBudget reports a leader whose key spent its attempt budget: Begin
// then writes no first attempt, for a call that will not be made.
func overBudget(req BeginRequest, recent int) bool {
	return req.AttemptBudget > 0 && recent >= req.AttemptBudget
}

// startedAttempt is the started row of a's call at n and fence.
func startedAttempt(a Attempt, n int, fence int64, now time.Time) Attempt {
	a.N, a.Fence, a.Outcome = n, fence, AttemptStarted
	a.HTTPStatus, a.Error, a.DurationMS, a.Usage = 0, "", 0, Usage{}
	if a.StartedAt.IsZero() {
		a.StartedAt = now
	}
	return a
}
