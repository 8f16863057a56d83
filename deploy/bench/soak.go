package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// cmdSoak is `bench soak`: new keys at a steady rate against a gateway
// on Postgres for minutes, sampling the task and attempt tables as it
// goes, to show that a queue-like table stays healthy (DESIGN.md
// section 3): sizes reach a plateau once the reaper deletes as many
// expired tasks as come in and vacuum reuses their space, and heartbeats
// are HOT updates.
func cmdSoak(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "", "gateway base URL (loopback only), on a Postgres store")
	key := fs.String("key", "", "client key")
	storeURL := fs.String("store-url", "", "the gateway's Postgres database")
	rate := fs.Float64("rate", 100, "new keys per second")
	duration := fs.Duration("duration", 3*time.Minute, "how long (at most "+maxDuration.String()+")")
	every := fs.Duration("every", 15*time.Second, "sample interval")
	model := fs.String("model", "slow", "model sent (the fake's slow answers in 2 s, so leaders heartbeat)")
	workers := fs.Int("concurrency", 0, "connections (0: enough for the rate at 3 s a request)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	u, err := loopbackURL(*target)
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "soak:", err)
		return 2
	case *storeURL == "":
		fmt.Fprintln(stderr, "soak: -store-url is required")
		return 2
	case *rate <= 0 || *rate > maxRate:
		fmt.Fprintf(stderr, "soak: -rate must be in (0, %d]\n", maxRate)
		return 2
	case *duration <= 0 || *duration > maxDuration:
		fmt.Fprintf(stderr, "soak: -duration must be positive and at most %s\n", maxDuration)
		return 2
	case *every <= 0 || *every > *duration:
		fmt.Fprintln(stderr, "soak: -every must be positive and at most -duration")
		return 2
	}
	if *workers <= 0 {
		*workers = int(*rate*3) + 16
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration+time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, *storeURL)
	if err != nil {
		fmt.Fprintln(stderr, "soak: cannot connect to -store-url:", err)
		return 1
	}
	defer conn.Close(context.Background())

	o := &options{target: u, path: "/v1/chat/completions", concurrency: min(*workers, maxConcurrency),
		duration: *duration, requests: maxRequests, mode: modeUnique, key: *key, model: *model,
		timeout: 30 * time.Second, rate: *rate, label: "soak", phase: "peak"}
	type outcome struct {
		r   *result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := measure(o)
		done <- outcome{r, err}
	}()

	fmt.Fprintf(stdout, "soak: %.0f new keys/s for %s, model %s, sampled every %s\n", *rate, *duration, *model, *every)
	fmt.Fprintln(stdout, "   t | tasks live | tasks heap / idx KiB | attempts heap / idx KiB | dead tasks / attempts | vacuums | HOT share of heartbeats")
	first, err := sampleTables(ctx, conn)
	if err != nil {
		fmt.Fprintln(stderr, "soak:", err)
		return 1
	}
	prev, start := first, time.Now()
	var samples []tableSample
	tick := time.NewTicker(*every)
	defer tick.Stop()
	var out outcome
wait:
	for {
		select {
		case out = <-done:
			break wait
		case <-tick.C:
			s, err := sampleTables(ctx, conn)
			if err != nil {
				fmt.Fprintln(stderr, "soak:", err)
				return 1
			}
			s.at = time.Since(start)
			fmt.Fprintln(stdout, s.line(prev))
			samples = append(samples, s)
			prev = s
		}
	}
	if out.err != nil {
		fmt.Fprintln(stderr, "soak:", out.err)
		return 1
	}
	last, err := sampleTables(ctx, conn)
	if err != nil {
		fmt.Fprintln(stderr, "soak:", err)
		return 1
	}
	fmt.Fprintf(stdout, "requests: %d (%d ok, %.0f/s), p50 %s p99 %s, errors %s\n", out.r.total, out.r.ok, out.r.rps(),
		ms(percentile(out.r.latencies, 50)), ms(percentile(out.r.latencies, 99)), out.r.errorText())
	fmt.Fprintln(stdout, soakVerdict(first, last, samples))
	if out.r.ok == 0 {
		return 1
	}
	return 0
}

