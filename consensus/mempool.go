package consensus

import (
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"

	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/cometbft/cometbft/mempool"
	cmtnode "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	protomem "github.com/cometbft/cometbft/proto/tendermint/mempool"
	"github.com/cometbft/cometbft/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Duplicate transactions from peers.
//
// The flood mempool relays every transaction to every peer but the ones it
// came from, so on a chain of n validators each one receives each
// transaction up to n-1 times. CometBFT's reactor (mempool/reactor.go,
// Receive) answers every copy after the first with a debug log line whose
// argument, the whole transaction as hex, is built whether or not debug
// logging is on: for an anchor transaction (about 300 KB) a millisecond of
// CPU and 600 KB of garbage per copy, a tenth of a validator's CPU under
// load. mempoolReactor sends the copies that its own reactor has already
// handed on past that line, straight to the mempool's CheckTx.
//
// CometBFT v0.39.4's mempool exports no lookup by transaction key, so the
// wrapper cannot ask whether the mempool holds a transaction; it remembers
// instead which transactions it passed on (a 64-bit fingerprint each, as
// many as the mempool's own cache, mempool.cache_size), and every copy
// still goes through CheckTx: CometBFT's cache and the app's CheckTx stay
// the only authority on what enters the mempool. A fingerprint only picks
// the path. A copy the cache still holds comes back ErrTxInCache and is
// counted as dropped; one the cache let go (evicted, or removed as
// invalid) is checked again as CheckTx would have through the reactor.
//
// What the direct path gives up is the sender: the reactor records, for a
// transaction in the mempool, every peer that sent it, so as not to send
// it back; the direct path has no peer number to record (the reactor's
// numbering is its own), so this node may relay the transaction once to a
// peer that already has it, if it has not sent it there yet. That peer's
// mempoolReactor drops the copy on the cheap path above. The first copy,
// whose sender matters most (it is the one this node relays onward), goes
// through CometBFT's reactor unchanged.

var metricMempoolDuplicates = promauto.NewCounter(prometheus.CounterOpts{
	Namespace: "credence", Name: "mempool_duplicates_total",
	Help: "Transactions received again from a peer that the mempool's cache already held, dropped without CometBFT's per-copy log formatting."})

// mempoolReactor is CometBFT's flood mempool reactor with a cheap path for
// duplicates. Every other method, and every other message, is the inner
// reactor's: it is the same object the node keeps for state sync's and
// block sync's switch-on (EnableInOutTxs) and the RPC's WaitSync.
type mempoolReactor struct {
	*mempool.Reactor
	mp      mempool.Mempool
	seen    *fingerprints
	log     cmtlog.Logger
	dropped atomic.Uint64
}

// The switch type-asserts a reactor for the optional interfaces; the
// wrapper must keep the inner reactor's.
var (
	_ p2p.Reactor        = (*mempoolReactor)(nil)
	_ p2p.MsgBytesFilter = (*mempoolReactor)(nil)
	_ interface {
		EnableInOutTxs()
		WaitSync() bool
	} = (*mempoolReactor)(nil)
)

func newMempoolReactor(inner *mempool.Reactor, mp mempool.Mempool, remember int) *mempoolReactor {
	return &mempoolReactor{Reactor: inner, mp: mp, seen: newFingerprints(remember), log: inner.Logger}
}

// wrapMempool replaces the node's flood mempool reactor with a
// mempoolReactor remembering as many transactions as the mempool's cache
// holds. A node without that cache (cache_size 0) or with another mempool
// keeps CometBFT's reactor: without the cache every copy is checked anew
// anyway.
func wrapMempool(cacheSize int) cmtnode.Option {
	return func(n *cmtnode.Node) {
		inner, ok := n.MempoolReactor().(*mempool.Reactor)
		if !ok || cacheSize <= 0 {
			return
		}
		r := newMempoolReactor(inner, n.Mempool(), cacheSize)
		cmtnode.CustomReactors(map[string]p2p.Reactor{"MEMPOOL": r})(n)
	}
}

// MempoolDuplicates is how many transactions n's mempool reactor dropped
// as copies its mempool's cache already held; 0 for a node without the
// wrapper.
func MempoolDuplicates(n *cmtnode.Node) uint64 {
	r, ok := n.Switch().Reactor("MEMPOOL")
	if !ok {
		return 0
	}
	if m, ok := r.(*mempoolReactor); ok {
		return m.dropped.Load()
	}
	return 0
}

// Receive passes the transactions not seen before to CometBFT's reactor
// and checks the others directly. Messages of another kind, and any while
// the node syncs (the reactor ignores them), go to the reactor whole.
func (r *mempoolReactor) Receive(e p2p.Envelope) {
	msg, ok := e.Message.(*protomem.Txs)
	if !ok || r.WaitSync() || len(msg.Txs) == 0 {
		r.Reactor.Receive(e)
		return
	}
	fresh := msg.Txs[:0:0]
	for _, tx := range msg.Txs {
		if r.seen.add(tx) {
			fresh = append(fresh, tx)
			continue
		}
		r.again(tx, e.Src)
	}
	switch len(fresh) {
	case 0:
	case len(msg.Txs):
		r.Reactor.Receive(e)
	default:
		e.Message = &protomem.Txs{Txs: fresh}
		r.Reactor.Receive(e)
	}
}

// again checks a copy of a transaction passed on before, without the
// reactor's formatting of it.
func (r *mempoolReactor) again(tx types.Tx, src p2p.Peer) {
	info := mempool.TxInfo{SenderID: mempool.UnknownPeerID}
	if src != nil {
		info.SenderP2PID = src.ID()
	}
	err := r.mp.CheckTx(tx, nil, info)
	switch {
	case err == nil:
		// The cache had let it go; CheckTx took it as a new one.
	case errors.Is(err, mempool.ErrTxInCache):
		r.dropped.Add(1)
		metricMempoolDuplicates.Inc()
	case errors.As(err, &mempool.ErrMempoolIsFull{}):
		// As the reactor does: at debug level, full is the load's normal state.
		r.log.Debug(err.Error())
	default:
		r.log.Info("Could not check tx", "tx", tx.Hash(), "err", err)
	}
}

// fingerprints is a bounded set of transaction fingerprints: the oldest
// goes when a new one would exceed the bound.
type fingerprints struct {
	seed maphash.Seed
	mu   sync.Mutex
	set  map[uint64]struct{}
	ring []uint64
	next int
}

func newFingerprints(n int) *fingerprints {
	return &fingerprints{seed: maphash.MakeSeed(), set: make(map[uint64]struct{}, n), ring: make([]uint64, 0, n)}
}

// add records tx and reports whether it was new. The fingerprint is
// maphash's, a twentieth of SHA-256's cost over an anchor transaction; a
// collision only sends a new transaction down the direct path, where
// CheckTx still takes it.
func (f *fingerprints) add(tx []byte) bool {
	h := maphash.Bytes(f.seed, tx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.set[h]; ok {
		return false
	}
	if len(f.ring) < cap(f.ring) {
		f.ring = append(f.ring, h)
	} else {
		delete(f.set, f.ring[f.next])
		f.ring[f.next] = h
		f.next = (f.next + 1) % len(f.ring)
	}
	f.set[h] = struct{}{}
	return true
}
