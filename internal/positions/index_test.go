package positions

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/credence-ledger/credence/internal/vfs"
)

// collidingTag takes 16 values, so every tag has many entries from many
// batches, and a tag's entries span blocks of a run.
func collidingTag(h []byte) Tag { return Tag(h[0] % 16) }

// testIndex is an index over real run files in dir, rebuilt from batches,
// a map standing for the node's database.
type testIndex struct {
	t    *testing.T
	dir  string
	opts Options
	// batches is every batch given a number, stored or not.
	batches map[uint64][]byte
	// next is the next batch number as stored: the index is opened with it.
	next uint64
	ix   *Index
}

func openTestIndex(t *testing.T, recent int, fsys vfs.FS) *testIndex {
	ti := &testIndex{t: t, dir: filepath.Join(t.TempDir(), "index"), batches: make(map[uint64][]byte)}
	ti.opts = Options{FS: fsys, RecentEntries: recent, Tag: collidingTag, Rebuild: ti.source}
	ti.open()
	t.Cleanup(ti.close)
	return ti
}

// source yields the stored batches of [lo, hi) as the node's database
// does.
func (ti *testIndex) source(lo, hi uint64, yield func(num uint64, hashes []byte) error) error {
	nums := make([]uint64, 0, len(ti.batches))
	for num := range ti.batches {
		if num >= lo && num < hi {
			nums = append(nums, num)
		}
	}
	slices.Sort(nums)
	for _, num := range nums {
		if err := yield(num, ti.batches[num]); err != nil {
			return err
		}
	}
	return nil
}

func (ti *testIndex) open() {
	ti.t.Helper()
	ix, err := Open(ti.dir, ti.next, ti.opts)
	if err != nil {
		ti.t.Fatal(err)
	}
	ti.ix = ix
}

func (ti *testIndex) close() {
	if ti.ix == nil {
		return
	}
	if err := ti.ix.Close(); err != nil {
		ti.t.Error(err)
	}
	ti.ix = nil
}

func (ti *testIndex) reopen() {
	ti.t.Helper()
	ti.close()
	ti.open()
}

// add adds batches under the next numbers, storing the next batch number
// after when durable is set (else as a crash before it was stored).
func (ti *testIndex) add(batches [][]byte, durable bool) {
	ti.t.Helper()
	for _, hs := range batches {
		num := ti.ix.Next()
		ti.batches[num] = hs
		if err := ti.ix.Add(num, hs); err != nil {
			ti.t.Fatal(err)
		}
	}
	if durable {
		ti.next = ti.ix.Next()
	}
}

// want is every position under tag among batches [0, below), by brute
// force.
func (ti *testIndex) want(tag Tag, below uint64) []Position {
	var out []Position
	for num, hs := range ti.batches {
		if num >= below {
			continue
		}
		for i := range len(hs) / hashSize {
			if collidingTag(hs[i*hashSize:]) == tag {
				out = append(out, Position{Batch: num, Index: uint64(i)})
			}
		}
	}
	return out
}

func cmpPosition(a, b Position) int {
	return cmp.Or(cmp.Compare(a.Batch, b.Batch), cmp.Compare(a.Index, b.Index))
}

// check compares the candidates under every tag (and one no hash has)
// with brute force over the batches the index holds.
func (ti *testIndex) check(when string) {
	ti.t.Helper()
	next := ti.ix.Next()
	for tag := range Tag(17) {
		got, err := ti.ix.Candidates(tag, nil)
		if err != nil {
			ti.t.Fatalf("%s: candidates under %d: %v", when, tag, err)
		}
		want := ti.want(tag, next)
		slices.SortFunc(got, cmpPosition)
		slices.SortFunc(want, cmpPosition)
		if !slices.Equal(got, want) {
			ti.t.Fatalf("%s: %d candidates under tag %d, want %d:\ngot  %v\nwant %v", when, len(got), tag, len(want), got, want)
		}
	}
}

// runFiles is the names of the files in the index's directory.
func (ti *testIndex) runFiles() []string {
	ds, err := os.ReadDir(ti.dir)
	if err != nil {
		ti.t.Fatal(err)
	}
	var names []string
	for _, d := range ds {
		names = append(names, d.Name())
	}
	return names
}

// randomBatches makes n batches of 1 to 40 leaves from a pool of hashes,
// so hashes repeat within batches and across them.
func randomBatches(rng *rand.Rand, pool [][hashSize]byte, n int) [][]byte {
	var out [][]byte
	for range n {
		k := 1 + rng.IntN(40)
		hs := make([]byte, 0, k*hashSize)
		for range k {
			h := pool[rng.IntN(len(pool))]
			hs = append(hs, h[:]...)
		}
		out = append(out, hs)
	}
	return out
}

