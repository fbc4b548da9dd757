package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"iter"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/internal/vfs"
	"github.com/credence-ledger/credence/proof"
)

var errStopped = errors.New("node is stopping")

// chain is what the batcher needs of the replicated state and of
// consensus. The node's is consensusChain (the app and CometBFT's mempool);
// the scenario tests put a fake in its place.
type chain interface {
	// LastSequence is the issuer's last committed batch sequence, 0 when none.
	LastSequence(issuer string) (uint64, error)
	// Batch is the committed record of batch (issuer, seq); an error
	// wrapping app.ErrNotFound when there is none.
	Batch(issuer string, seq uint64) (*proof.BatchRecord, []byte, error)
	// Broadcast hands a signed transaction to the mempool; an error or a
	// non-zero code means it was not accepted now.
	Broadcast(ctx context.Context, tx []byte) (code uint32, log string, err error)
	// CanSign is nil when pub may sign the issuer's batches in the next
	// block; otherwise why not, wrapping app.ErrUnknown or
	// app.ErrUnauthorized.
	CanSign(issuer string, pub ed25519.PublicKey) error
}

// hash is one credential hash, comparable so it can key the waiting set.
type hash = [proof.HashSize]byte

// leaves walks concatenated hashes (whole ones; callers check the length).
func leaves(hashes []byte) iter.Seq2[uint64, hash] {
	return func(yield func(uint64, hash) bool) {
		for j := 0; j+proof.HashSize <= len(hashes); j += proof.HashSize {
			if !yield(uint64(j/proof.HashSize), hash(hashes[j:j+proof.HashSize])) {
				return
			}
		}
	}
}

// pipeline is the path of a hash through this node; doc.go tells it step by
// step. Its three stages share the state below under mu: the durable queue
// (queue.go) adds to pending, the batcher (batcher.go) moves pending into
// batches in flight and back, and the indexer (indexer.go) releases what
// is anchored. Each stage writes the disk before it changes this state,
// so a restart (load, reconcile) rebuilds it.
type pipeline struct {
	// db is read for the index; the queue's own records are in queue.
	db      *badger.DB
	queue   queueStore
	chain   chain
	chainID string
	keys    map[string]ed25519.PrivateKey
	cfg     *config
	log     *slog.Logger
	// now is the batcher's clock, for rebroadcasts.
	now func() time.Time
	// sync is the barrier after which every badger write before it
	// survives a crash: db.Sync in the node; the scenario tests watch and
	// fail it. The queue log syncs its own appends.
	sync func() error

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
	// start, so the queue log holds no index of its own.
	waiting map[string]map[hash]struct{}
	// index is where anchored hashes are: Submit's duplicate check looks
	// up there those its anchored filter may hold.
	index *index
	// live says why Submit must be refused now (liveness.go).
	live liveness
}

type queued struct {
	qseq uint64
	hash hash
	// seg is the queue log segment that holds it.
	seg uint64
	// at is when the hash was acknowledged (zero when reloaded from disk),
	// for the submit-to-final latency.
	at time.Time
}

type inflight struct {
	tx     []byte
	hashes []byte
	root   hash
	sentAt time.Time
	// oldest is when its longest-waiting hash was acknowledged (zero if
	// unknown).
	oldest time.Time
}

func newInflight(tx, hashes []byte, sentAt time.Time) (*inflight, error) {
	root, err := proof.Root(hashes)
	if err != nil {
		return nil, err
	}
	return &inflight{tx: tx, hashes: hashes, root: root, sentAt: sentAt}, nil
}

// submitRequestBuffer is how many Submit calls may wait for the group
// commit before callers block.
const submitRequestBuffer = 1024

// pipelineOptions are the pipeline's settings beside its config.
type pipelineOptions struct {
	// QueueDir holds the queue log (data/queue).
	QueueDir string
	ChainID  string
	// Keys are the issuers' signing keys, by issuer.
	Keys map[string]ed25519.PrivateKey
	// Now is the batcher's clock; nil is time.Now.
	Now func() time.Time
	// Sync is the barrier that makes every badger write before it
	// durable; nil is db.Sync. The scenario tests watch and fail it.
	Sync func() error
	// QueueFS holds the queue log's segments; nil is vfs.Default.
	QueueFS vfs.FS
	// QueueSegmentBytes is where the queue log starts a new segment; 0 is
	// queue_segment_mb.
	QueueSegmentBytes int64
	// Log is the pipeline's logger; nil is slog.Default().
	Log *slog.Logger
}

