package app

// Revocation: the issuer and its sponsor revoke anchored hashes, the
// revocation proved against the app hash; revocations meeting in one block;
// the size limit.

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	ics23 "github.com/cosmos/ics23/go"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestRevoke: the issuer and its sponsor revoke hashes the issuer
// anchored, each shown by its batch, leaf index and audit path. The
// revocation is state under RevocationKey, proved against the app hash; a
// hash never revoked has a non-membership proof.
func TestRevoke(t *testing.T) {
	c := startGov(t, 0, 10, 1)
	uni := c.m[0]
	b1, tx1 := c.anchorBatch(alphaID, alpha1, 5) // an odd size: right-edge leaves have shorter paths
	b2, tx2 := c.anchorBatch(alphaID, alpha1, 8)
	// gamma anchors one of alpha's hashes too.
	shared := b1.hash(2)
	gammaTx := anchor(t, testChainID, gammaID, c.next(issuerAccount(gammaID)), shared, gamma1)
	c.runOK(tx1, tx2, gammaTx) // 1

	byIssuer := c.asIssuer(alphaID, alpha1, revoke(alphaID, 7, b1.revoked(0), b1.revoked(4), b2.revoked(7), b1.revoked(2)))
	wantCheck(t, c, byIssuer, CodeOK)
	res, _ := c.runOK(byIssuer) // 2
	if ev := res.TxResults[0].Events; len(ev) != 1 || ev[0].Type != "revoke" || attr(ev[0], "issuer") != alphaID || attr(ev[0], "count") != "4" {
		t.Errorf("events %v", ev)
	}
	bySponsor := c.asMember(uni, revoke(alphaID, 2, b2.revoked(3)))
	wantCheck(t, c, bySponsor, CodeOK)
	c.runOK(bySponsor) // 3

	if k := proof.RevocationKey(alphaID, b1.hash(0)); !bytes.Equal(k, append([]byte("r/alpha/"), b1.hash(0)...)) {
		t.Errorf("RevocationKey = %q", k)
	}
	for _, w := range []struct {
		hash []byte
		want *pb.Revocation
	}{
		{b1.hash(0), &pb.Revocation{Reason: 7, Height: 2, BatchSeq: 1, RevokedBy: alphaID}},
		{b1.hash(4), &pb.Revocation{Reason: 7, Height: 2, BatchSeq: 1, RevokedBy: alphaID}},
		{b1.hash(2), &pb.Revocation{Reason: 7, Height: 2, BatchSeq: 1, RevokedBy: alphaID}},
		{b2.hash(7), &pb.Revocation{Reason: 7, Height: 2, BatchSeq: 2, RevokedBy: alphaID}},
		{b2.hash(3), &pb.Revocation{Reason: 2, Height: 3, BatchSeq: 2, RevokedBy: memberID}},
	} {
		if got := revocation(t, c, alphaID, w.hash, 0); !proto.Equal(got, w.want) {
			t.Errorf("revocation of %x: %v, want %v", w.hash[:4], got, w.want)
		}
	}
	// Before the revocation, and for hashes never revoked, the state proves
	// absence.
	if r := revocation(t, c, alphaID, b1.hash(0), 1); r != nil {
		t.Errorf("revoked at height 1: %v", r)
	}
	if r := revocation(t, c, alphaID, b2.hash(3), 2); r != nil {
		t.Errorf("revoked at height 2: %v", r)
	}
	for _, h := range [][]byte{b1.hash(1), b1.hash(3), b2.hash(0), sha256.New().Sum(nil)} {
		if r := revocation(t, c, alphaID, h, 0); r != nil {
			t.Errorf("never revoked hash %x: %v", h[:4], r)
		}
	}
	// Revocations are per issuer: gamma's copy of the shared hash is not
	// revoked.
	if r := revocation(t, c, gammaID, shared, 0); r != nil {
		t.Errorf("gamma's hash revoked: %v", r)
	}
	// A membership proof of a revocation at height 3 does not verify against
	// the app hash of height 1.
	q := c.query("/key", proof.RevocationKey(alphaID, b2.hash(3)), 3, true)
	if ics23.VerifyMembership(ics23.IavlSpec, c.appHash[1], unmarshalProof(t, q.ProofOps.Ops[0].Data), proof.RevocationKey(alphaID, b2.hash(3)), q.Value) {
		t.Error("revocation proof verifies against height 1")
	}

	// The issuer's revocations use its batch sequence space: the next batch
	// has a sequence above the revocation's.
	replay := anchor(t, testChainID, alphaID, 3, hashesN("reg-after-revoke", 1), alpha1)
	wantCheck(t, c, replay, CodeReplay)
	c.runOK(c.anchorTx(alphaID, alpha1, 1))

	// Anchored batches are untouched.
	for _, b := range []*batch{b1, b2} {
		if rec, _ := c.batchRecord(alphaID, b.seq); rec == nil || rec.LeafCount != b.tree.Size() {
			t.Errorf("batch %d: %v", b.seq, rec)
		}
	}
}

