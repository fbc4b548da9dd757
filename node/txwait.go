package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmttypes "github.com/cometbft/cometbft/types"
)

// Broadcast waits for its transaction's block without an event
// subscription of its own: CometBFT's BroadcastTxCommit subscribes per call
// and serves only max_subscriptions_per_client (5) of them at once over the
// in-process client, so governance from more than five callers failed.
// txWaits holds one subscription to committed blocks for the whole node
// and hands each waiting caller its transaction's result, by hash.

// errTooManyWaits refuses a Broadcast when max_broadcast_waits are waiting.
var errTooManyWaits = errors.New("too many broadcasts waiting for their block")

// txResult is a committed transaction's result and height.
type txResult struct {
	height int64
	res    *abci.ExecTxResult
}

type txWaits struct {
	log     *slog.Logger
	timeout time.Duration // broadcast_timeout
	slots   chan struct{} // one per waiting Broadcast: max_broadcast_waits

	mu      sync.Mutex
	waiting map[[sha256.Size]byte][]chan txResult
}

func newTxWaits(max int, timeout time.Duration, log *slog.Logger) *txWaits {
	return &txWaits{log: log, timeout: timeout, slots: make(chan struct{}, max), waiting: map[[sha256.Size]byte][]chan txResult{}}
}

// txWaitSubscriber names the node's one subscription on the event bus.
const txWaitSubscriber = "credence-broadcast-waits"

// txWaitCapacity is how many blocks the subscription may fall behind by
// before CometBFT drops it (then it is made again: see run).
const txWaitCapacity = 1000

// start subscribes to committed blocks, before the API serves anyone, and
// delivers each block's transaction results to their waiters until bus
// stops. CometBFT publishes a block after the app's Commit, so a waiter
// woken by it reads state that holds its transaction.
func (w *txWaits) start(bus *cmttypes.EventBus) error {
	sub, err := w.subscribe(bus)
	if err != nil {
		return fmt.Errorf("broadcast waits: subscribe to blocks: %w", err)
	}
	go w.run(bus, sub)
	return nil
}

func (w *txWaits) subscribe(bus *cmttypes.EventBus) (cmttypes.Subscription, error) {
	return bus.Subscribe(context.Background(), txWaitSubscriber, cmttypes.EventQueryNewBlock, txWaitCapacity)
}

func (w *txWaits) run(bus *cmttypes.EventBus, sub cmttypes.Subscription) {
	for {
		select {
		case <-bus.Quit():
			return
		case msg := <-sub.Out():
			if b, ok := msg.Data().(cmttypes.EventDataNewBlock); ok {
				w.deliver(b)
			}
		case <-sub.Canceled():
			// Fell txWaitCapacity blocks behind: the waiters of the blocks
			// missed time out (broadcast_timeout); later ones are served.
			w.log.Warn("broadcast waits: block subscription dropped; subscribing again", "err", sub.Err())
			bus.Unsubscribe(context.Background(), txWaitSubscriber, cmttypes.EventQueryNewBlock)
			for {
				var err error
				if sub, err = w.subscribe(bus); err == nil {
					break
				}
				select {
				case <-bus.Quit():
					return
				case <-time.After(time.Second):
				}
			}
		}
	}
}

func (w *txWaits) deliver(b cmttypes.EventDataNewBlock) {
	w.mu.Lock()
	idle := len(w.waiting) == 0
	w.mu.Unlock()
	if idle {
		return
	}
	// Hashed outside the lock: a block of full batches is tens of MB.
	hashes := make([][sha256.Size]byte, len(b.Block.Txs))
	for i, tx := range b.Block.Txs {
		hashes[i] = sha256.Sum256(tx)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, h := range hashes {
		chs, ok := w.waiting[h]
		if !ok || i >= len(b.ResultFinalizeBlock.TxResults) {
			continue
		}
		for _, ch := range chs {
			ch <- txResult{b.Block.Height, b.ResultFinalizeBlock.TxResults[i]}
		}
		delete(w.waiting, h)
	}
}

// reserve takes a waiting slot, or refuses with errTooManyWaits; release
// gives it back.
func (w *txWaits) reserve() error {
	select {
	case w.slots <- struct{}{}:
		return nil
	default:
		return fmt.Errorf("%w (max_broadcast_waits %d)", errTooManyWaits, cap(w.slots))
	}
}

func (w *txWaits) release() { <-w.slots }

// watch registers a wait for the transaction with hash h, before it is
// sent, so that no block can include it unseen; cancel ends the wait.
func (w *txWaits) watch(h [sha256.Size]byte) (result <-chan txResult, cancel func()) {
	ch := make(chan txResult, 1)
	w.mu.Lock()
	w.waiting[h] = append(w.waiting[h], ch)
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		chs := w.waiting[h]
		for i, c := range chs {
			if c == ch {
				chs = append(chs[:i], chs[i+1:]...)
				break
			}
		}
		if len(chs) == 0 {
			delete(w.waiting, h)
		} else {
			w.waiting[h] = chs
		}
	}
}
