package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/internal/positions"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
)

// The node's badger keys, and the functions that build them, are in
// keys.go.

var errNotFound = app.ErrNotFound

func u64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// A leaf's position is an entry of the positions index
// (internal/positions): a tag of its hash, its batch's number (a node-local
// count assigned when the batch is indexed) and its index in the batch, so
// the entry holds neither the whole hash nor the issuer: the hash is in the
// batch's leaves (xb/), the issuer and sequence once per batch (xn). A tag
// is not unique, even within a batch: a lookup confirms every candidate
// against the batch's leaves before it answers.

// batchRef is what a batch number stands for (the value under xn).
type batchRef struct {
	issuer string
	seq    uint64
	height int64
}

func encodeBatchRef(r batchRef) []byte {
	b := make([]byte, 0, 16+len(r.issuer))
	return append(u64(u64(b, r.seq), uint64(r.height)), r.issuer...)
}

// batchNumbered is what batch number num stands for; errNotFound when
// no batch has it.
func batchNumbered(txn *badger.Txn, num uint64) (batchRef, error) {
	v, err := getValue(txn, xnKey(num))
	if err != nil {
		return batchRef{}, err
	}
	return decodeBatchRef(v)
}

func decodeBatchRef(v []byte) (batchRef, error) {
	if len(v) < 17 {
		return batchRef{}, fmt.Errorf("corrupt batch number entry of %d bytes", len(v))
	}
	return batchRef{seq: binary.BigEndian.Uint64(v), height: int64(binary.BigEndian.Uint64(v[8:])), issuer: string(v[16:])}, nil
}

// position is where an anchored hash is.
type position struct {
	issuer string
	seq    uint64
	index  uint64
	height int64
}

// lookup finds positions: candidates from the positions index, confirmed inside
// one read transaction. It keeps the batch numbers it has resolved, and the
// leaves entry of the last batch it read, which the next hashes of a
// request often share.
type lookup struct {
	txn   *badger.Txn
	index *index
	cands []positions.Position
	refs  map[uint64]batchRef
	// holds confirms a candidate: by default from the batch's leaves read
	// here; receipts confirm from the trees they cache.
	holds     func(num uint64, ref batchRef, index uint64, hash []byte) (bool, error)
	entryOf   uint64
	lastEntry []byte
}

func newLookup(txn *badger.Txn, idx *index) *lookup {
	l := &lookup{txn: txn, index: idx}
	l.holds = l.holdsLeaf
	return l
}

// find is where hash is anchored: by issuer, or by any issuer when issuer
// is empty (the first issuer in byte order). When the same issuer anchored
// it more than once, the batch indexed last answers, and within a batch
// the last leaf.
func (l *lookup) find(hash []byte, issuer string) (position, error) {
	return l.findTagged(hash, l.index.positions.Tag(hash), issuer)
}

// findTagged is find given the hash's tag, when the caller has it.
func (l *lookup) findTagged(hash []byte, tag positions.Tag, issuer string) (position, error) {
	cands, err := l.index.positions.Candidates(tag, l.cands[:0])
	if err != nil {
		return position{}, err
	}
	l.cands = cands
	var best position
	var bestNum uint64
	found := false
	for _, c := range cands {
		num, index := c.Batch, c.Index
		ref, err := l.batch(num)
		if errors.Is(err, errNotFound) {
			continue // left by an index write cut short; its batch is indexed again
		}
		if err != nil {
			return position{}, err
		}
		if (issuer != "" && ref.issuer != issuer) || (found && ref.issuer > best.issuer) {
			continue
		}
		ok, err := l.holds(num, ref, index, hash)
		if err != nil {
			return position{}, err
		}
		// Candidates come from several runs and parts: compare.
		if !ok || (found && ref.issuer == best.issuer && (num < bestNum || num == bestNum && index < best.index)) {
			continue
		}
		best = position{issuer: ref.issuer, seq: ref.seq, index: index, height: ref.height}
		bestNum, found = num, true
	}
	if !found {
		return position{}, errNotFound
	}
	return best, nil
}

