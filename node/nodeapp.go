package node

import (
	"context"
	"errors"
	"io/fs"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/credence-ledger/credence/app"
)

// The ABCI application CometBFT runs is not app.App alone but nodeApp:
// the state machine, with this node's own business around it. Consensus
// sees the state machine's answers unchanged, except two things no other
// node needs to agree on: the retain height of Commit (retention.go) and
// state sync (snapshot.go takes and serves snapshots, restore.go restores
// one). What holds at each Commit, in this order, once the state machine
// committed:
//
//   - a restore is confirmed (its xq marker cleared) only after a block is
//     committed on it, so a stop before that block restores anew;
//   - a snapshot is begun only of a committed height, in the background;
//   - the retain height never passes a block the index, its catch-up or a
//     peer restoring this node's newest snapshot still needs.

// nodeApp is the application CometBFT talks to: the state machine, plus
// state-sync snapshots of the state and of this node's receipt index.
type nodeApp struct {
	*app.App
	snaps  *snapshots
	retain *retention
}

// Commit adds the node's retain height to the state machine's answer:
// which blocks the node still needs is its own business, not consensus's.
func (a nodeApp) Commit(ctx context.Context, req *abci.RequestCommit) (*abci.ResponseCommit, error) {
	res, err := a.App.Commit(ctx, req)
	if err == nil {
		a.snaps.confirmRestore()
		h := a.App.Height()
		a.snaps.maybeTake(h)
		res.RetainHeight = a.retain.height(h)
		metricRetainHeight.Set(float64(res.RetainHeight))
	}
	return res, err
}

func (a nodeApp) ListSnapshots(context.Context, *abci.RequestListSnapshots) (*abci.ResponseListSnapshots, error) {
	return &abci.ResponseListSnapshots{Snapshots: a.snaps.list()}, nil
}

func (a nodeApp) LoadSnapshotChunk(_ context.Context, req *abci.RequestLoadSnapshotChunk) (*abci.ResponseLoadSnapshotChunk, error) {
	if req.Format != snapshotFormat {
		return &abci.ResponseLoadSnapshotChunk{}, nil
	}
	b, err := a.snaps.loadChunk(int64(req.Height), req.Chunk)
	if errors.Is(err, fs.ErrNotExist) {
		a.snaps.log.Info("snapshot chunk not available", "height", req.Height, "chunk", req.Chunk, "err", err)
		return &abci.ResponseLoadSnapshotChunk{}, nil
	}
	if err != nil {
		a.snaps.log.Error("snapshot chunk cannot be served", "height", req.Height, "chunk", req.Chunk, "err", err)
		return &abci.ResponseLoadSnapshotChunk{}, nil
	}
	return &abci.ResponseLoadSnapshotChunk{Chunk: b}, nil
}

func (a nodeApp) OfferSnapshot(_ context.Context, req *abci.RequestOfferSnapshot) (*abci.ResponseOfferSnapshot, error) {
	return &abci.ResponseOfferSnapshot{Result: a.snaps.offer(req.Snapshot, req.AppHash)}, nil
}

func (a nodeApp) ApplySnapshotChunk(_ context.Context, req *abci.RequestApplySnapshotChunk) (*abci.ResponseApplySnapshotChunk, error) {
	return a.snaps.apply(req), nil
}
