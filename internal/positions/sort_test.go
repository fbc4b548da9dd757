package positions

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortEntriesAsComparisonSort checks the radix sort against the
// comparison it replaces, on tags spread as SHA-256 spreads them and on
// tags an issuer could grind: equal, sharing high or low bits, or few.
func TestSortEntriesAsComparisonSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tags := map[string]func(i int) uint64{
		"random":       func(int) uint64 { return rng.Uint64() },
		"all equal":    func(int) uint64 { return 0xdeadbeef },
		"high shared":  func(int) uint64 { return 0xabcd<<48 | rng.Uint64()>>16 },
		"low shared":   func(int) uint64 { return rng.Uint64()<<20 | 0x12345 },
		"few distinct": func(int) uint64 { return uint64(rng.IntN(5)) << 60 },
		"descending":   func(i int) uint64 { return ^uint64(i) },
	}
	for name, tag := range tags {
		for _, n := range []int{0, 1, 2, radixSortMin - 1, radixSortMin, 1000, 9375, 65536} {
			es := make([]entry, n)
			for i := range es {
				es[i] = makeEntry(Tag(tag(i)), 7, uint64(i))
			}
			want := slices.Clone(es)
			slices.SortFunc(want, cmpEntry)
			sortEntries(es)
			if !slices.Equal(es, want) {
				t.Fatalf("%s, %d entries: radix order differs from cmpEntry's", name, n)
			}
		}
	}
}

func BenchmarkSortEntries(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := make([]entry, 9375)
	for i := range src {
		src[i] = makeEntry(Tag(rng.Uint64()), 1, uint64(i))
	}
	es := make([]entry, len(src))
	for _, sorter := range []struct {
		name string
		sort func([]entry)
	}{{"radix", sortEntries}, {"comparison", func(es []entry) { slices.SortFunc(es, cmpEntry) }}} {
		b.Run(sorter.name, func(b *testing.B) {
			for b.Loop() {
				copy(es, src)
				sorter.sort(es)
			}
		})
	}
}
