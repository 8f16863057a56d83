package routes

import (
	"context"

	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/upstreams"
)

// upstreams and dedupe never import each other, so what the chain reports
// is turned into what the record stores here, and only here.

// recordedUsage is the record's form of an upstream's usage.
func recordedUsage(u upstreams.Usage) dedupe.Usage {
	return dedupe.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}
}

// upstreamUsage is the chain's form of a recorded usage (for pricing).
func upstreamUsage(u dedupe.Usage) upstreams.Usage {
	return upstreams.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}
}

// recordedAttempt is the record's form of one chain attempt.
func recordedAttempt(a upstreams.Attempt) dedupe.Attempt {
	return dedupe.Attempt{
		Provider: a.Provider, Model: a.Model, Outcome: string(a.Outcome), HTTPStatus: a.HTTPStatus, Error: a.Error,
		StartedAt: a.Start, DurationMS: a.Duration.Milliseconds(), Usage: recordedUsage(a.Usage), Continues: a.Continues,
	}
}

// ticketLedger is the chain's upstreams.Ledger over a leader's ticket:
// each attempt is in the record before its call goes out.
type ticketLedger struct{ t *dedupe.Ticket }

func (l ticketLedger) Start(a upstreams.Attempt) error {
	return l.t.StartAttempt(context.Background(), recordedAttempt(a))
}

func (l ticketLedger) Finish(a upstreams.Attempt) { l.t.FinishAttempt(recordedAttempt(a)) }

// ledgerOf is the chain's ledger of a ticket (none without one).
func ledgerOf(t *dedupe.Ticket) upstreams.Ledger {
	if t == nil {
		return nil
	}
	return ticketLedger{t}
}

func (s *Server) fail(t *dedupe.Ticket, reason string) {
	if t != nil {
		_ = t.Fail(context.Background(), reason)
	}
}
