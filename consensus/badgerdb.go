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

// badgerDB serves CometBFT's dbm.DB interface from a *badger.DB this
// package opened: cometbft-db's own badger backend keeps its *badger.DB to
// itself and has no constructor from an open one, so its value log could
// not be garbage-collected. Values are read with store.ValueCopy, so that
// one badger could not read from the value log is an error, not an empty
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

// The interface's own errors are unexported, so callers can only test
// for an error, not which: these say the same.
var (
	errKeyEmpty   = errors.New("key cannot be empty")
	errValueNil   = errors.New("value cannot be nil")
	errBatchSpent = errors.New("batch has been written or closed")
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
			if compactionDue(b.db) {
				break
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

// compactionDue reports whether a level wants compacting (a score of 1 or
// more), which it keeps wanting until the compaction installs its tables:
// the window of the race in badgerDB's doc comment, in which a GC run
// writes pruned parts back. Skipping the run until the next tick narrows
// the race to compactions that start while a run is under way; it does
// not close it. In TestBlockStoreGCFreesPrunedPartsAsItGoes (GC every
// 10 ms), without it 6 runs of 10 brought back 10 to 419 pruned parts,
// with it none of 30.
func compactionDue(db *badger.DB) bool {
	for _, l := range db.Levels() {
		if l.Score >= 1 {
			return true
		}
	}
	return false
}

// Close waits for a GC run in progress to end, so that none reaches a
// closed database.
func (b *badgerDB) Close() error {
	b.once.Do(func() { close(b.stop) })
	b.done.Wait()
	return b.db.Close()
}

// checkKey applies the interface's rule before badger sees the key, so
// that every method refuses an empty one the same way, reads included,
// and no transaction is opened for a call that cannot succeed.
func checkKey(key []byte) error {
	if len(key) == 0 {
		return errKeyEmpty
	}
	return nil
}

func checkPair(key, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if value == nil {
		return errValueNil
	}
	return nil
}

// A read of a closed store answers "absent", not an error. CometBFT's
// node closes its stores in OnStop without waiting for its consensus
// reactor's per-peer goroutines, and queryMaj23Routine reads the block
// store (LoadSeenCommit) after a sleep without checking that the node
// still runs; CometBFT turns a store error into a panic of the whole
// process, with any backend. Only a closing node reads then, and nothing
// it reads is acted on; writes to a closed store remain errors.
func (b *badgerDB) Get(key []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var value []byte
	err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		// An empty value copies as empty, not nil: nil is how Get says
		// the key is absent.
		value, err = store.ValueCopy(item, nil)
		return err
	})
	if errors.Is(err, badger.ErrDBClosed) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	return value, nil
}

// Has does not read the value: a key whose value the value log lost is
// still there, and Get is where that shows.
func (b *badgerDB) Has(key []byte) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	found := false
	err := b.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	if errors.Is(err, badger.ErrDBClosed) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("has %q: %w", key, err)
	}
	return found, nil
}

func (b *badgerDB) Set(key, value []byte) error {
	if err := checkPair(key, value); err != nil {
		return err
	}
	if err := b.db.Update(func(txn *badger.Txn) error { return txn.Set(key, value) }); err != nil {
		return fmt.Errorf("set %q: %w", key, err)
	}
	return nil
}

func (b *badgerDB) Delete(key []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := b.db.Update(func(txn *badger.Txn) error { return txn.Delete(key) }); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}

// The Sync variants fsync after an ordinary commit rather than open the
// database with SyncWrites: that would make every write pay for the few
// CometBFT wants durable at once.
func (b *badgerDB) SetSync(key, value []byte) error {
	if err := b.Set(key, value); err != nil {
		return err
	}
	return b.sync()
}

func (b *badgerDB) DeleteSync(key []byte) error {
	if err := b.Delete(key); err != nil {
		return err
	}
	return b.sync()
}

