package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	cmtnode "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/rpc/client/local"

	"github.com/credence-ledger/credence/app"
)

// consensusChain is the chain as the node's pipeline sees it: committed
// state from the app, blocks from CometBFT's block store, and its mempool.
// cmt and rpc are set once consensus is assembled, before the pipeline
// sends or the indexer catches up.
type consensusChain struct {
	*app.App
	cmt *cmtnode.Node
	rpc *local.Local
}

func (c *consensusChain) Broadcast(ctx context.Context, tx []byte) (uint32, string, error) {
	res, err := c.rpc.BroadcastTxSync(ctx, tx)
	if err != nil {
		return 0, "", err
	}
	return res.Code, res.Log, nil
}

func (c *consensusChain) BlockTxs(height int64) ([][]byte, error) {
	bs := c.cmt.BlockStore()
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
	return fetchHeader(context.Background(), c.rpc, height)
}

func (c *consensusChain) ValidatorsChangeAfter(height int64) (bool, error) {
	meta := c.cmt.BlockStore().LoadBlockMeta(height)
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
