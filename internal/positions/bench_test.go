package positions

import (
	"cmp"
	crand "crypto/rand"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// benchBatchLeaves is the size of the batches the benchmarks add.
const benchBatchLeaves = 4096

// benchBatches is n random hashes in batches of benchBatchLeaves.
func benchBatches(b *testing.B, n int) [][]byte {
	var out [][]byte
	for n > 0 {
		k := min(n, benchBatchLeaves)
		hs := make([]byte, k*hashSize)
		if _, err := crand.Read(hs); err != nil {
			b.Fatal(err)
		}
		out = append(out, hs)
		n -= k
	}
	return out
}

func benchOpen(b *testing.B, dir string, next uint64, recent int) *Index {
	ix, err := Open(dir, next, Options{RecentEntries: recent})
	if err != nil {
		b.Fatal(err)
	}
	return ix
}

// BenchmarkIndex measures the index alone, per hash (ns/op): adding the
// positions of 4,096-hash batches, the final run written and merged
// (add); the duplicate check of a hash through the filter of the node's
// default size (32 MiB) against 262,144 entries, for hashes never added
// (check-miss) and added ones (check-hit: entries in memory; check-hit-runs:
// in run files only); and an Open of b.N entries in runs with the filter
// filled (open). The node's BenchmarkIndex adds the database's share.
func BenchmarkIndex(b *testing.B) {
	b.Run("add", func(b *testing.B) {
		ix := benchOpen(b, filepath.Join(b.TempDir(), "index"), 0, defaultRecentEntries)
		defer ix.Close()
		f := NewFilter(32)
		if _, err := ix.AttachFilter(f); err != nil {
			b.Fatal(err)
		}
		batches := benchBatches(b, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for num, hs := range batches {
			if err := ix.Add(uint64(num), hs); err != nil {
				b.Fatal(err)
			}
		}
		if err := ix.Flush(); err != nil {
			b.Fatal(err)
		}
	})
	check := func(b *testing.B, hit, inRuns bool) {
		recent := defaultRecentEntries
		if inRuns {
			// Runs of 8 batches each as they come, merged as they would be.
			recent = 8 * benchBatchLeaves
		}
		ix := benchOpen(b, filepath.Join(b.TempDir(), "index"), 0, recent)
		defer ix.Close()
		f := NewFilter(32)
		if _, err := ix.AttachFilter(f); err != nil {
			b.Fatal(err)
		}
		const indexed = 64 * benchBatchLeaves
		batches := benchBatches(b, indexed)
		for num, hs := range batches {
			if err := ix.Add(uint64(num), hs); err != nil {
				b.Fatal(err)
			}
		}
		if inRuns {
			if err := ix.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		fresh := benchBatches(b, b.N)
		var buf []Position
		b.ReportAllocs()
		b.ResetTimer()
		for j := range b.N {
			var h []byte
			if hit {
				hs := batches[j%indexed/benchBatchLeaves]
				h = hs[j%benchBatchLeaves*hashSize:][:hashSize]
			} else {
				h = fresh[j/benchBatchLeaves][j%benchBatchLeaves*hashSize:][:hashSize]
			}
			tag := ix.Tag(h)
			if !f.MayHold(tag) {
				if hit {
					b.Fatal("an added hash is not in the filter")
				}
				continue
			}
			var err error
			if buf, err = ix.Candidates(tag, buf[:0]); err != nil {
				b.Fatal(err)
			}
			if hit && len(buf) == 0 {
				b.Fatal("an added hash has no candidate")
			}
		}
	}
	b.Run("check-miss", func(b *testing.B) { check(b, false, false) })
	b.Run("check-hit", func(b *testing.B) { check(b, true, false) })
	b.Run("check-hit-runs", func(b *testing.B) { check(b, true, true) })
	b.Run("open", func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "index")
		ix := benchOpen(b, dir, 0, defaultRecentEntries)
		batches := benchBatches(b, b.N)
		for num, hs := range batches {
			if err := ix.Add(uint64(num), hs); err != nil {
				b.Fatal(err)
			}
		}
		// As at a start: the entries are in runs.
		if err := ix.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := ix.Close(); err != nil {
			b.Fatal(err)
		}
		// Opening checks every run whole, then the filter reads them again.
		b.ResetTimer()
		ix = benchOpen(b, dir, uint64(len(batches)), defaultRecentEntries)
		defer ix.Close()
		n, err := ix.AttachFilter(NewFilter(32))
		if err != nil || n != b.N {
			b.Fatalf("filled %d tags of %d: %v", n, b.N, err)
		}
	})
}

// BenchmarkFilterAdd is the filter's insert per tag (ns/op) as the index
// does it, a batch's sorted entries at a time (entries), against Add one
// by one (one): batches of 9,375 random tags into the node's default 32
// MiB filter, 5,000,000 tags in it already, so the blocks are not cached.
func BenchmarkFilterAdd(b *testing.B) {
	for _, mode := range []string{"one", "entries"} {
		b.Run(mode, func(b *testing.B) {
			f := NewFilter(32)
			r := rand.New(rand.NewPCG(1, 2))
			for range 5_000_000 {
				f.Add(Tag(r.Uint64()))
			}
			es := make([]entry, 9375)
			b.ResetTimer()
			for i := 0; i < b.N; i += len(es) {
				b.StopTimer()
				for j := range es {
					es[j] = entry{tag: r.Uint64(), at: uint64(j)}
				}
				slices.SortFunc(es, func(x, y entry) int { return cmp.Compare(x.tag, y.tag) })
				b.StartTimer()
				if mode == "one" {
					for _, e := range es {
						f.Add(Tag(e.tag))
					}
				} else {
					f.addEntries(es)
				}
			}
		})
	}
}

// BenchmarkFilterMayHold is the duplicate check per hash (ns/op) of
// hashes the filter does not hold, a submission's 1,000 at a time: each
// hash's tag then its check (one), against every tag first, then the
// checks (tags-first), whose misses the processor can overlap; the filter
// as in BenchmarkFilterAdd.
func BenchmarkFilterMayHold(b *testing.B) {
	for _, mode := range []string{"one", "tags-first"} {
		b.Run(mode, func(b *testing.B) {
			f := NewFilter(32)
			r := rand.New(rand.NewPCG(1, 2))
			for range 5_000_000 {
				f.Add(Tag(r.Uint64()))
			}
			hashes := make([]byte, 1000*hashSize)
			tags := make([]Tag, 1000)
			var held []int
			b.ResetTimer()
			for i := 0; i < b.N; i += len(tags) {
				b.StopTimer()
				for j := range hashes {
					hashes[j] = byte(r.Uint32())
				}
				b.StartTimer()
				held = held[:0]
				if mode == "one" {
					for j := range tags {
						if f.MayHold(SHA256Tag(hashes[j*hashSize:][:hashSize])) {
							held = append(held, j)
						}
					}
				} else {
					for j := range tags {
						tags[j] = SHA256Tag(hashes[j*hashSize:][:hashSize])
					}
					for j, tag := range tags {
						if f.MayHold(tag) {
							held = append(held, j)
						}
					}
				}
			}
		})
	}
}