func (b *badgerDB) sync() error {
	if err := b.db.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// Print is for debugging; badger's own tools read the directory better.
func (b *badgerDB) Print() error { return nil }

// Stats reports the on-disk sizes badger keeps track of, the figures that
// say whether value-log GC keeps up.
func (b *badgerDB) Stats() map[string]string {
	lsm, vlog := b.db.Size()
	return map[string]string{
		"badger.lsm_bytes":  fmt.Sprint(lsm),
		"badger.vlog_bytes": fmt.Sprint(vlog),
	}
}

// Compact does nothing: badger compacts its levels on its own, and a
// Flatten on request would stall writes for as long as it takes, for
// space the value-log GC reclaims anyway.
func (b *badgerDB) Compact(_, _ []byte) error { return nil }

func (b *badgerDB) Iterator(start, end []byte) (dbm.Iterator, error) {
	return b.newRange(start, end, false)
}

func (b *badgerDB) ReverseIterator(start, end []byte) (dbm.Iterator, error) {
	return b.newRange(start, end, true)
}

// newRange opens a read transaction for the iterator's lifetime, so that
// it sees one snapshot however long the caller takes.
func (b *badgerDB) newRange(start, end []byte, reverse bool) (*rangeIter, error) {
	// nil means unbounded; an empty bound is a key, and an empty key is
	// not one.
	if (start != nil && len(start) == 0) || (end != nil && len(end) == 0) {
		return nil, errKeyEmpty
	}
	opts := badger.DefaultIteratorOptions
	opts.Reverse = reverse
	// Values are read one by one when asked for: CometBFT's scans often
	// want only keys, and a value-log read nobody uses costs a disk seek.
	opts.PrefetchValues = false
	txn := b.db.NewTransaction(false)
	r := &rangeIter{txn: txn, it: txn.NewIterator(opts), start: start, end: end, reverse: reverse}
	switch {
	case !reverse && start != nil:
		r.it.Seek(start)
	case reverse && end != nil:
		// Seek backwards lands on end itself when present; the domain
		// excludes it.
		r.it.Seek(end)
		if r.it.Valid() && bytes.Equal(r.it.Item().Key(), end) {
			r.it.Next()
		}
	default:
		r.it.Rewind()
	}
	return r, nil
}

// rangeIter walks badger's iterator and stops it at the far bound of the
// domain, which badger does not know of.
type rangeIter struct {
	txn        *badger.Txn
	it         *badger.Iterator
	start, end []byte
	reverse    bool
	err        error // a value that could not be read; ends the iteration
	closed     bool
}

var _ dbm.Iterator = (*rangeIter)(nil)

func (r *rangeIter) Domain() (start, end []byte) { return r.start, r.end }

func (r *rangeIter) Error() error { return r.err }

func (r *rangeIter) Valid() bool {
	if r.closed || r.err != nil || !r.it.Valid() {
		return false
	}
	key := r.it.Item().Key()
	if r.reverse {
		return r.start == nil || bytes.Compare(key, r.start) >= 0
	}
	return r.end == nil || bytes.Compare(key, r.end) < 0
}

// must panics on an invalid iterator, as the interface says: a caller
// reading past the end has a bug that an empty answer would hide.
func (r *rangeIter) must() {
	if !r.Valid() {
		panic("iterator is not valid")
	}
}

func (r *rangeIter) Next() {
	r.must()
	r.it.Next()
}

// Key copies: badger reuses the item's key buffer once the iterator moves,
// and CometBFT is not always careful to copy before it does.
func (r *rangeIter) Key() []byte {
	r.must()
	return r.it.Item().KeyCopy(nil)
}

// Value gives nil for a value the value log lost, and ends the iteration
// with that error, so that a caller's loop stops and finds it in Error
// rather than going on as if the key were empty.
func (r *rangeIter) Value() []byte {
	r.must()
	v, err := store.ValueCopy(r.it.Item(), nil)
	if err != nil {
		r.err = fmt.Errorf("iterator value: %w", err)
		return nil
	}
	return v
}

func (r *rangeIter) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.it.Close()
	r.txn.Discard()
	return nil
}

func (b *badgerDB) NewBatch() dbm.Batch { return &batch{db: b.db} }

// batch holds its writes in memory until Write, so that nothing of it is
// visible before then and a batch closed unwritten leaves no trace
// (badger's WriteBatch commits as it fills, and Cancel cannot take those
// commits back).
type batch struct {
	db    *badger.DB
	ops   []batchOp
	spent bool // written or closed; only Close may follow
}

type batchOp struct {
	key, value []byte
	del        bool
}

func (w *batch) Set(key, value []byte) error {
	if err := checkPair(key, value); err != nil {
		return err
	}
	if w.spent {
		return errBatchSpent
	}
	w.ops = append(w.ops, batchOp{key: key, value: value})
	return nil
}

func (w *batch) Delete(key []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if w.spent {
		return errBatchSpent
	}
	w.ops = append(w.ops, batchOp{key: key, del: true})
	return nil
}

func (w *batch) Write() error { return w.write(false) }

func (w *batch) WriteSync() error { return w.write(true) }

// write commits the batch in one transaction when badger takes it whole,
// which is atomic; a batch larger than a transaction may be is committed
// in several, in order, as the interface allows. The batch is spent
// whatever the outcome: a retry would apply its first part twice.
func (w *batch) write(sync bool) error {
	if w.spent {
		return errBatchSpent
	}
	w.spent = true
	ops := w.ops
	w.ops = nil
	txn := w.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	for _, op := range ops {
		err := op.apply(txn)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := txn.Commit(); err != nil {
				return fmt.Errorf("batch: %w", err)
			}
			txn = w.db.NewTransaction(true)
			err = op.apply(txn)
		}
		if err != nil {
			return fmt.Errorf("batch: %w", err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	if sync {
		if err := w.db.Sync(); err != nil {
			return fmt.Errorf("batch sync: %w", err)
		}
	}
	return nil
}

func (op batchOp) apply(txn *badger.Txn) error {
	if op.del {
		return txn.Delete(op.key)
	}
	return txn.Set(op.key, op.value)
}

func (w *batch) Close() error {
	w.spent = true
	w.ops = nil
	return nil
}
