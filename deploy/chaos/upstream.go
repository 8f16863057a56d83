package main

import (
	"math/rand/v2"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// answerKind is how the fake answers one call.
type answerKind int

const (
	answerOK answerKind = iota
	answerFail
	answerRateLimited
	answerHang
	answerSlow
	answerCut
	numAnswerKinds
)

var answerNames = [numAnswerKinds]string{"ok", "fail", "429", "hang", "slow", "cut"}

// answerMix is the share of each kind, in percent; what is left is ok.
var answerMix = [numAnswerKinds]int{answerFail: 10, answerRateLimited: 4, answerHang: 4, answerSlow: 14, answerCut: 8}

// script is the fake's answers for one upstream model, drawn in advance:
// the fake's SetSequence hands out one per call, and the calls the fake
// counted tell afterwards which answers went out.
type script struct {
	model string
	kinds []answerKind
}

// scriptLength bounds a script; calls past it get its last (ok) answer.
const scriptLength = 200000

func newScript(model string, rng *rand.Rand) script {
	s := script{model: model, kinds: make([]answerKind, scriptLength)}
	for i := range s.kinds[:scriptLength-1] {
		r, k := rng.IntN(100), answerOK
		for kind := answerFail; kind < numAnswerKinds; kind++ {
			if r < answerMix[kind] {
				k = kind
				break
			}
			r -= answerMix[kind]
		}
		s.kinds[i] = k
	}
	return s
}

func (s script) install(f *upstreamtest.Server, rng *rand.Rand) {
	bs := make([]upstreamtest.Behavior, len(s.kinds))
	for i, k := range s.kinds {
		bs[i] = behavior(k, rng)
	}
	f.SetSequence(s.model, bs...)
}

// behavior: streams send 5 chunks 20 ms apart, so a stream is open long
// enough for kills to land inside it.
func behavior(k answerKind, rng *rand.Rand) upstreamtest.Behavior {
	b := upstreamtest.Behavior{Interval: 20 * time.Millisecond}
	switch k {
	case answerFail:
		b.Status = 503
	case answerRateLimited:
		b.Status, b.RetryAfterMs = 429, "50"
	case answerHang:
		b.Hang = true
	case answerSlow:
		b.FirstByteDelay = time.Duration(200+rng.IntN(600)) * time.Millisecond
	case answerCut:
		b.DropAfter = 1 + rng.IntN(4)
	}
	return b
}

// sent counts the answers of each kind among the first calls ones.
func (s script) sent(calls int) [numAnswerKinds]int {
	var n [numAnswerKinds]int
	for _, k := range s.kinds[:min(calls, len(s.kinds))] {
		n[k]++
	}
	return n
}