// TestRevokeInBlock: a revocation sees the earlier transactions of
// its block. A second revocation of a hash in the block that revokes it is
// refused (PrepareProposal and ProcessProposal, which check against the
// committed state, let both through); a transaction with one revoked hash
// revokes none of its others.
func TestRevokeInBlock(t *testing.T) {
	setup := func(t *testing.T) (*chain, *batch) {
		c := startGov(t, 0, 10, 1)
		b, tx := c.anchorBatch(alphaID, alpha1, 4)
		c.runOK(tx)
		return c, b
	}
	for _, tc := range []struct {
		name  string
		first func(c *chain, b *batch) []byte
		bad   func(c *chain, b *batch) []byte
	}{
		{"issuer then sponsor",
			func(c *chain, b *batch) []byte {
				return c.asIssuer(alphaID, alpha1, revoke(alphaID, 1, b.revoked(1)))
			},
			func(c *chain, b *batch) []byte {
				return c.asMember(c.m[0], revoke(alphaID, 1, b.revoked(1)))
			}},
		{"sponsor twice",
			func(c *chain, b *batch) []byte {
				return c.asMember(c.m[0], revoke(alphaID, 1, b.revoked(1)))
			},
			func(c *chain, b *batch) []byte {
				return c.asMember(c.m[0], revoke(alphaID, 3, b.revoked(1)))
			}},
		{"a revoked hash among new ones",
			func(c *chain, b *batch) []byte {
				return c.asIssuer(alphaID, alpha1, revoke(alphaID, 1, b.revoked(1)))
			},
			func(c *chain, b *batch) []byte {
				return c.asIssuer(alphaID, alpha1, revoke(alphaID, 1, b.revoked(0), b.revoked(2), b.revoked(1), b.revoked(3)))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, b := setup(t)
			ref, rb := setup(t)
			first, bad := tc.first(c, b), tc.bad(c, b)
			if got := c.prepare(first, bad); !sameTxs(got, [][]byte{first, bad}) {
				t.Errorf("PrepareProposal keeps %d of 2", len(got))
			}
			if s := c.process(first, bad); s != abci.ResponseProcessProposal_ACCEPT {
				t.Errorf("ProcessProposal %v", s)
			}
			res, _ := c.run(first, bad)
			wantCodes(t, res, CodeOK, CodeRejected)
			if l := res.TxResults[1].Log; !strings.Contains(l, "already revoked") {
				t.Errorf("log %q", l)
			}
			want, _ := ref.run(tc.first(ref, rb))
			if !bytes.Equal(res.AppHash, want.AppHash) {
				t.Errorf("app hash %x, want %x (the block without the refused revocation)", res.AppHash, want.AppHash)
			}
			for _, i := range []int{0, 2, 3} {
				if r := revocation(t, c, alphaID, b.hash(i), 0); r != nil {
					t.Errorf("hash %d revoked by a refused transaction: %v", i, r)
				}
			}
			wantCheck(t, c, bad, CodeRejected)
		})
	}
	t.Run("anchor and revoke in one block", func(t *testing.T) {
		c := startGov(t, 0, 10, 1)
		b, tx := c.anchorBatch(alphaID, alpha1, 3)
		rev := c.asIssuer(alphaID, alpha1, revoke(alphaID, 0, b.revoked(2)))
		c.runOK(tx, rev)
		if r := revocation(t, c, alphaID, b.hash(2), 0); r == nil || r.Height != 1 || r.BatchSeq != b.seq {
			t.Errorf("revocation %v", r)
		}
	})
}

// TestRevokeLimit: 1000 hashes in one revocation are taken (with
// max_batch_hashes raised to hold them in one batch).
func TestRevokeLimit(t *testing.T) {
	c := startGov(t, 0, 10, 1)
	c.runOK(c.propose(c.m[0], setMaxHashes(maxRevokedHashes)))
	if c.params().MaxBatchHashes != maxRevokedHashes {
		t.Fatal("max_batch_hashes not raised")
	}
	b, tx := c.anchorBatch(alphaID, alpha1, maxRevokedHashes)
	c.runOK(tx)
	hs := make([]*pb.RevokedHash, maxRevokedHashes)
	for i := range hs {
		hs[i] = b.revoked(i)
	}
	rev := c.asMember(c.m[0], revoke(alphaID, 9, hs...))
	wantCheck(t, c, rev, CodeOK)
	res, _ := c.runOK(rev)
	if attr(res.TxResults[0].Events[0], "count") != "1000" {
		t.Errorf("events %v", res.TxResults[0].Events)
	}
	for _, i := range []int{0, 511, 999} {
		if r := revocation(t, c, alphaID, b.hash(i), 0); r == nil || r.Reason != 9 {
			t.Errorf("hash %d: %v", i, r)
		}
	}
}
