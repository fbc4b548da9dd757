// Package app is Credence's deterministic state machine: ABCI 2.0 on
// CometBFT, state in an IAVL tree whose root is the app hash and whose
// version is the block height. Everything FinalizeBlock does is a function of
// the block and the state before it.
package app

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	corestore "cosmossdk.io/core/store"
	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cosmos/iavl"
	iavldb "github.com/cosmos/iavl/db"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// Version is the app version reported in Info.
const Version = "0.1.0"

// CommitHook receives every committed height with its batches (none for
// most blocks), in block order, from inside Commit: it must not call back
// into the App.
type CommitHook func(height int64, batches []CommittedBatch)

// App implements abci.Application.
type App struct {
	abci.BaseApplication

	chainID  string
	log      *slog.Logger
	onCommit CommitHook
	// onUpgradeHalt learns, from inside Commit, of a plan due at the next
	// height that this binary cannot run (upgrade.go).
	onUpgradeHalt func(*pb.UpgradePlan)

	// mu serialises the tree between ABCI calls and the node's readers
	// (receipt building): MutableTree is not safe for concurrent use.
	mu   sync.Mutex
	db   iavldb.DB
	tree *iavl.MutableTree
	// params are read from state at start and at InitChain.
	params *pb.Params
	// version is the app version in state (upgrade.go), whose rules
	// execute the next block unless a plan changes them at its height.
	version uint64
	// checkSeq holds sequences accepted by CheckTx since the last commit, so
	// a signer may have several transactions in the mempool at once.
	checkSeq map[string]uint64
	// block holds the batches of the block being finalized.
	block []CommittedBatch
	// valUpdates are the validator changes of the block being finalized;
	// valWasSet[i] says whether valUpdates[i]'s key validated before it.
	valUpdates []abci.ValidatorUpdate
	valWasSet  []bool
	// decoded holds transactions that passed decodeTx.
	decoded decodedCache
	// genesis is the state InitChain wrote, read as committed state until
	// the first version is saved.
	genesis map[string][]byte
	// initialHeight is the chain's first height when above 1 (set at
	// InitChain; until the first commit, the next block's height).
	initialHeight int64
}

// nextHeight is the height of the block a transaction checked now joins.
func (a *App) nextHeight() int64 {
	return max(a.tree.Version()+1, a.initialHeight)
}

func (a *App) decode(raw []byte) (*decodedTx, error) {
	tx, key := a.decoded.get(raw)
	if tx != nil {
		return tx, nil
	}
	tx, err := decodeTx(raw, a.chainID, a.maxBatchHashes())
	if err != nil {
		return nil, err
	}
	a.decoded.add(key, raw, tx)
	return tx, nil
}

// Option configures an App.
type Option func(*App)

// WithLogger sets the logger. Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(a *App) { a.log = l } }

// WithCommitHook sets the hook called with each committed block's batches.
// Default: none.
func WithCommitHook(h CommitHook) Option { return func(a *App) { a.onCommit = h } }

// WithUpgradeHalt sets the function told, from inside Commit, that the
// next block is a plan's this binary has no handler for, so the node can
// halt before it; it must not call back into the App. Default: none.
func WithUpgradeHalt(fn func(*pb.UpgradePlan)) Option {
	return func(a *App) { a.onUpgradeHalt = fn }
}

// WithTxCacheBytes bounds the memory of transactions kept decoded between
// CheckTx, PrepareProposal, ProcessProposal and FinalizeBlock (by their
// encoded size; a transaction decodes to about its size again). The cache
// changes no result. Default: DefaultTxCacheBytes.
func WithTxCacheBytes(n int) Option { return func(a *App) { a.decoded.max = n } }

