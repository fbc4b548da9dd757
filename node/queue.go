package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// maxSubmitHashes bounds one Submit request (3.2 MB of hashes).
const maxSubmitHashes = 100_000

var errStopped = errors.New("node is stopping")

// pipeline is the path of a hash through this node: the durable queue, the
// batcher that anchors it, and the index that records where it landed.
type pipeline struct {
	db      *badger.DB
	app     *app.App
	chainID string
	keys    map[string]ed25519.PrivateKey
	cfg     *config
	log     *slog.Logger
	// broadcast hands a signed transaction to the mempool; an error or a
	// non-zero code means it was not accepted now.
	broadcast func(ctx context.Context, tx []byte) (uint32, string, error)

	reqs  chan *submitReq
	wake  chan struct{}
	stopc chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex
	pending  map[string][]queued // issuer → hashes not yet in a batch, in order
	nextQ    map[string]uint64
	inflight map[string]map[uint64]*inflight // issuer → batch seq → batch
	// waiting holds every hash queued or in flight, per issuer: the
	// duplicate check for hashes not yet anchored. It is rebuilt from disk at
	// start, so the queue stores one key per hash.
	waiting map[string]map[[32]byte]struct{}
}

type queued struct {
	qseq uint64
	hash [32]byte
}

type inflight struct {
	tx     []byte
	hashes []byte
	root   [32]byte
	sentAt time.Time
}

func newInflight(tx, hashes []byte, sentAt time.Time) (*inflight, error) {
	root, err := proof.Root(hashes)
	if err != nil {
		return nil, err
	}
	return &inflight{tx: tx, hashes: hashes, root: root, sentAt: sentAt}, nil
}

type submitReq struct {
	issuer string
	hashes []byte
	base   uint64 // index of the first hash in the caller's numbering
	done   chan submitResult
}

type submitResult struct {
	queued uint64
	known  []*pb.Known
	err    error
}

func newPipeline(db *badger.DB, a *app.App, chainID string, keys map[string]ed25519.PrivateKey, cfg *config, log *slog.Logger) *pipeline {
	return &pipeline{
		db: db, app: a, chainID: chainID, keys: keys, cfg: cfg, log: log,
		reqs:     make(chan *submitReq, 1024),
		wake:     make(chan struct{}, 1),
		stopc:    make(chan struct{}),
		pending:  make(map[string][]queued),
		nextQ:    make(map[string]uint64),
		inflight: make(map[string]map[uint64]*inflight),
		waiting:  make(map[string]map[[32]byte]struct{}),
	}
}

