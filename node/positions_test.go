package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/internal/positions"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
)

// indexModel is every batch indexed, by number: what a lookup must answer,
// found by brute force.
type indexModel struct {
	batches []app.CommittedBatch
}

// find is lookup.find's contract over the model: by issuer (or the first
// issuer in byte order), the batch indexed last, the last leaf in it.
func (m *indexModel) find(h hash, issuer string) (position, error) {
	var best position
	var bestNum int
	found := false
	for num, b := range m.batches {
		r := b.Record
		if issuer != "" && r.Issuer != issuer {
			continue
		}
		for i, l := range leaves(b.Hashes) {
			if l != h {
				continue
			}
			better := !found || r.Issuer < best.issuer ||
				r.Issuer == best.issuer && (num > bestNum || num == bestNum && uint64(i) > best.index)
			if better {
				best = position{issuer: r.Issuer, seq: r.Seq, index: uint64(i), height: r.Height}
				bestNum, found = num, true
			}
		}
	}
	if !found {
		return position{}, errNotFound
	}
	return best, nil
}

// collidingTag takes 16 values, so every lookup has many candidates from
// many batches.
func collidingTag(h []byte) positions.Tag { return positions.Tag(h[0] % 16) }

// testIndex is an indexer over a real badger database and real run files
// in dir, holding up to recent positions in memory, tagging hashes with
// tag (nil: the default).
type testIndex struct {
	t      *testing.T
	dir    string
	recent int
	tag    func(hash []byte) positions.Tag
	db     *badger.DB
	ix     *indexer
}

func openTestIndex(t *testing.T, dir string, recent int) *testIndex {
	return openTestIndexTagged(t, dir, recent, nil)
}

func openTestIndexTagged(t *testing.T, dir string, recent int, tag func(hash []byte) positions.Tag) *testIndex {
	ti := &testIndex{t: t, dir: dir, recent: recent, tag: tag}
	ti.open()
	t.Cleanup(ti.close)
	return ti
}

func (ti *testIndex) open() {
	db, err := store.OpenBadger(filepath.Join(ti.dir, "credence"))
	if err != nil {
		ti.t.Fatal(err)
	}
	ix, err := indexOnly(db, testLogger(ti.t), ti.recent, 0, ti.tag)
	if err != nil {
		db.Close()
		ti.t.Fatal(err)
	}
	ti.db, ti.ix = db, ix
}

func (ti *testIndex) close() {
	if ti.db == nil {
		return
	}
	if err := ti.ix.index.close(); err != nil {
		ti.t.Error(err)
	}
	if err := ti.db.Close(); err != nil {
		ti.t.Error(err)
	}
	ti.db, ti.ix = nil, nil
}

func (ti *testIndex) reopen() {
	ti.close()
	ti.open()
}

// write indexes batches as index does, storing the next batch number
// after when durable is set (else as a crash before the height is stored).
func (ti *testIndex) write(batches []app.CommittedBatch, durable bool) {
	ti.t.Helper()
	if err := ti.ix.writePositions(batches); err != nil {
		ti.t.Fatal(err)
	}
	if durable {
		if err := ti.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyNextBatch), u64(nil, ti.ix.nextBatch)) }); err != nil {
			ti.t.Fatal(err)
		}
	}
}

func (ti *testIndex) find(h hash, issuer string) (position, error) {
	var pos position
	err := ti.db.View(func(txn *badger.Txn) error {
		var err error
		pos, err = newLookup(txn, ti.ix.index).find(h[:], issuer)
		return err
	})
	return pos, err
}

// runFiles is the names of the files in the index's directory.
func (ti *testIndex) runFiles() []string {
	ds, err := os.ReadDir(filepath.Join(ti.dir, "index"))
	if err != nil {
		ti.t.Fatal(err)
	}
	var names []string
	for _, d := range ds {
		names = append(names, d.Name())
	}
	return names
}

// randomBatches makes n batches of 1 to 40 leaves from a pool of 300
// hashes, so hashes repeat within batches, across batches and issuers.
func randomBatches(rng *rand.Rand, pool []hash, seqs map[string]uint64, n int) []app.CommittedBatch {
	issuers := []string{"uni-a", "uni-b", "uni-c"}
	var out []app.CommittedBatch
	for range n {
		is := issuers[rng.IntN(len(issuers))]
		seqs[is]++
		k := 1 + rng.IntN(40)
		hs := make([]byte, 0, k*proof.HashSize)
		for range k {
			h := pool[rng.IntN(len(pool))]
			hs = append(hs, h[:]...)
		}
		out = append(out, app.CommittedBatch{Record: &proof.BatchRecord{Issuer: is, Seq: seqs[is], Height: int64(len(out) + 1)}, Hashes: hs})
	}
	return out
}

func hashPool(rng *rand.Rand, n int) []hash {
	pool := make([]hash, n)
	for i := range pool {
		for j := range pool[i] {
			pool[i][j] = byte(rng.IntN(256))
		}
	}
	return pool
}

// checkAgainst compares every answer of ti for the pool (and for each
// issuer) with the model's.
func checkAgainst(t *testing.T, ti *testIndex, m *indexModel, pool []hash, when string) {
	t.Helper()
	for _, h := range pool {
		for _, is := range []string{"", "uni-a", "uni-b", "uni-c", "uni-z"} {
			want, werr := m.find(h, is)
			got, gerr := ti.find(h, is)
			if (werr == nil) != (gerr == nil) || werr != nil && !errors.Is(gerr, werr) || got != want {
				t.Fatalf("%s: find(%x, %q) = %+v, %v; want %+v, %v", when, h[:4], is, got, gerr, want, werr)
			}
		}
	}
}

