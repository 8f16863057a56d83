package main

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// defaultHoldRate is how many streams per second hold mode opens when
// -rate is not set: fast, but slow enough for the listen backlog.
const defaultHoldRate = 2000

// hold opens o.concurrency streams (at -rate per second), keeps them all
// open while the upstream trickles their chunks, and reads each to its
// end. Every stream must end with [DONE] (and -chunks chunks when set).
// The measured process's RSS is sampled before the first stream and every
// 100 ms after, so the peak over the baseline, divided by the streams open
// at once, is the memory one open stream costs.
func (b *bench) hold() (*result, error) {
	o := b.o
	if o.pid <= 0 {
		return nil, errors.New("-mode hold needs -pid (the process whose memory is measured)")
	}
	if !o.stream {
		return nil, errors.New("-mode hold needs -stream")
	}
	rate := o.rate
	if rate <= 0 {
		rate = defaultHoldRate
	}
	base, err := processRSS(o.pid)
	if err != nil {
		return nil, err
	}
	m, err := startMeter(o)
	if err != nil {
		return nil, err
	}
	var open, maxOpen atomic.Int64
	var peak atomic.Int64
	peak.Store(base)
	sampled := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			if rss, err := processRSS(o.pid); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
		}
	}()

	deadline := time.Now().Add(o.duration)
	stats := make([]*workerStats, o.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range stats {
		ws := newWorkerStats()
		stats[i] = ws
		slot := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		time.Sleep(time.Until(slot))
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			// One body per stream: identical bodies would derive one key, and
			// every stream but the first would join it instead of being recorded.
			body := appendChat(nil, o.model, "held stream "+b.runID+" "+strconv.Itoa(i), true)
			s := b.doHeld(req, resp, body, deadline, func() {
				if n := open.Add(1); n > maxOpen.Load() {
					maxOpen.Store(n) // racy max: close enough for a count of thousands
				}
			})
			open.Add(-1)
			ws.add(s)
		})
	}
	wg.Wait()
	close(quit)
	<-sampled
	u, err := m.stop()
	if err != nil {
		return nil, err
	}
	r := merge(stats, time.Since(start))
	r.usage = u
	r.rssBase, r.rssPeak, r.held = base, peak.Load(), int(maxOpen.Load())
	return r, nil
}

// doHeld sends one stream request and reads it to its end; opened is
// called when its first byte arrived.
func (b *bench) doHeld(req *fasthttp.Request, resp *fasthttp.Response, body []byte, deadline time.Time, opened func()) sample {
	req.SetRequestURI(b.url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if b.o.key != "" {
		req.Header.Set("Authorization", "Bearer "+b.o.key)
	}
	req.SetBodyRaw(body)
	start := time.Now()
	if err := b.client.DoDeadline(req, resp, deadline); err != nil {
		opened() // counted as open and closed at once, so the balance holds
		return sample{latency: time.Since(start)}
	}
	opened()
	s := sample{status: resp.StatusCode()}
	if s.status >= 200 && s.status < 300 {
		ttfb, chunks, done, err := readStream(bodyReader(resp), start)
		s.ttfb, s.broken = ttfb, !done || (b.o.chunks > 0 && chunks != b.o.chunks)
		if err != nil {
			s.status = 0
		}
	}
	_ = resp.CloseBodyStream()
	s.latency = time.Since(start)
	return s
}
