package dedupe

import (
	"context"
	"strconv"
	"time"
)

// TableHealth is the size of one table of the record store.
type TableHealth struct {
	// Name is a fixed word: "tasks" and "attempts" on Postgres, "file"
	// for the embedded store's one file.
	Name string
	// Bytes is what the table takes on disk, indexes and TOAST included
	// (the file size for the embedded store).
	Bytes int64
	// DeadTuples is Postgres's estimate of dead row versions waiting for
	// vacuum; -1 when the store has no such thing (embedded).
	DeadTuples int64
}

// Health is a snapshot of how the record store is doing, for the
// gateway_store_* gauges (issue 10): a table that keeps growing, dead
// rows that vacuum does not keep up with, or a processing task that
// nobody finishes or reclaims.
type Health struct {
	Tables []TableHealth
	// OldestProcessing is the age of the oldest processing task (since its
	// current leader began), 0 when none is processing.
	OldestProcessing time.Duration
}

// DefaultHealthEvery is how often the gateway samples Store.Health.
const DefaultHealthEvery = 5 * time.Second

// RunHealthSampler samples the store's health every interval, off the
// request path, into the gateway_store_table_bytes{table},
// gateway_store_dead_tuples{table} and
// gateway_store_oldest_processing_seconds gauges, until ctx is done. A
// failed sample is counted in gateway_store_errors_total{op="health"} and
// leaves the gauges at their last values.
func (c *Coordinator) RunHealthSampler(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultHealthEvery
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c.SampleHealth(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SampleHealth takes one sample (see RunHealthSampler).
func (c *Coordinator) SampleHealth(ctx context.Context) {
	sctx, cancel := c.ctx(ctx)
	h, err := c.store.Health(sctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			c.storeError("health", err)
		}
		return
	}
	for _, tb := range h.Tables {
		label := `{table=` + strconv.Quote(tb.Name) + `}`
		c.set.GetOrCreateGauge(`gateway_store_table_bytes`+label, nil).Set(float64(tb.Bytes))
		if tb.DeadTuples >= 0 {
			c.set.GetOrCreateGauge(`gateway_store_dead_tuples`+label, nil).Set(float64(tb.DeadTuples))
		}
	}
	c.set.GetOrCreateGauge(`gateway_store_oldest_processing_seconds`, nil).Set(h.OldestProcessing.Seconds())
}