func (l *lookup) batch(num uint64) (batchRef, error) {
	if r, ok := l.refs[num]; ok {
		return r, nil
	}
	r, err := batchNumbered(l.txn, num)
	if err != nil {
		return batchRef{}, err
	}
	if l.refs == nil {
		l.refs = make(map[uint64]batchRef)
	}
	l.refs[num] = r
	return r, nil
}

// holdsLeaf reports whether leaf index of batch num is hash: a tag
// matches other hashes too. Its answer decides "anchored" or "not": the
// batch is checked whole (leafcheck.go) before its first answer.
func (l *lookup) holdsLeaf(num uint64, ref batchRef, index uint64, hash []byte) (bool, error) {
	v := l.lastEntry
	if v == nil || l.entryOf != num {
		var err error
		v, err = getValue(l.txn, xbKey(ref.issuer, ref.seq))
		if errors.Is(err, errNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		l.entryOf, l.lastEntry = num, v
	}
	if !l.index.checks.isSound(num) {
		hashes, err := l.index.readChecked(l.txn, ref.issuer, ref.seq, v)
		if err != nil {
			return false, err
		}
		l.index.checks.markSound(num)
		if index >= uint64(len(hashes))/proof.HashSize {
			return false, nil
		}
		return bytes.Equal(hashes[index*proof.HashSize:(index+1)*proof.HashSize], hash), nil
	}
	var leaf [proof.HashSize]byte
	ok, err := l.index.leafStore.Leaves(v, index, leaf[:])
	if !ok || err != nil {
		return false, leafStoreErr(err)
	}
	return bytes.Equal(leaf[:], hash), nil
}

func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	it, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	return store.ValueCopy(it, nil)
}

// leavesOf is the leaves of batch (issuer, seq), checked (leafcheck.go).
func (li *index) leavesOf(txn *badger.Txn, issuer string, seq uint64) ([]byte, error) {
	v, err := getValue(txn, xbKey(issuer, seq))
	if err != nil {
		return nil, err
	}
	return li.readChecked(txn, issuer, seq, v)
}

// readBatch is a batch's leaves, record and proof as the index holds them.
func (li *index) readBatch(issuer string, seq uint64) (hashes, rec, prf []byte, err error) {
	err = li.db.View(func(txn *badger.Txn) error {
		var err error
		if hashes, err = li.leavesOf(txn, issuer, seq); err != nil {
			return err
		}
		if rec, err = getValue(txn, xrKey(issuer, seq)); err != nil {
			return err
		}
		prf, err = getValue(txn, xpKey(issuer, seq))
		return err
	})
	return hashes, rec, prf, err
}

// anchoredAt is lookup.find for one hash.
func anchoredAt(txn *badger.Txn, idx *index, hash []byte, issuer string) (position, error) {
	return anchoredAtCheck(txn, idx, hash, issuer, nil)
}

// anchoredAtCheck is anchoredAt confirming candidates with holds, when
// not nil, instead of reading the batch's leaves.
func anchoredAtCheck(txn *badger.Txn, idx *index, hash []byte, issuer string, holds func(ref batchRef, index uint64, hash []byte) (bool, error)) (position, error) {
	l := newLookup(txn, idx)
	if holds != nil {
		l.holds = func(_ uint64, ref batchRef, index uint64, hash []byte) (bool, error) { return holds(ref, index, hash) }
	}
	return l.find(hash, issuer)
}

func indexedHeight(db *badger.DB) (int64, error) {
	var h int64
	err := db.View(func(txn *badger.Txn) error {
		v, err := getValue(txn, []byte(keyIndexed))
		if errors.Is(err, errNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(v) != 8 {
			return fmt.Errorf("corrupt indexed height")
		}
		h = int64(binary.BigEndian.Uint64(v))
		return nil
	})
	return h, err
}

func storedNextBatch(db *badger.DB) (uint64, error) {
	var n uint64
	err := db.View(func(txn *badger.Txn) error {
		v, err := getValue(txn, []byte(keyNextBatch))
		if errors.Is(err, errNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(v) != 8 {
			return fmt.Errorf("corrupt next batch number")
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	})
	return n, err
}
