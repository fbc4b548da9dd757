package node

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/leafstore"
)

// The leaf store (internal/leafstore, data/leaves) holds every indexed
// batch's leaves; the batch's xb/ value locates them. The store knows
// nothing of badger: where it must reach at open is the node's to say
// (leafStoreEnd), and the checks of its reads that need the batch's record
// are the node's (leafcheck.go).

// openLeafStore opens the leaf store in dir and checks that it holds the
// leaves of the last of the batches [0, next) in db.
func openLeafStore(dir string, db *badger.DB, next uint64) (*leafstore.Store, error) {
	end, err := leafStoreEnd(db, next)
	if err != nil {
		return nil, err
	}
	s, err := leafstore.Open(dir, end, leafstore.Options{})
	if errors.Is(err, leafstore.ErrDamaged) {
		return nil, fmt.Errorf("%w; %s", leafDamage{err}, recoverHint)
	}
	return s, err
}

// leafStoreEnd is where the leaves of the last batch numbered below next
// end in the leaf store: 0 when none is there (none indexed, or all kept
// in badger by an earlier version).
func leafStoreEnd(db *badger.DB, next uint64) (uint64, error) {
	var end uint64
	err := db.View(func(txn *badger.Txn) error {
		// Numbers below next may hold no batch: wiped by a rejected
		// restore, or skipped by a write cut short.
		for num := next; num > 0; num-- {
			ref, err := batchNumbered(txn, num-1)
			if errors.Is(err, errNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			loc, err := getValue(txn, xbKey(ref.issuer, ref.seq))
			if errors.Is(err, errNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			end = leafstore.End(loc)
			return nil
		}
		return nil
	})
	return end, err
}

// leafDamage is damage the leaf store found, answered as the node's other
// damage (errStoreDamaged: DataLoss at the API, a refusal at start) in the
// store's own words.
type leafDamage struct{ err error }

func (d leafDamage) Error() string   { return d.err.Error() }
func (d leafDamage) Unwrap() []error { return []error{d.err, errStoreDamaged} }

// leafStoreErr is err from the leaf store, its damage made errStoreDamaged.
func leafStoreErr(err error) error {
	if errors.Is(err, leafstore.ErrDamaged) {
		return leafDamage{err}
	}
	return err
}
