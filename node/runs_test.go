package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/app"
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

// collidingTags makes leafTag take 16 values, so every lookup has many
// candidates from many batches, and a tag's entries span blocks of a run.
func collidingTags(t *testing.T) {
	orig := leafTag
	leafTag = func(h []byte) [tagSize]byte { return [tagSize]byte{7: h[0] % 16} }
	t.Cleanup(func() { leafTag = orig })
}

// testIndex is an indexer over a real badger database and real run files
// in dir, holding up to recent positions in memory.
type testIndex struct {
	t      *testing.T
	dir    string
	recent int
	db     *badger.DB
	ix     *indexer
}

func openTestIndex(t *testing.T, dir string, recent int) *testIndex {
	ti := &testIndex{t: t, dir: dir, recent: recent}
	ti.open()
	t.Cleanup(ti.close)
	return ti
}

func (ti *testIndex) open() {
	db, err := store.OpenBadger(filepath.Join(ti.dir, "credence"))
	if err != nil {
		ti.t.Fatal(err)
	}
	ix, err := newIndexer(db, nil, testLogger(ti.t), ti.recent)
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
	if err := ti.ix.leaves.close(); err != nil {
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
		pos, err = newLookup(txn, ti.ix.leaves).find(h[:], issuer)
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

// TestLeafIndexAgreesWithModel: lookups answer as brute force over every
// batch indexed does, with tags colliding, whether the positions are in
// memory, in one run per batch merged as they come, or in between, across
// flushes, merges and restarts.
func TestLeafIndexAgreesWithModel(t *testing.T) {
	collidingTags(t)
	for _, recent := range []int{1 << 20, 1, 37} {
		t.Run(fmt.Sprint("recent-", recent), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(recent)))
			pool := hashPool(rng, 300)
			// Hashes never anchored: misses under the same tags.
			absent := hashPool(rng, 40)
			ti := openTestIndex(t, t.TempDir(), recent)
			m := &indexModel{}
			seqs := make(map[string]uint64)
			for round := range 12 {
				bs := randomBatches(rng, pool, seqs, 1+rng.IntN(15))
				// Several batches at once, as a block or a restore writes them.
				ti.write(bs, true)
				m.batches = append(m.batches, bs...)
				switch round % 4 {
				case 1:
					if err := ti.ix.leaves.flush(); err != nil {
						t.Fatal(err)
					}
				case 3:
					ti.reopen()
				}
				checkAgainst(t, ti, m, append(slices.Clone(pool[:60]), absent...), fmt.Sprint("round ", round))
			}
			if err := ti.ix.leaves.flush(); err != nil {
				t.Fatal(err)
			}
			checkAgainst(t, ti, m, append(pool, absent...), "flushed")
			ti.reopen()
			checkAgainst(t, ti, m, append(pool, absent...), "restarted")
			if recent == 1 {
				// Every batch was its own run: the merges keep few.
				if n := len(ti.runFiles()); n > 12 {
					t.Fatalf("%d runs for %d batches: %v", n, len(m.batches), ti.runFiles())
				}
			}
		})
	}
}

