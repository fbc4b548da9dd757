package app

import (
	"strings"
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

	maxCode := CodeSequenceJump
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

// FuzzParseGenesis reads arbitrary app_state documents: each is refused
// with an error naming a field, or yields a state within the chain's
// bounds.
func FuzzParseGenesis(f *testing.F) {
	f.Add(mustJSON(f, testGenesisDoc()))
	f.Add([]byte(`{"members":[{"id":"m","power":1}],"params":{"max_batch_hashes":18446744073709551615}}`))
	f.Add([]byte(`{"Members":[{"ID":"m","Power":-1}]}`))
	f.Add([]byte(`{"members":null,"issuers":[{}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := parseGenesis(raw)
		if err != nil {
			if !strings.Contains(err.Error(), "app_state") {
				t.Fatalf("error does not name the field: %v", err)
			}
			return
		}
		p := st.params
		if p.MaxBatchHashes == 0 || p.MaxBatchHashes > MaxBatchHashesLimit || p.ProposalTtlBlocks <= 0 || p.ProposalTtlBlocks > maxProposalTTL {
			t.Fatalf("accepted params %v", p)
		}
		if len(st.members) == 0 {
			t.Fatal("accepted a genesis without members")
		}
		for _, m := range st.members {
			if ValidID(m.Id) != nil || m.Power <= 0 || checkPublicKey(m.AdminKey) != nil {
				t.Fatalf("accepted member %v", m)
			}
		}
		for _, is := range st.issuers {
			if ValidID(is.Id) != nil || len(is.Keys) == 0 {
				t.Fatalf("accepted issuer %v", is)
			}
		}
	})
}
