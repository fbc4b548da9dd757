package leafstore

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/credence-ledger/credence/internal/vfs"
	"github.com/credence-ledger/credence/proof"
)

// stored is a batch appended to the store, with the value that locates
// it, as the node keeps it.
type stored struct {
	hashes []byte
	v      []byte
}

func appendSynced(t *testing.T, s *Store, hashes []byte) stored {
	t.Helper()
	v, err := s.Append(hashes)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	return stored{hashes, v}
}

func checkStored(t *testing.T, s *Store, batches []stored) {
	t.Helper()
	for i, b := range batches {
		got, err := s.Read(b.v)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if !bytes.Equal(got, b.hashes) {
			t.Errorf("batch %d: read back other leaves", i)
		}
		if loc, inline, err := Decode(b.v); err != nil || !inline && !loc.Matches(got) {
			t.Errorf("batch %d: its checksum does not match: %v", i, err)
		}
		var leaf [proof.HashSize]byte
		n := uint64(len(b.hashes) / proof.HashSize)
		for j := range n {
			if ok, err := s.Leaves(b.v, j, leaf[:]); err != nil || !ok || !bytes.Equal(leaf[:], b.hashes[j*proof.HashSize:(j+1)*proof.HashSize]) {
				t.Errorf("batch %d leaf %d: %v %v", i, j, ok, err)
			}
		}
		if ok, err := s.Leaves(b.v, n, leaf[:]); ok || err != nil {
			t.Errorf("batch %d: a leaf past its last: %v %v", i, ok, err)
		}
		// A range: every leaf from the second, and one more than there is.
		if n > 1 {
			rest := make([]byte, (n-1)*proof.HashSize)
			if ok, err := s.Leaves(b.v, 1, rest); err != nil || !ok || !bytes.Equal(rest, b.hashes[proof.HashSize:]) {
				t.Errorf("batch %d: leaves from the second: %v %v", i, ok, err)
			}
			if ok, err := s.Leaves(b.v, 1, make([]byte, n*proof.HashSize)); ok || err != nil {
				t.Errorf("batch %d: a range past its last leaf: %v %v", i, ok, err)
			}
		}
	}
}

