package store

import (
	"bytes"
	"errors"

	corestore "cosmossdk.io/core/store"
	iavldb "github.com/cosmos/iavl/db"
	"github.com/dgraph-io/badger/v4"
)

// The messages match iavl/db's own backends, so callers that log or compare
// them see the same text whichever backend is in use.
var (
	errKeyEmpty    = errors.New("key cannot be empty")
	errValueNil    = errors.New("value cannot be nil")
	errBatchClosed = errors.New("batch has been written or closed")
)

// NewIAVLDB exposes the keys of db that start with prefix as an IAVL database,
// with the prefix stripped. Prefixes of different namespaces sharing one badger
// DB must not be prefixes of one another (e.g. "a" and "ab"), or the shorter
// one sees the longer one's keys. An empty prefix means the whole keyspace.
//
// Close on the result is a no-op: the badger DB is shared and owned by the
// caller of OpenBadger (IAVL's nodeDB skips closing its DB for the same reason).
func NewIAVLDB(db *badger.DB, prefix []byte) iavldb.DB {
	p := bytes.Clone(prefix)
	return &iavlDB{db: db, prefix: p, upper: prefixEnd(p)}
}

type iavlDB struct {
	db     *badger.DB
	prefix []byte
	// upper is the smallest key greater than every key starting with prefix,
	// or nil when no such key exists (empty or all-0xFF prefix).
	upper []byte
}

var _ iavldb.DB = (*iavlDB)(nil)

// prefixEnd returns the exclusive upper bound of the keys starting with p.
// Unlike iavl's CpIncr it drops trailing 0xFF bytes instead of zeroing them:
// for p = "a\xff", CpIncr gives "b\x00", which would admit the key "b".
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func (d *iavlDB) rawKey(key []byte) []byte {
	k := make([]byte, len(d.prefix)+len(key))
	copy(k, d.prefix)
	copy(k[len(d.prefix):], key)
	return k
}

