package upstreams

import (
	"math/rand/v2"

	"github.com/idemgw/gateway/config"
)

// Order appends to dst the indexes of targets in the order one request
// tries them (DESIGN.md section 7): consecutive targets with the same tier
// form a group; the group's first target is drawn with probability
// proportional to its weight, the next one likewise among the rest of the
// group, and so on, so that fallbacks within a tier are spread by weight
// too. A target without tier is a group of its own; groups keep their
// order. intn draws in [0, n); nil means math/rand/v2's IntN. A route
// without tiers costs no random draw.
func Order(dst []int, targets []config.Target, intn func(int) int) []int {
	if intn == nil {
		intn = rand.IntN
	}
	for start := 0; start < len(targets); {
		end := start + 1
		if tier := targets[start].Tier; tier != 0 {
			for end < len(targets) && targets[end].Tier == tier {
				end++
			}
		}
		first := len(dst)
		for i := start; i < end; i++ {
			dst = append(dst, i)
		}
		group := dst[first:]
		// Weighted sampling without replacement: each step moves the drawn
		// target to the front of what is left.
		for k := 0; k < len(group)-1; k++ {
			total := 0
			for _, i := range group[k:] {
				total += weight(targets[i])
			}
			r := intn(total)
			for j := k; j < len(group); j++ {
				if r -= weight(targets[group[j]]); r < 0 {
					group[k], group[j] = group[j], group[k]
					break
				}
			}
		}
		start = end
	}
	return dst
}

// weight is a target's weight; an unset one (a config built in code
// without ApplyDefaults) counts as the default.
func weight(t config.Target) int {
	if t.Weight < 1 {
		return config.DefaultWeight
	}
	return t.Weight
}