func hashPool(rng *rand.Rand, n int) [][hashSize]byte {
	pool := make([][hashSize]byte, n)
	for i := range pool {
		for j := range pool[i] {
			pool[i][j] = byte(rng.IntN(256))
		}
	}
	return pool
}

// TestAgreesWithModel: the candidates under every tag are what brute
// force over every batch added finds, with tags colliding, whether the
// entries are in memory, in one run per batch merged as they come, or in
// between, across flushes, merges and restarts.
func TestAgreesWithModel(t *testing.T) {
	t.Parallel()
	for _, recent := range []int{1 << 20, 1, 37} {
		t.Run(fmt.Sprint("recent-", recent), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, uint64(recent)))
			pool := hashPool(rng, 300)
			ti := openTestIndex(t, recent, nil)
			for round := range 12 {
				// Several batches at once, as a block or a restore writes them.
				ti.add(randomBatches(rng, pool, 1+rng.IntN(15)), true)
				switch round % 4 {
				case 1:
					if err := ti.ix.Flush(); err != nil {
						t.Fatal(err)
					}
				case 3:
					ti.reopen()
				}
				ti.check(fmt.Sprint("round ", round))
			}
			if err := ti.ix.Flush(); err != nil {
				t.Fatal(err)
			}
			ti.check("flushed")
			ti.reopen()
			ti.check("restarted")
			if recent == 1 {
				// Every batch was its own run: the merges keep few.
				if n := len(ti.runFiles()); n > 12 {
					t.Fatalf("%d runs for %d batches: %v", n, len(ti.batches), ti.runFiles())
				}
			}
		})
	}
}

