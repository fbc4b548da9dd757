package app

import (
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// FuzzDecodeTx feeds arbitrary bytes to CheckTx (and ProcessProposal) of an
// app with committed state. They must never panic, never report an
// internal error for bad input, and agree with decodeTx on stateless
// failures.
func FuzzDecodeTx(f *testing.F) {
	n := start(f)
	n.blockOK(anchor(f, testChainID, alphaID, 1, hashesN("fz", 3), alpha1))

	f.Add(anchor(f, testChainID, alphaID, 2, hashesN("seed", 3), alpha1))
	f.Add(anchor(f, testChainID, alphaID, 3, hashesN("seed", testMaxHashes), alpha1))
	f.Add(anchor(f, testChainID, betaID, 1, hashesN("seed", 1), beta1))
	f.Add(anchor(f, testChainID, alphaID, 1, hashesN("fz", 3), alpha1)) // replay
	f.Add(anchor(f, "credence-other-1", alphaID, 2, hashesN("seed", 3), alpha1))
	f.Add(anchor(f, testChainID, "nobody", 1, hashesN("seed", 2), strangerKey))
	f.Add(anchor(f, testChainID, alphaID, 2, hashesN("seed", 2), beta1))
	f.Add(anchor(f, testChainID, alphaID, 2, hashesN("seed", testMaxHashes+1), alpha1))
	for _, mod := range []func(*pb.TxBody){
		func(b *pb.TxBody) { b.Msg = nil },
		func(b *pb.TxBody) { b.Sequence = 0 },
		func(b *pb.TxBody) { b.Signer = "A/B" },
		func(b *pb.TxBody) { b.GetAnchorBatch().Hashes = b.GetAnchorBatch().Hashes[:33] },
		func(b *pb.TxBody) { b.GetAnchorBatch().Root = b.GetAnchorBatch().Root[:5] },
	} {
		b := anchorBody(alphaID, 2, hashesN("seed", 2))
		mod(b)
		f.Add(rawTx(f, b, pubOf(alpha1), alpha1))
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00, 0x12, 0x00, 0x1a, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})

	maxCode := CodeInternal
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := n.app.CheckTx(ctx, &abci.RequestCheckTx{Tx: raw, Type: abci.CheckTxType_New})
		if err != nil {
			t.Fatalf("CheckTx returned an error: %v", err)
		}
		if res.Code > maxCode {
			t.Fatalf("unknown code %d", res.Code)
		}
		if res.Code == CodeInternal {
			t.Fatalf("CheckTx reports an internal error for client input: %s", res.Log)
		}
		if res.Code != CodeOK && res.Log == "" {
			t.Fatalf("code %d without a log", res.Code)
		}
		_, derr := decodeTx(raw, testChainID, testMaxHashes)
		if derr != nil && res.Code != codeOf(derr) {
			t.Fatalf("CheckTx code %d, decodeTx says %v (code %d)", res.Code, derr, codeOf(derr))
		}
		if res.Code == CodeOK && derr != nil {
			t.Fatalf("CheckTx accepted what decodeTx rejects: %v", derr)
		}
		pres, err := n.app.ProcessProposal(ctx, &abci.RequestProcessProposal{Txs: [][]byte{raw}, Height: n.height + 1, Time: blockTime(n.height + 1)})
		if err != nil {
			t.Fatalf("ProcessProposal returned an error: %v", err)
		}
		if derr != nil && pres.Status != abci.ResponseProcessProposal_REJECT {
			t.Fatalf("ProcessProposal accepts an undecodable tx: %v", derr)
		}
	})
}
