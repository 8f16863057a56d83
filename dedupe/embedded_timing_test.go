package dedupe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 10: the embedded store's write path for new keys, as the gateway
// drives it under `bench load -mode unique`: 32 concurrent callers, each
// a Begin (with its first attempt) then a Complete (with the attempt's
// final record and a 287-byte answer, the fake upstream's). It reports
// commits and pages written per task, which is the writer's work.
//
//	go test -run '^$' -bench BenchmarkEmbeddedNewTask -benchtime 20000x ./dedupe

func BenchmarkEmbeddedNewTask(b *testing.B) {
	s, err := OpenEmbedded(filepath.Join(b.TempDir(), "gateway.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	body := make([]byte, 287)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	var seq atomic.Int64
	task := func() {
		sum := sha256.Sum256(strconv.AppendInt(nil, seq.Add(1), 10))
		h := hex.EncodeToString(sum[:])
		res, err := s.Begin(ctx, BeginRequest{
			Tenant: "bench", KeyHash: h, Fingerprint: h, Model: "bench-model", Owner: "owner-a",
			Lease: 30 * time.Second, MaxProcessing: 10 * time.Minute,
			First: Attempt{Provider: "fake", Model: "bench-model"},
		})
		if err != nil || res.Verdict != VerdictLeader || res.Started == nil {
			b.Errorf("Begin: %v, %+v", err, res)
			return
		}
		final := *res.Started
		final.Outcome, final.HTTPStatus, final.DurationMS = "success", 200, 1
		err = s.Complete(ctx, "bench", h, res.Task.Fence, Completion{
			Response: Response{Status: 200, ContentType: "application/json", Body: body},
			Usage:    Usage{PromptTokens: 10, CompletionTokens: 9}, TTL: 24 * time.Hour,
			Generation: res.Task.CreatedAt, Attempt: &final,
		})
		if err != nil {
			b.Errorf("Complete: %v", err)
		}
	}
	// A store that already holds tasks, as a node's does after a while.
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 20_000 / 32 {
				task()
			}
		})
	}
	wg.Wait()
	before := s.db.Stats()
	commits := s.group.commits.Load()
	b.SetParallelism(16) // 32 callers on 2 cores, like `bench load`
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			task()
		}
	})
	b.StopTimer()
	after := s.db.Stats()
	d := after.Sub(&before)
	n := float64(b.N)
	b.ReportMetric(float64(d.TxStats.GetWrite())/n, "pages/task")
	b.ReportMetric(float64(s.group.commits.Load()-commits)/n, "commits/task")
}
