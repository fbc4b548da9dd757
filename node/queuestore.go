package node

import (
	"encoding/binary"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/proof"
)

// queueStore is the durable form of the queue and of the batches in
// flight, in the node's badger database:
//
//	qp/<issuer>/<qseq>      → hash       queued, not yet in a batch
//	qf/<issuer>/<batch seq> → signed tx  a batch cut and not yet final
//
// Every read and write of those keys goes through it, so that another
// layout (an append-only log, say) is a change of this file alone. Each
// method is one badger write batch (atomic unless it outgrows one
// transaction), not synced: the pipeline's sync is the barrier.
type queueStore struct{ db *badger.DB }

// queueEntry is a hash queued for issuer.
type queueEntry struct {
	issuer string
	queued
}

// add writes hashes to the queue.
func (s queueStore) add(entries []queueEntry) error {
	return s.write(func(wb *badger.WriteBatch) error {
		for _, e := range entries {
			if err := wb.Set(qpKey(e.issuer, e.qseq), e.hash[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// drop takes hashes out of the queue.
func (s queueStore) drop(entries []queueEntry) error {
	return s.write(func(wb *badger.WriteBatch) error {
		for _, e := range entries {
			if err := wb.Delete(qpKey(e.issuer, e.qseq)); err != nil {
				return err
			}
		}
		return nil
	})
}

// cut replaces queued hashes by the batch that holds them.
func (s queueStore) cut(issuer string, taken []queued, seq uint64, tx []byte) error {
	return s.write(func(wb *badger.WriteBatch) error {
		for _, e := range taken {
			if err := wb.Delete(qpKey(issuer, e.qseq)); err != nil {
				return err
			}
		}
		return wb.Set(qfKey(issuer, seq), tx)
	})
}

// requeue replaces a batch in flight by its hashes, queued again.
func (s queueStore) requeue(issuer string, seq uint64, back []queued) error {
	return s.write(func(wb *badger.WriteBatch) error {
		for _, e := range back {
			if err := wb.Set(qpKey(issuer, e.qseq), e.hash[:]); err != nil {
				return err
			}
		}
		return wb.Delete(qfKey(issuer, seq))
	})
}

// land takes anchored batches out of flight.
func (s queueStore) land(batches []batchID) error {
	return s.write(func(wb *badger.WriteBatch) error {
		for _, b := range batches {
			if err := wb.Delete(qfKey(b.issuer, b.seq)); err != nil {
				return err
			}
		}
		return nil
	})
}

// batchID names one issuer's batch.
type batchID struct {
	issuer string
	seq    uint64
}

func (s queueStore) write(fill func(*badger.WriteBatch) error) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	if err := fill(wb); err != nil {
		return err
	}
	return wb.Flush()
}

// scan reads the queue, in queue order per issuer, then the batches in
// flight, in sequence order per issuer.
func (s queueStore) scan(onQueued func(issuer string, q queued) error, onFlight func(issuer string, seq uint64, tx []byte) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		if err := scanPrefix(txn, "qp/", func(issuer string, qseq uint64, v []byte) error {
			if len(v) != proof.HashSize {
				return fmt.Errorf("corrupt queue entry %s/%d", issuer, qseq)
			}
			return onQueued(issuer, queued{qseq: qseq, hash: hash(v)})
		}); err != nil {
			return err
		}
		return scanPrefix(txn, "qf/", func(issuer string, seq uint64, v []byte) error {
			return onFlight(issuer, seq, append([]byte(nil), v...))
		})
	})
}

// scanPrefix calls fn for every <prefix><issuer>/<seq> key in order.
func scanPrefix(txn *badger.Txn, prefix string, fn func(issuer string, seq uint64, v []byte) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		issuer, seq, err := splitIssuerSeq(it.Item().Key(), prefix)
		if err != nil {
			return err
		}
		if err := it.Item().Value(func(v []byte) error { return fn(issuer, seq, v) }); err != nil {
			return err
		}
	}
	return nil
}

func splitIssuerSeq(key []byte, prefix string) (string, uint64, error) {
	rest := key[len(prefix):]
	if len(rest) < 10 || rest[len(rest)-9] != '/' {
		return "", 0, fmt.Errorf("corrupt key %q", key)
	}
	return string(rest[:len(rest)-9]), binary.BigEndian.Uint64(rest[len(rest)-8:]), nil
}

func qpKey(issuer string, qseq uint64) []byte { return issuerSeqKey("qp/", issuer, qseq) }
func qfKey(issuer string, seq uint64) []byte  { return issuerSeqKey("qf/", issuer, seq) }
