package app

// Reads of committed state: ABCI Query with ICS23 proofs, and the sequences
// and height the node reads directly.

import (
	"context"
	"errors"
	"fmt"
	"math"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"

	"github.com/credence-ledger/credence/proof"
)

// ErrNotFound is returned by reads of state that does not hold the key.
var ErrNotFound = errors.New("not found")

// LastSequence returns the committed last sequence of a signer.
func (a *App) LastSequence(issuer string) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := &checker{st: a.committed(), pending: map[string]uint64{}}
	return c.lastSeq(proof.IssuerSequenceKey(issuer))
}

// NextSequence is the sequence the next transaction of an account should
// carry, given its sequence key (proof.IssuerSequenceKey or
// proof.MemberSequenceKey): one above the last committed, or above the last
// CheckTx accepted since, whichever is higher.
func (a *App) NextSequence(key []byte) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := &checker{st: a.committed(), pending: a.checkSeq}
	last, err := c.lastSeq(key)
	if err != nil {
		return 0, err
	}
	if last == math.MaxUint64 {
		return 0, fmt.Errorf("%w: the account's sequence space is exhausted", ErrRejected)
	}
	return last + 1, nil
}

// Height returns the last committed height.
func (a *App) Height() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tree.Version()
}

// Query serves "/key" (data = state key) at req.Height (0: latest), with an
// ICS23 proof when req.Prove.
func (a *App) Query(_ context.Context, req *abci.RequestQuery) (*abci.ResponseQuery, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if req.Path != "/key" {
		return &abci.ResponseQuery{Code: CodeMalformed, Log: fmt.Sprintf("unknown query path %q; use /key", req.Path)}, nil
	}
	if len(req.Data) == 0 {
		return &abci.ResponseQuery{Code: CodeMalformed, Log: "query data (the key) is empty"}, nil
	}
	h := req.Height
	if h == 0 {
		h = a.tree.Version()
	}
	it, err := a.tree.GetImmutable(h)
	if err != nil {
		return &abci.ResponseQuery{Code: CodeMalformed, Log: fmt.Sprintf("no state at height %d", h)}, nil
	}
	v, err := it.Get(req.Data)
	if err != nil {
		return nil, err
	}
	res := &abci.ResponseQuery{Code: CodeOK, Key: req.Data, Value: v, Height: h}
	if req.Prove {
		var p interface{ Marshal() ([]byte, error) }
		if v != nil {
			p, err = it.GetMembershipProof(req.Data)
		} else {
			p, err = it.GetNonMembershipProof(req.Data)
		}
		if err != nil {
			return nil, err
		}
		bz, err := p.Marshal()
		if err != nil {
			return nil, err
		}
		res.ProofOps = &cmtcrypto.ProofOps{Ops: []cmtcrypto.ProofOp{{Type: "ics23:iavl", Key: req.Data, Data: bz}}}
	}
	return res, nil
}
