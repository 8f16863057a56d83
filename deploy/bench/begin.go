package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

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
	return measureStore(o, func(ctx context.Context, key string) error {
		res, err := store.Begin(ctx, dedupe.BeginRequest{
			Tenant: "bench-begin", KeyHash: dedupe.HashKey("bench-begin", key), Fingerprint: key,
			Model: "bench", Owner: "bench-begin", Lease: 10 * time.Minute, MaxProcessing: 10 * time.Minute,
		})
		if err == nil && res.Verdict != dedupe.VerdictLeader {
			err = fmt.Errorf("begin of a new key: verdict %v", res.Verdict)
		}
		return err
	})
}

// measureTasks is the floor of the Postgres store's write path: a plain
// pgx loop, one connection per worker, running for each new key the SQL
// the gateway's store runs for a new task that succeeds on its first
// target (dedupe.PlainTask: the insert of Begin, then Complete), one
// statement and one commit at a time, with an answer the size of the fake
// upstream's.
func measureTasks(o *options) (*result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(o.storeURL)
	if err != nil {
		return nil, fmt.Errorf("cannot parse -store-url: %w", err)
	}
	cfg.MaxConns = int32(o.concurrency)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot open -store-url: %w", err)
	}
	defer pool.Close()
	answer := fakeAnswer()
	return measureStore(o, func(ctx context.Context, key string) error {
		req := dedupe.BeginRequest{
			Tenant: "bench", KeyHash: dedupe.HashKey("bench", key), Fingerprint: dedupe.HashKey("fp", key),
			Model: o.model, Owner: "bench-tasks", Lease: 30 * time.Second,
			First: dedupe.Attempt{Provider: "fake", Model: o.model},
		}
		c := dedupe.Completion{
			Response: dedupe.Response{Status: 200, ContentType: "application/json", Body: answer},
			Usage:    dedupe.Usage{PromptTokens: 12, CompletionTokens: 9}, TTL: 24 * time.Hour,
		}
		return dedupe.PlainTask(ctx, pool, req, c, "success")
	})
}

// fakeAnswer is a chat completion the size of deploy/fakeupstream's.
func fakeAnswer() []byte {
	return []byte(`{"id":"chatcmpl-bench-000000000000","object":"chat.completion","created":1700000000,"model":"bench-model",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"This is a benchmark answer from the fake upstream."},` +
		`"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}`)
}

// measureStore runs op for a new key per call, at -rate or back to back,
// from -concurrency workers, and measures it as a line.
func measureStore(o *options, op func(ctx context.Context, key string) error) (*result, error) {
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
				key := "store-" + runID + "-" + strconv.FormatInt(n, 10)
				t0 := time.Now()
				octx, ocancel := context.WithTimeout(context.Background(), o.timeout)
				err := op(octx, key)
				ocancel()
				s := sample{latency: time.Since(t0), status: 200}
				if err != nil {
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
	if err == nil {
		err = m.readWAL(&u)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot measure: %w", err)
	}
	r := merge(stats, elapsed)
	r.usage = u
	return r, nil
}