// New opens the application state stored in db for chain chainID and loads
// its latest version.
func New(db iavldb.DB, chainID string, opts ...Option) (*App, error) {
	a := &App{chainID: chainID, log: slog.Default(), checkSeq: make(map[string]uint64), decoded: newDecodedCache(DefaultTxCacheBytes), genesis: make(map[string][]byte)}
	for _, o := range opts {
		o(a)
	}
	a.db = db
	a.tree = iavl.NewMutableTree(db, 100_000, false, iavl.NewNopLogger())
	if _, err := a.tree.Load(); err != nil {
		// SaveVersion is not atomic: a crash inside it leaves a newest
		// version without a root. Drop it; CometBFT replays that block.
		latest, lerr := a.tree.GetLatestVersion()
		if lerr != nil || latest < 1 {
			return nil, fmt.Errorf("load application state: %w", err)
		}
		if oerr := a.tree.LoadVersionForOverwriting(latest - 1); oerr != nil {
			return nil, fmt.Errorf("load application state: %w; rolling back to %d: %v", err, latest-1, oerr)
		}
		a.log.Warn("application state had an incomplete version; rolled back", "version", latest, "err", err)
	}
	a.version = baseVersion
	if !a.tree.IsEmpty() {
		if err := a.loadSettings(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// loadSettings reads what the loaded state fixes beside its tree: the
// params and the app version.
func (a *App) loadSettings() error {
	p, err := a.loadParams()
	if err != nil {
		return err
	}
	a.params = p
	return a.loadVersion()
}

// Close releases the tree; the caller closes the database.
func (a *App) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tree.Close()
}

func (a *App) loadParams() (*pb.Params, error) {
	raw, err := a.tree.Get([]byte(proof.KeyParams))
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, errors.New("application state has no params")
	}
	var p pb.Params
	if err := proto.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	return &p, nil
}

func (a *App) Info(context.Context, *abci.RequestInfo) (*abci.ResponseInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &abci.ResponseInfo{
		Data:             "credence",
		Version:          Version,
		AppVersion:       a.version,
		LastBlockHeight:  a.tree.Version(),
		LastBlockAppHash: a.tree.Hash(),
	}, nil
}

func (a *App) InitChain(_ context.Context, req *abci.RequestInitChain) (*abci.ResponseInitChain, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if req.ChainId != a.chainID {
		return nil, fmt.Errorf("genesis chain id %q, node configured for %q", req.ChainId, a.chainID)
	}
	g, err := parseGenesis(req.AppStateBytes)
	if err != nil {
		return nil, err
	}
	if req.InitialHeight > 1 {
		a.tree.SetInitialVersion(uint64(req.InitialHeight))
		a.initialHeight = req.InitialHeight
	}
	for _, m := range g.members {
		if err := a.setGenesis(proof.MemberKey(m.Id), m); err != nil {
			return nil, err
		}
	}
	for _, is := range g.issuers {
		if err := a.setGenesis(proof.IssuerKey(is.Id), is); err != nil {
			return nil, err
		}
	}
	if err := a.setGenesis([]byte(proof.KeyParams), g.params); err != nil {
		return nil, err
	}
	a.params = g.params
	a.decoded.reset()
	return &abci.ResponseInitChain{AppHash: a.tree.WorkingHash()}, nil
}

// setGenesis writes a genesis entry, also kept aside as the committed
// state until the first block is saved.
func (a *App) setGenesis(key []byte, m proto.Message) error {
	v, err := deterministic.Marshal(m)
	if err != nil {
		return err
	}
	a.genesis[string(key)] = v
	_, err = a.tree.Set(key, v)
	return err
}

// put writes m under key in the working tree.
func (a *App) put(key []byte, m proto.Message) error {
	v, err := deterministic.Marshal(m)
	if err != nil {
		return err
	}
	_, err = a.tree.Set(key, v)
	return err
}

// iterable is a tree a range of keys can be read from.
type iterable interface {
	Iterator(start, end []byte, ascending bool) (corestore.Iterator, error)
}

// scan calls fn with the key and value of every key under prefix, in key
// order. fn must not write the tree.
func scan(t iterable, prefix string, fn func(key, value []byte) error) error {
	it, err := t.Iterator([]byte(prefix), proof.PrefixEnd(prefix), true)
	if err != nil {
		return err
	}
	for ; it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return err
	}
	return it.Close()
}

// stateReader reads the state a transaction is checked against.
type stateReader interface {
	Get(key []byte) ([]byte, error)
}

// checker applies the stateful rules against a state and the sequences
// accepted on top of it (within a block, or a mempool's pending set).
type checker struct {
	st      stateReader
	pending map[string]uint64
	height  int64
	rules   rules
}

// get decodes into m the value of key; false when the state has none.
func (c *checker) get(key []byte, m proto.Message) (bool, error) {
	raw, err := c.st.Get(key)
	if err != nil || raw == nil {
		return false, err
	}
	return true, proto.Unmarshal(raw, m)
}