// Get returns (nil, nil) for a missing key, as IAVL tells "absent" from
// "present and empty" by nil-ness: an empty value marks an empty root.
func (d *iavlDB) Get(key []byte) ([]byte, error) {
	if len(key) == 0 {
		return nil, errKeyEmpty
	}
	var val []byte
	err := d.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(d.rawKey(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		val, err = ValueCopy(item, nil)
		if err == nil && val == nil {
			val = []byte{}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return val, nil
}

func (d *iavlDB) Has(key []byte) (bool, error) {
	if len(key) == 0 {
		return false, errKeyEmpty
	}
	found := false
	err := d.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(d.rawKey(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	return found, err
}

func (d *iavlDB) Iterator(start, end []byte) (corestore.Iterator, error) {
	return d.newIterator(start, end, false)
}

func (d *iavlDB) ReverseIterator(start, end []byte) (corestore.Iterator, error) {
	return d.newIterator(start, end, true)
}

// Close does not close the shared badger DB; see NewIAVLDB.
func (d *iavlDB) Close() error { return nil }

func (d *iavlDB) NewBatch() corestore.Batch {
	return &iavlBatch{db: d.db, prefix: d.prefix}
}

// NewBatchWithSize ignores the size: it is in bytes (IAVL passes its flush
// threshold), which says nothing useful about the number of operations.
func (d *iavlDB) NewBatchWithSize(int) corestore.Batch { return d.NewBatch() }

// newIterator mirrors iavl's memdb and goleveldb backends for start >= end:
// no error, just an iterator that is invalid from the start. Returning an
// error would turn an empty IAVL range query into a failure.
func (d *iavlDB) newIterator(start, end []byte, reverse bool) (corestore.Iterator, error) {
	if (start != nil && len(start) == 0) || (end != nil && len(end) == 0) {
		return nil, errKeyEmpty
	}
	it := &iavlIterator{
		start:     start,
		end:       end,
		reverse:   reverse,
		prefixLen: len(d.prefix),
		lo:        d.prefix,
		hi:        d.upper,
	}
	if start != nil {
		it.lo = d.rawKey(start)
	}
	if end != nil {
		it.hi = d.rawKey(end)
	}

	// badger's IteratorOptions.Prefix is deliberately not used: with Reverse
	// it makes Rewind seek to the prefix itself (the namespace's lowest key),
	// and its Valid hides the key we must step over after a reverse Seek.
	// The bounds below are enforced on every step instead.
	opts := badger.DefaultIteratorOptions
	opts.Reverse = reverse
	it.txn = d.db.NewTransaction(false)
	it.iter = it.txn.NewIterator(opts)

	switch {
	case !reverse && len(it.lo) == 0:
		it.iter.Rewind()
	case !reverse:
		it.iter.Seek(it.lo)
	case it.hi == nil:
		it.iter.Rewind()
	default:
		// A reverse Seek lands on the greatest key <= hi; hi is exclusive.
		it.iter.Seek(it.hi)
		if it.iter.Valid() && bytes.Equal(it.iter.Item().Key(), it.hi) {
			it.iter.Next()
		}
	}
	it.load()
	return it, nil
}

// iavlIterator holds a badger read transaction for its whole life, so it sees
// one snapshot; Close releases it.
type iavlIterator struct {
	txn  *badger.Txn
	iter *badger.Iterator

	start, end []byte // as given, for Domain
	reverse    bool
	prefixLen  int
	lo, hi     []byte // raw bounds [lo, hi); hi == nil means unbounded

	valid      bool
	key, value []byte
	err        error
	closed     bool
}

var _ corestore.Iterator = (*iavlIterator)(nil)

// load positions the iterator on the current badger item if it is in range,
// copying key and value: badger's slices are only valid until Next, while
// IAVL keeps them (e.g. traversal callbacks). Copying the value here rather
// than in Value() lets a value-log read error end iteration and surface from
// Error(), which IAVL checks after its loops.
func (it *iavlIterator) load() {
	it.valid, it.key, it.value = false, nil, nil
	for ; it.iter.Valid(); it.iter.Next() {
		item := it.iter.Item()
		k := item.Key()
		if bytes.Compare(k, it.lo) < 0 || (it.hi != nil && bytes.Compare(k, it.hi) >= 0) {
			return
		}
		if len(k) == it.prefixLen {
			// The prefix itself would be an empty key, which this namespace
			// cannot contain; it belongs to an enclosing namespace.
			continue
		}
		v, err := ValueCopy(item, nil)
		if err != nil {
			it.err = err
			return
		}
		if v == nil {
			v = []byte{}
		}
		it.key = bytes.Clone(k[it.prefixLen:])
		it.value = v
		it.valid = true
		return
	}
}

func (it *iavlIterator) Domain() ([]byte, []byte) { return it.start, it.end }

func (it *iavlIterator) Valid() bool { return it.valid }

func (it *iavlIterator) Next() {
	it.assertValid()
	it.iter.Next()
	it.load()
}

// Key returns a slice owned by the caller: it is allocated per position and
// not shared with badger.
func (it *iavlIterator) Key() []byte {
	it.assertValid()
	return it.key
}

// Value returns a slice owned by the caller, like Key.
func (it *iavlIterator) Value() []byte {
	it.assertValid()
	return it.value
}

func (it *iavlIterator) Error() error { return it.err }

func (it *iavlIterator) Close() error {
	if it.closed {
		return nil
	}
	it.closed = true
	it.valid, it.key, it.value = false, nil, nil
	// badger panics if a transaction is discarded with an open iterator.
	it.iter.Close()
	it.txn.Discard()
	return nil
}

func (it *iavlIterator) assertValid() {
	if !it.valid {
		panic("iterator is invalid")
	}
}

// iavlBatch buffers operations in memory and applies them on Write. Writing
// straight into a badger WriteBatch would commit early parts of a large batch
// as soon as a badger transaction fills up, making them visible before Write
// and impossible to discard on Close.
//
// Write is not atomic for batches larger than one badger transaction (see
// (*badger.DB).MaxBatchSize/MaxBatchCount): badger's WriteBatch splits them,
// committing the parts in order. IAVL does not need more: its own
// BatchWithFlusher already splits a SaveVersion into several Writes.
type iavlBatch struct {
	db     *badger.DB
	prefix []byte
	ops    []batchOp
	size   int
	closed bool
}

type batchOp struct {
	key    []byte // prefixed copy
	value  []byte // caller's slice; read-only per the corestore.Batch contract
	delete bool
}

var _ corestore.Batch = (*iavlBatch)(nil)

func (b *iavlBatch) rawKey(key []byte) []byte {
	k := make([]byte, len(b.prefix)+len(key))
	copy(k, b.prefix)
	copy(k[len(b.prefix):], key)
	return k
}

func (b *iavlBatch) Set(key, value []byte) error {
	if b.closed {
		return errBatchClosed
	}
	if len(key) == 0 {
		return errKeyEmpty
	}
	if value == nil {
		return errValueNil
	}
	k := b.rawKey(key)
	b.ops = append(b.ops, batchOp{key: k, value: value})
	b.size += len(k) + len(value)
	return nil
}

func (b *iavlBatch) Delete(key []byte) error {
	if b.closed {
		return errBatchClosed
	}
	if len(key) == 0 {
		return errKeyEmpty
	}
	k := b.rawKey(key)
	b.ops = append(b.ops, batchOp{key: k, delete: true})
	b.size += len(k)
	return nil
}

func (b *iavlBatch) Write() error { return b.write(false) }

// WriteSync syncs the whole badger DB after writing, which also makes durable
// whatever other unsynced writes preceded it.
func (b *iavlBatch) WriteSync() error { return b.write(true) }

// write leaves the batch open on failure: a prefix of it may have been
// committed, and since replaying the operations in order is idempotent the
// caller may retry Write.
func (b *iavlBatch) write(sync bool) error {
	if b.closed {
		return errBatchClosed
	}
	wb := b.db.NewWriteBatch()
	// Cancel after a successful Flush is a no-op; on failure it releases the
	// pending transaction, which badger otherwise leaks.
	defer wb.Cancel()
	for _, op := range b.ops {
		var err error
		if op.delete {
			err = wb.Delete(op.key)
		} else {
			err = wb.Set(op.key, op.value)
		}
		if err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	_ = b.Close()
	if sync {
		return b.db.Sync()
	}
	return nil
}

func (b *iavlBatch) Close() error {
	b.closed = true
	b.ops = nil
	b.size = 0
	return nil
}

func (b *iavlBatch) GetByteSize() (int, error) {
	if b.closed {
		return 0, errBatchClosed
	}
	return b.size, nil
}
