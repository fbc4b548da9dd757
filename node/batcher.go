package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/proof"
)

// The batcher: on each tick it settles the batches in flight and cuts the
// queue into new ones, each written as in flight before it is sent.

// broadcastTimeout bounds one hand-over to the mempool; a batch not
// accepted in time stays in flight and is sent again.
const broadcastTimeout = 30 * time.Second

// batchLoop ticks at every tick of ticks, or sooner when an issuer's queue
// holds a full batch.
func (p *pipeline) batchLoop(ticks <-chan time.Time) {
	defer p.wg.Done()
	for {
		select {
		case <-p.stopc:
			return
		case <-ticks:
		case <-p.wake:
		}
		p.tick()
	}
}

// tick settles each issuer's batches in flight, then cuts its queue into
// as many batches as it fills; nothing of an issuer whose key cannot sign.
func (p *pipeline) tick() {
	for _, issuer := range p.issuers() {
		if !p.keyUsable(issuer) {
			continue
		}
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

// keyUsable checks that issuer's configured key can still sign on chain.
// Once it cannot (rotated away, the issuer suspended or unknown), nothing
// cut or sent could be anchored: Submit is refused for the issuer (the
// pipeline's liveness) and its batches wait, until the key can sign again
// or the operator configures the current key and restarts the node.
func (p *pipeline) keyUsable(issuer string) bool {
	err := p.chain.CanSign(issuer, p.keys[issuer].Public().(ed25519.PublicKey))
	if err != nil && !errors.Is(err, app.ErrUnauthorized) && !errors.Is(err, app.ErrUnknown) {
		// A failed read of state tells nothing of the key.
		p.log.Error("checking the issuer's key on chain", "issuer", issuer, "err", err)
		return true
	}
	was := p.live.keyProblem(issuer)
	if err == nil {
		if was != nil {
			p.log.Info("issuer key valid on chain again; taking submissions", "issuer", issuer)
			p.live.setKey(issuer, nil)
		}
		return true
	}
	if was == nil {
		p.log.Warn("issuer key not valid on chain; submissions for it are refused", "issuer", issuer, "err", err)
	}
	p.live.setKey(issuer, fmt.Errorf("%w: issuer %q: %v; submissions for it are refused until its configured key can sign: "+
		"if the key was rotated, put the new key file in app.toml ([[issuer]] key_file) and restart the node "+
		"(its batches in flight are then signed again with it)", errKeyNotValid, issuer, err))
	return false
}

// nextSeq is above both the committed sequence and every batch in flight.
func (p *pipeline) nextSeq(issuer string) (uint64, error) {
	last, err := p.chain.LastSequence(issuer)
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

// cut makes one batch of issuer's queue and writes it as in flight in place
// of its queue entries, and sends it only once that is synced: a crash
// after the send finds the batch in flight, not its hashes in the queue.
// It reports whether a full batch was cut, so more may wait.
func (p *pipeline) cut(issuer string) (bool, error) {
	began := time.Now()
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
	hashes := make([]byte, 0, n*proof.HashSize)
	for _, e := range take {
		hashes = append(hashes, e.hash[:]...)
	}
	tx, root, err := app.NewAnchorBatch(p.chainID, issuer, seq, hashes, p.keys[issuer])
	if err != nil {
		return false, err
	}
	f := &inflight{tx: tx, hashes: hashes, root: root}
	f.oldest = take[0].at
	if err := p.queue.cut(issuer, take, seq, tx); err != nil {
		return false, err
	}
	// Memory follows the database at once; a failed sync leaves the batch
	// in flight and unsent, for the next settle to send.
	p.mu.Lock()
	p.pending[issuer] = p.pending[issuer][n:]
	p.flight(issuer)[seq] = f
	p.mu.Unlock()
	if err := p.sync(); err != nil {
		return false, err
	}
	if err := p.queue.collect(); err != nil {
		// The batch is durable; a segment left behind goes at a later cut.
		p.log.Warn("deleting spent queue log segments", "err", err)
	}
	p.mu.Lock()
	f.sentAt = p.now()
	p.mu.Unlock()
	metricBatchBuild.Observe(time.Since(began).Seconds())
	metricBatchSize.Observe(float64(n))
	p.send(issuer, seq, tx)
	metricBatches.Inc()
	return n == p.cfg.BatchMaxLeaves, nil
}

// send hands a batch to the mempool. Its outcome is only logged: the batch
// stays in flight and settle decides its fate from committed state, but
// for one signed with another key than the configured one that CheckTx
// refuses as not authorised (the key was rotated): that one can never be
// anchored, and send reports it stale, for settle to requeue its hashes
// and cut them anew, signed with the configured key, at once.
func (p *pipeline) send(issuer string, seq uint64, tx []byte) (stale bool) {
	ctx, cancel := context.WithTimeout(context.Background(), broadcastTimeout)
	defer cancel()
	code, log, err := p.chain.Broadcast(ctx, tx)
	switch {
	case err != nil:
		// Already in the mempool's cache, or the mempool is full.
		p.log.Info("batch not accepted by mempool now", "issuer", issuer, "seq", seq, "err", err)
	case code == app.CodeUnauthorized && !p.signedWithConfiguredKey(issuer, tx):
		p.log.Warn("batch signed with a key no longer valid; signing it again with the configured key", "issuer", issuer, "seq", seq, "log", log)
		return true
	case code != 0:
		p.log.Warn("batch rejected by CheckTx", "issuer", issuer, "seq", seq, "code", code, "log", log)
	default:
		p.log.Debug("batch sent", "issuer", issuer, "seq", seq, "bytes", len(tx))
	}
	return false
}

func (p *pipeline) signedWithConfiguredKey(issuer string, tx []byte) bool {
	a, err := decodeAnchor(tx)
	return err == nil && bytes.Equal(a.pubKey, p.keys[issuer].Public().(ed25519.PublicKey))
}

// settle decides the batches in flight whose fate committed state now
// tells: a sequence at or below the issuer's last whose record in state is
// not this batch's root can never be anchored, so its hashes go back to the
// queue. One still open is sent again once it has waited RebroadcastAfter,
// as the mempool may have lost it (restart, eviction), and requeued when
// it turns out stale (send).
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
	last, err := p.chain.LastSequence(issuer)
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
			rec, _, err := p.chain.Batch(issuer, seq)
			if err == nil && bytes.Equal(rec.Root, f.root[:]) {
				continue // anchored; the indexer releases it
			}
			if err != nil && !errors.Is(err, app.ErrNotFound) {
				return err
			}
			if err := p.requeue(issuer, seq, f); err != nil {
				return err
			}
			continue
		}
		if p.now().Sub(f.sentAt) >= p.cfg.RebroadcastAfter.Duration {
			p.mu.Lock()
			f.sentAt = p.now()
			p.mu.Unlock()
			if p.send(issuer, seq, f.tx) {
				if err := p.requeue(issuer, seq, f); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// requeue puts the hashes of a batch that can never be anchored back at the
// head of the queue, in place of the batch, in one write, then syncs.
func (p *pipeline) requeue(issuer string, seq uint64, f *inflight) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := p.nextQ[issuer]
	var back []queued
	for _, h := range leaves(f.hashes) {
		back = append(back, queued{qseq: next, hash: h})
		next++
	}
	if err := p.queue.requeue(issuer, seq, back); err != nil {
		return err
	}
	p.nextQ[issuer] = next
	p.pending[issuer] = append(back, p.pending[issuer]...)
	delete(p.inflight[issuer], seq)
	p.log.Warn("batch can no longer be anchored; hashes queued again", "issuer", issuer, "seq", seq, "hashes", len(back))
	return p.sync()
}
