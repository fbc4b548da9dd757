package node

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// Block retention. A receipt needs, of the blocks, only the signed header
// that proves its batch (header H+1, with the canonical commit block H+2
// carries, and the validators of H+1) and the validator-set links since
// genesis. The indexer keeps those in the node's database as the blocks
// that complete them are indexed, so CometBFT may prune its blocks behind
// the index (retain_blocks): the leaves, already under xb/, no longer
// stay a second time in the block store. The keys it keeps them under
// (xs/, xw/, xv/, xk) are in keys.go.

// keepHeaders stores what block h completes: the signed header of h-1
// when a batch landed at h-2 (block h carries its canonical commit), and
// the link of a validator change after h-2 (it needs header h-1's set,
// served with that same commit). A batch at h makes header h+1 wanted.
// Each write is idempotent, so a crash before the block's index is
// written does it again at catch-up, from blocks the retention kept.
func (ix *indexer) keepHeaders(h int64, hasBatches bool) error {
	var wanted, unbuilt bool
	if h > 2 {
		if err := ix.db.View(func(txn *badger.Txn) error {
			_, err := getValue(txn, xwKey(h-1))
			if err != nil && !errors.Is(err, errNotFound) {
				return err
			}
			wanted = err == nil
			link, err := getValue(txn, xvKey(h-2))
			if err != nil && !errors.Is(err, errNotFound) {
				return err
			}
			unbuilt = err == nil && len(link) == 0
			return nil
		}); err != nil {
			return err
		}
	}
	wb := ix.db.NewWriteBatch()
	defer wb.Cancel()
	if wanted {
		e, err := ix.blocks.SignedHeader(h - 1)
		if err != nil {
			return fmt.Errorf("signed header %d: %w", h-1, err)
		}
		if err := setHeader(wb, h-1, e); err != nil {
			return err
		}
		if err := wb.Delete(xwKey(h - 1)); err != nil {
			return err
		}
	}
	if unbuilt {
		l, err := buildLink(ix.blocks.SignedHeader, h-2)
		if err != nil {
			return fmt.Errorf("validator link %d: %w", h-2, err)
		}
		enc, err := proto.Marshal(l)
		if err != nil {
			return err
		}
		if err := wb.Set(xvKey(h-2), enc); err != nil {
			return err
		}
	}
	if hasBatches {
		if err := wb.Set(xwKey(h+1), []byte{}); err != nil {
			return err
		}
	}
	return wb.Flush()
}

func setHeader(wb *badger.WriteBatch, h int64, e *headerEntry) error {
	v, err := proto.Marshal(&pb.SnapshotHeader{Height: h, SignedHeader: e.signedHeader, Validators: e.validators})
	if err != nil {
		return err
	}
	return wb.Set(xsKey(h), v)
}

// buildLink is the change of validators after h: header h, which names
// the next set by hash, and that set.
func buildLink(header func(int64) (*headerEntry, error), h int64) (*proof.ValidatorSetLink, error) {
	sh, err := header(h)
	if err != nil {
		return nil, err
	}
	next, err := header(h + 1)
	if err != nil {
		return nil, err
	}
	return &proof.ValidatorSetLink{SignedHeader: sh.signedHeader, NextValidators: next.validators}, nil
}

func storeLink(db *badger.DB, h int64, l *proof.ValidatorSetLink) error {
	enc, err := proto.Marshal(l)
	if err != nil {
		return err
	}
	return db.Update(func(txn *badger.Txn) error { return txn.Set(xvKey(h), enc) })
}