// newPipeline runs the pipeline over db and idx, with cfg's settings,
// sending to c.
func newPipeline(db *badger.DB, c chain, idx *index, cfg *config, o pipelineOptions) *pipeline {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sync == nil {
		o.Sync = db.Sync
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	qopts := queueLogOptions(cfg)
	qopts.FS = o.QueueFS
	if o.QueueSegmentBytes > 0 {
		qopts.SegmentSize = o.QueueSegmentBytes
	}
	return &pipeline{
		db: db, queue: newQueueStore(db, o.QueueDir, qopts), chain: c, index: idx, chainID: o.ChainID, keys: o.Keys, cfg: cfg, log: o.Log,
		now:      o.Now,
		sync:     o.Sync,
		reqs:     make(chan *submitReq, submitRequestBuffer),
		wake:     make(chan struct{}, 1),
		stopc:    make(chan struct{}),
		pending:  make(map[string][]queued),
		nextQ:    make(map[string]uint64),
		inflight: make(map[string]map[uint64]*inflight),
		waiting:  make(map[string]map[hash]struct{}),
	}
}

// start runs the group commit and the batcher; Start calls it once the
// index has caught up and the queue is reconciled.
func (p *pipeline) start() {
	t := time.NewTicker(p.cfg.BatchInterval.Duration)
	p.wg.Add(2)
	go p.commitLoop()
	go func() {
		defer t.Stop()
		p.batchLoop(t.C)
	}()
}

func (p *pipeline) stop() {
	close(p.stopc)
	p.wg.Wait()
	if err := p.queue.stop(); err != nil {
		p.log.Warn("closing the queue log", "err", err)
	}
}

func (p *pipeline) wait(issuer string) map[hash]struct{} {
	m := p.waiting[issuer]
	if m == nil {
		m = make(map[hash]struct{})
		p.waiting[issuer] = m
	}
	return m
}

func (p *pipeline) flight(issuer string) map[uint64]*inflight {
	m := p.inflight[issuer]
	if m == nil {
		m = make(map[uint64]*inflight)
		p.inflight[issuer] = m
	}
	return m
}

// waitingCount is the size of the waiting set; the caller holds mu.
func (p *pipeline) waitingCount() int {
	n := 0
	for _, w := range p.waiting {
		n += len(w)
	}
	return n
}

// isWaiting reports whether h is queued or in flight for issuer (any
// issuer of this node when issuer is empty).
func (p *pipeline) isWaiting(h []byte, issuer string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for is, w := range p.waiting {
		if issuer != "" && is != issuer {
			continue
		}
		if _, ok := w[hash(h)]; ok {
			return true
		}
	}
	return false
}

// inFlightHere picks, of committed batches, those this node has in flight:
// same issuer, sequence and root. Another node holding the same issuer's
// key may anchor a different batch under a sequence this node has in
// flight; that one stays in flight for settle to requeue.
func (p *pipeline) inFlightHere(batches []app.CommittedBatch) []app.CommittedBatch {
	p.mu.Lock()
	defer p.mu.Unlock()
	var here []app.CommittedBatch
	for _, b := range batches {
		if f := p.inflight[b.Record.Issuer][b.Record.Seq]; f != nil && bytes.Equal(f.root[:], b.Record.Root) {
			here = append(here, b)
		}
	}
	return here
}

// release ends the wait of the hashes of batches the indexer recorded (a
// repeat of them is now answered from the index) and takes this node's
// among them (here) out of flight.
func (p *pipeline) release(batches, here []app.CommittedBatch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range here {
		if f := p.inflight[b.Record.Issuer][b.Record.Seq]; f != nil && !f.oldest.IsZero() {
			metricSubmitFinal.Observe(time.Since(f.oldest).Seconds())
		}
		delete(p.inflight[b.Record.Issuer], b.Record.Seq)
	}
	for _, b := range batches {
		if w := p.waiting[b.Record.Issuer]; w != nil {
			for _, h := range leaves(b.Hashes) {
				delete(w, h)
			}
		}
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

// queueDepth counts the hashes not yet anchored: queued or in flight.
func (p *pipeline) queueDepth() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n uint64
	for _, q := range p.pending {
		n += uint64(len(q))
	}
	for _, m := range p.inflight {
		for _, f := range m {
			n += uint64(len(f.hashes) / proof.HashSize)
		}
	}
	return n
}
