package upstreams

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/idemgw/gateway/config"
)

func TestOrderGroups(t *testing.T) {
	f := func(targets []config.Target, draws []int, want []int) {
		t.Helper()
		calls := 0
		intn := func(n int) int {
			if calls >= len(draws) {
				t.Fatalf("Order(%+v) drew %d times, want %d", targets, calls+1, len(draws))
			}
			d := draws[calls]
			calls++
			if d >= n {
				t.Fatalf("scripted draw %d not below %d", d, n)
			}
			return d
		}
		got := Order(nil, targets, intn)
		if !reflect.DeepEqual(got, want) || calls != len(draws) {
			t.Fatalf("Order(%+v) with draws %v = %v after %d draws, want %v", targets, draws, got, calls, want)
		}
	}
	tg := func(tier, weight int) config.Target { return config.Target{Provider: "p", Tier: tier, Weight: weight} }
	// No tiers: the configured order, and no random draw at all.
	f([]config.Target{tg(0, 1), tg(0, 1), tg(0, 1)}, nil, []int{0, 1, 2})
	// A target without tier is its own group even between equal weights.
	f([]config.Target{tg(0, 5), tg(0, 1)}, nil, []int{0, 1})
	// DESIGN.md's example: gemini w3 and vertex w1 in tier 1, then groq.
	f([]config.Target{tg(1, 3), tg(1, 1), tg(0, 1)}, []int{0}, []int{0, 1, 2})
	f([]config.Target{tg(1, 3), tg(1, 1), tg(0, 1)}, []int{2}, []int{0, 1, 2})
	f([]config.Target{tg(1, 3), tg(1, 1), tg(0, 1)}, []int{3}, []int{1, 0, 2})
	// Only consecutive targets share a group; groups keep their order.
	f([]config.Target{tg(1, 1), tg(2, 1), tg(1, 1)}, nil, []int{0, 1, 2})
	f([]config.Target{tg(0, 1), tg(2, 1), tg(2, 1), tg(3, 1), tg(3, 1)}, []int{1, 0}, []int{0, 2, 1, 3, 4})
	// Three in a group: the rest of the group is drawn by weight too.
	f([]config.Target{tg(1, 1), tg(1, 2), tg(1, 3)}, []int{5, 1}, []int{2, 1, 0})
	f([]config.Target{tg(1, 1), tg(1, 2), tg(1, 3)}, []int{0, 2}, []int{0, 2, 1})
	f([]config.Target{tg(1, 1), tg(1, 2), tg(1, 3)}, []int{0, 1}, []int{0, 1, 2})
	// An unset weight (config built in code) counts as 1.
	f([]config.Target{tg(1, 0), tg(1, 0)}, []int{1}, []int{1, 0})
	f(nil, nil, nil)

	// dst is appended to, so the chain can reuse a buffer.
	if got := Order([]int{9}, []config.Target{tg(0, 1)}, nil); !reflect.DeepEqual(got, []int{9, 0}) {
		t.Fatalf("Order appends: got %v", got)
	}
}

// The share of first picks follows the weights, and so does the share of
// second places (fallbacks within the tier).
func TestOrderShares(t *testing.T) {
	targets := []config.Target{
		{Provider: "a", Tier: 1, Weight: 3},
		{Provider: "b", Tier: 1, Weight: 1},
		{Provider: "c", Tier: 1, Weight: 1},
		{Provider: "d"},
	}
	rnd := rand.New(rand.NewPCG(11, 12))
	const n = 5000
	first := make([]int, len(targets))
	secondAfterA := make([]int, len(targets))
	var buf []int
	for i := 0; i < n; i++ {
		buf = Order(buf[:0], targets, rnd.IntN)
		if len(buf) != 4 || buf[3] != 3 {
			t.Fatalf("order %v: the tierless target must stay last", buf)
		}
		first[buf[0]]++
		if buf[0] == 0 {
			secondAfterA[buf[1]]++
		}
	}
	near := func(what string, got, total int, want float64) {
		t.Helper()
		share := float64(got) / float64(total)
		if math.Abs(share-want) > 0.03 {
			t.Errorf("%s: share %.3f over %d picks, want %.3f ± 0.03", what, share, total, want)
		}
	}
	near("a first", first[0], n, 0.6)
	near("b first", first[1], n, 0.2)
	near("c first", first[2], n, 0.2)
	near("b second after a", secondAfterA[1], first[0], 0.5)
	near("c second after a", secondAfterA[2], first[0], 0.5)
}
