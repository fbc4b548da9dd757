package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	cmtnode "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/rpc/client/local"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
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
	blk := c.cmt.BlockStore().LoadBlock(height)
	if blk == nil {
		return nil, fmt.Errorf("block %d is not in the block store", height)
	}
	txs := make([][]byte, len(blk.Txs))
	for i, tx := range blk.Txs {
		txs[i] = tx
	}
	return txs, nil
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
}

var errNotAnchor = errors.New("not an anchor batch")

func decodeAnchor(raw []byte) (anchorTx, error) {
	var tx pb.Tx
	if err := proto.Unmarshal(raw, &tx); err != nil {
		return anchorTx{}, err
	}
	var body pb.TxBody
	if err := proto.Unmarshal(tx.Body, &body); err != nil {
		return anchorTx{}, err
	}
	ab := body.GetAnchorBatch()
	if ab == nil {
		return anchorTx{}, errNotAnchor
	}
	return anchorTx{signer: body.Signer, seq: body.Sequence, hashes: ab.Hashes}, nil
}
