package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idemgw/gateway/dedupe"
)

// measureBegin times the record store's Begin of new keys alone, with the
// gateway's own store code (dedupe.OpenPostgres, no migration), at -rate
// or back to back: the one durable write a new task waits for before its
// upstream call, which the stream lines' first byte is compared beyond.
func measureBegin(o *options) (*result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := dedupe.OpenPostgres(ctx, o.storeURL, false)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	var sent atomic.Int64
	var recording, stop atomic.Bool
	stats := make([]*workerStats, o.concurrency)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range stats {
		ws := newWorkerStats()
		stats[i] = ws
		wg.Go(func() {
			for !stop.Load() {
				n := sent.Add(1)
				if o.rate > 0 {
					time.Sleep(time.Until(start.Add(time.Duration(float64(n) / o.rate * float64(time.Second)))))
				}
				key := "begin-" + runID + "-" + strconv.FormatInt(n, 10)
				t0 := time.Now()
				bctx, bcancel := context.WithTimeout(context.Background(), o.timeout)
				res, err := store.Begin(bctx, dedupe.BeginRequest{
					Tenant: "bench-begin", KeyHash: dedupe.HashKey("bench-begin", key), Fingerprint: key,
					Model: "bench", Owner: "bench-begin", Lease: 10 * time.Minute, MaxProcessing: 10 * time.Minute,
				})
				bcancel()
				s := sample{latency: time.Since(t0), status: 200}
				if err != nil || res.Verdict != dedupe.VerdictLeader {
					s.status = 0
				}
				if recording.Load() && !stop.Load() {
					ws.add(s)
				}
			}
		})
	}
	time.Sleep(o.warmup)
	m, err := startMeter(o)
	if err != nil {
		stop.Store(true)
		wg.Wait()
		return nil, err
	}
	recording.Store(true)
	time.Sleep(o.duration)
	u, err := m.stop()
	elapsed := time.Since(m.begin)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("cannot measure: %w", err)
	}
	r := merge(stats, elapsed)
	r.usage = u
	return r, nil
}
