package node

import (
	"crypto/rand"
	"io"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// benchBatchLeaves is the size of the batches the index benchmarks write.
const benchBatchLeaves = 4096

// benchIndexer is an indexer over a fresh badger database, with no chain,
// holding up to recent positions in memory: the index benchmarks call its
// writes directly.
func benchIndexer(b *testing.B, recent int) *indexer {
	db, err := store.OpenBadger(filepath.Join(b.TempDir(), "credence"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ix, err := indexOnly(db, slog.New(slog.NewTextHandler(io.Discard, nil)), recent, defaultMemoryConfig().AnchoredFilterMB, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ix.index.close() })
	return ix
}

// benchBatches makes batches of random leaves for issuer, n hashes in all.
func benchBatches(b *testing.B, issuer string, firstSeq uint64, n int) []app.CommittedBatch {
	var out []app.CommittedBatch
	for seq := firstSeq; n > 0; seq++ {
		k := min(n, benchBatchLeaves)
		hashes := make([]byte, k*proof.HashSize)
		if _, err := rand.Read(hashes); err != nil {
			b.Fatal(err)
		}
		out = append(out, app.CommittedBatch{Record: &proof.BatchRecord{Issuer: issuer, Seq: seq, Height: int64(seq)}, Hashes: hashes})
		n -= k
	}
	return out
}

// BenchmarkIndex measures the index's work per hash: writing the positions
// of anchored batches (ns/op is per hash; cpu-ns/hash is the process's CPU
// time, the background writer, badger's goroutines, the final run and the
// final write of the tables included), the duplicate check Submit makes for
// each new hash against an index of 262,144 hashes, for hashes never
// anchored (miss) and hashes already anchored (hit: positions in memory, as
// the index holds them up to index_recent_hashes; hit-runs: in run files
// only), through the anchored filter of the default size, and the start of
// an index of b.N hashes: checking its runs and filling the filter (fill;
// ns/op is per hash).
func BenchmarkIndex(b *testing.B) {
	b.Run("write", func(b *testing.B) {
		ix := benchIndexer(b, defaultMemoryConfig().IndexRecentHashes)
		batches := benchBatches(b, "uni-bench", 1, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		cpu := cpuTime(b)
		for _, bt := range batches {
			if err := ix.writePositions([]app.CommittedBatch{bt}); err != nil {
				b.Fatal(err)
			}
		}
		// Writing what memory holds as a run, and closing, which writes the
		// memtables out as tables: part of the cost.
		if err := ix.index.positions.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := ix.db.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/hash")
	})
	check := func(b *testing.B, hit, inRuns bool) {
		recent := defaultMemoryConfig().IndexRecentHashes
		if inRuns {
			// Runs of 8 batches each as they come, merged as they would be.
			recent = 8 * benchBatchLeaves
		}
		ix := benchIndexer(b, recent)
		const indexed = 64 * benchBatchLeaves
		batches := benchBatches(b, "uni-bench", 1, indexed)
		for _, bt := range batches {
			if err := ix.writePositions([]app.CommittedBatch{bt}); err != nil {
				b.Fatal(err)
			}
		}
		if inRuns {
			if err := ix.index.positions.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		p := newPipeline(ix.db, nil, ix.index, defaultConfig(), pipelineOptions{QueueDir: b.TempDir()})
		fresh := benchBatches(b, "uni-bench", 1, b.N)
		const group = 1000
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += group {
			var claimed []candidate
			for j := i; j < min(i+group, b.N); j++ {
				var h hash
				if hit {
					bt := batches[j%indexed/benchBatchLeaves]
					copy(h[:], bt.Hashes[j%benchBatchLeaves*proof.HashSize:])
				} else {
					bt := fresh[j/benchBatchLeaves]
					copy(h[:], bt.Hashes[j%benchBatchLeaves*proof.HashSize:])
				}
				claimed = append(claimed, candidate{issuer: "uni-bench", idx: uint64(j), hash: h})
			}
			results := make([]submitResult, 1)
			left, err := p.separateAnchored(claimed, results)
			if err != nil {
				b.Fatal(err)
			}
			if hit && (len(left) != 0 || len(results[0].known) != len(claimed) || results[0].known[0].State != pb.HashState_HASH_STATE_ANCHORED) {
				b.Fatalf("anchored hashes not found: %d left of %d", len(left), len(claimed))
			}
			if !hit && len(left) != len(claimed) {
				b.Fatalf("fresh hashes found anchored: %d left of %d", len(left), len(claimed))
			}
		}
	}
	b.Run("check-miss", func(b *testing.B) { check(b, false, false) })
	b.Run("check-hit", func(b *testing.B) { check(b, true, false) })
	b.Run("check-hit-runs", func(b *testing.B) { check(b, true, true) })
	b.Run("fill", func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "credence")
		db, err := store.OpenBadger(dir)
		if err != nil {
			b.Fatal(err)
		}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		ix, err := indexOnly(db, log, defaultMemoryConfig().IndexRecentHashes, 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, bt := range benchBatches(b, "uni-bench", 1, b.N) {
			if err := ix.writePositions([]app.CommittedBatch{bt}); err != nil {
				b.Fatal(err)
			}
		}
		if err := ix.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyNextBatch), u64(nil, ix.nextBatch)) }); err != nil {
			b.Fatal(err)
		}
		// As at a start: the positions are in runs (the batches in tables).
		if err := ix.index.positions.Flush(); err != nil {
			b.Fatal(err)
		}
		ix.index.close()
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		if db, err = store.OpenBadger(dir); err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		// Opening checks every run whole, then the filter reads them again.
		b.ResetTimer()
		ix, err = indexOnly(db, log, defaultMemoryConfig().IndexRecentHashes, defaultMemoryConfig().AnchoredFilterMB, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer ix.index.close()
		if n := ix.index.filled; n != b.N {
			b.Fatalf("filled %d positions of %d", n, b.N)
		}
	})
}

// cpuTime is the CPU time the process has used, in nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