func TestStore(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "leaves")
	opts := Options{SegmentBytes: 10 * proof.HashSize}
	rng := rand.New(rand.NewPCG(7, 7))
	randomLeaves := func() []byte {
		b := make([]byte, (1+rng.IntN(10))*proof.HashSize)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}

	s, err := Open(dir, 0, opts)
	if err != nil {
		t.Fatal(err)
	}
	var batches []stored
	for range 20 {
		batches = append(batches, appendSynced(t, s, randomLeaves()))
	}
	checkStored(t, s, batches)
	lastEnd := func() uint64 { return End(batches[len(batches)-1].v) }

	t.Run("no batch spans two segments", func(t *testing.T) {
		for i, b := range batches {
			loc, _, _ := Decode(b.v)
			if loc.Offset/opts.SegmentBytes != (loc.Offset+uint64(loc.Length)-1)/opts.SegmentBytes {
				t.Errorf("batch %d at %d of %d bytes spans segments", i, loc.Offset, loc.Length)
			}
		}
	})

	t.Run("leaves appended for numbers a crash took back stay, and appends go after them", func(t *testing.T) {
		if _, err := s.Append(randomLeaves()); err != nil { // never numbered
			t.Fatal(err)
		}
		end := s.end
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s, err = Open(dir, lastEnd(), opts); err != nil {
			t.Fatal(err)
		}
		if s.end != end {
			t.Fatalf("reopened with its end at %d, want %d", s.end, end)
		}
		batches = append(batches, appendSynced(t, s, randomLeaves()))
		checkStored(t, s, batches)
	})

	t.Run("a store shorter than the last batch numbered is damaged", func(t *testing.T) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		last, _ := s.Locate(s.end - 1)
		fi, err := os.Stat(last)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(last, fi.Size()-1); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, lastEnd(), opts); !errors.Is(err, ErrDamaged) {
			t.Fatalf("opened a store cut short: %v", err)
		}
		// The batches before the last still read: nothing was cut.
		if s, err = Open(dir, End(batches[19].v), opts); err != nil {
			t.Fatal(err)
		}
		checkStored(t, s, batches[:20])
	})

	t.Run("leaves of an earlier version, held in the value, still read", func(t *testing.T) {
		hashes := randomLeaves()
		checkStored(t, s, []stored{{hashes, hashes}})
		if End(hashes) != 0 {
			t.Errorf("leaves held in the value end at %d in the store", End(hashes))
		}
	})

	t.Run("a value without a checksum, as an earlier version wrote it, still reads", func(t *testing.T) {
		v := batches[3].v[:locSize]
		got, err := s.Read(v)
		if err != nil || !bytes.Equal(got, batches[3].hashes) {
			t.Fatalf("read %v", err)
		}
		if loc, _, _ := Decode(v); loc.HasCRC || loc.Matches(got) {
			t.Error("a value without a checksum matched leaves")
		}
		if End(v) != End(batches[3].v) {
			t.Errorf("it ends at %d, the same with a checksum at %d", End(v), End(batches[3].v))
		}
	})

	t.Run("a value of no known form is damage, not a short batch", func(t *testing.T) {
		for _, v := range [][]byte{nil, make([]byte, 31), Location{Length: 0}.encode(), Location{Length: 33}.encode()} {
			if _, err := s.Read(v); !errors.Is(err, ErrDamaged) {
				t.Errorf("value %x: %v", v, err)
			}
		}
		if _, err := s.Read(Location{Offset: 1 << 40, Length: 32}.encode()); !errors.Is(err, ErrDamaged) {
			t.Errorf("leaves past the store's end: %v", err)
		}
	})

	t.Run("a changed leaf no longer matches its checksum", func(t *testing.T) {
		got, err := s.Read(batches[5].v)
		if err != nil {
			t.Fatal(err)
		}
		got[len(got)-1] ^= 1
		if loc, _, _ := Decode(batches[5].v); loc.Matches(got) {
			t.Error("changed leaves matched")
		}
	})

	t.Run("reset empties the store", func(t *testing.T) {
		if err := s.Reset(); err != nil {
			t.Fatal(err)
		}
		if names, _ := os.ReadDir(dir); len(names) != 0 || s.end != 0 {
			t.Fatalf("after reset: %d files, end %d", len(names), s.end)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFailedAppend: a write or sync that fails is answered as failed, and
// once the disk recovers the next append and sync make the store whole
// again: what the failed write left is overwritten or left unreferenced.
func TestFailedAppend(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fsys := vfs.NewFaulty(vfs.Default, nil)
	s, err := Open(dir, 0, Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	first := appendSynced(t, s, bytes.Repeat([]byte{1}, 2*proof.HashSize))

	fsys.SetFault(func(op vfs.Op, _ string) error {
		if op == vfs.OpWrite {
			return &vfs.ShortWrite{N: proof.HashSize + 5, Err: syscall.ENOSPC}
		}
		return nil
	})
	if _, err := s.Append(bytes.Repeat([]byte{2}, 3*proof.HashSize)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("torn append: %v", err)
	}
	fsys.SetFault(func(op vfs.Op, _ string) error {
		if op == vfs.OpSync {
			return syscall.EIO
		}
		return nil
	})
	second, err := s.Append(bytes.Repeat([]byte{3}, proof.HashSize))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("failed sync: %v", err)
	}
	fsys.SetFault(nil)
	if err := s.Sync(); err != nil {
		t.Fatalf("sync retried: %v", err)
	}
	third := appendSynced(t, s, bytes.Repeat([]byte{4}, proof.HashSize))
	batches := []stored{first, {bytes.Repeat([]byte{3}, proof.HashSize), second}, third}
	checkStored(t, s, batches)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, End(third.v), Options{FS: fsys}); err != nil {
		t.Fatal(err)
	}
	checkStored(t, s, batches)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
