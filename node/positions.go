package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/leafstore"
	"github.com/credence-ledger/credence/internal/positions"
)

// leafIndex is where every anchored hash is: the batches' leaves (the
// leaf store, internal/leafstore, checked as they are read, leafcheck.go) and the
// positions index over them (internal/positions, in data/index), which is
// derived from the leaves and the batch numbers (xn), so a run lost or
// damaged is rebuilt from them, never refused.
type leafIndex struct {
	db        *badger.DB
	leafStore *leafstore.Store // the leaves themselves
	checks    *leafChecks
	log       *slog.Logger
	positions *positions.Index
}

// openLeafIndex opens the leaf store beside dir and the positions index in
// dir, rebuilding from the batches in db whatever of [0, next) the index
// does not hold. Positions left as badger keys (xl) by an earlier version
// are dropped and rebuilt the same way. tag is the positions' tag
// function; nil is positions.SHA256Tag.
func openLeafIndex(dir string, db *badger.DB, next uint64, maxRecent int, log *slog.Logger, tag func(hash []byte) positions.Tag) (*leafIndex, error) {
	li := &leafIndex{db: db, log: log, checks: newLeafChecks(defaultLeavesCheckedBatches)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := li.dropOldPositions(dir); err != nil {
		return nil, err
	}
	leafStore, err := openLeafStore(filepath.Join(filepath.Dir(dir), "leaves"), db, next)
	if err != nil {
		return nil, fmt.Errorf("leaves log: %w", err)
	}
	li.leafStore = leafStore
	li.positions, err = positions.Open(dir, next, positions.Options{
		RecentEntries: maxRecent, Logger: log, Tag: tag, Rebuild: li.batchLeaves})
	if err != nil {
		leafStore.Close()
		return nil, err
	}
	return li, nil
}

// dropOldPositions deletes the position keys (xl) an earlier version kept
// in badger; the runs are then rebuilt from the batches.
func (li *leafIndex) dropOldPositions(dir string) error {
	prefix := []byte(prefixOldPositions)
	var n int
	if err := li.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	}); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	li.log.Info("index positions kept in the database by an earlier version; dropping them and rebuilding the index as run files from the batches' leaves", "positions", n)
	if err := li.db.DropPrefix(prefix); err != nil {
		return err
	}
	// Runs written before those keys (none, by any released version) could
	// not be trusted to match them: start from the batches alone.
	names, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, d := range names {
		if err := os.Remove(filepath.Join(dir, d.Name())); err != nil {
			return err
		}
	}
	return nil
}

// batchLeaves is the positions index's rebuild source: it hands yield the
// leaves of each batch numbered in [lo, hi), in order, reading them from
// badger. A number with no batch (xn) is skipped: its batch went with a
// wiped index.
func (li *leafIndex) batchLeaves(lo, hi uint64, yield func(num uint64, hashes []byte) error) error {
	// Leaves read per transaction: a batch holds up to 4 MiB of them.
	const chunkBytes = 16 << 20
	for from := lo; from < hi; {
		to := hi
		type batch struct {
			num    uint64
			hashes []byte
		}
		var got []batch
		var size int
		if err := li.db.View(func(txn *badger.Txn) error {
			for num := from; num < to; num++ {
				if size >= chunkBytes {
					to = num
					break
				}
				ref, err := batchNumbered(txn, num)
				if errors.Is(err, errNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				hashes, err := li.leavesOf(txn, ref.issuer, ref.seq)
				if errors.Is(err, errNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				got = append(got, batch{num, hashes})
				size += len(hashes)
			}
			return nil
		}); err != nil {
			return err
		}
		// Outside the transaction: yield may write a run.
		for _, b := range got {
			if err := yield(b.num, b.hashes); err != nil {
				return err
			}
		}
		from = to
	}
	return nil
}

// close stops the positions index's background writer and closes it and
// the leaves log. What the index held only in memory is rebuilt from the
// batches at the next start.
func (li *leafIndex) close() error {
	if li == nil {
		return nil
	}
	return errors.Join(li.positions.Close(), li.leafStore.Close())
}

// reset empties the positions index and the leaf store after their
// batches were wiped from badger; the next batch indexed is next.
func (li *leafIndex) reset(next uint64) error {
	li.checks.forget()
	return errors.Join(li.positions.Reset(next), li.leafStore.Reset())
}