// tableSample is one reading of the two tables' statistics.
type tableSample struct {
	at                            time.Duration
	live, deadTasks, deadAttempts int64
	taskHeap, taskIdx             int64
	attemptHeap, attemptIdx       int64
	inserts, updates, hotUpdates  int64
	vacuums                       int64
	// processing is the tasks in flight: inserted, not yet completed.
	processing int64
}

// sampleTables reads sizes (heap with TOAST, and indexes) and the
// statistics collector's counters. Each new-key task is one insert, its
// heartbeats, and one completing update (never HOT: it changes status and
// expires_at, which indexes use), so the heartbeats of a window are its
// updates less its completions, which are its inserts less the growth of
// the tasks in flight.
func sampleTables(ctx context.Context, conn *pgx.Conn) (tableSample, error) {
	const q = `SELECT
		pg_table_size('tasks'), pg_indexes_size('tasks'), pg_table_size('attempts'), pg_indexes_size('attempts'),
		t.n_live_tup, t.n_dead_tup, a.n_dead_tup, t.n_tup_ins, t.n_tup_upd, t.n_tup_hot_upd,
		t.vacuum_count + t.autovacuum_count,
		(SELECT count(*) FROM tasks WHERE status = 'processing')
	FROM pg_stat_user_tables t, pg_stat_user_tables a
	WHERE t.relname = 'tasks' AND a.relname = 'attempts'`
	var s tableSample
	// The counters of other backends reach the view within about a second.
	if _, err := conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return s, fmt.Errorf("cannot clear the statistics snapshot: %w", err)
	}
	err := conn.QueryRow(ctx, q).Scan(&s.taskHeap, &s.taskIdx, &s.attemptHeap, &s.attemptIdx,
		&s.live, &s.deadTasks, &s.deadAttempts, &s.inserts, &s.updates, &s.hotUpdates, &s.vacuums, &s.processing)
	if err != nil {
		return s, fmt.Errorf("cannot read the table statistics: %w", err)
	}
	return s, nil
}

// hotShare is the share of heartbeats between a and b that were HOT.
func hotShare(a, b tableSample) string {
	completions := (b.inserts - a.inserts) - (b.processing - a.processing)
	beats := (b.updates - a.updates) - completions
	if beats <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%% of %d", 100*float64(b.hotUpdates-a.hotUpdates)/float64(beats), beats)
}

func (s tableSample) line(prev tableSample) string {
	return fmt.Sprintf("%4.0fs | %10d | %9d / %-9d | %11d / %-10d | %9d / %-9d | %7d | %s",
		s.at.Seconds(), s.live, s.taskHeap/1024, s.taskIdx/1024, s.attemptHeap/1024, s.attemptIdx/1024,
		s.deadTasks, s.deadAttempts, s.vacuums, hotShare(prev, s))
}

// soakVerdict sums the run up: the HOT share over the whole run, and
// whether the sizes stopped growing (the largest total of the last third
// of the samples against the largest of the middle third).
func soakVerdict(first, last tableSample, samples []tableSample) string {
	total := func(s tableSample) int64 { return s.taskHeap + s.taskIdx + s.attemptHeap + s.attemptIdx }
	out := "HOT share of heartbeat updates over the run: " + hotShare(first, last)
	n := len(samples)
	if n < 3 {
		return out + "; too few samples to judge a plateau"
	}
	var mid, end int64
	for i, s := range samples {
		switch {
		case i >= 2*n/3:
			end = max(end, total(s))
		case i >= n/3:
			mid = max(mid, total(s))
		}
	}
	growth := 100 * (float64(end) - float64(mid)) / float64(max(mid, 1))
	verdict := "plateau"
	if growth > 10 {
		verdict = "still growing"
	}
	return fmt.Sprintf("%s; tables and indexes %d KiB at most in the middle third, %d KiB in the last: %+.1f%% (%s)",
		out, mid/1024, end/1024, growth, verdict)
}