// TestRecovers: damage to the run files, or runs a crash left behind, is
// repaired at open from the batches, to the same answers.
func TestRecovers(t *testing.T) {
	t.Parallel()
	// build adds 80 batches in runs (and a few in memory).
	build := func(t *testing.T) (*testIndex, [][hashSize]byte) {
		rng := rand.New(rand.NewPCG(2, 2))
		pool := hashPool(rng, 300)
		ti := openTestIndex(t, 100, nil)
		for _, b := range randomBatches(rng, pool, 80) {
			ti.add([][]byte{b}, true)
		}
		if err := ti.ix.Flush(); err != nil {
			t.Fatal(err)
		}
		if n := len(ti.runFiles()); n < 2 {
			t.Fatalf("want runs to damage, have %v", ti.runFiles())
		}
		return ti, pool
	}
	runPath := func(ti *testIndex, i int) string {
		var runs []string
		for _, n := range ti.runFiles() {
			if strings.HasSuffix(n, ".run") {
				runs = append(runs, n)
			}
		}
		slices.Sort(runs)
		return filepath.Join(ti.dir, runs[i])
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
			if err := os.WriteFile(filepath.Join(ti.dir, runName(0, 80)+".tmp"), []byte("half a run"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"merge cut short after its run was written", func(t *testing.T, ti *testIndex) {
			if _, err := ti.ix.mergeRuns(ti.ix.runs[0], ti.ix.runs[1]); err != nil {
				t.Fatal(err)
			}
		}},
		{"run of a wider range found damaged beside the narrower ones", func(t *testing.T, ti *testIndex) {
			m, err := ti.ix.mergeRuns(ti.ix.runs[0], ti.ix.runs[1])
			if err != nil {
				t.Fatal(err)
			}
			flipByte(t, m.path, 20)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ti, _ := build(t)
			before := ti.runFiles()
			c.damage(t, ti)
			ti.reopen()
			ti.check("repaired")
			// The merges of the rebuilt runs write .tmp files of their own:
			// wait for them.
			if err := ti.ix.Flush(); err != nil {
				t.Fatal(err)
			}
			for _, n := range ti.runFiles() {
				if !strings.HasSuffix(n, ".run") {
					t.Errorf("%s left in the index directory", n)
				}
			}
			checkCovered(t, ti.ix, 80)
			checkRunFiles(t, ti, 80)
			// Once more: the repair is itself a valid index.
			ti.reopen()
			ti.check("restarted after repair")
			t.Logf("runs before %v, after %v", before, ti.runFiles())
		})
	}

	t.Run("run past the batches stored", func(t *testing.T) {
		t.Parallel()
		ti, pool := build(t)
		rng := rand.New(rand.NewPCG(3, 3))
		later := randomBatches(rng, pool, 20)
		// Added and in runs, but the crash came before the next batch
		// number was stored: at open those numbers are free again.
		ti.add(later, false)
		if err := ti.ix.Flush(); err != nil {
			t.Fatal(err)
		}
		ti.reopen()
		if got := ti.ix.Next(); got != 80 {
			t.Fatalf("after the crash the index takes batch %d next, want 80", got)
		}
		ti.check("after the crash")
		checkCovered(t, ti.ix, 80)
		// Added again, under the same numbers.
		ti.add(later, true)
		ti.check("added again")
		ti.reopen()
		ti.check("added again, restarted")
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
func checkCovered(t *testing.T, ix *Index, next uint64) {
	t.Helper()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var at uint64
	for _, r := range ix.runs {
		if r.lo != at {
			t.Fatalf("run [%d, %d) after batch %d", r.lo, r.hi, at)
		}
		at = r.hi
	}
	for _, s := range append(slices.Clip(ix.frozen), ix.recent) {
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
	if err := ti.ix.Flush(); err != nil {
		t.Fatal(err)
	}
	var at uint64
	for _, n := range ti.runFiles() {
		lo, hi, ok := RunBatches(n)
		if !ok || lo != at {
			t.Fatalf("run files %v: %s does not start at batch %d", ti.runFiles(), n, at)
		}
		at = hi
	}
	if at != next {
		t.Fatalf("run files %v end at batch %d, want %d", ti.runFiles(), at, next)
	}
}

// TestWriteFailureStopsIndexing: when run files cannot be written, Add
// fails (the node's indexer retries it, refusing Submit meanwhile) rather
// than holding ever more entries in memory, and a restart rebuilds them.
func TestWriteFailureStopsIndexing(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(6, 6))
	pool := hashPool(rng, 300)
	fsys := vfs.NewFaulty(vfs.Default, nil)
	ti := openTestIndex(t, 1, fsys)
	errFull := errors.New("no space left on device")
	// No run can be created.
	fsys.SetFault(func(op vfs.Op, name string) error {
		if op == vfs.OpOpen && strings.HasSuffix(name, ".tmp") {
			return errFull
		}
		return nil
	})
	var err error
	for i := 0; i < 50 && err == nil; i++ {
		hs := randomBatches(rng, pool, 1)[0]
		num := ti.ix.Next()
		ti.batches[num] = hs
		if err = ti.ix.Add(num, hs); err == nil {
			ti.next = ti.ix.Next()
		}
		ti.ix.mu.RLock()
		frozen := len(ti.ix.frozen)
		ti.ix.mu.RUnlock()
		if frozen > 2 {
			t.Fatalf("%d sets of entries wait in memory", frozen)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "index run") {
		t.Fatalf("index writes went on with no run written: %v", err)
	}
	if !errors.Is(err, errFull) {
		t.Fatalf("the write failure %v does not wrap the file system's error", err)
	}
	fsys.SetFault(nil)
	ti.reopen()
	ti.check("restarted")
	checkRunFiles(t, ti, ti.next)
}

// TestOpenRebuildsFromSource: batches the runs do not cover come from the
// rebuild source at open, gaps (numbers with no batch) included, and a
// source that yields out of order is refused.
func TestOpenRebuildsFromSource(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	pool := hashPool(rng, 100)
	ti := openTestIndex(t, 16, nil)
	ti.add(randomBatches(rng, pool, 30), true)
	ti.close()
	if err := os.RemoveAll(ti.dir); err != nil {
		t.Fatal(err)
	}
	// Batches 3 and 17 went with a wiped index: their numbers hold nothing.
	delete(ti.batches, 3)
	delete(ti.batches, 17)
	ti.open()
	ti.check("rebuilt with gaps")
	checkCovered(t, ti.ix, 30)
	ti.close()

	opts := ti.opts
	opts.Rebuild = func(lo, hi uint64, yield func(uint64, []byte) error) error {
		if err := yield(5, ti.batches[5]); err != nil {
			return err
		}
		return yield(4, ti.batches[4])
	}
	if err := os.RemoveAll(ti.dir); err != nil {
		t.Fatal(err)
	}
	if ix, err := Open(ti.dir, 30, opts); err == nil {
		ix.Close()
		t.Fatal("a source yielding batch 4 after batch 5 was taken")
	}
}

// TestDefaultTag: by default a hash's tag is the first 8 bytes of its
// SHA-256, not of the hash a submitter chose.
func TestDefaultTag(t *testing.T) {
	t.Parallel()
	ix, err := Open(t.TempDir(), 0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	h := []byte("a hash a submitter chose, 32 by.")
	d := sha256.Sum256(h)
	if got, want := ix.Tag(h), Tag(binary.BigEndian.Uint64(d[:8])); got != want {
		t.Fatalf("tag %016x, want %016x", got, want)
	}
}
