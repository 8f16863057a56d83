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
		StartedAt: a.Start, DurationMS: a.Duration.Milliseconds(), Usage: recordedUsage(a.Usage),
	}
}

// recordAttempts stores the chain's attempts under the ticket's fence.
func (s *Server) recordAttempts(t *dedupe.Ticket, as []upstreams.Attempt) {
	if t == nil {
		return
	}
	for _, a := range as {
		_ = t.AddAttempt(context.Background(), recordedAttempt(a))
	}
}

func (s *Server) fail(t *dedupe.Ticket, reason string) {
	if t != nil {
		_ = t.Fail(context.Background(), reason)
	}
}
