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
	"github.com/credence-ledger/credence/internal/leafstore"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
)

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

// flipLogged changes one byte of leaf i of batch seq in the leaf store.
func (ti *testIndex) flipLogged(seq, i uint64) {
	ti.t.Helper()
	loc, inline, err := leafstore.Decode(ti.leafEntry(seq))
	if err != nil || inline {
		ti.t.Fatalf("batch %d: %v", seq, err)
	}
	path, off := ti.ix.index.leafStore.Locate(loc.Offset)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		ti.t.Fatal(err)
	}
	defer f.Close()
	at := int64(off + i*proof.HashSize + 3)
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		ti.t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, at); err != nil {
		ti.t.Fatal(err)
	}
}

// TestLeavesCheckedOnEveryRead: a leaf changed in the leaf store is damage
// (errStoreDamaged naming the segment) for every read of its batch: the
// lookup that confirms a candidate (never "not anchored"), the whole reads
// (GetBatch, receipts), and the positions rebuilt at start (refused). Entries
// of an earlier version, with no checksum, are checked against the record's
// root; a damaged checksum alone does not condemn sound leaves.
func TestLeavesCheckedOnEveryRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(9, 9))
	batches := checkedBatches(t, rng, 4, 5)
	leaf := func(b, i int) hash { return hash(batches[b].Hashes[i*proof.HashSize : (i+1)*proof.HashSize]) }
	// One run per batch: the positions are on disk before the damage.
	ti := openTestIndex(t, dir, 1)
	ti.write(batches, true)
	if err := ti.ix.index.positions.Flush(); err != nil {
		t.Fatal(err)
	}
	ti.reopen()
	segment, _ := ti.ix.index.leafStore.Locate(0)

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
	_, _, _, err = ti.ix.index.readBatch("uni-a", 2)
	wantDamage("whole read", err)
	for _, b := range []int{0, 2, 3} {
		if pos, err := ti.find(leaf(b, 4), "uni-a"); err != nil || pos.seq != uint64(b+1) {
			t.Errorf("leaf of sound batch %d: %+v %v", b+1, pos, err)
		}
		if hs, _, _, err := ti.ix.index.readBatch("uni-a", uint64(b+1)); err != nil || !bytes.Equal(hs, batches[b].Hashes) {
			t.Errorf("whole read of sound batch %d: %v", b+1, err)
		}
	}

	t.Run("an entry without a checksum is checked against the root", func(t *testing.T) {
		v := ti.leafEntry(2)
		// Offset and length alone, as an earlier version wrote them
		// (internal/leafstore/doc.go).
		ti.setLeafEntry(2, v[:12])
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
		_, err = indexOnly(db, testLogger(t), 1<<20, 0, nil)
		wantDamage("rebuild", err)
	})
}

func TestLeafChecksBounded(t *testing.T) {
	t.Parallel()
	c := newLeafChecks(2)
	for _, num := range []uint64{1, 2, 2, 3} {
		c.markSound(num)
	}
	if c.isSound(1) || !c.isSound(2) || !c.isSound(3) || len(c.sound) != 2 {
		t.Fatalf("after 1, 2, 2, 3 with room for 2: %v", c.sound)
	}
	c = newLeafChecks(0)
	c.markSound(4)
	if c.isSound(4) || c.isSound(2) {
		t.Fatal("remembered a batch with no room")
	}
}
