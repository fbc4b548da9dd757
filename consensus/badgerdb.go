package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/store"
)

// badgerDB is cometbft-db's BadgerDB (v0.14.1, badger_db.go, Apache
// License 2.0) over a *badger.DB this package opened, with the same
// behaviour on every call: cometbft-db's keeps its *badger.DB to itself
// and has no constructor from an open one, so its value log could not be
// garbage-collected. Values are read with store.ValueCopy, so that one
// badger could not read from the value log is an error, not an empty
// value (which CometBFT takes for a block part it does not have). With a
// positive gcInterval it runs value-log GC that often until Close.
//
// A hazard of badger's value-log GC (v4.9.6), seen in
// TestBlockStoreGCFreesPrunedParts before it let compactions settle: a
// compaction counts the garbage it drops in each value log file before it
// installs its new tables, and a GC that picks such a file in between
// appears to find the dropped entries still in the old tables, take them
// for live and write them back, after their deletion is gone. Pruned
// block parts (with a large validator set, commits too) then come back as
// keys that CometBFT never reads (it reaches a part through its block's
// meta, which stays deleted, and serves nothing below its base) and that
// pruning never visits again: disk, not reads. Badger's own guard (#2286)
// covers only deletions made after the GC starts.
type badgerDB struct {
	db   *badger.DB
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
}

var _ dbm.DB = (*badgerDB)(nil)

var (
	errKeyEmpty = errors.New("key cannot be empty")
	errValueNil = errors.New("value cannot be nil")
)

// valueLogDiscardRatio is the share of a value log file that must be
// garbage for GC to rewrite it: badger's recommended 0.5, a lifetime write
// amplification of the value log of at most 2. Pruned blocks go oldest
// first, so the files GC finds are mostly garbage whole and rewrite little.
const valueLogDiscardRatio = 0.5

func newBadgerDB(db *badger.DB, gcInterval time.Duration, log *slog.Logger) *badgerDB {
	b := &badgerDB{db: db, stop: make(chan struct{})}
	if gcInterval > 0 {
		b.done.Add(1)
		go b.collect(gcInterval, log)
	}
	return b
}

// collect runs value-log GC every interval, each time until a run finds
// no file worth rewriting.
func (b *badgerDB) collect(interval time.Duration, log *slog.Logger) {
	defer b.done.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		for {
			select {
			case <-b.stop:
				return
			default:
			}
			err := b.db.RunValueLogGC(valueLogDiscardRatio)
			if err == nil {
				continue
			}
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				log.Warn("value log GC failed", "err", err)
			}
			break
		}
	}
}

func (b *badgerDB) Get(key []byte) ([]byte, error) {
	if len(key) == 0 {
		return nil, errKeyEmpty
	}
	var val []byte
	err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		val, err = store.ValueCopy(item, nil)
		if err == nil && val == nil {
			val = []byte{}
		}
		return err
	})
	return val, err
}

func (b *badgerDB) Has(key []byte) (bool, error) {
	if len(key) == 0 {
		return false, errKeyEmpty
	}
	var found bool
	err := b.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(key)
		if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		found = !errors.Is(err, badger.ErrKeyNotFound)
		return nil
	})
	return found, err
}

func (b *badgerDB) Set(key, value []byte) error {
	if len(key) == 0 {
		return errKeyEmpty
	}
	if value == nil {
		return errValueNil
	}
	return b.db.Update(func(txn *badger.Txn) error {
		return txn.Set(key, value)
	})
}

func withSync(db *badger.DB, err error) error {
	if err != nil {
		return err
	}
	return db.Sync()
}

func (b *badgerDB) SetSync(key, value []byte) error {
	return withSync(b.db, b.Set(key, value))
}

func (b *badgerDB) Delete(key []byte) error {
	if len(key) == 0 {
		return errKeyEmpty
	}
	return b.db.Update(func(txn *badger.Txn) error {
		return txn.Delete(key)
	})
}

func (b *badgerDB) DeleteSync(key []byte) error {
	return withSync(b.db, b.Delete(key))
}

// Close stops the GC, waiting for a run under way, then closes the
// database: GC on a closed database is not allowed.
func (b *badgerDB) Close() error {
	b.once.Do(func() { close(b.stop) })
	b.done.Wait()
	return b.db.Close()
}

