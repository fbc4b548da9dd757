package node

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/app"
)

// The node's badger database holds, beside the application state (prefix
// "a/"), the durable submission queue and the index. Issuer ids cannot hold
// '/', so every key below is unambiguous.
//
//	qp/<issuer>/<qseq>, qf/<issuer>/<seq>    the queue and the batches in flight (queuestore.go)
//	xl/<hash>/<issuer>      → seq, index, height          where an anchored hash is
//	xb/<issuer>/<seq>       → hashes          a batch's leaves, in order
//	xr/<issuer>/<seq>       → record          the batch record as stored in state
//	xp/<issuer>/<seq>       → ICS23 proof     of the record at its height
//	xs/<height>             → SnapshotHeader  a kept signed header (retention.go), or restored from a snapshot
//	xv/<height>             → ValidatorSetLink (or empty until first built)  the validator set changes after height
//	xh                      → height          last height indexed
//	xt                      → seq, issuer     the last batch indexed (checked at start)
var (
	appPrefix    = []byte("a/")
	keyIndexed   = []byte("xh")
	keyLastBatch = []byte("xt")
	errNotFound  = app.ErrNotFound
)

func u64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func issuerSeqKey(prefix, issuer string, seq uint64) []byte {
	k := make([]byte, 0, len(prefix)+len(issuer)+9)
	k = append(append(append(k, prefix...), issuer...), '/')
	return u64(k, seq)
}

func xbKey(issuer string, seq uint64) []byte { return issuerSeqKey("xb/", issuer, seq) }
func xrKey(issuer string, seq uint64) []byte { return issuerSeqKey("xr/", issuer, seq) }
func xpKey(issuer string, seq uint64) []byte { return issuerSeqKey("xp/", issuer, seq) }
func xsKey(height int64) []byte              { return u64([]byte("xs/"), uint64(height)) }
func xvKey(height int64) []byte              { return u64([]byte("xv/"), uint64(height)) }

func xlPrefix(hash []byte) []byte {
	k := make([]byte, 0, 4+len(hash))
	return append(append(append(k, "xl/"...), hash...), '/')
}

func xlKey(hash []byte, issuer string) []byte { return append(xlPrefix(hash), issuer...) }

// position is where an anchored hash is.
type position struct {
	issuer string
	seq    uint64
	index  uint64
	height int64
}

func encodePosition(p position) []byte {
	b := make([]byte, 0, 24)
	return u64(u64(u64(b, p.seq), p.index), uint64(p.height))
}

func decodePosition(issuer string, v []byte) (position, error) {
	if len(v) != 24 {
		return position{}, fmt.Errorf("corrupt index entry of %d bytes", len(v))
	}
	return position{
		issuer: issuer,
		seq:    binary.BigEndian.Uint64(v),
		index:  binary.BigEndian.Uint64(v[8:]),
		height: int64(binary.BigEndian.Uint64(v[16:])),
	}, nil
}

func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	it, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	return it.ValueCopy(nil)
}

// anchoredAt finds where hash is anchored: by issuer, or by any issuer when
// issuer is empty (the first in key order).
func anchoredAt(txn *badger.Txn, hash []byte, issuer string) (position, error) {
	if issuer != "" {
		v, err := getValue(txn, xlKey(hash, issuer))
		if err != nil {
			return position{}, err
		}
		return decodePosition(issuer, v)
	}
	prefix := xlPrefix(hash)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer it.Close()
	it.Rewind()
	if !it.Valid() {
		return position{}, errNotFound
	}
	item := it.Item()
	v, err := item.ValueCopy(nil)
	if err != nil {
		return position{}, err
	}
	return decodePosition(string(item.Key()[len(prefix):]), v)
}

func indexedHeight(db *badger.DB) (int64, error) {
	var h int64
	err := db.View(func(txn *badger.Txn) error {
		v, err := getValue(txn, keyIndexed)
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