// lastSeq is the last sequence of the account whose sequence key is key,
// pending ones included.
func (c *checker) lastSeq(key []byte) (uint64, error) {
	if s, ok := c.pending[string(key)]; ok {
		return s, nil
	}
	raw, err := c.st.Get(key)
	if err != nil || raw == nil {
		return 0, err
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("corrupt sequence at %q", key)
	}
	return binary.BigEndian.Uint64(raw), nil
}

// check applies the stateful rules and, on success, records the sequence as
// pending. It never writes state.
func (c *checker) check(tx *decodedTx) error {
	if err := tx.msg.check(c, tx); err != nil {
		return err
	}
	acct := tx.msg.sequenceKey(tx.body)
	last, err := c.lastSeq(acct)
	if err != nil {
		return err
	}
	if tx.body.Sequence <= last {
		return fmt.Errorf("%w: sequence %d, last accepted %d for %q", ErrReplay, tx.body.Sequence, last, tx.body.Signer)
	}
	if tx.body.Sequence-last > MaxSequenceStep {
		return fmt.Errorf("%w: sequence %d is more than %d above the last accepted, %d, for %q", ErrSequenceJump, tx.body.Sequence, MaxSequenceStep, last, tx.body.Signer)
	}
	c.pending[string(acct)] = tx.body.Sequence
	return nil
}

func (a *App) maxBatchHashes() uint64 {
	if a.params == nil {
		return DefaultMaxBatchHashes
	}
	return a.params.MaxBatchHashes
}

func (a *App) CheckTx(_ context.Context, req *abci.RequestCheckTx) (*abci.ResponseCheckTx, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	tx, err := a.decode(req.Tx)
	if err == nil {
		h := a.nextHeight()
		c := &checker{st: a.committed(), pending: a.checkSeq, height: h, rules: a.rulesAt(h)}
		if err = c.check(tx); err != nil {
			a.decoded.forget(tx)
		}
	}
	if err != nil {
		return &abci.ResponseCheckTx{Code: codeOf(err), Codespace: "credence", Log: err.Error()}, nil
	}
	return &abci.ResponseCheckTx{Code: CodeOK}, nil
}

// committed is the last saved state: CheckTx and proposals are checked
// against it, never against the working tree of a block in progress.
func (a *App) committed() stateReader {
	if a.tree.Version() == 0 {
		// Nothing saved yet: the state is genesis, not the working tree
		// of a first block in progress.
		return genesisReader(a.genesis)
	}
	return committedReader{a.tree}
}

type committedReader struct{ t *iavl.MutableTree }

func (r committedReader) Get(key []byte) ([]byte, error) {
	return r.t.GetVersioned(key, r.t.Version())
}

type genesisReader map[string][]byte

func (g genesisReader) Get(key []byte) ([]byte, error) { return g[string(key)], nil }

func (a *App) PrepareProposal(_ context.Context, req *abci.RequestPrepareProposal) (*abci.ResponsePrepareProposal, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Only transactions that ProcessProposal will accept go in, so that a
	// transaction turned invalid in the mempool cannot stall the chain.
	c := &checker{st: a.committed(), pending: make(map[string]uint64), height: req.Height, rules: a.rulesAt(req.Height)}
	txs := make([][]byte, 0, len(req.Txs))
	var total int64
	for _, raw := range req.Txs {
		if total+int64(len(raw)) > req.MaxTxBytes {
			break
		}
		tx, err := a.decode(raw)
		if err == nil {
			err = c.check(tx)
		}
		if err != nil {
			a.log.Debug("proposal drops transaction", "err", err)
			continue
		}
		total += int64(len(raw))
		txs = append(txs, raw)
	}
	return &abci.ResponsePrepareProposal{Txs: txs}, nil
}

func (a *App) ProcessProposal(_ context.Context, req *abci.RequestProcessProposal) (*abci.ResponseProcessProposal, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.unknownPlanAt(req.Height); p != nil {
		// This binary cannot run the block, so it must not vote for it.
		a.log.Warn("rejecting proposal: the block needs an upgrade", "height", req.Height, "upgrade", p.Name, "app_version", p.AppVersion)
		return &abci.ResponseProcessProposal{Status: abci.ResponseProcessProposal_REJECT}, nil
	}
	c := &checker{st: a.committed(), pending: make(map[string]uint64), height: req.Height, rules: a.rulesAt(req.Height)}
	for i, raw := range req.Txs {
		tx, err := a.decode(raw)
		if err == nil {
			err = c.check(tx)
		}
		if err != nil {
			a.log.Warn("rejecting proposal", "height", req.Height, "tx", i, "err", err)
			return &abci.ResponseProcessProposal{Status: abci.ResponseProcessProposal_REJECT}, nil
		}
	}
	return &abci.ResponseProcessProposal{Status: abci.ResponseProcessProposal_ACCEPT}, nil
}

