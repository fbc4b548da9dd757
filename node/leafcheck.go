package node

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/internal/leafstore"
	"github.com/credence-ledger/credence/proof"
)

// The leaf store is plain files: a byte changed in one is read back as the
// batch's without a word, and a lookup that confirms a candidate with one
// 32-byte read would then call the real hash "not anchored" (and queue it
// to be anchored again) or a hash never anchored "already anchored". So no
// read of leaves is answered or used for a duplicate decision before the
// batch is checked: against the CRC-32C its xb/ value holds (the store's
// own check, Location.Matches), or, for a value an earlier version wrote
// without one, against the root of its record (xr/). A mismatch is
// errStoreDamaged (DataLoss at the API) with an ERROR naming the segment
// file and the batch.
//
// A whole read (GetBatch, receipts, snapshot chunks, the positions rebuilt
// at start) checks the bytes it read. A lookup's confirmation checks its
// candidate's batch whole the first time, then remembers the batch as
// sound (leafChecks, bounded) and reads 32 bytes: a duplicate check stays
// one pread. A batch remembered is not checked again until it leaves the
// cache or the node restarts; damage after the check is caught then.
//
// At start, the positions of the batches after the last run file (at most
// index_recent_hashes of them) are rebuilt from their leaves, so those
// batches are checked whole: damage there refuses the start, as the
// positions of that batch cannot be derived any more. Older batches are
// checked when first read (their positions are in run files, written from
// the leaves as they were indexed).
//
// Leaves an earlier version kept inline in badger are covered by badger's
// own checksums.

// defaultLeavesCheckedBatches is leaves_checked_batches' default: with
// full batches, the batches of 4 billion hashes, in about 3 MiB.
const defaultLeavesCheckedBatches = 65536

// leafChecks remembers the batches (by number) whose leaves were checked
// whole, up to max, dropping the oldest first; and the batches found
// damaged, so each is logged once.
type leafChecks struct {
	mu      sync.Mutex
	max     int
	sound   map[uint64]struct{}
	order   []uint64 // sound's keys, a ring whose oldest is at next
	next    int
	damaged map[batchKey]struct{}
}

type batchKey struct {
	issuer string
	seq    uint64
}

func newLeafChecks(max int) *leafChecks {
	return &leafChecks{max: max, sound: make(map[uint64]struct{}), damaged: make(map[batchKey]struct{})}
}

func (c *leafChecks) isSound(num uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.sound[num]
	return ok
}

func (c *leafChecks) markSound(num uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.sound[num]; ok || c.max <= 0 {
		return
	}
	if len(c.order) < c.max {
		c.order = append(c.order, num)
	} else {
		delete(c.sound, c.order[c.next])
		c.order[c.next] = num
		c.next = (c.next + 1) % c.max
	}
	c.sound[num] = struct{}{}
}

// noteDamaged reports whether the batch is newly found damaged.
func (c *leafChecks) noteDamaged(issuer string, seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := batchKey{issuer, seq}
	if _, ok := c.damaged[k]; ok {
		return false
	}
	c.damaged[k] = struct{}{}
	return true
}

// forget drops everything remembered, after the index was wiped: batch
// numbers and sequences are given again.
func (c *leafChecks) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sound, c.order, c.next = make(map[uint64]struct{}), nil, 0
	c.damaged = make(map[batchKey]struct{})
}

// checkLeaves checks hashes, read for batch (issuer, seq) from where its
// xb/ value v says, before anything uses them.
func (li *index) checkLeaves(txn *badger.Txn, issuer string, seq uint64, v, hashes []byte) error {
	loc, inline, err := leafstore.Decode(v)
	if err != nil || inline {
		return leafStoreErr(err)
	}
	if loc.Matches(hashes) {
		return nil
	}
	// No checksum (an earlier version's value), or a mismatch: the root
	// decides, so a damaged checksum alone does not condemn sound leaves.
	raw, err := getValue(txn, xrKey(issuer, seq))
	if errors.Is(err, errNotFound) {
		return li.leavesDamaged(issuer, seq, v, "no record of the batch to check them against")
	}
	if err != nil {
		return err
	}
	var rec proof.BatchRecord
	if err := proto.Unmarshal(raw, &rec); err != nil {
		return fmt.Errorf("%w: the index's record of batch %s/%d does not decode (%v); %s", errStoreDamaged, issuer, seq, err, recoverHint)
	}
	root, err := proof.Root(hashes)
	if err != nil || uint64(len(hashes)) != rec.LeafCount*proof.HashSize || !bytes.Equal(root[:], rec.Root) {
		why := "their root differs from the batch record's"
		if loc.HasCRC {
			why = "their checksum and root differ from those recorded"
		}
		return li.leavesDamaged(issuer, seq, v, why)
	}
	if loc.HasCRC {
		li.log.Warn("leaves log: a batch's leaves make its root but not the checksum its index entry holds; the entry's checksum is damaged, the leaves are served",
			"issuer", issuer, "seq", seq)
	}
	return nil
}

// leavesDamaged logs (once per batch) and returns the damage found in
// batch (issuer, seq)'s leaves.
func (li *index) leavesDamaged(issuer string, seq uint64, v []byte, why string) error {
	loc, _, _ := leafstore.Decode(v)
	file, at := li.leafStore.Locate(loc.Offset)
	if li.checks.noteDamaged(issuer, seq) {
		li.log.Error("leaves log damaged: a batch's leaves do not make its root; reads and duplicate checks that need them answer DataLoss",
			"file", file, "offset", at, "bytes", loc.Length, "issuer", issuer, "seq", seq, "found", why, "recover", recoverHint)
	}
	return fmt.Errorf("%w: the leaves of batch %s/%d in the leaves log (%s, %d bytes at offset %d) do not make its root: %s; %s",
		errStoreDamaged, issuer, seq, file, loc.Length, at, why, recoverHint)
}

// readChecked is the leaves of batch (issuer, seq), whose xb/ value is v,
// checked.
func (li *index) readChecked(txn *badger.Txn, issuer string, seq uint64, v []byte) ([]byte, error) {
	hashes, err := li.leafStore.Read(v)
	if err != nil {
		return nil, leafStoreErr(err)
	}
	if err := li.checkLeaves(txn, issuer, seq, v, hashes); err != nil {
		return nil, err
	}
	return hashes, nil
}
