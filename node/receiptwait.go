package node

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/credence-ledger/credence/proof"
)

// receiptWaits lets a GetReceipt for a hash queued or in flight here wait
// for its receipt (wait_ms) instead of the client asking again and again:
// loadgen's clients polling every 50 ms took a sixth of the submitting
// node's CPU, and as much of their own. A hash becomes final only when the
// indexer writes a block, so a waiting call builds its receipt again only
// then.
type receiptWaits struct {
	max   time.Duration // receipt_wait_max
	slots chan struct{} // one per waiting call: max_receipt_waits

	mu      sync.Mutex
	indexed chan struct{} // closed when the next block is indexed
}

func newReceiptWaits(slots int, max time.Duration) *receiptWaits {
	return &receiptWaits{max: max, slots: make(chan struct{}, slots), indexed: make(chan struct{})}
}

// blockIndexed wakes every call waiting.
func (w *receiptWaits) blockIndexed() {
	w.mu.Lock()
	close(w.indexed)
	w.indexed = make(chan struct{})
	w.mu.Unlock()
}

func (w *receiptWaits) nextBlock() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.indexed
}

// receiptAnswer is what GetReceipt found: a receipt, or why not; waiting
// says the hash is queued or in flight at this node.
type receiptAnswer struct {
	receipt *proof.Receipt
	err     error
	waiting bool
}

// pending: the hash will have a receipt here once a block is indexed.
func (a receiptAnswer) pending() bool {
	return errors.Is(a.err, errNotFinal) || errors.Is(a.err, errNotFound) && a.waiting
}

// wait asks find again after each block indexed while its answer is
// pending, for up to d (at most receipt_wait_max), and returns the last
// answer; an answer that names the block it waits for (notFinalUntil) is
// asked again only once indexed says that block is. With every slot
// taken it answers at once, as without waiting.
func (w *receiptWaits) wait(ctx context.Context, d time.Duration, indexed func() int64, find func() receiptAnswer) receiptAnswer {
	if d = min(d, w.max); d <= 0 {
		return find()
	}
	select {
	case w.slots <- struct{}{}:
		defer func() { <-w.slots }()
	default:
		return find()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	var a receiptAnswer
	var until notFinalUntil
	for {
		// Taken before find, so a block indexed during it is not missed.
		next := w.nextBlock()
		if until.indexed == 0 || indexed() >= until.indexed {
			if a = find(); !a.pending() {
				return a
			}
			if !errors.As(a.err, &until) {
				until = notFinalUntil{}
			}
		}
		select {
		case <-next:
		case <-timer.C:
			return a
		case <-ctx.Done():
			return a
		}
	}
}
