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

// index is the node's index: where every anchored hash is, and each
// batch's leaves. It holds the leaf store (internal/leafstore, its reads
// checked, leafcheck.go), the positions index over it (internal/positions,
// in data/index), which is derived from the leaves and the batch numbers
// (xn), so a run lost or damaged is rebuilt from them, never refused, and
// the anchored filter over the positions' tags.
type index struct {
	db        *badger.DB
	leafStore *leafstore.Store // the leaves themselves
	checks    *leafChecks
	log       *slog.Logger
	positions *positions.Index
	// anchored holds the tag of every position written (attached to the
	// positions index, which adds each before the position is visible);
	// nil when off.
	anchored *positions.Filter
	// filled is how many tags the anchored filter was filled with at open.
	filled int
}

// indexOptions are the index's settings.
type indexOptions struct {
	// RecentHashes is how many positions the positions index holds in
	// memory before it writes them as a run (index_recent_hashes; 0 is
	// the positions index's own default).
	RecentHashes int
	// CheckedBatches bounds the batches whose leaves are remembered as
	// checked whole (leaves_checked_batches; 0 remembers none, so every
	// confirmation reads its batch whole).
	CheckedBatches int
	// FilterMB is the anchored filter's size in MiB (anchored_filter_mb);
	// 0 makes none, and every hash is looked up.
	FilterMB int
	// Tag tags hashes in the positions index; nil is positions.SHA256Tag.
	// Tests make hashes collide with it.
	Tag func(hash []byte) positions.Tag
	// Log is the index's logger; nil is slog.Default().
	Log *slog.Logger
}

// openIndex opens the index of db: the leaf store in the directory
// "leaves" beside db's and the positions index in "index", rebuilding
// from the batches in db whatever of the batches numbered so far the
// positions index does not hold, then fills the anchored filter from it.
// Positions left as badger keys (xl) by an earlier version are dropped and
// rebuilt the same way.
func openIndex(db *badger.DB, o indexOptions) (*index, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	next, err := storedNextBatch(db)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(filepath.Dir(db.Opts().Dir), "index")
	li := &index{db: db, log: o.Log, checks: newLeafChecks(o.CheckedBatches)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("positions index: %w", err)
	}
	if err := li.dropOldPositions(dir); err != nil {
		return nil, fmt.Errorf("positions index: %w", err)
	}
	leafStore, err := openLeafStore(filepath.Join(filepath.Dir(dir), "leaves"), db, next)
	if err != nil {
		return nil, fmt.Errorf("positions index: leaves log: %w", err)
	}
	li.leafStore = leafStore
	li.positions, err = positions.Open(dir, next, positions.Options{
		RecentEntries: o.RecentHashes, Logger: o.Log, Tag: o.Tag, Rebuild: li.batchLeaves})
	if err != nil {
		leafStore.Close()
		return nil, fmt.Errorf("positions index: %w", err)
	}
	// Filled before anything indexes or Submit runs; later positions are
	// added as they are written.
	li.anchored = positions.NewFilter(o.FilterMB)
	if li.filled, err = li.positions.AttachFilter(li.anchored); err != nil {
		return nil, errors.Join(fmt.Errorf("anchored filter: %w", err), li.close())
	}
	return li, nil
}

// dropOldPositions deletes the position keys (xl) an earlier version kept
// in badger; the runs are then rebuilt from the batches.
func (li *index) dropOldPositions(dir string) error {
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
func (li *index) batchLeaves(lo, hi uint64, yield func(num uint64, hashes []byte) error) error {
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
// the leaf store. What the index held only in memory is rebuilt from the
// batches at the next start.
func (li *index) close() error {
	if li == nil {
		return nil
	}
	return errors.Join(li.positions.Close(), li.leafStore.Close())
}

// reset empties the positions index and the leaf store after their
// batches were wiped from badger; the next batch indexed is next.
func (li *index) reset(next uint64) error {
	li.checks.forget()
	return errors.Join(li.positions.Reset(next), li.leafStore.Reset())
}
