package node

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"

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