func (b *badgerDB) Print() error { return nil }

func (b *badgerDB) Stats() map[string]string { return nil }

// Compact does nothing, as cometbft-db's: badger compacts on its own.
func (b *badgerDB) Compact(_, _ []byte) error { return nil }

func (b *badgerDB) iteratorOpts(start, end []byte, opts badger.IteratorOptions) (*badgerDBIterator, error) {
	if (start != nil && len(start) == 0) || (end != nil && len(end) == 0) {
		return nil, errKeyEmpty
	}
	txn := b.db.NewTransaction(false)
	iter := txn.NewIterator(opts)
	iter.Rewind()
	iter.Seek(start)
	if opts.Reverse && iter.Valid() && bytes.Equal(iter.Item().Key(), start) {
		// In reverse the starting point is end, which is exclusive.
		iter.Next()
	}
	return &badgerDBIterator{reverse: opts.Reverse, start: start, end: end, txn: txn, iter: iter}, nil
}

func (b *badgerDB) Iterator(start, end []byte) (dbm.Iterator, error) {
	return b.iteratorOpts(start, end, badger.DefaultIteratorOptions)
}

func (b *badgerDB) ReverseIterator(start, end []byte) (dbm.Iterator, error) {
	opts := badger.DefaultIteratorOptions
	opts.Reverse = true
	return b.iteratorOpts(end, start, opts)
}

func (b *badgerDB) NewBatch() dbm.Batch {
	wb := &badgerDBBatch{db: b.db, wb: b.db.NewWriteBatch(), firstFlush: make(chan struct{}, 1)}
	wb.firstFlush <- struct{}{}
	return wb
}

type badgerDBBatch struct {
	db *badger.DB
	wb *badger.WriteBatch
	// A second Flush of a badger WriteBatch panics (badger issue 1394):
	// whoever takes the token from firstFlush may flush.
	firstFlush chan struct{}
}

func (b *badgerDBBatch) Set(key, value []byte) error {
	if len(key) == 0 {
		return errKeyEmpty
	}
	if value == nil {
		return errValueNil
	}
	return b.wb.Set(key, value)
}

func (b *badgerDBBatch) Delete(key []byte) error {
	if len(key) == 0 {
		return errKeyEmpty
	}
	return b.wb.Delete(key)
}

func (b *badgerDBBatch) Write() error {
	select {
	case <-b.firstFlush:
		return b.wb.Flush()
	default:
		return fmt.Errorf("batch already flushed")
	}
}

func (b *badgerDBBatch) WriteSync() error {
	return withSync(b.db, b.Write())
}

func (b *badgerDBBatch) Close() error {
	select {
	case <-b.firstFlush: // a Flush after Cancel panics too
	default:
	}
	b.wb.Cancel()
	return nil
}

type badgerDBIterator struct {
	reverse    bool
	start, end []byte
	txn        *badger.Txn
	iter       *badger.Iterator
	lastErr    error
}

func (i *badgerDBIterator) Close() error {
	i.iter.Close()
	i.txn.Discard()
	return nil
}

func (i *badgerDBIterator) Domain() (start, end []byte) { return i.start, i.end }
func (i *badgerDBIterator) Error() error                { return i.lastErr }

func (i *badgerDBIterator) Next() {
	if !i.Valid() {
		panic("iterator is invalid")
	}
	i.iter.Next()
}

func (i *badgerDBIterator) Valid() bool {
	if !i.iter.Valid() {
		return false
	}
	if len(i.end) > 0 {
		key := i.iter.Item().Key()
		if c := bytes.Compare(key, i.end); (!i.reverse && c >= 0) || (i.reverse && c < 0) {
			return false
		}
	}
	return true
}

// Key is valid until the next move; the caller copies it to keep it.
func (i *badgerDBIterator) Key() []byte {
	if !i.Valid() {
		panic("iterator is invalid")
	}
	return i.iter.Item().Key()
}

// Value is a copy, the caller's to keep.
func (i *badgerDBIterator) Value() []byte {
	if !i.Valid() {
		panic("iterator is invalid")
	}
	val, err := store.ValueCopy(i.iter.Item(), nil)
	if err != nil {
		i.lastErr = err
	}
	return val
}
