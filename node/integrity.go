package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/proof"
)

var (
	// errStoreDamaged marks a store that does not hold what another store
	// says it must: the node refuses to start on it rather than serve
	// answers it cannot prove.
	errStoreDamaged = errors.New("store damaged")
	// errBlockNotHeld is a block below the block store's base: a node
	// restored by state sync (or with pruned blocks) never had it.
	errBlockNotHeld = errors.New("block not held by this node")
)

const recoverHint = `recover by state sync into a fresh data directory (docs/operations.md, "Recovering a damaged store")`

// checkLastBatch is the check at start that the state, the index and the
// block store agree, on the last batch indexed: the index holds its record
// as the state does, its leaves hash to the record's root, their positions
// point back to it, and the block that anchored it (when this node holds
// that block) carries those leaves. Badger's checksums catch a corrupt
// value when it is read; this catches a store that lost or kept writes the
// others did not.
func (ix *indexer) checkLastBatch() error {
	var issuer string
	var seq uint64
	var rec, leaves []byte
	err := ix.db.View(func(txn *badger.Txn) error {
		last, err := getValue(txn, []byte(keyLastBatch))
		if errors.Is(err, errNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(last) < 9 {
			return fmt.Errorf("index: last batch marker of %d bytes", len(last))
		}
		seq, issuer = binary.BigEndian.Uint64(last[:8]), string(last[8:])
		if rec, err = getValue(txn, xrKey(issuer, seq)); err != nil {
			return fmt.Errorf("index: record of batch %s/%d: %w", issuer, seq, err)
		}
		if leaves, err = ix.index.leavesOf(txn, issuer, seq); err != nil {
			return fmt.Errorf("index: leaves of batch %s/%d: %w", issuer, seq, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %v; %s", errStoreDamaged, err, recoverHint)
	}
	if issuer == "" {
		return nil
	}
	state, err := ix.blocks.ProveBatch(issuer, seq)
	if err != nil {
		return fmt.Errorf("%w: the state has no batch %s/%d, which the index holds (%v); %s", errStoreDamaged, issuer, seq, err, recoverHint)
	}
	if !bytes.Equal(state.RecordBytes, rec) {
		return fmt.Errorf("%w: the index's record of batch %s/%d differs from the state's; %s", errStoreDamaged, issuer, seq, recoverHint)
	}
	root, err := proof.Root(leaves)
	if err != nil || uint64(len(leaves)) != state.Record.LeafCount*proof.HashSize || !bytes.Equal(root[:], state.Record.Root) {
		return fmt.Errorf("%w: the index holds %d bytes of leaves for batch %s/%d, which do not make its root (%d hashes); %s", errStoreDamaged, len(leaves), issuer, seq, state.Record.LeafCount, recoverHint)
	}
	// The first and the last leaf's positions point back to the batch.
	n := state.Record.LeafCount
	if err := ix.db.View(func(txn *badger.Txn) error {
		for _, i := range []uint64{0, n - 1} {
			pos, err := anchoredAt(txn, ix.index, leaves[i*proof.HashSize:(i+1)*proof.HashSize], issuer)
			if err != nil || pos.seq != seq || pos.index != i {
				return fmt.Errorf("index: leaf %d of batch %s/%d has position %+v (%v)", i, issuer, seq, pos, err)
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("%w: %v; %s", errStoreDamaged, err, recoverHint)
	}
	txs, err := ix.blocks.BlockTxs(state.Record.Height)
	if errors.Is(err, errBlockNotHeld) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v; %s", errStoreDamaged, err, recoverHint)
	}
	for _, raw := range txs {
		if a, err := decodeAnchor(raw); err == nil && a.signer == issuer && a.seq == seq && bytes.Equal(a.hashes, leaves) {
			return nil
		}
	}
	return fmt.Errorf("%w: block %d of the block store does not carry batch %s/%d, which the state records at that height; %s", errStoreDamaged, state.Record.Height, issuer, seq, recoverHint)
}