func (a *App) FinalizeBlock(_ context.Context, req *abci.RequestFinalizeBlock) (*abci.ResponseFinalizeBlock, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.block = nil
	// The plan's migration runs before the block's transactions, which
	// then run by the new rules.
	paramUpdates, err := a.upgradeAt(req.Height)
	if err != nil {
		return nil, err
	}
	// The working tree is the state block execution reads and writes, so a
	// later transaction of the block sees an earlier one's sequence.
	c := &checker{st: a.tree, pending: make(map[string]uint64), height: req.Height, rules: rulesOf(a.version)}
	// Fresh slices: CometBFT keeps the previous block's response.
	a.valUpdates, a.valWasSet = nil, nil
	results := make([]*abci.ExecTxResult, len(req.Txs))
	for i, raw := range req.Txs {
		res, err := a.deliver(c, raw, req)
		if err != nil {
			// A state write failed: the node cannot continue consistently.
			return nil, err
		}
		results[i] = res
	}
	if err := a.expireProposals(req.Height); err != nil {
		return nil, err
	}
	if err := a.markForProof(req.Height); err != nil {
		return nil, err
	}
	return &abci.ResponseFinalizeBlock{TxResults: results, AppHash: a.tree.WorkingHash(),
		ValidatorUpdates: a.finalValUpdates(), ConsensusParamUpdates: paramUpdates}, nil
}

// markForProof has CometBFT make, without waiting for an empty block, the
// two blocks that prove a change of state. CometBFT makes a block at once
// only after a block that changed the app hash: block H+1, whose header
// carries the state after H. A receipt or status answer for H also needs
// the canonical commit of H+1, which only block H+2 carries. So a block
// that changes nothing, right after one that did, records its height;
// that change has CometBFT make H+2 at once, and the chain then rests
// until the next transaction or empty-block interval.
func (a *App) markForProof(height int64) error {
	if !bytes.Equal(a.tree.WorkingHash(), a.tree.Hash()) {
		_, err := a.tree.Set([]byte(proof.KeyChangedAt), binary.BigEndian.AppendUint64(nil, uint64(height)))
		return err
	}
	raw, err := a.tree.Get([]byte(proof.KeyChangedAt))
	if err != nil {
		return err
	}
	if len(raw) == 8 && int64(binary.BigEndian.Uint64(raw)) == height-1 {
		_, err := a.tree.Set([]byte(proof.KeyProofBlock), binary.BigEndian.AppendUint64(nil, uint64(height)))
		return err
	}
	return nil
}

// deliver executes one transaction. A rejected transaction returns a result
// with its code and changes nothing; an error is a storage failure.
func (a *App) deliver(c *checker, raw []byte, req *abci.RequestFinalizeBlock) (*abci.ExecTxResult, error) {
	tx, err := a.decode(raw)
	if err == nil {
		a.decoded.forget(tx)
		err = c.check(tx)
	}
	if err != nil {
		return &abci.ExecTxResult{Code: codeOf(err), Codespace: "credence", Log: err.Error()}, nil
	}
	events, err := tx.msg.apply(a, tx, execBlock{height: req.Height, timeUnixNano: req.Time.UnixNano()})
	if err != nil {
		return nil, err
	}
	if _, err := a.tree.Set(tx.msg.sequenceKey(tx.body), binary.BigEndian.AppendUint64(nil, tx.body.Sequence)); err != nil {
		return nil, err
	}
	return &abci.ExecTxResult{Code: CodeOK, Events: events}, nil
}

func (a *App) Commit(context.Context, *abci.RequestCommit) (*abci.ResponseCommit, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, height, err := a.tree.SaveVersion()
	if err != nil {
		return nil, fmt.Errorf("save state version: %w", err)
	}
	clear(a.checkSeq)
	if len(a.block) > 0 {
		if err := a.proveBlock(height); err != nil {
			return nil, err
		}
	}
	if a.onCommit != nil {
		a.onCommit(height, a.block)
	}
	if a.onUpgradeHalt != nil {
		if p := a.unknownPlanAt(height + 1); p != nil {
			a.onUpgradeHalt(p)
		}
	}
	a.block = nil
	return &abci.ResponseCommit{}, nil
}