// checkRunFiles fails unless the index expects batch next, and, once
// everything is written and merged, the run files on disk cover batches
// [0, next) without gap or overlap.
func checkRunFiles(t *testing.T, ti *testIndex, next uint64) {
	t.Helper()
	if got := ti.ix.index.positions.Next(); got != next {
		t.Fatalf("index takes batch %d next, want %d", got, next)
	}
	if err := ti.ix.index.positions.Flush(); err != nil {
		t.Fatal(err)
	}
	var at uint64
	for _, n := range ti.runFiles() {
		lo, hi, ok := positions.RunBatches(n)
		if !ok || lo != at {
			t.Fatalf("run files %v: %s does not start at batch %d", ti.runFiles(), n, at)
		}
		at = hi
	}
	if at != next {
		t.Fatalf("run files %v end at batch %d, want %d", ti.runFiles(), at, next)
	}
}

// TestIndexLookupAgreesWithModel: lookups answer as brute force over every
// batch indexed does (by issuer or the first in byte order, the batch
// indexed last, the last leaf in it), with tags colliding and positions
// in runs and in memory, across flushes, merges and restarts. The
// positions index's own agreement with a model is in internal/positions.
func TestIndexLookupAgreesWithModel(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 37))
	pool := hashPool(rng, 300)
	// Hashes never anchored: misses under the same tags.
	absent := hashPool(rng, 40)
	ti := openTestIndexTagged(t, t.TempDir(), 37, collidingTag)
	m := &indexModel{}
	seqs := make(map[string]uint64)
	for round := range 12 {
		bs := randomBatches(rng, pool, seqs, 1+rng.IntN(15))
		// Several batches at once, as a block or a restore writes them.
		ti.write(bs, true)
		m.batches = append(m.batches, bs...)
		switch round % 4 {
		case 1:
			if err := ti.ix.index.positions.Flush(); err != nil {
				t.Fatal(err)
			}
		case 3:
			ti.reopen()
		}
		checkAgainst(t, ti, m, append(slices.Clone(pool[:60]), absent...), fmt.Sprint("round ", round))
	}
	checkRunFiles(t, ti, uint64(len(m.batches)))
	checkAgainst(t, ti, m, append(pool, absent...), "flushed")
	ti.reopen()
	checkAgainst(t, ti, m, append(pool, absent...), "restarted")
}

// TestIndexMigratesPositionKeys: positions an earlier version kept as
// badger keys (xl) are dropped at start and the index rebuilt from the
// batches, to the same answers.
func TestIndexMigratesPositionKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(4, 4))
	pool := hashPool(rng, 300)
	m := &indexModel{batches: randomBatches(rng, pool, make(map[string]uint64), 60)}
	db, err := store.OpenBadger(filepath.Join(dir, "credence"))
	if err != nil {
		t.Fatal(err)
	}
	// As the earlier version wrote them: xb/, xn, one xl key per leaf, xc.
	wb := db.NewWriteBatch()
	var keys int
	for num, b := range m.batches {
		r := b.Record
		if err := wb.Set(xbKey(r.Issuer, r.Seq), b.Hashes); err != nil {
			t.Fatal(err)
		}
		if err := wb.Set(xnKey(uint64(num)), encodeBatchRef(batchRef{issuer: r.Issuer, seq: r.Seq, height: r.Height})); err != nil {
			t.Fatal(err)
		}
		for i, h := range leaves(b.Hashes) {
			k := binary.BigEndian.AppendUint64([]byte("xl"), uint64(collidingTag(h[:])))
			k = binary.AppendUvarint(k, uint64(num))
			if err := wb.Set(binary.AppendUvarint(k, uint64(i)), nil); err != nil {
				t.Fatal(err)
			}
			keys++
		}
	}
	if err := wb.Set([]byte(keyNextBatch), u64(nil, uint64(len(m.batches)))); err != nil {
		t.Fatal(err)
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	ti := openTestIndexTagged(t, dir, 64, collidingTag)
	if err := ti.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("xl")})
		defer it.Close()
		if it.Rewind(); it.Valid() {
			return fmt.Errorf("position key %x left in the database", it.Item().Key())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	checkAgainst(t, ti, m, pool, "migrated")
	if n, err := ti.ix.index.positions.AttachFilter(positions.NewFilter(1)); err != nil || n != keys {
		t.Fatalf("filter filled with %d positions (%v), want %d", n, err, keys)
	}
	checkRunFiles(t, ti, uint64(len(m.batches)))
	ti.reopen()
	checkAgainst(t, ti, m, pool, "migrated, restarted")
}

// TestIndexSkipsBatchNumberLost: a candidate whose batch number has no
// batch (an index write cut short) is passed over, not an error.
func TestIndexSkipsBatchNumberLost(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 5))
	pool := hashPool(rng, 50)
	ti := openTestIndexTagged(t, t.TempDir(), 1<<20, collidingTag)
	m := &indexModel{batches: randomBatches(rng, pool, make(map[string]uint64), 10)}
	ti.write(m.batches, true)
	if err := ti.db.Update(func(txn *badger.Txn) error { return txn.Delete(xnKey(9)) }); err != nil {
		t.Fatal(err)
	}
	m.batches[9].Hashes = nil
	checkAgainst(t, ti, m, pool, "batch 9's number lost")
}
