package app

import (
	"crypto/ed25519"
	"fmt"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// Anchoring: an issuer signs a batch of credential hashes with one of its
// keys valid at the block's height; the chain stores the batch's record
// (root, leaf count, signing key, height, time) under proof.BatchKey, and
// a receipt proves a hash against that record.

// CommittedBatch is a batch anchored by a committed block, with what a node
// needs to index it and prove it: its leaves and the ICS23 proof of its
// record against the app hash of its height, built once for every leaf.
type CommittedBatch struct {
	Record      *proof.BatchRecord
	RecordBytes []byte
	Proof       []byte
	Hashes      []byte
}

// NewAnchorBatch builds and signs the AnchorBatch transaction of hashes
// (concatenated 32-byte credential hashes) for issuer's batch seq, and
// the batch's root, which the caller would otherwise compute again.
func NewAnchorBatch(chainID, issuer string, seq uint64, hashes []byte, key ed25519.PrivateKey) ([]byte, [proof.HashSize]byte, error) {
	root, err := proof.Root(hashes)
	if err != nil {
		return nil, root, err
	}
	tx, err := SignTx(&pb.TxBody{
		ChainId:  chainID,
		Signer:   issuer,
		Sequence: seq,
		Msg:      &pb.TxBody_AnchorBatch{AnchorBatch: &pb.AnchorBatch{Root: root[:], Hashes: hashes}},
	}, key)
	return tx, root, err
}

type anchorBatchMsg struct{ *pb.AnchorBatch }

// validate: the root is the root of the hashes, and they are not more than
// params.max_batch_hashes.
func (m anchorBatchMsg) validate(maxHashes uint64) error {
	n := len(m.Hashes)
	if n == 0 || n%proof.HashSize != 0 {
		return fmt.Errorf("%w: hashes is %d bytes, want a positive multiple of %d", ErrMalformed, n, proof.HashSize)
	}
	if uint64(n/proof.HashSize) > maxHashes {
		return fmt.Errorf("%w: %d hashes, limit %d", ErrTooLarge, n/proof.HashSize, maxHashes)
	}
	if len(m.Root) != proof.HashSize {
		return fmt.Errorf("%w: root is %d bytes, want %d", ErrMalformed, len(m.Root), proof.HashSize)
	}
	root, err := proof.Root(m.Hashes)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if string(root[:]) != string(m.Root) {
		return ErrBadRoot
	}
	return nil
}

func (anchorBatchMsg) sequenceKey(body *pb.TxBody) []byte {
	return proof.IssuerSequenceKey(body.Signer)
}

// check: the signer is an active issuer, signing with a key valid at the
// block's height.
func (anchorBatchMsg) check(c *checker, tx *decodedTx) error {
	_, err := c.issuerSigned(tx, tx.body.Signer)
	return err
}

func (m anchorBatchMsg) apply(a *App, tx *decodedTx, b execBlock) ([]abci.Event, error) {
	rec := &proof.BatchRecord{
		Issuer:       tx.body.Signer,
		Seq:          tx.body.Sequence,
		Root:         m.Root,
		LeafCount:    uint64(len(m.Hashes) / proof.HashSize),
		SignerKey:    tx.pubKey,
		Height:       b.height,
		TimeUnixNano: b.timeUnixNano,
	}
	v, err := deterministic.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if _, err := a.tree.Set(proof.BatchKey(rec.Issuer, rec.Seq), v); err != nil {
		return nil, err
	}
	a.block = append(a.block, CommittedBatch{Record: rec, RecordBytes: v, Hashes: m.Hashes})
	return []abci.Event{{Type: "anchor", Attributes: []abci.EventAttribute{
		{Key: "issuer", Value: rec.Issuer, Index: true},
		{Key: "seq", Value: fmt.Sprint(rec.Seq), Index: true},
	}}}, nil
}

// proveBlock builds each batch's ICS23 proof once, against the version just saved.
func (a *App) proveBlock(height int64) error {
	it, err := a.tree.GetImmutable(height)
	if err != nil {
		return err
	}
	for i := range a.block {
		b := &a.block[i]
		p, err := it.GetMembershipProof(proof.BatchKey(b.Record.Issuer, b.Record.Seq))
		if err != nil {
			return fmt.Errorf("prove batch %s/%d: %w", b.Record.Issuer, b.Record.Seq, err)
		}
		if b.Proof, err = p.Marshal(); err != nil {
			return err
		}
	}
	return nil
}

// Batch returns the committed record of batch (issuer, seq), decoded and
// as stored.
func (a *App) Batch(issuer string, seq uint64) (*proof.BatchRecord, []byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.batchLocked(issuer, seq)
}

func (a *App) batchLocked(issuer string, seq uint64) (*proof.BatchRecord, []byte, error) {
	raw, err := a.committed().Get(proof.BatchKey(issuer, seq))
	if err != nil {
		return nil, nil, err
	}
	if raw == nil {
		return nil, nil, fmt.Errorf("batch %s/%d: %w", issuer, seq, ErrNotFound)
	}
	var rec proof.BatchRecord
	if err := proto.Unmarshal(raw, &rec); err != nil {
		return nil, nil, err
	}
	return &rec, raw, nil
}

// ProveBatch returns the record of batch (issuer, seq) as stored and its
// ICS23 proof against the app hash of the record's height.
func (a *App) ProveBatch(issuer string, seq uint64) (*CommittedBatch, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec, raw, err := a.batchLocked(issuer, seq)
	if err != nil {
		return nil, err
	}
	it, err := a.tree.GetImmutable(rec.Height)
	if err != nil {
		return nil, fmt.Errorf("state at height %d: %w", rec.Height, err)
	}
	p, err := it.GetMembershipProof(proof.BatchKey(issuer, seq))
	if err != nil {
		return nil, err
	}
	bz, err := p.Marshal()
	if err != nil {
		return nil, err
	}
	return &CommittedBatch{Record: rec, RecordBytes: raw, Proof: bz}, nil
}

// BatchRecords calls fn with the key and stored record of every batch in
// the state saved at height, in key order.
func (a *App) BatchRecords(height int64, fn func(key, record []byte) error) error {
	a.mu.Lock()
	it, err := a.tree.GetImmutable(height)
	a.mu.Unlock()
	if err != nil {
		return fmt.Errorf("state at height %d: %w", height, err)
	}
	return scan(it, proof.PrefixBatch, fn)
}
