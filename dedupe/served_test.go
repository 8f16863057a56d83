package dedupe

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// Replays are counted in memory and reach the record at the next flush.
func TestCoordinatorCountsReplays(t *testing.T) {
	ctx := context.Background()
	s := openTestEmbedded(t, filepath.Join(t.TempDir(), "gateway.db"))
	c := NewCoordinator(s, nil, Options{Owner: "o", Lease: time.Minute, MaxProcessing: time.Minute, KeyTTL: time.Hour, WaitTimeout: time.Second, MaxRecordBytes: 1 << 20})
	defer c.Close()
	r := Request{Tenant: "t", KeyHash: "k", Fingerprint: "fp", Model: "m"}
	lead, err := c.Begin(ctx, r)
	if err != nil || lead.Decision != DecisionNew {
		t.Fatalf("Begin: %v, %v", lead, err)
	}
	if err := lead.Complete(ctx, Response{Status: 200, Body: []byte("{}")}, Usage{PromptTokens: 1}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		tk, err := c.Begin(ctx, r)
		if err != nil || tk.Decision != DecisionReplayed {
			t.Fatalf("Begin again: %v, %v", tk, err)
		}
	}
	if got, _ := s.Served(ctx, "t", "k"); got != (Served{}) {
		t.Fatalf("served before the flush: %+v", got)
	}
	if err := c.FlushServed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.FlushServed(ctx); err != nil { // nothing new: adds nothing
		t.Fatal(err)
	}
	if got, err := s.Served(ctx, "t", "k"); err != nil || got != (Served{Replays: 3}) {
		t.Fatalf("served after the flush: %+v, %v; want 3 replays", got, err)
	}
}

// The counts of one flush are bounded, whatever the traffic.
func TestServedCountsBounded(t *testing.T) {
	var s servedCounts
	for i := range maxServedTasks + 10 {
		s.add(Task{Tenant: "t", KeyHash: string(rune('a'+i%26)) + time.Duration(i).String()}, DecisionReplayed)
	}
	s.add(Task{Tenant: "t", KeyHash: "x"}, DecisionNew)
	if n := len(s.take()); n != maxServedTasks {
		t.Fatalf("kept %d tasks, want %d", n, maxServedTasks)
	}
	if n := len(s.take()); n != 0 {
		t.Fatalf("a second take kept %d", n)
	}
}
