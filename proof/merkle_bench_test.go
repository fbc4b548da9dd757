package proof

import (
	"crypto/sha256"
	"fmt"
	"testing"
)

var merkleBenchSizes = []int{1024, 16384, 65536}

func merkleReportPerLeaf(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/leaf")
}

// BenchmarkSHA256Baseline is the bare hashing cost of an n-leaf tree: n
// 33-byte leaf inputs and n-1 65-byte node inputs, nothing else. The Merkle
// budget (DESIGN: within 1.5x) is measured against it.
func BenchmarkSHA256Baseline(b *testing.B) {
	for _, n := range merkleBenchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var leafIn [1 + HashSize]byte
			var nodeIn [1 + 2*HashSize]byte
			var h [HashSize]byte
			for b.Loop() {
				// Chaining each digest into the next input keeps the
				// calls from being hoisted or elided.
				for range n {
					leafIn[1] = h[0]
					h = sha256.Sum256(leafIn[:])
				}
				for range n - 1 {
					nodeIn[1] = h[0]
					h = sha256.Sum256(nodeIn[:])
				}
			}
			merkleReportPerLeaf(b, n)
		})
	}
}

func BenchmarkRoot(b *testing.B) {
	for _, n := range merkleBenchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			hashes := merkleTestHashes(n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Root(hashes); err != nil {
					b.Fatal(err)
				}
			}
			merkleReportPerLeaf(b, n)
		})
	}
}

func BenchmarkNewTree(b *testing.B) {
	for _, n := range merkleBenchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			hashes := merkleTestHashes(n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewTree(hashes); err != nil {
					b.Fatal(err)
				}
			}
			merkleReportPerLeaf(b, n)
		})
	}
}

func BenchmarkAuditPath(b *testing.B) {
	const n = 65536
	tr, err := NewTree(merkleTestHashes(n))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		if _, err := tr.AuditPath(i % n); err != nil {
			b.Fatal(err)
		}
		i += 7919 // a prime stride visits leaves out of cache order
	}
}

func BenchmarkMerkleRootFromAuditPath(b *testing.B) {
	const n, index = 65536, 40503
	tr, err := NewTree(merkleTestHashes(n))
	if err != nil {
		b.Fatal(err)
	}
	path, err := tr.AuditPath(index)
	if err != nil {
		b.Fatal(err)
	}
	leaf := [HashSize]byte(tr.levels[0][index*HashSize:])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RootFromAuditPath(leaf, index, n, path); err != nil {
			b.Fatal(err)
		}
	}
}
