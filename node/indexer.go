package node

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/proof"
)

// blockSource is what the indexer reads of committed blocks. The node's is
// consensusChain (the app and CometBFT's block store); the scenario tests
// put a fake in its place.
type blockSource interface {
	// BlockTxs are the transactions of the committed block at height.
	BlockTxs(height int64) ([][]byte, error)
	// ProveBatch is the committed record of batch (issuer, seq) with its
	// proof; an error wrapping app.ErrNotFound when there is none.
	ProveBatch(issuer string, seq uint64) (*app.CommittedBatch, error)
	// ValidatorsChangeAfter reports whether the validator set of the
	// next height differs from that of height.
	ValidatorsChangeAfter(height int64) (bool, error)
	// SignedHeader is the header of height with its canonical commit
	// (carried by block height+1) and the validators of height.
	SignedHeader(height int64) (*headerEntry, error)
}

// committed is one block's batches as the app's commit hook hands them over.
type committed struct {
	height  int64
	batches []app.CommittedBatch
}

// commitQueue hands the blocks the app commits to the index writer. It is
// made before the app, whose commit hook (push) it is, and given to the
// indexer, made after: the app's commit only queues a block, so consensus
// never waits on index writes.
type commitQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	backlog []committed
	closed  bool
}

func newCommitQueue() *commitQueue {
	q := &commitQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// push runs inside the app's Commit: it only queues the block.
func (q *commitQueue) push(height int64, batches []app.CommittedBatch) {
	q.mu.Lock()
	q.backlog = append(q.backlog, committed{height, batches})
	q.cond.Broadcast()
	q.mu.Unlock()
}

// take waits for blocks and takes all those queued; none once the queue is
// closed and every block queued before was taken.
func (q *commitQueue) take() []committed {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.closed && len(q.backlog) == 0 {
		q.cond.Wait()
	}
	work := q.backlog
	q.backlog = nil
	return work
}

func (q *commitQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// indexer records where every anchored hash landed, block by block, off
// consensus's path: the app's commit hook only queues a block
// (commitQueue), and run writes it. The index is derived from the blocks,
// so a block not indexed before a stop is indexed at the next start
// (catchUp).
type indexer struct {
	db      *badger.DB
	blocks  blockSource
	commits *commitQueue
	// index is where each anchored hash is: the leaves and their
	// positions (positions.go).
	index *index
	pipe  *pipeline
	// receipts learns each change of the validator set.
	receipts *receipts
	log      *slog.Logger
	// indexed is the last height indexed, as stored under xh.
	indexed atomic.Int64
	// nextBatch is the number the next batch indexed gets. It is stored
	// with the indexed height, so a block indexed again after a crash
	// gives its batches the numbers they had: the same keys.
	nextBatch uint64
	// retaining: CometBFT prunes blocks behind durable, the last height
	// indexed and synced (retention.go).
	retaining bool
	durable   atomic.Int64
	// retryMin and retryMax bound the wait before a failed block is
	// written again (index_retry_min, index_retry_max).
	retryMin, retryMax time.Duration
	onIndexed          func()

	mu      sync.Mutex
	running bool
	done    chan struct{}
	// quit ends a wait between retries.
	quit     chan struct{}
	quitOnce sync.Once
}

// indexerOptions are the indexer's settings.
type indexerOptions struct {
	// RetryMin and RetryMax bound the wait before a failed block is
	// written again (index_retry_min, index_retry_max; 0:
	// defaultIndexRetryMin, 100 ms, and defaultIndexRetryMax, 10 s).
	RetryMin, RetryMax time.Duration
	// Retaining: CometBFT prunes blocks (retain_blocks > 0), so each block
	// indexed is synced before the retain height passes it.
	Retaining bool
	// Log is the indexer's logger; nil is slog.Default().
	Log *slog.Logger
	// Indexed, when set, is called after each block the writer indexes.
	Indexed func()
}

// newIndexer writes the blocks commits hands over (and, at catchUp, those
// read back from blocks) into idx and db, releasing from pipe what they
// anchor and telling receipts of validator changes.
func newIndexer(db *badger.DB, blocks blockSource, commits *commitQueue, idx *index, pipe *pipeline, r *receipts, o indexerOptions) (*indexer, error) {
	h, err := indexedHeight(db)
	if err != nil {
		return nil, err
	}
	next, err := storedNextBatch(db)
	if err != nil {
		return nil, err
	}
	if o.RetryMin <= 0 {
		o.RetryMin = defaultIndexRetryMin
	}
	if o.RetryMax <= 0 {
		o.RetryMax = defaultIndexRetryMax
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	ix := &indexer{db: db, blocks: blocks, commits: commits, index: idx, pipe: pipe, receipts: r, log: o.Log,
		nextBatch: next, retaining: o.Retaining, retryMin: o.RetryMin, retryMax: o.RetryMax, onIndexed: o.Indexed,
		done: make(chan struct{}), quit: make(chan struct{})}
	ix.indexed.Store(h)
	return ix, nil
}

// indexedHeight is the last height indexed.
func (ix *indexer) indexedHeight() int64 { return ix.indexed.Load() }

// start runs the index writer over the blocks queued since the commit
// queue was made; Start calls it after catchUp, which covers those
// already committed, so they are skipped.
func (ix *indexer) start() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.running = true
	go ix.run()
}

func (ix *indexer) run() {
	defer close(ix.done)
	for {
		work := ix.commits.take()
		if len(work) == 0 {
			return
		}
		for _, c := range work {
			if c.height <= ix.indexedHeight() {
				continue
			}
			if !ix.indexRetrying(c) {
				return // stopping: the next start catches up from blocks
			}
			if ix.onIndexed != nil {
				ix.onIndexed()
			}
		}
	}
}

// indexRetrying writes block c, and writes it again after a failure, with
// a wait doubling from retryMin to retryMax, until it succeeds or the
// indexer stops (false). Giving up would leave every later block's hashes
// waiting, never final, while Submit went on acknowledging: so while it
// fails the pipeline's liveness says so, and Submit is refused.
func (ix *indexer) indexRetrying(c committed) bool {
	wait := ix.retryMin
	for attempt := 1; ; attempt++ {
		err := ix.indexBlock(c.height, c.batches)
		if err == nil {
			if attempt > 1 {
				ix.log.Info("index write succeeded again", "height", c.height, "attempts", attempt)
				ix.pipe.live.setIndex(nil)
			}
			return true
		}
		ix.pipe.live.setIndex(fmt.Errorf("block %d: %w", c.height, err))
		ix.log.Error("index write failed; Submit is refused until it succeeds", "height", c.height, "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-ix.quit:
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, ix.retryMax)
	}
}

// stop writes the blocks already queued and ends the writer; what the
// index holds only in memory is read back from the batches at the next
// start.
func (ix *indexer) stop() {
	ix.quitOnce.Do(func() { close(ix.quit) })
	ix.commits.close()
	ix.mu.Lock()
	running := ix.running
	ix.mu.Unlock()
	if running {
		<-ix.done
	}
}

// catchUp indexes the blocks up to the app's height at start (to) that the
// index did not record before the last stop, reading them back from the
// block store. Blocks committed after come through the commit queue.
func (ix *indexer) catchUp(to int64) error {
	from := ix.indexedHeight()
	if from >= to {
		return nil
	}
	ix.log.Info("indexing blocks committed before the last stop", "from", from+1, "to", to)
	for h := from + 1; h <= to; h++ {
		batches, err := ix.committedBatches(h)
		if err != nil {
			return fmt.Errorf("block %d: %w", h, err)
		}
		if err := ix.indexBlock(h, batches); err != nil {
			return err
		}
	}
	return nil
}

// committedBatches reads back the batches block h anchored: its anchor
// transactions whose record in state was written at h with their root.
func (ix *indexer) committedBatches(h int64) ([]app.CommittedBatch, error) {
	txs, err := ix.blocks.BlockTxs(h)
	if err != nil {
		return nil, err
	}
	var batches []app.CommittedBatch
	for _, raw := range txs {
		a, err := decodeAnchor(raw)
		if err != nil {
			continue // not an anchor batch: nothing to index
		}
		b, err := ix.blocks.ProveBatch(a.signer, a.seq)
		if errors.Is(err, app.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		root, err := proof.Root(a.hashes)
		if err != nil || b.Record.Height != h || string(root[:]) != string(b.Record.Root) {
			continue // this transaction was rejected at h
		}
		b.Hashes = a.hashes
		batches = append(batches, *b)
	}
	return batches, nil
}

// indexBlock indexes one committed block: the validator change after it,
// the signed headers and links this block completes, then its batches.
func (ix *indexer) indexBlock(h int64, batches []app.CommittedBatch) error {
	if err := ix.noteValidatorChange(h); err != nil {
		return err
	}
	if err := ix.keepHeaders(h, len(batches) > 0); err != nil {
		return err
	}
	if err := ix.indexBatches(h, batches); err != nil {
		return err
	}
	return ix.syncIndexed(h)
}

// noteValidatorChange records height h when the validator set changes
// after it: the header of h names the next set, so receipts of later
// batches carry that header as a link from the old set to the new.
func (ix *indexer) noteValidatorChange(h int64) error {
	changed, err := ix.blocks.ValidatorsChangeAfter(h)
	if err != nil || !changed {
		return err
	}
	ix.log.Info("validator set changes after this height", "height", h)
	if err := ix.db.Update(func(txn *badger.Txn) error {
		if _, err := getValue(txn, xvKey(h)); err == nil {
			return nil
		}
		return txn.Set(xvKey(h), []byte{})
	}); err != nil {
		return err
	}
	ix.receipts.addLink(h)
	return nil
}

// indexBatches records the batches of one committed block at height: the
// leaves' positions, then this node's batches among them out of flight,
// then the indexed height, each write flushed before the next, and only
// then do the hashes stop waiting, so a reader always finds a hash in one
// place or the other.
func (ix *indexer) indexBatches(height int64, batches []app.CommittedBatch) (err error) {
	// A block written again after a failure (indexRetrying) gives its
	// batches the same numbers: the keys already flushed are overwritten,
	// and the positions already added are not added twice.
	first := ix.nextBatch
	defer func() {
		if err != nil {
			ix.nextBatch = first
		}
	}()
	here := ix.pipe.inFlightHere(batches)
	if err := ix.writePositions(batches); err != nil {
		return err
	}
	if len(here) > 0 {
		ids := make([]batchID, len(here))
		for i, b := range here {
			ids[i] = batchID{issuer: b.Record.Issuer, seq: b.Record.Seq}
		}
		if err := ix.pipe.queue.land(ids); err != nil {
			return err
		}
	}
	// Last: a crash before it indexes the block again at the next start.
	if err := ix.db.Update(func(txn *badger.Txn) error {
		if len(batches) > 0 {
			last := batches[len(batches)-1].Record
			if err := txn.Set([]byte(keyLastBatch), append(u64(nil, last.Seq), last.Issuer...)); err != nil {
				return err
			}
		}
		if err := txn.Set([]byte(keyNextBatch), u64(nil, ix.nextBatch)); err != nil {
			return err
		}
		return txn.Set([]byte(keyIndexed), u64(nil, uint64(height)))
	}); err != nil {
		return err
	}
	ix.indexed.Store(height)
	ix.pipe.release(batches, here)
	var anchored uint64
	for _, b := range batches {
		anchored += b.Record.LeafCount
	}
	metricAnchored.Add(float64(anchored))
	metricIndexedHeight.Set(float64(height))
	return nil
}

// writePositions writes each batch's leaves (to the leaf store, synced
// before badger points at them), record and proof and the number it is
// given, then adds each leaf's position under that number to the
// positions index.
func (ix *indexer) writePositions(batches []app.CommittedBatch) error {
	wb := ix.db.NewWriteBatch()
	defer wb.Cancel()
	first := ix.nextBatch
	for _, b := range batches {
		r := b.Record
		loc, err := ix.index.leafStore.Append(b.Hashes)
		if err != nil {
			return err
		}
		if err := wb.Set(xbKey(r.Issuer, r.Seq), loc); err != nil {
			return err
		}
		if err := wb.Set(xrKey(r.Issuer, r.Seq), b.RecordBytes); err != nil {
			return err
		}
		if err := wb.Set(xpKey(r.Issuer, r.Seq), b.Proof); err != nil {
			return err
		}
		num := ix.nextBatch
		ix.nextBatch++
		if err := wb.Set(xnKey(num), encodeBatchRef(batchRef{issuer: r.Issuer, seq: r.Seq, height: r.Height})); err != nil {
			return err
		}
	}
	if err := ix.index.leafStore.Sync(); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	added := ix.index.positions.Next()
	for i, b := range batches {
		num := first + uint64(i)
		if num < added {
			continue // added before a failure of a later one
		}
		// Add puts each tag in the anchored filter before the position is
		// visible, and so before the hash stops waiting: a duplicate submit
		// always finds it one way.
		if err := ix.index.positions.Add(num, b.Hashes); err != nil {
			return err
		}
	}
	return nil
}

// durableHeight is the last height indexed and synced; 0 before the first
// sync of this run.
func (ix *indexer) durableHeight() int64 { return ix.durable.Load() }