// backfillHeaders runs once, before the first catch-up of a node whose
// index predates kept headers: it keeps the header of every batch indexed
// so far (from the block store, which has pruned nothing yet: pruning
// waits for this), wants those whose signing block is not indexed yet,
// and builds the links noted but not built.
func (ix *indexer) backfillHeaders() error {
	done := false
	heights := make(map[int64]bool)
	var links []int64
	if err := ix.db.View(func(txn *badger.Txn) error {
		if _, err := getValue(txn, []byte(keyHeadersKept)); err == nil {
			done = true
			return nil
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixBatchRecord), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			raw, err := store.ValueCopy(it.Item(), nil)
			if err != nil {
				return err
			}
			var rec proof.BatchRecord
			if err := proto.Unmarshal(raw, &rec); err != nil {
				return fmt.Errorf("record %q: %w", it.Item().Key(), err)
			}
			if _, err := getValue(txn, xsKey(rec.Height+1)); errors.Is(err, errNotFound) {
				heights[rec.Height+1] = true
			}
		}
		lt := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixValidatorSet), PrefetchValues: true})
		defer lt.Close()
		for lt.Rewind(); lt.Valid(); lt.Next() {
			if lt.Item().ValueSize() == 0 {
				links = append(links, xvHeight(lt.Item().Key()))
			}
		}
		return nil
	}); err != nil || done {
		return err
	}
	indexed := ix.indexedHeight()
	if len(heights) > 0 {
		ix.log.Info("keeping the signed headers of the batches indexed so far", "heights", len(heights))
	}
	wb := ix.db.NewWriteBatch()
	defer wb.Cancel()
	for h := range heights {
		// Block h+1 signs header h; catch-up keeps it once indexed.
		if h+1 > indexed {
			if err := wb.Set(xwKey(h), []byte{}); err != nil {
				return err
			}
			continue
		}
		e, err := ix.blocks.SignedHeader(h)
		if err != nil {
			return fmt.Errorf("keeping signed header %d: %w", h, err)
		}
		if err := setHeader(wb, h, e); err != nil {
			return err
		}
	}
	for _, h := range links {
		if h+2 > indexed {
			continue // keepHeaders builds it
		}
		l, err := buildLink(ix.blocks.SignedHeader, h)
		if err != nil {
			return fmt.Errorf("validator link %d: %w", h, err)
		}
		enc, err := proto.Marshal(l)
		if err != nil {
			return err
		}
		if err := wb.Set(xvKey(h), enc); err != nil {
			return err
		}
	}
	if err := wb.Set([]byte(keyHeadersKept), []byte{}); err != nil {
		return err
	}
	return wb.Flush()
}

// syncIndexed makes the index of height h durable before the block store
// may prune behind it: a power loss must not leave the index behind
// blocks already pruned, which catch-up would then need. Only a node that
// prunes pays the sync.
func (ix *indexer) syncIndexed(h int64) error {
	if !ix.retaining {
		return nil
	}
	if err := ix.db.Sync(); err != nil {
		return err
	}
	ix.durable.Store(h)
	return nil
}

// retention decides the height below which CometBFT may prune its blocks
// (ResponseCommit.RetainHeight). It is the node's choice, not the state
// machine's: nodes of one chain may retain differently.
type retention struct {
	// blocks is retain_blocks: how many of the newest blocks to keep at
	// least; 0 keeps every block.
	blocks int64
	// durable is the last height indexed and synced.
	durable func() int64
	snaps   *snapshots
}

// height is the retain height after committing h, 0 for none. It keeps:
// the newest retain_blocks blocks; every block from the one before the
// last durably indexed (catch-up after a crash reads the blocks above it,
// and keepHeaders needs header and commit of the two below the block it
// indexes); and, when this node takes snapshots, every block from its
// newest snapshot (or from the height the next one is due, before the
// first), which a peer that restores it fetches by block sync and whose
// headers its light client checks.
func (r *retention) height(h int64) int64 {
	if r == nil || r.blocks <= 0 {
		return 0
	}
	keep := min(h-r.blocks+1, r.durable()-1)
	if r.snaps != nil && r.snaps.interval > 0 {
		keep = min(keep, r.snaps.servedFrom(h))
	}
	if keep <= 1 {
		return 0
	}
	return keep
}
