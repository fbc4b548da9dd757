package node

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
)

// logged is a batch appended to the leaves log and numbered in badger as
// writePositions does.
type logged struct {
	num    uint64
	seq    uint64
	hashes []byte
}

func appendNumbered(t *testing.T, db *badger.DB, l *leafLog, num, seq uint64, hashes []byte) logged {
	t.Helper()
	loc, err := l.append(hashes)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.sync(); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(xbKey("uni-a", seq), loc); err != nil {
			return err
		}
		return txn.Set(xnKey(num), encodeBatchRef(batchRef{issuer: "uni-a", seq: seq, height: 1}))
	}); err != nil {
		t.Fatal(err)
	}
	return logged{num, seq, hashes}
}

func checkLogged(t *testing.T, db *badger.DB, l *leafLog, batches []logged) {
	t.Helper()
	if err := db.View(func(txn *badger.Txn) error {
		for _, b := range batches {
			v, err := getValue(txn, xbKey("uni-a", b.seq))
			if err != nil {
				return err
			}
			got, err := l.read(v)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, b.hashes) {
				t.Errorf("batch %d: read back other leaves", b.num)
			}
			var leaf [proof.HashSize]byte
			for i := range uint64(len(b.hashes) / proof.HashSize) {
				if ok, err := l.leaf(v, i, &leaf); err != nil || !ok || !bytes.Equal(leaf[:], b.hashes[i*proof.HashSize:(i+1)*proof.HashSize]) {
					t.Errorf("batch %d leaf %d: %v %v", b.num, i, ok, err)
				}
			}
			if ok, err := l.leaf(v, uint64(len(b.hashes)/proof.HashSize), &leaf); ok || err != nil {
				t.Errorf("batch %d: a leaf past its last: %v %v", b.num, ok, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestLeafLog(t *testing.T) {
	defer func(s uint64) { leafSegmentBytes = s }(leafSegmentBytes)
	leafSegmentBytes = 10 * proof.HashSize
	dir := t.TempDir()
	db, err := store.OpenBadger(filepath.Join(dir, "credence"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	logDir := filepath.Join(dir, "leaves")
	rng := rand.New(rand.NewPCG(7, 7))
	randomLeaves := func() []byte {
		b := make([]byte, (1+rng.IntN(10))*proof.HashSize)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}

	l, err := openLeafLog(logDir, db, 0)
	if err != nil {
		t.Fatal(err)
	}
	var batches []logged
	for num := range uint64(20) {
		batches = append(batches, appendNumbered(t, db, l, num, num+1, randomLeaves()))
	}
	checkLogged(t, db, l, batches)

	t.Run("no batch spans two segments", func(t *testing.T) {
		db.View(func(txn *badger.Txn) error {
			for _, b := range batches {
				v, _ := getValue(txn, xbKey("uni-a", b.seq))
				off, n, _, _ := decodeLeafLoc(v)
				if off/leafSegmentBytes != (off+uint64(n)-1)/leafSegmentBytes {
					t.Errorf("batch %d at %d of %d bytes spans segments", b.num, off, n)
				}
			}
			return nil
		})
	})

	t.Run("leaves appended for numbers a crash took back stay, and appends go after them", func(t *testing.T) {
		if _, err := l.append(randomLeaves()); err != nil { // never numbered
			t.Fatal(err)
		}
		end := l.end
		if err := l.close(); err != nil {
			t.Fatal(err)
		}
		if l, err = openLeafLog(logDir, db, 20); err != nil {
			t.Fatal(err)
		}
		if l.end != end {
			t.Fatalf("reopened with its end at %d, want %d", l.end, end)
		}
		batches = append(batches, appendNumbered(t, db, l, 20, 21, randomLeaves()))
		checkLogged(t, db, l, batches)
	})

	t.Run("a log shorter than the last batch numbered is damaged", func(t *testing.T) {
		if err := l.close(); err != nil {
			t.Fatal(err)
		}
		last := filepath.Join(logDir, segmentName((l.end-1)/leafSegmentBytes))
		fi, err := os.Stat(last)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(last, fi.Size()-1); err != nil {
			t.Fatal(err)
		}
		if _, err := openLeafLog(logDir, db, 21); !errors.Is(err, errStoreDamaged) {
			t.Fatalf("opened a log cut short: %v", err)
		}
		// The batches before the last still read: nothing was cut.
		if l, err = openLeafLog(logDir, db, 20); err != nil {
			t.Fatal(err)
		}
		checkLogged(t, db, l, batches[:20])
	})

	t.Run("leaves of an earlier version, held in badger, still read", func(t *testing.T) {
		old := logged{num: 21, seq: 22, hashes: randomLeaves()}
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(xbKey("uni-a", old.seq), old.hashes) }); err != nil {
			t.Fatal(err)
		}
		checkLogged(t, db, l, []logged{old})
	})

	t.Run("a leaves entry of no known form is damage, not a short batch", func(t *testing.T) {
		for _, v := range [][]byte{nil, make([]byte, 31), encodeLeafLoc(0, 0), encodeLeafLoc(0, 33)} {
			if _, err := l.read(v); !errors.Is(err, errStoreDamaged) {
				t.Errorf("entry %x: %v", v, err)
			}
		}
		if _, err := l.read(encodeLeafLoc(1<<40, 32)); !errors.Is(err, errStoreDamaged) {
			t.Errorf("leaves past the log's end: %v", err)
		}
	})

	t.Run("reset empties the log", func(t *testing.T) {
		if err := l.reset(); err != nil {
			t.Fatal(err)
		}
		if names, _ := os.ReadDir(logDir); len(names) != 0 || l.end != 0 {
			t.Fatalf("after reset: %d files, end %d", len(names), l.end)
		}
		if err := l.close(); err != nil {
			t.Fatal(err)
		}
	})
}

// checkedBatches are n batches of k random hashes for issuer "uni-a", with
// their records (root, leaf count) as the state holds them.
func checkedBatches(t *testing.T, rng *rand.Rand, n, k int) []app.CommittedBatch {
	t.Helper()
	var out []app.CommittedBatch
	for i := range n {
		hs := make([]byte, k*proof.HashSize)
		for j := range hs {
			hs[j] = byte(rng.Uint32())
		}
		root, err := proof.Root(hs)
		if err != nil {
			t.Fatal(err)
		}
		rec := &proof.BatchRecord{Issuer: "uni-a", Seq: uint64(i + 1), Height: int64(i + 1), Root: root[:], LeafCount: uint64(k)}
		raw, err := proto.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, app.CommittedBatch{Record: rec, RecordBytes: raw, Hashes: hs})
	}
	return out
}

// leafEntry is batch seq's xb/ value.
func (ti *testIndex) leafEntry(seq uint64) []byte {
	ti.t.Helper()
	var v []byte
	if err := ti.db.View(func(txn *badger.Txn) error {
		var err error
		v, err = getValue(txn, xbKey("uni-a", seq))
		return err
	}); err != nil {
		ti.t.Fatal(err)
	}
	return v
}

func (ti *testIndex) setLeafEntry(seq uint64, v []byte) {
	ti.t.Helper()
	if err := ti.db.Update(func(txn *badger.Txn) error { return txn.Set(xbKey("uni-a", seq), v) }); err != nil {
		ti.t.Fatal(err)
	}
}

// flipLogged changes one byte of leaf i of batch seq in the leaves log.
func (ti *testIndex) flipLogged(seq, i uint64) {
	ti.t.Helper()
	off, _, inline, err := decodeLeafLoc(ti.leafEntry(seq))
	if err != nil || inline {
		ti.t.Fatalf("batch %d: %v", seq, err)
	}
	f, err := os.OpenFile(ti.ix.leaves.stored.segmentPath(off), os.O_RDWR, 0)
	if err != nil {
		ti.t.Fatal(err)
	}
	defer f.Close()
	at := int64(off%leafSegmentBytes + i*proof.HashSize + 3)
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		ti.t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, at); err != nil {
		ti.t.Fatal(err)
	}
}

// TestLeavesCheckedOnEveryRead: a leaf changed in the leaves log is damage
// (errStoreDamaged naming the segment) for every read of its batch: the
// lookup that confirms a candidate (never "not anchored"), the whole reads
// (GetBatch, receipts), and the positions rebuilt at start (refused). Entries
// of an earlier version, with no checksum, are checked against the record's
// root; a damaged checksum alone does not condemn sound leaves.
func TestLeavesCheckedOnEveryRead(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(9, 9))
	batches := checkedBatches(t, rng, 4, 5)
	leaf := func(b, i int) hash { return hash(batches[b].Hashes[i*proof.HashSize : (i+1)*proof.HashSize]) }
	// One run per batch: the positions are on disk before the damage.
	ti := openTestIndex(t, dir, 1)
	ti.write(batches, true)
	if err := ti.ix.leaves.positions.Flush(); err != nil {
		t.Fatal(err)
	}
	ti.reopen()
	segment := ti.ix.leaves.stored.segmentPath(0)

	for b := range batches {
		if pos, err := ti.find(leaf(b, 2), "uni-a"); err != nil || pos.seq != uint64(b+1) || pos.index != 2 {
			t.Fatalf("before the damage, leaf 2 of batch %d: %+v %v", b+1, pos, err)
		}
	}
	ti.reopen() // forget the batches checked
	ti.flipLogged(2, 0)
	real := leaf(1, 0)
	altered := real
	altered[3] ^= 0x10

	wantDamage := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, errStoreDamaged) || !strings.Contains(err.Error(), segment) || !strings.Contains(err.Error(), "batch uni-a/2") {
			t.Errorf("%s: %v, want the damage named (%s, batch uni-a/2)", what, err, segment)
		}
	}
	_, err := ti.find(real, "uni-a")
	wantDamage("lookup of the changed leaf", err)
	_, err = ti.find(real, "")
	wantDamage("lookup of the changed leaf by any issuer", err)
	_, err = ti.find(leaf(1, 3), "uni-a")
	wantDamage("lookup of a sound leaf of the damaged batch", err)
	if _, err := ti.find(altered, "uni-a"); !errors.Is(err, errNotFound) {
		t.Errorf("lookup of the hash the damage made: %v, want not found", err)
	}
	_, _, _, err = ti.ix.leaves.readBatch("uni-a", 2)
	wantDamage("whole read", err)
	for _, b := range []int{0, 2, 3} {
		if pos, err := ti.find(leaf(b, 4), "uni-a"); err != nil || pos.seq != uint64(b+1) {
			t.Errorf("leaf of sound batch %d: %+v %v", b+1, pos, err)
		}
		if hs, _, _, err := ti.ix.leaves.readBatch("uni-a", uint64(b+1)); err != nil || !bytes.Equal(hs, batches[b].Hashes) {
			t.Errorf("whole read of sound batch %d: %v", b+1, err)
		}
	}

	t.Run("an entry without a checksum is checked against the root", func(t *testing.T) {
		v := ti.leafEntry(2)
		off, n, _, _ := decodeLeafLoc(v)
		ti.setLeafEntry(2, encodeLeafLoc(off, n))
		defer ti.setLeafEntry(2, v)
		ti.reopen()
		_, err := ti.find(real, "uni-a")
		wantDamage("lookup, no checksum", err)
		ti.flipLogged(2, 0) // repaired
		defer ti.flipLogged(2, 0)
		ti.reopen()
		if pos, err := ti.find(real, "uni-a"); err != nil || pos.seq != 2 || pos.index != 0 {
			t.Errorf("sound leaves, no checksum: %+v %v", pos, err)
		}
	})

	t.Run("a damaged checksum alone does not condemn sound leaves", func(t *testing.T) {
		ti.flipLogged(2, 0) // repaired
		defer ti.flipLogged(2, 0)
		v := ti.leafEntry(3)
		bad := append([]byte(nil), v...)
		bad[len(bad)-1] ^= 1
		ti.setLeafEntry(3, bad)
		defer ti.setLeafEntry(3, v)
		ti.reopen()
		if pos, err := ti.find(leaf(2, 1), "uni-a"); err != nil || pos.seq != 3 {
			t.Errorf("sound leaves, checksum damaged: %+v %v", pos, err)
		}
	})

	t.Run("damage in the batches rebuilt at start refuses the start", func(t *testing.T) {
		ti.close()
		if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
			t.Fatal(err)
		}
		db, err := store.OpenBadger(filepath.Join(dir, "credence"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		_, err = newIndexer(db, nil, testLogger(t), 1<<20, nil)
		wantDamage("rebuild", err)
	})
}

func TestLeafChecksBounded(t *testing.T) {
	c := newLeafChecks(2)
	for _, num := range []uint64{1, 2, 2, 3} {
		c.markSound(num)
	}
	if c.isSound(1) || !c.isSound(2) || !c.isSound(3) || len(c.sound) != 2 {
		t.Fatalf("after 1, 2, 2, 3 with room for 2: %v", c.sound)
	}
	c.setMax(0)
	c.markSound(4)
	if c.isSound(4) || c.isSound(2) {
		t.Fatal("remembered a batch with no room")
	}
}
