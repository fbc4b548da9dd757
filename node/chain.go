package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	cmtnode "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/rpc/client/local"

	"github.com/credence-ledger/credence/app"
)

// consensusChain is the chain as the node's pipeline sees it: committed
// state from the app, blocks and signed headers from CometBFT's stores, and
// its mempool.
//
// It is the one part linked after it is made (attach): CometBFT takes the
// ABCI application, and so the snapshots, receipts and index behind it, at
// construction, while the block store and the RPC this reads exist only
// once CometBFT is made. Every other part takes what it needs when it is
// made. A read before attach answers errConsensusNotAttached.
type consensusChain struct {
	*app.App
	cmt atomic.Pointer[consensusParts]
}

type consensusParts struct {
	node *cmtnode.Node
	rpc  *local.Local
}

var errConsensusNotAttached = errors.New("consensus is not running yet")

// newConsensusChain is the chain over the app a, its consensus side to be
// attached.
func newConsensusChain(a *app.App) *consensusChain { return &consensusChain{App: a} }

// attach links CometBFT's node, once made, and its in-process RPC.
func (c *consensusChain) attach(node *cmtnode.Node, rpc *local.Local) {
	c.cmt.Store(&consensusParts{node: node, rpc: rpc})
}

func (c *consensusChain) consensus() (*consensusParts, error) {
	p := c.cmt.Load()
	if p == nil {
		return nil, errConsensusNotAttached
	}
	return p, nil
}

func (c *consensusChain) Broadcast(ctx context.Context, tx []byte) (uint32, string, error) {
	p, err := c.consensus()
	if err != nil {
		return 0, "", err
	}
	res, err := p.rpc.BroadcastTxSync(ctx, tx)
	if err != nil {
		return 0, "", err
	}
	return res.Code, res.Log, nil
}

func (c *consensusChain) BlockTxs(height int64) ([][]byte, error) {
	p, err := c.consensus()
	if err != nil {
		return nil, err
	}
	bs := p.node.BlockStore()
	if height < bs.Base() {
		return nil, fmt.Errorf("block %d: %w (it starts at %d)", height, errBlockNotHeld, bs.Base())
	}
	blk := bs.LoadBlock(height)
	if blk == nil {
		return nil, fmt.Errorf("block %d is missing from the block store, which holds %d to %d: %w", height, bs.Base(), bs.Height(), errStoreDamaged)
	}
	txs := make([][]byte, len(blk.Txs))
	for i, tx := range blk.Txs {
		txs[i] = tx
	}
	return txs, nil
}

func (c *consensusChain) SignedHeader(height int64) (*headerEntry, error) {
	return c.ReadSignedHeader(context.Background(), height)
}

// ReadSignedHeader is receipts' headerReader.
func (c *consensusChain) ReadSignedHeader(ctx context.Context, height int64) (*headerEntry, error) {
	p, err := c.consensus()
	if err != nil {
		return nil, err
	}
	return fetchHeader(ctx, p.rpc, p.node.BlockStore().Height(), height)
}

func (c *consensusChain) ValidatorsChangeAfter(height int64) (bool, error) {
	p, err := c.consensus()
	if err != nil {
		return false, err
	}
	meta := p.node.BlockStore().LoadBlockMeta(height)
	if meta == nil {
		return false, fmt.Errorf("block %d is not in the block store", height)
	}
	return !bytes.Equal(meta.Header.ValidatorsHash, meta.Header.NextValidatorsHash), nil
}

// anchorTx is what the node reads back of a signed AnchorBatch transaction.
type anchorTx struct {
	signer string
	seq    uint64
	hashes []byte
	// pubKey is the key that signed it.
	pubKey []byte
}

var errNotAnchor = errors.New("not an anchor batch")

func decodeAnchor(raw []byte) (anchorTx, error) {
	env, body, err := app.ParseTx(raw)
	if err != nil {
		return anchorTx{}, err
	}
	ab := body.GetAnchorBatch()
	if ab == nil {
		return anchorTx{}, errNotAnchor
	}
	return anchorTx{signer: body.Signer, seq: body.Sequence, hashes: ab.Hashes, pubKey: env.PublicKey}, nil
}
