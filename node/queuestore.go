package node

import (
	"errors"
	"fmt"
	"sort"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/queuelog"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
)

// queueStore is the durable form of the queue and of the batches in
// flight:
//
//	data/queue/<n>.log      hashes queued (internal/queuelog), one record per write
//	qf/<issuer>/<batch seq> → signed tx  a batch cut and not yet final (badger)
//
// Every read and write of either goes through it. The log is appended and
// synced by add and requeue themselves: an acknowledgement waits for
// nothing else. The badger writes (cut, requeue, land) are not synced: the
// pipeline's sync is their barrier, and the log's segments whose hashes
// are all cut are deleted only after it (collect).
type queueStore struct {
	db  *badger.DB
	log *queuelog.Log
}

// queueLogOptions is the queue log as cfg shapes it; the mark is
// newQueueStore's.
func queueLogOptions(cfg *config) queuelog.Options {
	return queuelog.Options{
		SegmentSize:     int64(cfg.QueueSegmentMB) << 20,
		MaxRecordHashes: queueRecordHashes(cfg),
	}
}

// queueRecordHashes is the most hashes one record holds: a group commit
// never queues more than max_queued_hashes, a requeue no more than a batch,
// and no single request more than maxSubmitHashes. Appends split anything
// larger, so replay may take a longer length for damage. Lowering
// max_queued_hashes or batch_max_leaves lowers the bound for records
// already written: the refusal says so.
func queueRecordHashes(c *config) int {
	return max(c.Memory.MaxQueuedHashes, c.BatchMaxLeaves, maxSubmitHashes)
}

// newQueueStore is the queue of db with its log in dir, its mark kept in
// db.
func newQueueStore(db *badger.DB, dir string, opts queuelog.Options) queueStore {
	opts.SaveMark = func(m []byte, durable bool) error {
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyQueueMark), m) }); err != nil {
			return err
		}
		if durable {
			return db.Sync()
		}
		return nil
	}
	return queueStore{db, queuelog.New(dir, opts)}
}

// queueEntry is a hash queued for issuer.
type queueEntry struct {
	issuer string
	queued
}

// add appends hashes to the queue and syncs them; it returns the log
// segment that holds them.
func (s queueStore) add(entries []queuelog.Entry) (uint64, error) {
	return s.log.Append(entries)
}

// drop takes hashes out of the queue, when the index already holds them.
func (s queueStore) drop(entries []queueEntry) {
	for _, e := range entries {
		s.log.Release(e.seg, 1)
	}
}

// release counts taken out of the queue, a run of one segment at a time.
func (s queueStore) release(taken []queued) {
	for i := 0; i < len(taken); {
		j := i + 1
		for j < len(taken) && taken[j].seg == taken[i].seg {
			j++
		}
		s.log.Release(taken[i].seg, j-i)
		i = j
	}
}

// cut writes the batch that holds queued hashes as in flight and takes them
// out of the queue. Their segments may go only once the batch is synced:
// collect after the pipeline's sync.
func (s queueStore) cut(issuer string, taken []queued, seq uint64, tx []byte) error {
	if err := s.write(func(wb *badger.WriteBatch) error { return wb.Set(qfKey(issuer, seq), tx) }); err != nil {
		return err
	}
	s.release(taken)
	// The sync that makes the batch durable makes the mark durable too.
	// Without the mark the cut stands all the same: collect keeps the
	// segments, and says why, until a later mark is written.
	_ = s.log.Mark()
	return nil
}

// mark records the log's segments and their synced lengths in the
// database, for the next sync to make durable.
func (s queueStore) mark() error { return s.log.Mark() }

