package node

// The chain under the pipeline scenarios (fakeChain), standing for the app
// and consensus: a mempool, blocks committed when the scenario says, the
// app's sequence rule, key rotation, and the reads the node makes of
// committed state.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/proof"
)

// fakeChain stands for the app and consensus: batches broadcast go to its
// mempool, and commit makes the next block of them, with the app's
// sequence rule (an issuer's next batch is its last plus one).
type fakeChain struct {
	s       *scenario
	height  int64
	mempool []mempoolTx
	last    map[string]uint64
	records map[string]*app.CommittedBatch // issuer/seq → committed batch
	blocks  map[int64][][]byte
	// refuse is how many broadcasts the mempool refuses, as when full.
	refuse int
	// valid is the key each issuer signs with on chain (rotate).
	valid     map[string]ed25519.PrivateKey
	rotations int
	// failIndex fails the indexer's reads of blocks, as a failing index
	// write would (set from the test, read by the index writer).
	failIndex atomic.Bool
}

func (c *fakeChain) CanSign(issuer string, pub ed25519.PublicKey) error {
	if k, ok := c.valid[issuer]; !ok || !pub.Equal(k.Public()) {
		return fmt.Errorf("%w: key %x is not a valid key of issuer %q", app.ErrUnauthorized, pub[:4], issuer)
	}
	return nil
}

type mempoolTx struct {
	raw []byte
	a   anchorTx
}

func recordKey(issuer string, seq uint64) string { return fmt.Sprintf("%s/%d", issuer, seq) }

func (c *fakeChain) LastSequence(issuer string) (uint64, error) { return c.last[issuer], nil }

func (c *fakeChain) Batch(issuer string, seq uint64) (*proof.BatchRecord, []byte, error) {
	b, ok := c.records[recordKey(issuer, seq)]
	if !ok {
		return nil, nil, fmt.Errorf("batch %s/%d: %w", issuer, seq, app.ErrNotFound)
	}
	return b.Record, b.RecordBytes, nil
}

func (c *fakeChain) ProveBatch(issuer string, seq uint64) (*app.CommittedBatch, error) {
	b, ok := c.records[recordKey(issuer, seq)]
	if !ok {
		return nil, fmt.Errorf("batch %s/%d: %w", issuer, seq, app.ErrNotFound)
	}
	return &app.CommittedBatch{Record: b.Record, RecordBytes: b.RecordBytes, Proof: b.Proof}, nil
}

func (c *fakeChain) BlockTxs(height int64) ([][]byte, error) {
	txs, ok := c.blocks[height]
	if !ok {
		return nil, fmt.Errorf("block %d is not in the block store", height)
	}
	return txs, nil
}

func (c *fakeChain) ValidatorsChangeAfter(height int64) (bool, error) {
	if c.failIndex.Load() {
		return false, fmt.Errorf("block %d: %w", height, errInjectedIndex)
	}
	if height < 1 || height > c.height {
		return false, fmt.Errorf("block %d is not in the block store", height)
	}
	return false, nil
}

// SignedHeader stands for header height signed by block height+1.
func (c *fakeChain) SignedHeader(height int64) (*headerEntry, error) {
	if height < 1 || height >= c.height {
		return nil, fmt.Errorf("header %d is not signed yet (chain at %d)", height, c.height)
	}
	return &headerEntry{signedHeader: []byte(fmt.Sprintf("header %d", height))}, nil
}

// Broadcast takes the transaction into the mempool unless it is there
// already, which CometBFT answers with an error.
func (c *fakeChain) Broadcast(_ context.Context, tx []byte) (uint32, string, error) {
	a, err := decodeAnchor(tx)
	if err != nil {
		return 0, "", err
	}
	if c.refuse > 0 {
		c.refuse--
		fmt.Fprintf(c.s.out, "broadcast %s/%d: mempool is full\n", a.signer, a.seq)
		return 0, "", errors.New("mempool is full")
	}
	if err := c.CanSign(a.signer, a.pubKey); err != nil {
		fmt.Fprintf(c.s.out, "broadcast %s/%d: CheckTx code %d: %v\n", a.signer, a.seq, app.CodeUnauthorized, err)
		return app.CodeUnauthorized, err.Error(), nil
	}
	for _, m := range c.mempool {
		if bytes.Equal(m.raw, tx) {
			fmt.Fprintf(c.s.out, "broadcast %s/%d: already in the mempool\n", a.signer, a.seq)
			return 0, "", errors.New("tx already exists in cache")
		}
	}
	c.mempool = append(c.mempool, mempoolTx{raw: tx, a: a})
	fmt.Fprintf(c.s.out, "broadcast %s/%d: %s\n", a.signer, a.seq, c.s.nameAll(a.hashes))
	return 0, "", nil
}

// commit makes the next block of the mempool and returns what the app's
// commit hook would hand the indexer.
func (c *fakeChain) commit() (int64, []app.CommittedBatch) {
	c.height++
	var txs [][]byte
	var batches []app.CommittedBatch
	for _, m := range c.mempool {
		txs = append(txs, m.raw)
		a := m.a
		if want := c.last[a.signer] + 1; a.seq != want {
			fmt.Fprintf(c.s.out, "block %d: %s/%d rejected: sequence %d, want %d\n", c.height, a.signer, a.seq, a.seq, want)
			continue
		}
		if err := c.CanSign(a.signer, a.pubKey); err != nil {
			fmt.Fprintf(c.s.out, "block %d: %s/%d rejected: %v\n", c.height, a.signer, a.seq, err)
			continue
		}
		root, err := proof.Root(a.hashes)
		if err != nil {
			c.s.t.Fatal(err)
		}
		rec := &proof.BatchRecord{Issuer: a.signer, Seq: a.seq, Root: root[:], LeafCount: uint64(len(a.hashes) / proof.HashSize), Height: c.height}
		raw, err := proto.Marshal(rec)
		if err != nil {
			c.s.t.Fatal(err)
		}
		b := app.CommittedBatch{Record: rec, RecordBytes: raw, Proof: []byte("proof"), Hashes: a.hashes}
		c.records[recordKey(a.signer, a.seq)] = &b
		c.last[a.signer] = a.seq
		batches = append(batches, b)
		fmt.Fprintf(c.s.out, "block %d: %s/%d anchored: %s\n", c.height, a.signer, a.seq, c.s.nameAll(a.hashes))
	}
	if len(txs) == 0 {
		fmt.Fprintf(c.s.out, "block %d: empty\n", c.height)
	}
	c.blocks[c.height] = txs
	c.mempool = nil
	return c.height, batches
}