// TestLeafIndexRecovers: damage to the run files, or runs a crash left
// behind, is repaired at start from the batches, to the same answers.
func TestLeafIndexRecovers(t *testing.T) {
	collidingTags(t)
	// build indexes 80 batches in runs (and a few in memory) and returns
	// the model.
	build := func(t *testing.T) (*testIndex, *indexModel, []hash) {
		rng := rand.New(rand.NewPCG(2, 2))
		pool := hashPool(rng, 300)
		ti := openTestIndex(t, t.TempDir(), 100)
		m := &indexModel{batches: randomBatches(rng, pool, make(map[string]uint64), 80)}
		for _, b := range m.batches {
			ti.write([]app.CommittedBatch{b}, true)
		}
		if err := ti.ix.leaves.flush(); err != nil {
			t.Fatal(err)
		}
		if n := len(ti.runFiles()); n < 2 {
			t.Fatalf("want runs to damage, have %v", ti.runFiles())
		}
		return ti, m, pool
	}
	runPath := func(ti *testIndex, i int) string {
		var runs []string
		for _, n := range ti.runFiles() {
			if strings.HasSuffix(n, ".run") {
				runs = append(runs, n)
			}
		}
		slices.Sort(runs)
		return filepath.Join(ti.dir, "index", runs[i])
	}
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, ti *testIndex)
	}{
		{"run truncated", func(t *testing.T, ti *testIndex) {
			p := runPath(ti, 0)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, st.Size()-7); err != nil {
				t.Fatal(err)
			}
		}},
		{"run cut to its entries", func(t *testing.T, ti *testIndex) {
			p := runPath(ti, 0)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, st.Size()-runFooterSize); err != nil {
				t.Fatal(err)
			}
		}},
		{"byte flipped in an entry", func(t *testing.T, ti *testIndex) {
			flipByte(t, runPath(ti, 0), 100)
		}},
		{"leaf index of the last entry changed, order kept", func(t *testing.T, ti *testIndex) {
			// Leaf indexes are below 64: the last entry's grows by 64 and
			// stays last; only the checksum tells.
			p := runPath(ti, 0)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			flipByte(t, p, st.Size()-runFooterSize-1)
		}},
		{"byte flipped in the footer", func(t *testing.T, ti *testIndex) {
			p := runPath(ti, 1)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			flipByte(t, p, st.Size()-runFooterSize+33)
		}},
		{"run removed", func(t *testing.T, ti *testIndex) {
			if err := os.Remove(runPath(ti, 0)); err != nil {
				t.Fatal(err)
			}
		}},
		{"tmp file left", func(t *testing.T, ti *testIndex) {
			if err := os.WriteFile(filepath.Join(ti.dir, "index", runName(0, 80)+".tmp"), []byte("half a run"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"merge cut short after its run was written", func(t *testing.T, ti *testIndex) {
			li := ti.ix.leaves
			if _, err := li.mergeRuns(li.runs[0], li.runs[1]); err != nil {
				t.Fatal(err)
			}
		}},
		{"run of a wider range found damaged beside the narrower ones", func(t *testing.T, ti *testIndex) {
			li := ti.ix.leaves
			m, err := li.mergeRuns(li.runs[0], li.runs[1])
			if err != nil {
				t.Fatal(err)
			}
			flipByte(t, m.path, 20)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ti, m, pool := build(t)
			before := ti.runFiles()
			c.damage(t, ti)
			ti.reopen()
			checkAgainst(t, ti, m, pool, "repaired")
			for _, n := range ti.runFiles() {
				if !strings.HasSuffix(n, ".run") {
					t.Errorf("%s left in the index directory", n)
				}
			}
			checkCovered(t, ti.ix.leaves, 80)
			checkRunFiles(t, ti, 80)
			// Once more: the repair is itself a valid index.
			ti.reopen()
			checkAgainst(t, ti, m, pool, "restarted after repair")
			t.Logf("runs before %v, after %v", before, ti.runFiles())
		})
	}

	t.Run("run past the batches stored", func(t *testing.T) {
		ti, m, pool := build(t)
		rng := rand.New(rand.NewPCG(3, 3))
		later := randomBatches(rng, pool, map[string]uint64{"uni-a": 1000, "uni-b": 1000, "uni-c": 1000}, 20)
		// Written and in runs, but the crash came before the next batch
		// number was stored: at start those numbers are free again.
		ti.write(later, false)
		if err := ti.ix.leaves.flush(); err != nil {
			t.Fatal(err)
		}
		ti.reopen()
		checkAgainst(t, ti, m, pool, "after the crash")
		checkCovered(t, ti.ix.leaves, 80)
		// Indexed again, under the same numbers.
		ti.write(later, true)
		m.batches = append(m.batches, later...)
		checkAgainst(t, ti, m, pool, "indexed again")
		ti.reopen()
		checkAgainst(t, ti, m, pool, "indexed again, restarted")
	})
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// checkCovered fails unless the runs and memory cover batches [0, next)
// without gap or overlap.
func checkCovered(t *testing.T, li *leafIndex, next uint64) {
	t.Helper()
	li.mu.RLock()
	defer li.mu.RUnlock()
	var at uint64
	for _, r := range li.runs {
		if r.lo != at {
			t.Fatalf("run [%d, %d) after batch %d", r.lo, r.hi, at)
		}
		at = r.hi
	}
	for _, s := range append(slices.Clip(li.frozen), li.recent) {
		if s.lo != at {
			t.Fatalf("memory [%d, %d) after batch %d", s.lo, s.hi, at)
		}
		at = s.hi
	}
	if at != next {
		t.Fatalf("index covers batches up to %d, want %d", at, next)
	}
}

// checkRunFiles fails unless, once the background writer is done, the run
// files on disk cover batches [0, next) without gap or overlap.
func checkRunFiles(t *testing.T, ti *testIndex, next uint64) {
	t.Helper()
	if err := ti.ix.leaves.flush(); err != nil {
		t.Fatal(err)
	}
	var at uint64
	for _, n := range ti.runFiles() {
		lo, hi, ok := parseRunName(n)
		if !ok || lo != at {
			t.Fatalf("run files %v: %s does not start at batch %d", ti.runFiles(), n, at)
		}
		at = hi
	}
	if at != next {
		t.Fatalf("run files %v end at batch %d, want %d", ti.runFiles(), at, next)
	}
}

// TestLeafIndexMigratesPositionKeys: positions an earlier version kept as
// badger keys (xl) are dropped at start and the index rebuilt from the
// batches, to the same answers.
func TestLeafIndexMigratesPositionKeys(t *testing.T) {
	collidingTags(t)
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
			tag := leafTag(h[:])
			k := append(append([]byte("xl"), tag[:]...), binary.AppendUvarint(nil, uint64(num))...)
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

	ti := openTestIndex(t, dir, 64)
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
	checkCovered(t, ti.ix.leaves, uint64(len(m.batches)))
	if n, err := newAnchoredFilter(1).fill(ti.ix.leaves); err != nil || n != keys {
		t.Fatalf("filter filled with %d positions (%v), want %d", n, err, keys)
	}
	ti.reopen()
	checkAgainst(t, ti, m, pool, "migrated, restarted")
}

// TestLeafIndexSkipsBatchNumberLost: a candidate whose batch number has no
// batch (an index write cut short) is passed over, not an error.
func TestLeafIndexSkipsBatchNumberLost(t *testing.T) {
	collidingTags(t)
	rng := rand.New(rand.NewPCG(5, 5))
	pool := hashPool(rng, 50)
	ti := openTestIndex(t, t.TempDir(), 1<<20)
	m := &indexModel{batches: randomBatches(rng, pool, make(map[string]uint64), 10)}
	ti.write(m.batches, true)
	if err := ti.db.Update(func(txn *badger.Txn) error { return txn.Delete(xnKey(9)) }); err != nil {
		t.Fatal(err)
	}
	m.batches[9].Hashes = nil
	checkAgainst(t, ti, m, pool, "batch 9's number lost")
}

// TestLeafIndexWriteFailureStopsIndexing: when run files cannot be written,
// the index write fails (the indexer retries it, the node refusing Submit
// meanwhile) rather than holding ever more positions in memory, and a
// restart rebuilds them.
func TestLeafIndexWriteFailureStopsIndexing(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	pool := hashPool(rng, 300)
	ti := openTestIndex(t, t.TempDir(), 1)
	m := &indexModel{}
	seqs := make(map[string]uint64)
	dir := filepath.Join(ti.dir, "index")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	// A file where the directory was: no run can be created.
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 50 && err == nil; i++ {
		bs := randomBatches(rng, pool, seqs, 1)
		if err = ti.ix.writePositions(bs); err == nil {
			m.batches = append(m.batches, bs...)
			if err := ti.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyNextBatch), u64(nil, ti.ix.nextBatch)) }); err != nil {
				t.Fatal(err)
			}
		}
		ti.ix.leaves.mu.RLock()
		frozen := len(ti.ix.leaves.frozen)
		ti.ix.leaves.mu.RUnlock()
		if frozen > 2 {
			t.Fatalf("%d sets of positions wait in memory", frozen)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "index run") {
		t.Fatalf("index writes went on with no run written: %v", err)
	}
	ti.close()
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	ti.open()
	checkAgainst(t, ti, m, pool, "restarted")
	checkRunFiles(t, ti, uint64(len(m.batches)))
}