// requeue replaces a batch in flight by its hashes, queued again: they are
// appended to the log and synced before the batch is deleted, so a crash
// between the two finds them in flight, and load drops the log's copy.
// It sets the segment of each entry of back.
func (s queueStore) requeue(issuer string, seq uint64, back []queued) error {
	entries := make([]queuelog.Entry, len(back))
	for i, q := range back {
		entries[i] = queuelog.Entry{Issuer: issuer, Seq: q.qseq, Hash: q.hash}
	}
	seg, err := s.log.Append(entries)
	if err != nil {
		return err
	}
	for i := range back {
		back[i].seg = seg
	}
	return s.write(func(wb *badger.WriteBatch) error { return wb.Delete(qfKey(issuer, seq)) })
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

// collect deletes the log segments none of whose hashes is queued any
// more. Call it only after a sync that followed the cuts.
func (s queueStore) collect() error { return s.log.Collect() }

// close releases the log's open segment.
func (s queueStore) close() error { return s.log.Close() }

// stop marks the log as it is at a clean stop, for the database's closing
// sync, and closes it: the whole log is then vouched for at the next
// start.
func (s queueStore) stop() error {
	return errors.Join(s.log.Mark(), s.log.Close())
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

// scan reads the batches in flight, in sequence order per issuer, then the
// queue, in queue order per issuer. onQueued reports whether it keeps the
// hash (false for one already in flight: a requeue or a cut that the crash
// left half done). It returns what replaying the log found to repair.
func (s queueStore) scan(onFlight func(issuer string, seq uint64, tx []byte) error, onQueued func(issuer string, q queued) (bool, error)) (*queuelog.Replayed, error) {
	var mark *queuelog.Mark
	if err := s.db.View(func(txn *badger.Txn) error {
		if err := scanPrefix(txn, prefixInFlight, onFlight); err != nil {
			return err
		}
		v, err := getValue(txn, []byte(keyQueueMark))
		if errors.Is(err, errNotFound) {
			return nil // written first by this version
		}
		if err != nil {
			return err
		}
		if mark, err = queuelog.DecodeMark(v); err != nil {
			return fmt.Errorf("%w: %v; restore data/credence and data/queue from a backup", errStoreDamaged, err)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// The log holds every hash ever queued that its segment still covers,
	// cut or not; a hash requeued appears again later with a higher
	// position, and only its last entry counts.
	last := make(map[string]map[hash]queued)
	found, err := s.log.Replay(mark, func(e queuelog.Entry, seg uint64) {
		m := last[e.Issuer]
		if m == nil {
			m = make(map[hash]queued)
			last[e.Issuer] = m
		}
		m[e.Hash] = queued{qseq: e.Seq, hash: e.Hash, seg: seg}
	})
	if errors.Is(err, queuelog.ErrDamaged) {
		return nil, fmt.Errorf("%w: %w", errStoreDamaged, err)
	}
	if err != nil {
		return nil, err
	}
	held := make(map[uint64]int)
	issuers := make([]string, 0, len(last))
	for is := range last {
		issuers = append(issuers, is)
	}
	sort.Strings(issuers)
	for _, is := range issuers {
		q := make([]queued, 0, len(last[is]))
		for _, e := range last[is] {
			q = append(q, e)
		}
		sort.Slice(q, func(i, j int) bool { return q[i].qseq < q[j].qseq })
		for _, e := range q {
			keep, err := onQueued(is, e)
			if err != nil {
				return nil, err
			}
			if keep {
				held[e.seg]++
			}
		}
	}
	for seg, n := range held {
		s.log.Hold(seg, n)
	}
	return found, nil
}

// migrate moves a queue an earlier version kept in badger, one key
// qp/<issuer>/<qseq> per hash, into the log: appended and synced before
// the keys go, so a crash between the two leaves a hash twice, which scan
// reads once.
func (s queueStore) migrate(sync func() error) error {
	var entries []queuelog.Entry
	if err := s.db.View(func(txn *badger.Txn) error {
		return scanPrefix(txn, prefixOldQueue, func(issuer string, qseq uint64, v []byte) error {
			if len(v) != proof.HashSize {
				return fmt.Errorf("corrupt queue entry %s/%d", issuer, qseq)
			}
			entries = append(entries, queuelog.Entry{Issuer: issuer, Seq: qseq, Hash: hash(v)})
			return nil
		})
	}); err != nil || len(entries) == 0 {
		return err
	}
	if _, err := s.log.Append(entries); err != nil {
		return err
	}
	if err := s.write(func(wb *badger.WriteBatch) error {
		for _, e := range entries {
			if err := wb.Delete(qpKey(e.Issuer, e.Seq)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return sync()
}

// scanPrefix calls fn for every <prefix><issuer>/<seq> key in order, with
// a copy of its value fn may keep, read through store.ValueCopy: a value
// badger could not read from its value log is an error, not empty.
func scanPrefix(txn *badger.Txn, prefix string, fn func(issuer string, seq uint64, v []byte) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		issuer, seq, err := splitIssuerSeq(it.Item().Key(), prefix)
		if err != nil {
			return err
		}
		v, err := store.ValueCopy(it.Item(), nil)
		if err != nil {
			return err
		}
		if err := fn(issuer, seq, v); err != nil {
			return err
		}
	}
	return nil
}
