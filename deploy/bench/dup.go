package main

import (
	"bytes"
	"strconv"

	"github.com/valyala/fasthttp"
)

// dupAnswer is one request's outcome in a round of duplicates.
type dupAnswer struct {
	body []byte
	ok   bool
}

func (b *bench) initDup() {
	b.rounds = make([]chan int64, b.o.concurrency)
	for i := range b.rounds {
		b.rounds[i] = make(chan int64, 1)
	}
	b.answers = make(chan dupAnswer, b.o.concurrency)
}

// dupRounds starts rounds until the end of the run: every worker sends
// the same new key and body at once, and all of them must get the same
// answer (the fake upstream numbers its answers, so two upstream calls
// would differ).
func (b *bench) dupRounds() {
	defer func() {
		for _, ch := range b.rounds {
			close(ch)
		}
	}()
	for round := int64(1); !b.stop.Load(); round++ {
		for _, ch := range b.rounds {
			ch <- round
		}
		var first []byte
		split, failed := false, false
		for range b.rounds {
			a := <-b.answers
			switch {
			case !a.ok:
				failed = true
			case first == nil:
				first = a.body
			case !bytes.Equal(first, a.body):
				split = true
			}
		}
		if !b.recording.Load() || b.stop.Load() {
			continue
		}
		b.roundsDone.Add(1)
		if split && !failed {
			b.roundsSplit.Add(1)
		}
	}
}

// dupWorker sends worker i's request of each round.
func (b *bench) dupWorker(i int, ws *workerStats) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	var body []byte
	for round := range b.rounds[i] {
		id := b.runID + "-" + strconv.FormatInt(round, 10)
		body = appendChat(body[:0], b.o.model, "duplicated prompt "+id, false)
		s := b.do(req, resp, body, "dup-"+id)
		ok := s.status >= 200 && s.status < 300
		a := dupAnswer{ok: ok}
		if ok {
			a.body = bytes.Clone(resp.Body())
		}
		if b.recording.Load() && !b.stop.Load() {
			ws.add(s)
		}
		b.answers <- a
	}
}
