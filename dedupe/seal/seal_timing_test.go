package seal

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkSeal and BenchmarkOpen measure what encryption at rest costs a
// recorded answer (README "Encryption at rest"): one seal when it is
// recorded, one open per replay.
func BenchmarkSeal(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			ring := testRing(b, testKey(b, "k1"))
			plain := bytes.Repeat([]byte("x"), size)
			ad := Binding("idemgw record v1", "content-pipeline", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				ring.Seal(make([]byte, 0, Overhead+size), plain, ad)
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			ring := testRing(b, testKey(b, "k2"), testKey(b, "k1"))
			ad := Binding("idemgw record v1", "content-pipeline", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
			sealed := ring.Seal(nil, bytes.Repeat([]byte("x"), size), ad)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ring.Open(sealed, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