// load reads the queue and the batches in flight left by the last run.
func (p *pipeline) load() error {
	return p.db.View(func(txn *badger.Txn) error {
		if err := scanPrefix(txn, "qp/", func(issuer string, qseq uint64, v []byte) error {
			if len(v) != 32 {
				return fmt.Errorf("corrupt queue entry %s/%d", issuer, qseq)
			}
			q := queued{qseq: qseq}
			copy(q.hash[:], v)
			p.pending[issuer] = append(p.pending[issuer], q)
			p.nextQ[issuer] = qseq + 1
			p.wait(issuer)[q.hash] = struct{}{}
			return nil
		}); err != nil {
			return err
		}
		return scanPrefix(txn, "qf/", func(issuer string, seq uint64, v []byte) error {
			tx := append([]byte(nil), v...)
			hashes, err := txHashes(tx)
			if err != nil {
				return fmt.Errorf("batch %s/%d in flight: %w", issuer, seq, err)
			}
			f, err := newInflight(tx, hashes, time.Time{})
			if err != nil {
				return fmt.Errorf("batch %s/%d in flight: %w", issuer, seq, err)
			}
			p.flight(issuer)[seq] = f
			w := p.wait(issuer)
			for j := 0; j+32 <= len(hashes); j += 32 {
				w[[32]byte(hashes[j:j+32])] = struct{}{}
			}
			return nil
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

func txHashes(raw []byte) ([]byte, error) {
	var tx pb.Tx
	if err := proto.Unmarshal(raw, &tx); err != nil {
		return nil, err
	}
	var body pb.TxBody
	if err := proto.Unmarshal(tx.Body, &body); err != nil {
		return nil, err
	}
	ab := body.GetAnchorBatch()
	if ab == nil {
		return nil, errors.New("not an anchor batch")
	}
	return ab.Hashes, nil
}

func (p *pipeline) wait(issuer string) map[[32]byte]struct{} {
	m := p.waiting[issuer]
	if m == nil {
		m = make(map[[32]byte]struct{})
		p.waiting[issuer] = m
	}
	return m
}

// isWaiting reports whether hash is queued or in flight for issuer (any
// issuer of this node when issuer is empty).
func (p *pipeline) isWaiting(hash []byte, issuer string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for is, w := range p.waiting {
		if issuer != "" && is != issuer {
			continue
		}
		if _, ok := w[[32]byte(hash)]; ok {
			return true
		}
	}
	return false
}

func (p *pipeline) flight(issuer string) map[uint64]*inflight {
	m := p.inflight[issuer]
	if m == nil {
		m = make(map[uint64]*inflight)
		p.inflight[issuer] = m
	}
	return m
}

func (p *pipeline) start() {
	p.wg.Add(2)
	go p.commitLoop()
	go p.batchLoop()
}

func (p *pipeline) stop() {
	close(p.stopc)
	p.wg.Wait()
}

// submit queues hashes for issuer and returns once they are on disk.
func (p *pipeline) submit(ctx context.Context, issuer string, hashes []byte, base uint64) (submitResult, error) {
	r := &submitReq{issuer: issuer, hashes: hashes, base: base, done: make(chan submitResult, 1)}
	select {
	case p.reqs <- r:
	case <-p.stopc:
		return submitResult{}, errStopped
	case <-ctx.Done():
		return submitResult{}, ctx.Err()
	}
	// Once handed over, the request is written whatever the caller does, so
	// wait for it: the answer must say what is durable.
	res := <-r.done
	return res, res.err
}

// commitLoop is the group commit: every request waiting when a write starts
// shares its one sync.
func (p *pipeline) commitLoop() {
	defer p.wg.Done()
	for {
		var group []*submitReq
		select {
		case r := <-p.reqs:
			group = append(group, r)
		case <-p.stopc:
			p.drainRequests()
			return
		}
	collect:
		for len(group) < 4096 {
			select {
			case r := <-p.reqs:
				group = append(group, r)
			default:
				break collect
			}
		}
		p.commitGroup(group)
	}
}

func (p *pipeline) drainRequests() {
	for {
		select {
		case r := <-p.reqs:
			p.commitGroup([]*submitReq{r})
		default:
			return
		}
	}
}

func (p *pipeline) commitGroup(group []*submitReq) {
	results := make([]submitResult, len(group))
	type candidate struct {
		req    int
		issuer string
		idx    uint64
		hash   [32]byte
	}
	// First the hashes already waiting here, then, in a read snapshot taken
	// after that check, those already anchored: the indexer records a
	// hash's position before it stops waiting, so no hash slips between.
	var maybe []candidate
	p.mu.Lock()
	for i, r := range group {
		w := p.wait(r.issuer)
		for j := 0; j+32 <= len(r.hashes); j += 32 {
			h := [32]byte(r.hashes[j : j+32])
			idx := r.base + uint64(j/32)
			if _, ok := w[h]; ok {
				results[i].known = append(results[i].known, &pb.Known{Index: idx, State: pb.HashState_HASH_STATE_PENDING})
				continue
			}
			// Claimed now so a repeat within the group is seen as waiting.
			w[h] = struct{}{}
			maybe = append(maybe, candidate{req: i, issuer: r.issuer, idx: idx, hash: h})
		}
	}
	p.mu.Unlock()

	var fresh []candidate
	wb := p.db.NewWriteBatch()
	defer wb.Cancel()
	next := make(map[string]uint64)
	var anchored []candidate
	err := p.db.View(func(txn *badger.Txn) error {
		for _, c := range maybe {
			pos, err := anchoredAt(txn, c.hash[:], c.issuer)
			if err == nil {
				results[c.req].known = append(results[c.req].known, &pb.Known{Index: c.idx, State: pb.HashState_HASH_STATE_ANCHORED,
					Issuer: pos.issuer, BatchSeq: pos.seq, LeafIndex: pos.index, Height: pos.height})
				anchored = append(anchored, c)
				continue
			} else if !errors.Is(err, errNotFound) {
				return err
			}
			fresh = append(fresh, c)
		}
		return nil
	})
	// Only this loop and requeue assign queue positions; requeue holds the
	// lock for its whole write, so positions never collide.
	queuedAt := make([]uint64, len(fresh))
	p.mu.Lock()
	for i, c := range fresh {
		if _, ok := next[c.issuer]; !ok {
			next[c.issuer] = p.nextQ[c.issuer]
		}
		queuedAt[i] = next[c.issuer]
		next[c.issuer]++
	}
	for is, n := range next {
		p.nextQ[is] = n
	}
	p.mu.Unlock()
	if err == nil {
		for i, c := range fresh {
			if err = wb.Set(qpKey(c.issuer, queuedAt[i]), c.hash[:]); err != nil {
				break
			}
		}
	}
	if err == nil && len(fresh) > 0 {
		if err = wb.Flush(); err == nil {
			err = p.db.Sync()
		}
	}
	p.mu.Lock()
	for _, c := range anchored {
		delete(p.waiting[c.issuer], c.hash)
	}
	if err != nil {
		for _, c := range fresh {
			delete(p.waiting[c.issuer], c.hash)
		}
		p.mu.Unlock()
		p.log.Error("queue write failed; requests refused", "err", err)
		for _, r := range group {
			r.done <- submitResult{err: fmt.Errorf("queue write: %w", err)}
		}
		return
	}
	full := false
	for i, c := range fresh {
		p.pending[c.issuer] = append(p.pending[c.issuer], queued{qseq: queuedAt[i], hash: c.hash})
		if len(p.pending[c.issuer]) >= p.cfg.BatchMaxLeaves {
			full = true
		}
		results[c.req].queued++
	}
	p.mu.Unlock()
	metricSubmitted.Add(float64(len(fresh)))
	for i, r := range group {
		r.done <- results[i]
	}
	if full {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// batchLoop cuts batches every interval, or sooner when an issuer's queue is full.
func (p *pipeline) batchLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.BatchInterval.Duration)
	defer t.Stop()
	for {
		select {
		case <-p.stopc:
			return
		case <-t.C:
		case <-p.wake:
		}
		p.tick()
	}
}

func (p *pipeline) issuers() []string {
	out := make([]string, 0, len(p.keys))
	for is := range p.keys {
		out = append(out, is)
	}
	sort.Strings(out)
	return out
}

func (p *pipeline) tick() {
	for _, issuer := range p.issuers() {
		if err := p.settle(issuer); err != nil {
			p.log.Error("checking batches in flight", "issuer", issuer, "err", err)
		}
		for {
			more, err := p.cut(issuer)
			if err != nil {
				p.log.Error("cutting batch", "issuer", issuer, "err", err)
				break
			}
			if !more {
				break
			}
		}
	}
	p.mu.Lock()
	var depth int
	for _, q := range p.pending {
		depth += len(q)
	}
	p.mu.Unlock()
	metricQueueDepth.Set(float64(depth))
}

// nextSeq is above both the committed sequence and every batch in flight.
func (p *pipeline) nextSeq(issuer string) (uint64, error) {
	last, err := p.app.LastSequence(issuer)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	for s := range p.inflight[issuer] {
		last = max(last, s)
	}
	p.mu.Unlock()
	return last + 1, nil
}

// cut makes one batch of issuer's queue, writes it as in flight and sends
// it. It reports whether a full batch was cut, so more may wait.
func (p *pipeline) cut(issuer string) (bool, error) {
	p.mu.Lock()
	q := p.pending[issuer]
	n := min(len(q), p.cfg.BatchMaxLeaves)
	take := q[:n:n]
	p.mu.Unlock()
	if n == 0 {
		return false, nil
	}
	seq, err := p.nextSeq(issuer)
	if err != nil {
		return false, err
	}
	hashes := make([]byte, 0, n*32)
	for _, e := range take {
		hashes = append(hashes, e.hash[:]...)
	}
	tx, err := app.NewAnchorBatch(p.chainID, issuer, seq, hashes, p.keys[issuer])
	if err != nil {
		return false, err
	}
	wb := p.db.NewWriteBatch()
	defer wb.Cancel()
	for _, e := range take {
		if err := wb.Delete(qpKey(issuer, e.qseq)); err != nil {
			return false, err
		}
	}
	if err := wb.Set(qfKey(issuer, seq), tx); err != nil {
		return false, err
	}
	if err := wb.Flush(); err != nil {
		return false, err
	}
	if err := p.db.Sync(); err != nil {
		return false, err
	}
	f, err := newInflight(tx, hashes, time.Now())
	if err != nil {
		return false, err
	}
	p.mu.Lock()
	p.pending[issuer] = p.pending[issuer][n:]
	p.flight(issuer)[seq] = f
	p.mu.Unlock()
	p.send(issuer, seq, tx)
	metricBatches.Inc()
	return n == p.cfg.BatchMaxLeaves, nil
}

func (p *pipeline) send(issuer string, seq uint64, tx []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, log, err := p.broadcast(ctx, tx)
	switch {
	case err != nil:
		// Already in the mempool's cache, or the mempool is full: the batch
		// stays in flight and settle decides its fate from committed state.
		p.log.Info("batch not accepted by mempool now", "issuer", issuer, "seq", seq, "err", err)
	case code != 0:
		p.log.Warn("batch rejected by CheckTx", "issuer", issuer, "seq", seq, "code", code, "log", log)
	default:
		p.log.Debug("batch sent", "issuer", issuer, "seq", seq, "bytes", len(tx))
	}
}

// settle decides the batches in flight whose fate committed state now
// tells: a sequence at or below the issuer's last whose record in state is
// not this batch's root can never be anchored, so its hashes go back to the
// queue. One still open is
// sent again once it has waited RebroadcastAfter, as the mempool may have
// lost it (restart, eviction).
func (p *pipeline) settle(issuer string) error {
	p.mu.Lock()
	seqs := make([]uint64, 0, len(p.inflight[issuer]))
	for s := range p.inflight[issuer] {
		seqs = append(seqs, s)
	}
	p.mu.Unlock()
	if len(seqs) == 0 {
		return nil
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	last, err := p.app.LastSequence(issuer)
	if err != nil {
		return err
	}
	for _, seq := range seqs {
		p.mu.Lock()
		f := p.inflight[issuer][seq]
		p.mu.Unlock()
		if f == nil {
			continue // indexed meanwhile
		}
		if seq <= last {
			rec, _, err := p.app.Batch(issuer, seq)
			if err == nil && bytes.Equal(rec.Root, f.root[:]) {
				continue // anchored; the indexer clears it
			}
			if err != nil && !errors.Is(err, app.ErrNotFound) {
				return err
			}
			if err := p.requeue(issuer, seq, f); err != nil {
				return err
			}
			continue
		}
		if time.Since(f.sentAt) >= p.cfg.RebroadcastAfter.Duration {
			p.mu.Lock()
			f.sentAt = time.Now()
			p.mu.Unlock()
			p.send(issuer, seq, f.tx)
		}
	}
	return nil
}

func (p *pipeline) requeue(issuer string, seq uint64, f *inflight) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	wb := p.db.NewWriteBatch()
	defer wb.Cancel()
	next := p.nextQ[issuer]
	var back []queued
	for j := 0; j+32 <= len(f.hashes); j += 32 {
		q := queued{qseq: next}
		next++
		copy(q.hash[:], f.hashes[j:j+32])
		if err := wb.Set(qpKey(issuer, q.qseq), q.hash[:]); err != nil {
			return err
		}
		back = append(back, q)
	}
	if err := wb.Delete(qfKey(issuer, seq)); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	if err := p.db.Sync(); err != nil {
		return err
	}
	p.nextQ[issuer] = next
	p.pending[issuer] = append(back, p.pending[issuer]...)
	delete(p.inflight[issuer], seq)
	p.log.Warn("batch can no longer be anchored; hashes queued again", "issuer", issuer, "seq", seq, "hashes", len(back))
	return nil
}

// index records the batches of one committed block. The leaves' positions
// are written and flushed before the hashes stop waiting, so a reader always
// finds a hash in one place or the other.
func (p *pipeline) index(height int64, batches []app.CommittedBatch) error {
	wb := p.db.NewWriteBatch()
	defer wb.Cancel()
	for _, b := range batches {
		r := b.Record
		if err := wb.Set(xbKey(r.Issuer, r.Seq), b.Hashes); err != nil {
			return err
		}
		if err := wb.Set(xrKey(r.Issuer, r.Seq), b.RecordBytes); err != nil {
			return err
		}
		if err := wb.Set(xpKey(r.Issuer, r.Seq), b.Proof); err != nil {
			return err
		}
		for j := 0; j+32 <= len(b.Hashes); j += 32 {
			pos := encodePosition(position{seq: r.Seq, index: uint64(j / 32), height: r.Height})
			if err := wb.Set(xlKey(b.Hashes[j:j+32], r.Issuer), pos); err != nil {
				return err
			}
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	wb2 := p.db.NewWriteBatch()
	defer wb2.Cancel()
	var anchored int
	for _, b := range batches {
		r := b.Record
		anchored += int(r.LeafCount)
		if _, ours := p.keys[r.Issuer]; !ours {
			continue
		}
		if err := wb2.Delete(qfKey(r.Issuer, r.Seq)); err != nil {
			return err
		}
	}
	if err := wb2.Set(keyIndexed, u64(nil, uint64(height))); err != nil {
		return err
	}
	if err := wb2.Flush(); err != nil {
		return err
	}
	p.mu.Lock()
	for _, b := range batches {
		if m := p.inflight[b.Record.Issuer]; m != nil {
			delete(m, b.Record.Seq)
		}
		if w := p.waiting[b.Record.Issuer]; w != nil {
			for j := 0; j+32 <= len(b.Hashes); j += 32 {
				delete(w, [32]byte(b.Hashes[j:j+32]))
			}
		}
	}
	p.mu.Unlock()
	metricAnchored.Add(float64(anchored))
	metricIndexedHeight.Set(float64(height))
	return nil
}

// reconcile drops from the queue any hash the index already holds: a
// batch cut that was lost in a crash after its transaction went out.
func (p *pipeline) reconcile() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	wb := p.db.NewWriteBatch()
	defer wb.Cancel()
	var dropped int
	err := p.db.View(func(txn *badger.Txn) error {
		for issuer, q := range p.pending {
			kept := q[:0]
			for _, e := range q {
				if _, err := getValue(txn, xlKey(e.hash[:], issuer)); err == nil {
					if err := wb.Delete(qpKey(issuer, e.qseq)); err != nil {
						return err
					}
					delete(p.waiting[issuer], e.hash)
					dropped++
					continue
				} else if !errors.Is(err, errNotFound) {
					return err
				}
				kept = append(kept, e)
			}
			p.pending[issuer] = kept
		}
		return nil
	})
	if err != nil {
		return err
	}
	if dropped > 0 {
		p.log.Warn("queue held hashes already anchored; dropped them", "count", dropped)
	}
	return wb.Flush()
}

func (p *pipeline) queueDepth() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n uint64
	for _, q := range p.pending {
		n += uint64(len(q))
	}
	for _, m := range p.inflight {
		for _, f := range m {
			n += uint64(len(f.hashes) / 32)
		}
	}
	return n
}
