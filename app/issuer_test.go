package app

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	ics23 "github.com/cosmos/ics23/go"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// ---------------------------------------------------------------------------
// Registration

// TestRegisterIssuer: a member registers an issuer with its admin
// key; the issuer is ACTIVE, sponsored by that member, its keys valid from
// the registering height, and anchors with them from then on.
func TestRegisterIssuer(t *testing.T) {
	c := startGov(t, 0, 10, 1)
	uni, b := c.m[0], c.m[1]
	k1, k2, k3 := issuerTestKey("new-1"), issuerTestKey("new-2"), issuerTestKey("new-3")
	c.advanceTo(2)

	early := anchor(t, testChainID, "newbie", 1, hashesN("reg-early", 2), k1)
	wantCheck(t, c, early, CodeUnknownSigner)

	reg := c.asMember(uni, registerIssuer("newbie", "New Registrar", pubOf(k1), pubOf(k2)))
	regB := c.asMember(b, registerIssuer("other", "", pubOf(k3)))
	wantCheck(t, c, reg, CodeOK)
	wantCheck(t, c, regB, CodeOK)
	res, _ := c.runOK(reg, regB) // height 3
	for i, id := range []string{"newbie", "other"} {
		if ev := res.TxResults[i].Events; len(ev) != 1 || ev[0].Type != "issuer" || attr(ev[0], "registered") != id {
			t.Errorf("registration of %s: events %v", id, ev)
		}
	}
	want := &pb.Issuer{Id: "newbie", Name: "New Registrar", Sponsor: memberID, Status: statusActive,
		Keys: []*pb.IssuerKey{keyRec(k1, 3, 0, 0), keyRec(k2, 3, 0, 0)}}
	if got := c.issuer("newbie"); !proto.Equal(got, want) {
		t.Fatalf("issuer record %v, want %v", got, want)
	}
	want = &pb.Issuer{Id: "other", Sponsor: "member-b", Status: statusActive, Keys: []*pb.IssuerKey{keyRec(k3, 3, 0, 0)}}
	if got := c.issuer("other"); !proto.Equal(got, want) {
		t.Fatalf("issuer record %v, want %v", got, want)
	}
	// The record is provable against the app hash.
	proved(t, c, proof.IssuerKey("newbie"), 0)
	if v := proved(t, c, proof.IssuerKey("newbie"), 2); v != nil {
		t.Fatal("issuer present before its registration")
	}

	// Anchors with each key at later heights, in the issuer's own sequence
	// space (starting at 1).
	for i, k := range []ed25519.PrivateKey{k1, k2, k1} {
		tx := anchor(t, testChainID, "newbie", uint64(i+1), hashesN(fmt.Sprintf("reg-newbie-%d", i), 3), k)
		wantCheck(t, c, tx, CodeOK)
		c.runOK(tx)
		rec, _ := c.batchRecord("newbie", uint64(i+1))
		if rec == nil || !bytes.Equal(rec.SignerKey, pubOf(k)) || rec.Height != c.height {
			t.Fatalf("batch %d: record %v", i+1, rec)
		}
	}
	// The other issuer's key is not newbie's, nor the sponsor's admin key.
	for _, k := range []ed25519.PrivateKey{k3, uni.admin} {
		tx := anchor(t, testChainID, "newbie", 10, hashesN("reg-newbie-bad", 1), k)
		wantCheck(t, c, tx, CodeUnauthorized)
		res, _ := c.run(tx)
		wantCodes(t, res, CodeUnauthorized)
	}
	c.runOK(c.anchorTx("other", k3, 1))
}

// TestRegisterIssuerAndAnchorInOneBlock: keys are valid from the
// registering height, so FinalizeBlock takes a batch of the new issuer
// after its registration in the same block (PrepareProposal, which checks
// against the committed state, leaves such a batch out).
func TestRegisterIssuerAndAnchorInOneBlock(t *testing.T) {
	c := startGov(t, 0, 10, 1)
	k := issuerTestKey("same-block")
	reg := c.asMember(c.m[0], registerIssuer("fresh", "", pubOf(k)))
	tx := anchor(t, testChainID, "fresh", 1, hashesN("reg-fresh", 2), k)
	if got := c.prepare(tx, reg); !sameTxs(got, [][]byte{reg}) {
		t.Errorf("PrepareProposal keeps %d txs, want the registration only", len(got))
	}
	c.runOK(reg, tx)
	if rec, _ := c.batchRecord("fresh", 1); rec == nil || rec.Height != 1 {
		t.Fatalf("record %v", rec)
	}
}

// TestIssuerAcceptedEdges: the registration limits themselves.
func TestIssuerAcceptedEdges(t *testing.T) {
	keys := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = pubOf(issuerTestKey(fmt.Sprintf("edge-%d", i)))
		}
		return out
	}
	for _, tc := range []struct {
		name, id, issuerName string
		keys                 [][]byte
	}{
		{"16 keys", "sixteen", "", keys(16)},
		{"name of 200 bytes", "long-name", strings.Repeat("n", 200), keys(1)},
		{"id of 64 characters", strings.Repeat("i", 64), "", keys(1)},
		{"id with every allowed kind of character", "a-z.0_9", "", keys(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startGov(t, 0, 10, 1)
			tx := c.asMember(c.m[0], registerIssuer(tc.id, tc.issuerName, tc.keys...))
			wantCheck(t, c, tx, CodeOK)
			c.runOK(tx)
			is := c.issuer(tc.id)
			if len(is.Keys) != len(tc.keys) || is.Name != tc.issuerName || is.Status != statusActive {
				t.Fatalf("record %v", is)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Key rotation

// rotatedAt is the height from which a rotation in block h made newKey
// the issuer's key: the height the old windows end at. The rotation takes
// effect at its own height or, so that the batches its block accepted stay
// inside the stored windows, at the next one; either is taken here.
func (c *chain) rotatedAt(id string, newKey ed25519.PrivateKey, h int64) int64 {
	c.t.Helper()
	k := findKey(c.issuer(id), pubOf(newKey))
	if k == nil {
		c.t.Fatalf("issuer %q has no key %x", id, pubOf(newKey)[:4])
	}
	if k.FromHeight != h && k.FromHeight != h+1 {
		c.t.Fatalf("rotation in block %d: new key valid from %d, want %d or %d", h, k.FromHeight, h, h+1)
	}
	return k.FromHeight
}

// codeAt is the code of a batch signed at height h by a key valid from
// `from` (inclusive) until `to` (exclusive, 0: open).
func codeAt(h, from, to int64) uint32 {
	if h >= from && (to == 0 || h < to) {
		return CodeOK
	}
	return CodeUnauthorized
}

// TestRotateKey: a rotation, by the issuer with a valid key or by
// its sponsor, ends the open key windows at the rotation height E and opens
// the new key's there. A batch signed with the old key is accepted before
// E and refused from E on; the new key signs from E. (E is the rotation's
// block height h, or h+1 when batches of the rotation's block keep the old
// key: rotatedAt.)
func TestRotateKey(t *testing.T) {
	for _, by := range []string{"issuer", "sponsor"} {
		t.Run("by the "+by, func(t *testing.T) {
			c := startGov(t, 0, 10, 1)
			uni := c.m[0]
			k1, k2, k3 := issuerTestKey("rot-1"), issuerTestKey("rot-2"), issuerTestKey("rot-3")
			c.runOK(c.asMember(uni, registerIssuer("rot", "", pubOf(k1)))) // 1
			old := c.anchorTx("rot", k1, 2)
			wantCheck(t, c, old, CodeOK)
			c.runOK(old) // 2: before the rotation, k1 signs
			c.advanceTo(3)

			var rot []byte
			if by == "issuer" {
				rot = c.asIssuer("rot", k1, rotateKey("rot", pubOf(k2)))
			} else {
				rot = c.asMember(uni, rotateKey("rot", pubOf(k2)))
			}
			wantCheck(t, c, rot, CodeOK)
			// 4: the rotation, then batches signed with k1 and k2.
			res, _ := c.run(rot, c.anchorTx("rot", k1, 1), c.anchorTx("rot", k2, 1))
			e := c.rotatedAt("rot", k2, 4)
			wantCodes(t, res, CodeOK, codeAt(4, 1, e), codeAt(4, e, 0))
			if ev := res.TxResults[0].Events; len(ev) != 1 || attr(ev[0], "rotated") != "rot" {
				t.Errorf("events %v", ev)
			}
			c.wantKeys("rot", keyRec(k1, 1, e, 0), keyRec(k2, e, 0, 0))
			if rec, _ := c.batchRecord("rot", 1); rec == nil || !bytes.Equal(rec.SignerKey, pubOf(k1)) {
				t.Errorf("the batch signed before the rotation: %v", rec)
			}
			// Every batch accepted so far was signed with a key valid, by
			// the stored windows, at its height.
			for seq := uint64(1); seq <= c.seq[issuerAccount("rot")]; seq++ {
				if rec, _ := c.batchRecord("rot", seq); rec != nil && !keyValidAt(c.issuer("rot"), rec.SignerKey, rec.Height) {
					t.Errorf("batch %d at height %d: its key's stored window excludes it", seq, rec.Height)
				}
			}

			// From E on (5 >= E): k1 is refused, k2 signs.
			c.advanceTo(e - 1)
			bad, good := c.anchorTx("rot", k1, 1), c.anchorTx("rot", k2, 1)
			wantCheck(t, c, bad, CodeUnauthorized)
			wantCheck(t, c, good, CodeOK)
			res, _ = c.run(bad, good)
			wantCodes(t, res, CodeUnauthorized, CodeOK)
			if !strings.Contains(res.TxResults[0].Log, "not a valid key") {
				t.Errorf("log %q", res.TxResults[0].Log)
			}
			// The retired key cannot rotate any more.
			if by == "issuer" {
				stale := c.asIssuer("rot", k1, rotateKey("rot", pubOf(k3)))
				wantCheck(t, c, stale, CodeUnauthorized)
				res, _ = c.run(stale)
				wantCodes(t, res, CodeUnauthorized)
			}

			// A second rotation, by the other party; k1's window, already
			// closed, stays as it is.
			var rot2 []byte
			if by == "issuer" {
				rot2 = c.asMember(uni, rotateKey("rot", pubOf(k3)))
			} else {
				rot2 = c.asIssuer("rot", k2, rotateKey("rot", pubOf(k3)))
			}
			c.runOK(rot2)
			e2 := c.rotatedAt("rot", k3, c.height)
			c.wantKeys("rot", keyRec(k1, 1, e, 0), keyRec(k2, e, e2, 0), keyRec(k3, e2, 0, 0))
			c.advanceTo(e2 - 1)
			res, _ = c.run(c.anchorTx("rot", k1, 1), c.anchorTx("rot", k2, 1), c.anchorTx("rot", k3, 1))
			wantCodes(t, res, CodeUnauthorized, CodeUnauthorized, CodeOK)
		})
	}
	t.Run("a bounded window is cut short", func(t *testing.T) {
		c := startGov(t, 0, 10, 1)
		k := issuerTestKey("beta-next")
		c.runOK()                                                // 1
		c.runOK(c.asMember(c.m[0], rotateKey(betaID, pubOf(k)))) // 2: beta1 was [1, 5)
		e := c.rotatedAt(betaID, k, 2)
		c.wantKeys(betaID, keyRec(beta1, 1, e, 0), keyRec(k, e, 0, 0))
		c.advanceTo(e - 1)
		res, _ := c.run(c.anchorTx(betaID, beta1, 1), c.anchorTx(betaID, k, 1))
		wantCodes(t, res, CodeUnauthorized, CodeOK)
	})
	t.Run("a rotation signed with a key given by a rotation", func(t *testing.T) {
		c := startGov(t, 0, 10, 1)
		k2, k3 := issuerTestKey("chain-2"), issuerTestKey("chain-3")
		c.runOK()
		c.runOK(c.asIssuer(alphaID, alpha1, rotateKey(alphaID, pubOf(k2)))) // 2
		e := c.rotatedAt(alphaID, k2, 2)
		c.advanceTo(e - 1)
		c.runOK(c.asIssuer(alphaID, k2, rotateKey(alphaID, pubOf(k3))))
		e2 := c.rotatedAt(alphaID, k3, c.height)
		is := c.issuer(alphaID)
		for _, w := range []*pb.IssuerKey{keyRec(alpha1, 1, e, 0), keyRec(k2, e, e2, 0), keyRec(k3, e2, 0, 0)} {
			if k := findKey(is, w.PublicKey); !proto.Equal(k, w) {
				t.Errorf("key %x: %v, want %v", w.PublicKey[:4], k, w)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Compromise

// TestCompromiseKey: the sponsor marks a key compromised from a past
// height; the key signs nothing from then on, and the issuer record that
// receipts rely on, with compromised_from, is proved against the app hash.
func TestCompromiseKey(t *testing.T) {
	c := startGov(t, 0, 10, 1)
	uni := c.m[0]
	k1, k2, k3 := issuerTestKey("cmp-1"), issuerTestKey("cmp-2"), issuerTestKey("cmp-3")
	c.runOK(c.asMember(uni, registerIssuer("cmp", "", pubOf(k1), pubOf(k2)))) // 1
	for range 3 {
		c.runOK(c.anchorTx("cmp", k1, 2)) // 2, 3, 4: batches 1-3
	}

	mark := c.asMember(uni, compromiseKey("cmp", pubOf(k1), 3))
	wantCheck(t, c, mark, CodeOK)
	res, _ := c.runOK(mark) // 5
	if ev := res.TxResults[0].Events; len(ev) != 1 || attr(ev[0], "key_compromised") != "cmp" {
		t.Errorf("events %v", ev)
	}
	c.wantKeys("cmp", keyRec(k1, 1, 0, 3), keyRec(k2, 1, 0, 0))

	// The record at height 5 says so, provably; at height 4 it did not.
	var is pb.Issuer
	if err := proto.Unmarshal(proved(t, c, proof.IssuerKey("cmp"), 5), &is); err != nil {
		t.Fatal(err)
	}
	if k := findKey(&is, pubOf(k1)); k == nil || k.CompromisedFrom != 3 {
		t.Fatalf("proved record at 5: %v", &is)
	}
	var before pb.Issuer
	if err := proto.Unmarshal(proved(t, c, proof.IssuerKey("cmp"), 4), &before); err != nil {
		t.Fatal(err)
	}
	if k := findKey(&before, pubOf(k1)); k == nil || k.CompromisedFrom != 0 {
		t.Fatalf("proved record at 4: %v", &before)
	}
	// The height-5 proof does not prove the unmarked record.
	res5 := c.query("/key", proof.IssuerKey("cmp"), 5, true)
	unmarked, _ := deterministic.Marshal(&before)
	if ics23.VerifyMembership(ics23.IavlSpec, c.appHash[5], unmarshalProof(t, res5.ProofOps.Ops[0].Data), proof.IssuerKey("cmp"), unmarked) {
		t.Error("the proof at height 5 also proves the record without the mark")
	}
	// The batches it signed stay in the state: the mark tells receipts
	// that those from height 3 on are not the issuer's.
	for seq := uint64(1); seq <= 3; seq++ {
		if rec, _ := c.batchRecord("cmp", seq); rec == nil {
			t.Errorf("batch %d gone", seq)
		}
	}

	// 6: the marked key signs nothing; the other key goes on.
	bad, good := c.anchorTx("cmp", k1, 1), c.anchorTx("cmp", k2, 1)
	wantCheck(t, c, bad, CodeUnauthorized)
	wantCheck(t, c, good, CodeOK)
	res, _ = c.run(bad, good)
	wantCodes(t, res, CodeUnauthorized, CodeOK)
	wantCheck(t, c, c.asIssuer("cmp", k1, rotateKey("cmp", pubOf(k3))), CodeUnauthorized)

	// 7: from the current height: a batch after the mark in the same block
	// is refused.
	res, _ = c.run(c.anchorTx("cmp", k2, 1), c.asMember(uni, compromiseKey("cmp", pubOf(k2), 7)), c.anchorTx("cmp", k2, 1))
	wantCodes(t, res, CodeOK, CodeOK, CodeUnauthorized)
	c.wantKeys("cmp", keyRec(k1, 1, 0, 3), keyRec(k2, 1, 0, 7))

	// 8: a mark moves earlier, never later.
	res, _ = c.run(c.asMember(uni, compromiseKey("cmp", pubOf(k1), 2)), c.asMember(uni, compromiseKey("cmp", pubOf(k1), 3)))
	wantCodes(t, res, CodeOK, CodeRejected)
	c.wantKeys("cmp", keyRec(k1, 1, 0, 2), keyRec(k2, 1, 0, 7))

	// 9: every key is compromised: the sponsor rotates to a new one.
	c.runOK(c.asMember(uni, rotateKey("cmp", pubOf(k3))))
	e := c.rotatedAt("cmp", k3, 9)
	c.wantKeys("cmp", keyRec(k1, 1, e, 2), keyRec(k2, 1, e, 7), keyRec(k3, e, 0, 0))
	c.advanceTo(e - 1)
	res, _ = c.run(c.anchorTx("cmp", k3, 1))
	wantCodes(t, res, CodeOK)
}

// ---------------------------------------------------------------------------
// Revocation

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

// ---------------------------------------------------------------------------
// Rejections

// issuerFixture is the chain the rejection cases start from (startGov with
// powers 10 and 1):
//
//	height 1: uni registers delta [delta1 delta2], eps [eps1 eps2] and sus
//	          [sus1]; alpha anchors a1 (5 hashes, seq 1), gamma g1 (3, seq 1).
//	height 2: sus anchors s1; delta anchors d1 with delta1; gamma anchors g9
//	          (seq 9); alpha revokes a1[0] (seq 2); uni marks eps2
//	          compromised from 2.
//	height 3: uni rotates delta to delta3; uni revokes a1[1]; uni's
//	          proposal suspends sus.
//
// So at height 4: delta1 and delta2 are retired, delta3 current; eps2 is
// compromised in an open window; sus is suspended; alpha2 is not valid
// before 10; beta1 expires at 5.
type issuerFixture struct {
	*chain
	hist               map[string][]byte
	a1, g1, g9, s1, d1 *batch
}

var (
	regDelta1, regDelta2, regDelta3 = issuerTestKey("delta-1"), issuerTestKey("delta-2"), issuerTestKey("delta-3")
	regEps1, regEps2                = issuerTestKey("eps-1"), issuerTestKey("eps-2")
	regSus1                         = issuerTestKey("sus-1")
)

const (
	regDeltaID = "delta"
	regEpsID   = "eps"
	regSusID   = "sus"
)

func issuerSetup(t testing.TB) *issuerFixture {
	t.Helper()
	c := startGov(t, 0, 10, 1)
	f := &issuerFixture{chain: c, hist: map[string][]byte{}}
	uni := c.m[0]

	f.hist["reg-delta"] = c.asMember(uni, registerIssuer(regDeltaID, "Registrar Delta", pubOf(regDelta1), pubOf(regDelta2)))
	regEps := c.asMember(uni, registerIssuer(regEpsID, "", pubOf(regEps1), pubOf(regEps2)))
	regSus := c.asMember(uni, registerIssuer(regSusID, "", pubOf(regSus1)))
	var ta, tg, ts, td, tg9 []byte
	f.a1, ta = c.anchorBatch(alphaID, alpha1, 5)
	f.g1, tg = c.anchorBatch(gammaID, gamma1, 3)
	c.runOK(f.hist["reg-delta"], regEps, regSus, ta, tg)

	f.s1, ts = c.anchorBatch(regSusID, regSus1, 2)
	f.d1, td = c.anchorBatch(regDeltaID, regDelta1, 4)
	c.seq[issuerAccount(gammaID)] = 8
	f.g9, tg9 = c.anchorBatch(gammaID, gamma1, 2)
	f.hist["rev-issuer"] = c.asIssuer(alphaID, alpha1, revoke(alphaID, 1, f.a1.revoked(0)))
	f.hist["compromise"] = c.asMember(uni, compromiseKey(regEpsID, pubOf(regEps2), 2))
	c.runOK(ts, td, tg9, f.hist["rev-issuer"], f.hist["compromise"])

	f.hist["rotate"] = c.asMember(uni, rotateKey(regDeltaID, pubOf(regDelta3)))
	f.hist["rev-sponsor"] = c.asMember(uni, revoke(alphaID, 2, f.a1.revoked(1)))
	c.runOK(f.hist["rotate"], f.hist["rev-sponsor"], c.propose(uni, setIssuerStatus(regSusID, statusSuspended)))
	if s := c.issuerStatus(regSusID); s != statusSuspended {
		t.Fatalf("sus is %s", s)
	}
	return f
}

type issuerRejectCase struct {
	name string
	at   int64 // height of the block holding the bad transaction (default 4)
	bad  func(f *issuerFixture) []byte
	code uint32
	why  string // in the log
	// valid later: the transaction becomes valid at the next height, so
	// CheckTx is not asked again after the block.
	validLater bool
}

func issuerRejectCases() []issuerRejectCase {
	k1, k2 := pubOf(issuerTestKey("new-1")), pubOf(issuerTestKey("new-2"))
	uniDo := func(msg bodyFn) func(*issuerFixture) []byte {
		return func(f *issuerFixture) []byte { return f.asMember(f.m[0], msg) }
	}
	bDo := func(msg bodyFn) func(*issuerFixture) []byte {
		return func(f *issuerFixture) []byte { return f.asMember(f.m[1], msg) }
	}
	issuerDo := func(issuer string, key ed25519.PrivateKey, msg bodyFn) func(*issuerFixture) []byte {
		return func(f *issuerFixture) []byte { return f.asIssuer(issuer, key, msg) }
	}
	as := func(signer, account string, key ed25519.PrivateKey, msg bodyFn) func(*issuerFixture) []byte {
		return func(f *issuerFixture) []byte { return f.as(signer, account, key, msg) }
	}
	withSeq := func(signer string, seq uint64, key ed25519.PrivateKey, msg bodyFn) func(*issuerFixture) []byte {
		return func(f *issuerFixture) []byte { return sign(f.t, msg(signer, seq), key) }
	}
	// revokeWithSeq revokes alpha's a1[2] (revocable) with a given sequence.
	revokeWithSeq := func(signer string, seq uint64, key ed25519.PrivateKey) func(*issuerFixture) []byte {
		return func(f *issuerFixture) []byte {
			return sign(f.t, revoke(alphaID, 0, f.a1.revoked(2))(signer, seq), key)
		}
	}
	hist := func(name string) func(*issuerFixture) []byte {
		return func(f *issuerFixture) []byte { return f.hist[name] }
	}
	// revokeBy builds a Revoke of alpha's hashes, signed by sign, from hashes made from the fixture.
	revokeBy := func(sign func(f *issuerFixture, msg bodyFn) []byte, hs func(f *issuerFixture) []*pb.RevokedHash) func(*issuerFixture) []byte {
		return func(f *issuerFixture) []byte { return sign(f, revoke(alphaID, 1, hs(f)...)) }
	}
	uniSign := func(f *issuerFixture, msg bodyFn) []byte { return f.asMember(f.m[0], msg) }
	alphaSign := func(f *issuerFixture, msg bodyFn) []byte { return f.asIssuer(alphaID, alpha1, msg) }
	a1 := func(mod func(f *issuerFixture, h *pb.RevokedHash) []*pb.RevokedHash) func(f *issuerFixture) []*pb.RevokedHash {
		return func(f *issuerFixture) []*pb.RevokedHash { return mod(f, f.a1.revoked(2)) }
	}
	one := func(mod func(f *issuerFixture, h *pb.RevokedHash)) func(f *issuerFixture) []*pb.RevokedHash {
		return a1(func(f *issuerFixture, h *pb.RevokedHash) []*pb.RevokedHash { mod(f, h); return []*pb.RevokedHash{h} })
	}
	innerNode := func(f *issuerFixture) []*pb.RevokedHash {
		l0, l1 := proof.LeafHash(f.a1.hash(2)), proof.LeafHash(f.a1.hash(3))
		node := sha256.Sum256(append(append([]byte{1}, l0[:]...), l1[:]...))
		path := f.a1.revoked(2).AuditPath
		return []*pb.RevokedHash{{Hash: node[:], BatchSeq: 1, LeafIndex: 1, AuditPath: path[1:]}}
	}
	many := func(n int) func(f *issuerFixture) []*pb.RevokedHash {
		return func(f *issuerFixture) []*pb.RevokedHash {
			out := make([]*pb.RevokedHash, n)
			for i := range out {
				h := sha256.Sum256(fmt.Appendf(nil, "many/%d", i))
				out[i] = &pb.RevokedHash{Hash: h[:], BatchSeq: 1}
			}
			return out
		}
	}

	return []issuerRejectCase{
		// RegisterIssuer: who signs.
		{name: "register by a non-member", bad: as("stranger", memberAccount("stranger"), strangerKey, registerIssuer("zeta", "", k1)), code: CodeUnknownSigner, why: "not a member"},
		{name: "register by an issuer with its key", bad: as(alphaID, memberAccount(alphaID), alpha1, registerIssuer("zeta", "", k1)), code: CodeUnknownSigner, why: "not a member"},
		{name: "register by a member with its validator key", bad: as(memberID, memberAccount(memberID), memberValKey, registerIssuer("zeta", "", k1)), code: CodeUnauthorized, why: "admin key"},
		{name: "register by a member with another member's admin key", bad: func(f *issuerFixture) []byte {
			return f.as(memberID, memberAccount(memberID), f.m[1].admin, registerIssuer("zeta", "", k1))
		}, code: CodeUnauthorized, why: "admin key"},
		// RegisterIssuer: the id is taken.
		{name: "register a genesis issuer's id", bad: uniDo(registerIssuer(alphaID, "", k1)), code: CodeRejected, why: "already registered"},
		{name: "register another member's issuer's id", bad: uniDo(registerIssuer(gammaID, "", k1)), code: CodeRejected, why: "already registered"},
		{name: "register a registered issuer's id", bad: bDo(registerIssuer(regDeltaID, "", k1)), code: CodeRejected, why: "already registered"},
		{name: "register a suspended issuer's id", bad: uniDo(registerIssuer(regSusID, "", k1)), code: CodeRejected, why: "already registered"},
		{name: "replay of a registration", bad: hist("reg-delta"), code: CodeRejected, why: "already registered"},
		{name: "registration with a used sequence", bad: withSeq(memberID, 3, memberAdminKey, registerIssuer("zeta", "", k1)), code: CodeReplay, why: "sequence"},
		// RegisterIssuer: malformed.
		{name: "register an empty id", bad: uniDo(registerIssuer("", "", k1)), code: CodeMalformed, why: "register_issuer.id"},
		{name: "register an upper-case id", bad: uniDo(registerIssuer("Zeta", "", k1)), code: CodeMalformed, why: "register_issuer.id"},
		{name: "register an id with '/'", bad: uniDo(registerIssuer("ze/ta", "", k1)), code: CodeMalformed, why: "register_issuer.id"},
		{name: "register an id of 65 characters", bad: uniDo(registerIssuer(strings.Repeat("z", 65), "", k1)), code: CodeMalformed, why: "register_issuer.id"},
		{name: "register with no keys", bad: uniDo(registerIssuer("zeta", "")), code: CodeMalformed, why: "register_issuer.keys: 1 to 16"},
		{name: "register with 17 keys", bad: func(f *issuerFixture) []byte {
			var ks [][]byte
			for i := range 17 {
				ks = append(ks, pubOf(issuerTestKey(fmt.Sprintf("seventeen-%d", i))))
			}
			return f.asMember(f.m[0], registerIssuer("zeta", "", ks...))
		}, code: CodeMalformed, why: "register_issuer.keys: 1 to 16"},
		{name: "register with a key listed twice", bad: uniDo(registerIssuer("zeta", "", k1, k2, k1)), code: CodeMalformed, why: "keys[2] is listed twice"},
		{name: "register with the identity key (small order)", bad: uniDo(registerIssuer("zeta", "", k1, identityPoint)), code: CodeMalformed, why: "small-order"},
		{name: "register with (0,-1) (small order)", bad: uniDo(registerIssuer("zeta", "", minusOnePoint)), code: CodeMalformed, why: "small-order"},
		{name: "register with a 31-byte key", bad: uniDo(registerIssuer("zeta", "", k1[:31])), code: CodeMalformed, why: "register_issuer.keys[0]"},
		{name: "register with a key off the curve", bad: func(f *issuerFixture) []byte {
			return f.asMember(f.m[0], registerIssuer("zeta", "", notOnCurve(f.t)))
		}, code: CodeMalformed, why: "register_issuer.keys[0]"},
		{name: "register with a name of 201 bytes", bad: uniDo(registerIssuer("zeta", strings.Repeat("n", 201), k1)), code: CodeMalformed, why: "name is longer than 200"},

		// RotateKey: who signs.
		{name: "rotate by a member that is not the sponsor", bad: bDo(rotateKey(alphaID, k1)), code: CodeUnauthorized, why: "does not sponsor"},
		{name: "rotate another member's issuer", bad: uniDo(rotateKey(gammaID, k1)), code: CodeUnauthorized, why: "does not sponsor"},
		{name: "rotate by the sponsor with its validator key", bad: as(memberID, memberAccount(memberID), memberValKey, rotateKey(alphaID, k1)), code: CodeUnauthorized, why: "admin key"},
		{name: "rotate by a non-member", bad: as("stranger", memberAccount("stranger"), strangerKey, rotateKey(alphaID, k1)), code: CodeUnknownSigner, why: "not a member"},
		{name: "rotate by another issuer", bad: as(gammaID, memberAccount(gammaID), gamma1, rotateKey(alphaID, k1)), code: CodeUnknownSigner, why: "not a member"},
		{name: "rotate by a suspended issuer itself", bad: issuerDo(regSusID, regSus1, rotateKey(regSusID, k1)), code: CodeUnauthorized, why: "ISSUER_STATUS_SUSPENDED"},
		{name: "rotate by the issuer with a key retired by rotation", bad: issuerDo(regDeltaID, regDelta1, rotateKey(regDeltaID, k1)), code: CodeUnauthorized, why: "not a valid key"},
		{name: "rotate by the issuer with a compromised key", bad: issuerDo(regEpsID, regEps2, rotateKey(regEpsID, k1)), code: CodeUnauthorized, why: "not a valid key"},
		{name: "rotate by the issuer with a key not yet valid", bad: issuerDo(alphaID, alpha2, rotateKey(alphaID, k1)), code: CodeUnauthorized, why: "not a valid key"},
		{name: "rotate by the issuer with its expired key", at: betaTo, bad: issuerDo(betaID, beta1, rotateKey(betaID, k1)), code: CodeUnauthorized, why: "not a valid key"},
		{name: "rotate by the issuer with another issuer's key", bad: issuerDo(alphaID, gamma1, rotateKey(alphaID, k1)), code: CodeUnauthorized, why: "not a valid key"},
		{name: "rotate by the issuer with its sponsor's admin key", bad: issuerDo(alphaID, memberAdminKey, rotateKey(alphaID, k1)), code: CodeUnauthorized, why: "not a valid key"},
		// RotateKey: the new key.
		{name: "rotate to the current key", bad: uniDo(rotateKey(alphaID, pubOf(alpha1))), code: CodeRejected, why: "already a key"},
		{name: "rotate to a key not yet valid", bad: uniDo(rotateKey(alphaID, pubOf(alpha2))), code: CodeRejected, why: "already a key"},
		{name: "rotate to a retired key", bad: issuerDo(regDeltaID, regDelta3, rotateKey(regDeltaID, pubOf(regDelta1))), code: CodeRejected, why: "already a key"},
		{name: "rotate to a compromised key", bad: uniDo(rotateKey(regEpsID, pubOf(regEps2))), code: CodeRejected, why: "already a key"},
		{name: "replay of a rotation", bad: hist("rotate"), code: CodeRejected, why: "already a key"},
		{name: "rotation by the issuer with a used sequence", bad: withSeq(regDeltaID, 1, regDelta3, rotateKey(regDeltaID, k1)), code: CodeReplay, why: "sequence"},
		// RotateKey: unknown issuer, malformed.
		{name: "rotate an unknown issuer", bad: uniDo(rotateKey("nobody", k1)), code: CodeUnknownSigner, why: "not registered"},
		{name: "rotate an unknown issuer, signed as it", bad: as("nobody", issuerAccount("nobody"), strangerKey, rotateKey("nobody", k1)), code: CodeUnknownSigner, why: "not registered"},
		{name: "rotate to the identity key", bad: uniDo(rotateKey(alphaID, identityPoint)), code: CodeMalformed, why: "rotate_key.new_key"},
		{name: "rotate to a 31-byte key", bad: uniDo(rotateKey(alphaID, k1[:31])), code: CodeMalformed, why: "rotate_key.new_key"},
		{name: "rotate to no key", bad: uniDo(rotateKey(alphaID, nil)), code: CodeMalformed, why: "rotate_key.new_key"},
		{name: "rotate an invalid issuer id", bad: uniDo(rotateKey("Alpha", k1)), code: CodeMalformed, why: "rotate_key.issuer"},

		// CompromiseKey.
		{name: "compromise by a member that is not the sponsor", bad: bDo(compromiseKey(alphaID, pubOf(alpha1), 2)), code: CodeUnauthorized, why: "does not sponsor"},
		{name: "compromise another member's issuer's key", bad: uniDo(compromiseKey(gammaID, pubOf(gamma1), 2)), code: CodeUnauthorized, why: "does not sponsor"},
		{name: "compromise by the issuer itself", bad: as(alphaID, memberAccount(alphaID), alpha1, compromiseKey(alphaID, pubOf(alpha1), 2)), code: CodeUnknownSigner, why: "not a member"},
		{name: "compromise by the sponsor with its validator key", bad: as(memberID, memberAccount(memberID), memberValKey, compromiseKey(alphaID, pubOf(alpha1), 2)), code: CodeUnauthorized, why: "admin key"},
		{name: "compromise from the next height", bad: uniDo(compromiseKey(alphaID, pubOf(alpha1), 5)), code: CodeRejected, why: "in the future", validLater: true},
		{name: "compromise from far in the future", bad: uniDo(compromiseKey(alphaID, pubOf(alpha1), 1<<40)), code: CodeRejected, why: "in the future"},
		{name: "compromise an unknown key", bad: uniDo(compromiseKey(alphaID, pubOf(strangerKey), 2)), code: CodeRejected, why: "not a key of issuer"},
		{name: "compromise another issuer's key", bad: uniDo(compromiseKey(alphaID, pubOf(beta1), 2)), code: CodeRejected, why: "not a key of issuer"},
		{name: "compromise from the marked height", bad: uniDo(compromiseKey(regEpsID, pubOf(regEps2), 2)), code: CodeRejected, why: "already marked compromised from height 2"},
		{name: "compromise from after the marked height", bad: uniDo(compromiseKey(regEpsID, pubOf(regEps2), 3)), code: CodeRejected, why: "already marked compromised from height 2"},
		{name: "replay of a compromise", bad: hist("compromise"), code: CodeRejected, why: "already marked"},
		{name: "compromise with a used sequence", bad: withSeq(memberID, 4, memberAdminKey, compromiseKey(regEpsID, pubOf(regEps1), 1)), code: CodeReplay, why: "sequence"},
		{name: "compromise from height 0", bad: uniDo(compromiseKey(alphaID, pubOf(alpha1), 0)), code: CodeMalformed, why: "from_height must be positive"},
		{name: "compromise from a negative height", bad: uniDo(compromiseKey(alphaID, pubOf(alpha1), -3)), code: CodeMalformed, why: "from_height must be positive"},
		{name: "compromise a 31-byte key", bad: uniDo(compromiseKey(alphaID, pubOf(alpha1)[:31], 2)), code: CodeMalformed, why: "compromise_key.key"},
		{name: "compromise a key of an unknown issuer", bad: uniDo(compromiseKey("nobody", pubOf(alpha1), 2)), code: CodeUnknownSigner, why: "not registered"},
		{name: "compromise with an invalid issuer id", bad: uniDo(compromiseKey("", pubOf(alpha1), 2)), code: CodeMalformed, why: "compromise_key.issuer"},

		// Revoke: not a hash the issuer anchored.
		{name: "revoke with a wrong audit path", bad: revokeBy(uniSign, one(func(_ *issuerFixture, h *pb.RevokedHash) { h.AuditPath[0][0] ^= 1 })), code: CodeRejected, why: "is not leaf 2"},
		{name: "revoke with another leaf's audit path", bad: revokeBy(uniSign, one(func(f *issuerFixture, h *pb.RevokedHash) { h.AuditPath = f.a1.revoked(3).AuditPath })), code: CodeRejected, why: "is not leaf 2"},
		{name: "revoke with a wrong leaf index", bad: revokeBy(alphaSign, one(func(_ *issuerFixture, h *pb.RevokedHash) { h.LeafIndex = 3 })), code: CodeRejected, why: "is not leaf 3"},
		{name: "revoke with a leaf index beyond the batch", bad: revokeBy(uniSign, one(func(_ *issuerFixture, h *pb.RevokedHash) { h.LeafIndex = 5 })), code: CodeRejected, why: "is not leaf 5"},
		{name: "revoke a hash never anchored, with a leaf's path", bad: revokeBy(uniSign, one(func(_ *issuerFixture, h *pb.RevokedHash) { h.Hash = hashesN("never", 1) })), code: CodeRejected, why: "is not leaf"},
		{name: "revoke an inner node of the batch tree", bad: revokeBy(uniSign, innerNode), code: CodeRejected, why: "is not leaf"},
		{name: "revoke a hash of another issuer's batch of the same seq", bad: revokeBy(uniSign, func(f *issuerFixture) []*pb.RevokedHash {
			return []*pb.RevokedHash{f.g1.revoked(0)}
		}), code: CodeRejected, why: "is not leaf 0 of issuer \"alpha\"'s batch 1"},
		{name: "revoke a hash of another issuer's batch of a seq it never used", bad: revokeBy(alphaSign, func(f *issuerFixture) []*pb.RevokedHash {
			return []*pb.RevokedHash{f.g9.revoked(1)}
		}), code: CodeRejected, why: "has no batch 9"},
		{name: "revoke from a nonexistent batch seq", bad: revokeBy(uniSign, one(func(_ *issuerFixture, h *pb.RevokedHash) { h.BatchSeq = 99 })), code: CodeRejected, why: "has no batch 99"},
		{name: "revoke from the seq of a revocation", bad: revokeBy(uniSign, one(func(_ *issuerFixture, h *pb.RevokedHash) { h.BatchSeq = 2 })), code: CodeRejected, why: "has no batch 2"},
		{name: "revoke a good hash and a bad one", bad: revokeBy(uniSign, func(f *issuerFixture) []*pb.RevokedHash {
			bad := f.a1.revoked(4)
			bad.LeafIndex = 3
			return []*pb.RevokedHash{f.a1.revoked(2), f.a1.revoked(3), bad}
		}), code: CodeRejected, why: "revoke.hashes[2]"},
		// Revoke: already revoked.
		{name: "revoke, by the issuer, a hash it revoked", bad: revokeBy(alphaSign, func(f *issuerFixture) []*pb.RevokedHash { return []*pb.RevokedHash{f.a1.revoked(0)} }), code: CodeRejected, why: "already revoked"},
		{name: "revoke, by the issuer, a hash the sponsor revoked", bad: revokeBy(alphaSign, func(f *issuerFixture) []*pb.RevokedHash { return []*pb.RevokedHash{f.a1.revoked(1)} }), code: CodeRejected, why: "already revoked"},
		{name: "revoke, by the sponsor, a hash the issuer revoked", bad: revokeBy(uniSign, func(f *issuerFixture) []*pb.RevokedHash {
			return []*pb.RevokedHash{f.a1.revoked(2), f.a1.revoked(0)}
		}), code: CodeRejected, why: "already revoked"},
		{name: "replay of the issuer's revocation", bad: hist("rev-issuer"), code: CodeRejected, why: "already revoked"},
		{name: "replay of the sponsor's revocation", bad: hist("rev-sponsor"), code: CodeRejected, why: "already revoked"},
		{name: "revocation by the issuer with a used sequence", bad: revokeWithSeq(alphaID, 2, alpha1), code: CodeReplay, why: "sequence"},
		{name: "revocation by the issuer with its batch's sequence", bad: revokeWithSeq(alphaID, 1, alpha1), code: CodeReplay, why: "sequence"},
		{name: "revocation by the sponsor with a used sequence", bad: revokeWithSeq(memberID, 6, memberAdminKey), code: CodeReplay, why: "sequence"},
		// Revoke: who signs.
		{name: "revoke by a member that is not the sponsor", bad: revokeBy(func(f *issuerFixture, m bodyFn) []byte { return f.asMember(f.m[1], m) }, a1(func(_ *issuerFixture, h *pb.RevokedHash) []*pb.RevokedHash { return []*pb.RevokedHash{h} })), code: CodeUnauthorized, why: "does not sponsor"},
		{name: "revoke by a non-member", bad: revokeBy(func(f *issuerFixture, m bodyFn) []byte {
			return f.as("stranger", memberAccount("stranger"), strangerKey, m)
		}, a1(func(_ *issuerFixture, h *pb.RevokedHash) []*pb.RevokedHash { return []*pb.RevokedHash{h} })), code: CodeUnknownSigner, why: "not a member"},
		{name: "revoke by the sponsor with its validator key", bad: revokeBy(func(f *issuerFixture, m bodyFn) []byte {
			return f.as(memberID, memberAccount(memberID), memberValKey, m)
		}, a1(func(_ *issuerFixture, h *pb.RevokedHash) []*pb.RevokedHash { return []*pb.RevokedHash{h} })), code: CodeUnauthorized, why: "admin key"},
		{name: "revoke by the issuer with a key not yet valid", bad: revokeBy(func(f *issuerFixture, m bodyFn) []byte { return f.asIssuer(alphaID, alpha2, m) },
			a1(func(_ *issuerFixture, h *pb.RevokedHash) []*pb.RevokedHash { return []*pb.RevokedHash{h} })), code: CodeUnauthorized, why: "not a valid key"},
		{name: "revoke by the issuer with a retired key", bad: func(f *issuerFixture) []byte {
			return f.asIssuer(regDeltaID, regDelta1, revoke(regDeltaID, 0, f.d1.revoked(0)))
		}, code: CodeUnauthorized, why: "not a valid key"},
		{name: "revoke by a suspended issuer", bad: func(f *issuerFixture) []byte {
			return f.asIssuer(regSusID, regSus1, revoke(regSusID, 0, f.s1.revoked(0)))
		}, code: CodeUnauthorized, why: "ISSUER_STATUS_SUSPENDED"},
		{name: "revoke for an unknown issuer", bad: func(f *issuerFixture) []byte {
			return f.asMember(f.m[0], revoke("nobody", 0, f.a1.revoked(2)))
		}, code: CodeUnknownSigner, why: "not registered"},
		// Revoke: malformed.
		{name: "revoke a hash listed twice", bad: revokeBy(alphaSign, func(f *issuerFixture) []*pb.RevokedHash {
			return []*pb.RevokedHash{f.a1.revoked(2), f.a1.revoked(3), f.a1.revoked(2)}
		}), code: CodeMalformed, why: "hashes[2] is listed twice"},
		{name: "revoke no hashes", bad: revokeBy(uniSign, many(0)), code: CodeMalformed, why: "1 to 1000 per transaction"},
		{name: "revoke 1001 hashes", bad: revokeBy(uniSign, many(1001)), code: CodeMalformed, why: "1 to 1000 per transaction"},
		{name: "revoke a 31-byte hash", bad: revokeBy(uniSign, one(func(_ *issuerFixture, h *pb.RevokedHash) { h.Hash = h.Hash[:31] })), code: CodeMalformed, why: "hash is 31 bytes"},
		{name: "revoke a 33-byte hash", bad: revokeBy(uniSign, one(func(_ *issuerFixture, h *pb.RevokedHash) { h.Hash = append(slices.Clone(h.Hash), 0) })), code: CodeMalformed, why: "hash is 33 bytes"},
		{name: "revoke an empty hash", bad: revokeBy(uniSign, one(func(_ *issuerFixture, h *pb.RevokedHash) { h.Hash = nil })), code: CodeMalformed, why: "hash is 0 bytes"},
		{name: "revoke from batch_seq 0", bad: revokeBy(alphaSign, one(func(_ *issuerFixture, h *pb.RevokedHash) { h.BatchSeq = 0 })), code: CodeMalformed, why: "batch_seq must be positive"},
		{name: "revoke with a 31-byte audit path element", bad: revokeBy(uniSign, one(func(_ *issuerFixture, h *pb.RevokedHash) { h.AuditPath[1] = h.AuditPath[1][:31] })), code: CodeMalformed, why: "audit_path[1] is 31 bytes"},
		{name: "revoke with an audit path of 65 elements", bad: revokeBy(uniSign, one(func(_ *issuerFixture, h *pb.RevokedHash) {
			for len(h.AuditPath) < 65 {
				h.AuditPath = append(h.AuditPath, h.AuditPath[0])
			}
		})), code: CodeMalformed, why: "audit_path is too long"},
		{name: "revoke with an invalid issuer id", bad: func(f *issuerFixture) []byte {
			return f.asMember(f.m[0], revoke("al pha", 0, f.a1.revoked(2)))
		}, code: CodeMalformed, why: "revoke.issuer"},
	}
}

// wantRefused: bad is refused by CheckTx and FinalizeBlock with code and
// a log saying why, left out by PrepareProposal, makes ProcessProposal
// reject, and changes nothing: n's block [good bad] has the app hash of
// ref's block [good].
func wantRefused(t *testing.T, n, ref *chain, good, bad []byte, code uint32, why string, recheck bool) {
	t.Helper()
	r := n.checkTx(bad)
	if r.Code != code {
		t.Fatalf("CheckTx: code %d (%s), want %d", r.Code, r.Log, code)
	}
	if r.Log == "" || r.Codespace == "" || !strings.Contains(r.Log, why) {
		t.Errorf("CheckTx: log %q (codespace %q) does not say %q", r.Log, r.Codespace, why)
	}
	if got := n.prepare(bad, good, bad); !sameTxs(got, [][]byte{good}) {
		t.Errorf("PrepareProposal keeps %d txs, want only the good one", len(got))
	}
	if s := n.process(good, bad); s != abci.ResponseProcessProposal_REJECT {
		t.Errorf("ProcessProposal [good bad]: %v, want REJECT", s)
	}
	if s := n.process(good); s != abci.ResponseProcessProposal_ACCEPT {
		t.Errorf("ProcessProposal [good]: %v, want ACCEPT", s)
	}
	res, _ := n.run(good, bad)
	want, _ := ref.run(good)
	if res.TxResults[0].Code != CodeOK {
		t.Fatalf("good tx: code %d (%s)", res.TxResults[0].Code, res.TxResults[0].Log)
	}
	fr := res.TxResults[1]
	if fr.Code != code {
		t.Errorf("FinalizeBlock: code %d (%s), want %d", fr.Code, fr.Log, code)
	}
	if fr.Log == "" || fr.Codespace == "" || !strings.Contains(fr.Log, why) {
		t.Errorf("FinalizeBlock: log %q does not say %q", fr.Log, why)
	}
	if len(fr.Events) != 0 {
		t.Errorf("refused tx has events %v", fr.Events)
	}
	if !bytes.Equal(res.AppHash, want.AppHash) {
		t.Errorf("app hash %x, want %x (the same block without the bad tx)", res.AppHash, want.AppHash)
	}
	if a, b := n.info().LastBlockAppHash, ref.info().LastBlockAppHash; !bytes.Equal(a, b) {
		t.Errorf("committed app hash %x, want %x", a, b)
	}
	// Still refused once the block is committed.
	if r := n.checkTx(bad); recheck && r.Code != code {
		t.Errorf("CheckTx after the block: code %d (%s), want %d", r.Code, r.Log, code)
	}
}

// TestIssuerRejections: each refused issuer transaction is refused by
// CheckTx and FinalizeBlock with its code and a log, kept out of proposals,
// and changes nothing.
func TestIssuerRejections(t *testing.T) {
	for _, tc := range issuerRejectCases() {
		t.Run(tc.name, func(t *testing.T) {
			at := cmp.Or(tc.at, 4)
			f, ref := issuerSetup(t), issuerSetup(t)
			f.advanceTo(at - 1)
			ref.advanceTo(at - 1)
			good := anchor(t, testChainID, gammaID, 50, hashesN("reg-good", 2), gamma1)
			wantRefused(t, f.chain, ref.chain, good, tc.bad(f), tc.code, tc.why, !tc.validLater)
		})
	}
}

// TestIssuerRejectionControls: the transactions next to the refused ones
// are accepted on the same chain, so each refusal is for the reason its
// case names.
func TestIssuerRejectionControls(t *testing.T) {
	k1 := pubOf(issuerTestKey("new-1"))
	for _, tc := range []struct {
		name  string
		tx    func(f *issuerFixture) []byte
		check func(f *issuerFixture)
	}{
		{"register a new id", func(f *issuerFixture) []byte { return f.asMember(f.m[1], registerIssuer("zeta", "", k1)) }, nil},
		{"the sponsor rotates a suspended issuer", func(f *issuerFixture) []byte { return f.asMember(f.m[0], rotateKey(regSusID, k1)) }, nil},
		{"the sponsor revokes a suspended issuer's hash", func(f *issuerFixture) []byte {
			return f.asMember(f.m[0], revoke(regSusID, 0, f.s1.revoked(0)))
		}, nil},
		{"the rotated issuer rotates with its new key", func(f *issuerFixture) []byte {
			return f.asIssuer(regDeltaID, regDelta3, rotateKey(regDeltaID, k1))
		}, nil},
		{"the rotated issuer revokes with its new key", func(f *issuerFixture) []byte {
			return f.asIssuer(regDeltaID, regDelta3, revoke(regDeltaID, 0, f.d1.revoked(3)))
		}, nil},
		{"an issuer rotates with its uncompromised key", func(f *issuerFixture) []byte { return f.asIssuer(regEpsID, regEps1, rotateKey(regEpsID, k1)) }, nil},
		{"the other sponsor revokes its issuer's hash", func(f *issuerFixture) []byte {
			return f.asMember(f.m[1], revoke(gammaID, 0, f.g9.revoked(1), f.g1.revoked(0)))
		}, nil},
		{"the other sponsor compromises its issuer's key", func(f *issuerFixture) []byte {
			return f.asMember(f.m[1], compromiseKey(gammaID, pubOf(gamma1), 4))
		}, nil},
		{"a compromise moved earlier", func(f *issuerFixture) []byte { return f.asMember(f.m[0], compromiseKey(regEpsID, pubOf(regEps2), 1)) },
			func(f *issuerFixture) { f.wantKeys(regEpsID, keyRec(regEps1, 1, 0, 0), keyRec(regEps2, 1, 0, 1)) }},
		{"a compromise of a key not yet valid", func(f *issuerFixture) []byte { return f.asMember(f.m[0], compromiseKey(alphaID, pubOf(alpha2), 4)) }, nil},
		{"a compromise of a retired key", func(f *issuerFixture) []byte {
			return f.asMember(f.m[0], compromiseKey(regDeltaID, pubOf(regDelta1), 2))
		}, nil},
		{"the issuer revokes its last leaf", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, revoke(alphaID, 0, f.a1.revoked(4), f.a1.revoked(2)))
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := issuerSetup(t)
			tx := tc.tx(f)
			wantCheck(t, f.chain, tx, CodeOK)
			f.runOK(tx)
			if tc.check != nil {
				tc.check(f)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Regressions: bugs these tests found, now fixed (a rotation takes effect at
// the next height, a not-yet-valid key gets an empty window, and TxBody's
// as_sponsor says who acts).

// TestRotateKeyRetiresNotYetValidKey (regression): RotateKey ends every
// open key window of the issuer. It used to set ToHeight = max(height,
// FromHeight+1), so a key whose window had not begun at the rotation
// height kept the one-block window [FromHeight, FromHeight+1) and signed
// there after the rotation that should have retired it; a key that began
// at the rotation height (registered, or rotated in, earlier in the same
// block) likewise stayed valid for the rest of that block.
func TestRotateKeyRetiresNotYetValidKey(t *testing.T) {
	t.Run("a genesis key valid from a later height", func(t *testing.T) {
		c := startGov(t, 0, 10, 1)
		k := issuerTestKey("bug-alpha-next")
		c.advanceTo(2)
		c.runOK(c.asMember(c.m[0], rotateKey(alphaID, pubOf(k)))) // 3; alpha2 is [10, ∞)
		t.Logf("alpha's key windows after the rotation at 3: %s", windows(c.issuer(alphaID)))
		c.advanceTo(alpha2From - 1)
		tx := anchor(t, testChainID, alphaID, 1, hashesN("bug-alpha2", 1), alpha2)
		if r := c.checkTx(tx); r.Code != CodeUnauthorized {
			t.Errorf("CheckTx at %d of a batch signed with alpha2, retired at 3 before it ever signed: code %d, want %d", alpha2From, r.Code, CodeUnauthorized)
		}
		res, _ := c.run(tx)
		if r := res.TxResults[0]; r.Code != CodeUnauthorized {
			t.Errorf("FinalizeBlock at %d of a batch signed with alpha2, retired at 3 before it ever signed: code %d, want %d", alpha2From, r.Code, CodeUnauthorized)
		}
	})
	t.Run("a key registered in the rotation's block", func(t *testing.T) {
		c := startGov(t, 0, 10, 1)
		k1, k2 := issuerTestKey("bug-fresh-1"), issuerTestKey("bug-fresh-2")
		c.runOK()
		res, _ := c.run(c.asMember(c.m[0], registerIssuer("fresh", "", pubOf(k1))), c.asMember(c.m[0], rotateKey("fresh", pubOf(k2))),
			anchor(t, testChainID, "fresh", 1, hashesN("bug-fresh", 1), k1)) // 2
		e := c.rotatedAt("fresh", k2, 2)
		// k1 signs before the rotation's effective height only.
		want := []uint32{CodeOK, CodeOK, codeAt(2, 2, e)}
		if got := codes(res); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("[register k1, rotate to k2 (effective at %d), anchor with k1] in block 2: codes %v, want %v; key windows %s",
				e, got, want, windows(c.issuer("fresh")))
		}
	})
	t.Run("two rotations in one block", func(t *testing.T) {
		c := startGov(t, 0, 10, 1)
		k2, k3 := issuerTestKey("bug-twice-2"), issuerTestKey("bug-twice-3")
		c.runOK()
		res, _ := c.run(c.asMember(c.m[0], rotateKey(alphaID, pubOf(k2))), c.asMember(c.m[0], rotateKey(alphaID, pubOf(k3))),
			anchor(t, testChainID, alphaID, 1, hashesN("bug-twice", 1), k2))
		if got := codes(res); fmt.Sprint(got) != fmt.Sprint([]uint32{CodeOK, CodeOK, CodeUnauthorized}) {
			t.Errorf("[rotate to k2, rotate to k3, anchor with k2] in one block: codes %v, want [0 0 %d]; key windows %s",
				got, CodeUnauthorized, windows(c.issuer(alphaID)))
		}
	})
}

// TestRotateKeyWindowKeepsSameBlockBatch: a batch signed with the old
// key earlier in the block of a rotation is accepted at height h, but the
// rotation then stores the old key's window as [from, h): the committed
// record of that batch names a signer key which, by the issuer record, may
// not sign at the batch's height. The chain holds a batch its own key
// windows disown (a receipt verifier checking the window would refuse it).
// The invariant checked: every accepted batch's signer key is valid, by the
// committed issuer record, at the batch's height.
func TestRotateKeyWindowKeepsSameBlockBatch(t *testing.T) {
	for _, by := range []string{"issuer", "sponsor"} {
		t.Run("rotation by the "+by, func(t *testing.T) {
			c := startGov(t, 0, 10, 1)
			k := issuerTestKey("bug-window-" + by)
			c.advanceTo(2)
			b, tx := c.anchorBatch(alphaID, alpha1, 2)
			var rot []byte
			if by == "issuer" {
				rot = c.asIssuer(alphaID, alpha1, rotateKey(alphaID, pubOf(k)))
			} else {
				rot = c.asMember(c.m[0], rotateKey(alphaID, pubOf(k)))
			}
			res, _ := c.run(tx, rot) // 3
			if r := res.TxResults[0]; r.Code != CodeOK {
				t.Fatalf("batch: code %d (%s)", r.Code, r.Log)
			}
			// Refusing the rotation in this block would be a fix too; what
			// must hold is that the accepted batch's key may sign at its height.
			t.Logf("rotation: code %d (%s)", res.TxResults[1].Code, res.TxResults[1].Log)
			rec, _ := c.batchRecord(alphaID, b.seq)
			if rec == nil {
				t.Fatal("batch not stored")
			}
			is := c.issuer(alphaID)
			if !keyValidAt(is, rec.SignerKey, rec.Height) {
				t.Errorf("batch %d, accepted at height %d signed with alpha1, but alpha1's stored window is [%d, %d): the key may not sign at the batch's height",
					b.seq, rec.Height, findKey(is, pubOf(alpha1)).FromHeight, findKey(is, pubOf(alpha1)).ToHeight)
			}
		})
	}
}

// TestSponsorActsForIssuerWithItsOwnID (regression): a member may register
// an issuer under its own id (registration and genesis both allow it). Its
// RotateKey and Revoke, signed with the member's admin key, were taken as
// the issuer's own and refused, so once the issuer's keys were compromised
// nobody could give it a new key. TxBody.as_sponsor says the member acts
// as the sponsor.
func TestSponsorActsForIssuerWithItsOwnID(t *testing.T) {
	k1, k2 := issuerTestKey("bug-self-1"), issuerTestKey("bug-self-2")
	// sponsorActs: with issuer "uni" (key k1, sponsored by member uni)
	// registered, the sponsor marks k1 compromised, then rotates to k2 and
	// revokes a hash of the issuer's, with its admin key, saying with
	// as_sponsor that it acts as the sponsor.
	sponsorActs := func(t *testing.T, c *chain) {
		t.Helper()
		b, tx := c.anchorBatch(memberID, k1, 2)
		c.runOK(tx)
		c.runOK(c.asMember(c.m[0], compromiseKey(memberID, pubOf(k1), c.height)))
		var txs [][]byte
		for _, msg := range []bodyFn{rotateKey(memberID, pubOf(k2)), revoke(memberID, 1, b.revoked(0))} {
			body := msg(memberID, c.next(memberAccount(memberID)))
			body.AsSponsor = true
			txs = append(txs, sign(t, body, c.m[0].admin))
		}
		res, _ := c.run(txs...)
		if got := codes(res); fmt.Sprint(got) != fmt.Sprint([]uint32{CodeOK, CodeOK}) {
			t.Errorf("sponsor uni's RotateKey and Revoke for its issuer \"uni\": codes %v (%q, %q), want both accepted",
				got, res.TxResults[0].Log, res.TxResults[1].Log)
		}
	}
	t.Run("registered", func(t *testing.T) {
		c := startGov(t, 0, 10, 1)
		c.runOK(c.asMember(c.m[0], registerIssuer(memberID, "uni's own registrar", pubOf(k1))))
		sponsorActs(t, c)
	})
	t.Run("genesis", func(t *testing.T) {
		g, ms := govGenesis(0, 10, 1)
		g.Issuers = append(g.Issuers, GenesisIssuer{ID: memberID, Sponsor: memberID, Keys: []GenesisKey{{PublicKey: proof.FormatBinary(pubOf(k1)), FromHeight: 1}}})
		c := newChain(t)
		c.initChain(mustJSON(t, g))
		c.m = ms
		sponsorActs(t, c)
	})
}

// thiefRotates has the holder of key rotate issuer id, selfRotationBurst
// keys a block (all signed with the key valid in that block; the last one
// given is valid after it), waiting out the rate between blocks, until the
// issuer has had want keys. It returns the key valid at the end.
func (c *chain) thiefRotates(id string, key ed25519.PrivateKey, want int) ed25519.PrivateKey {
	c.t.Helper()
	for n := len(c.issuer(id).Keys); n < want; {
		var txs [][]byte
		next := key
		for range min(selfRotationBurst, want-n) {
			next = issuerTestKey(fmt.Sprintf("%s-thief-%d", id, n))
			txs = append(txs, c.asIssuer(id, key, rotateKey(id, pubOf(next))))
			n++
		}
		c.runOK(txs...)
		key = next
		c.advanceTo(c.height + selfRotationWindow)
	}
	return key
}

// TestSponsorRotatesAfterThief (issue 17, finding 9): a thief holding the
// issuer's key rotates it until the issuer has had maxKeyHistory keys;
// the sponsor's rotation, the recovery step of docs/governance.md, still
// succeeds, and neither the thief (its key is closed) nor the issuer
// (the cap) rotates it any more: only the sponsor does.
func TestSponsorRotatesAfterThief(t *testing.T) {
	c := startGov(t, 0, 10, 1)
	uni := c.m[0]
	c.runOK(c.asMember(uni, registerIssuer("stolen", "", pubOf(issuerTestKey("stolen-0")))))
	thief := c.thiefRotates("stolen", issuerTestKey("stolen-0"), maxKeyHistory)

	capped := c.asIssuer("stolen", thief, rotateKey("stolen", pubOf(issuerTestKey("stolen-more"))))
	wantCheck(t, c, capped, CodeRejected)
	if r := c.checkTx(capped); !strings.Contains(r.Log, "only its sponsor") {
		t.Errorf("the capped self-rotation's log %q does not say who may rotate", r.Log)
	}

	fresh := issuerTestKey("stolen-recovered")
	rot := c.asMember(uni, rotateKey("stolen", pubOf(fresh)))
	wantCheck(t, c, rot, CodeOK)
	c.runOK(rot)
	e := c.rotatedAt("stolen", fresh, c.height)
	if n := len(c.issuer("stolen").Keys); n != maxKeyHistory+1 {
		t.Fatalf("after the sponsor's rotation the issuer has %d keys, want %d", n, maxKeyHistory+1)
	}
	c.advanceTo(e)

	// The thief's key is closed: its rotations and batches are refused.
	again := c.asIssuer("stolen", thief, rotateKey("stolen", pubOf(issuerTestKey("stolen-thief-again"))))
	wantCheck(t, c, again, CodeUnauthorized)
	res, _ := c.run(again, c.anchorTx("stolen", thief, 1), c.anchorTx("stolen", fresh, 1))
	wantCodes(t, res, CodeUnauthorized, CodeUnauthorized, CodeOK)
	// The issuer, with the fresh key, is past the cap: its sponsor
	// rotates it from now on, as often as it needs.
	self := c.asIssuer("stolen", fresh, rotateKey("stolen", pubOf(issuerTestKey("stolen-self"))))
	wantCheck(t, c, self, CodeRejected)
	c.runOK(c.asMember(uni, rotateKey("stolen", pubOf(issuerTestKey("stolen-sponsor-2")))), c.asMember(uni, rotateKey("stolen", pubOf(issuerTestKey("stolen-sponsor-3")))))
}

// TestSelfRotationRate (issue 17, finding 9): an issuer rotates itself at
// most selfRotationBurst times within selfRotationWindow heights, in
// CheckTx and in the block alike; its sponsor is not held to the rate,
// and the issuer may rotate again once the window has passed.
func TestSelfRotationRate(t *testing.T) {
	c := startGov(t, 0, 10, 1)
	uni := c.m[0]
	k0 := issuerTestKey("rate-0")
	// Keys registered with the issuer are not rotations.
	c.runOK(c.asMember(uni, registerIssuer("rate", "", pubOf(k0), pubOf(issuerTestKey("rate-spare")))))
	var burst [][]byte
	var last ed25519.PrivateKey
	for i := range selfRotationBurst + 1 {
		k := issuerTestKey(fmt.Sprintf("rate-%d", i+1))
		if i < selfRotationBurst {
			last = k
		}
		tx := c.asIssuer("rate", k0, rotateKey("rate", pubOf(k)))
		wantCheck(t, c, tx, CodeOK) // each alone is within the rate
		burst = append(burst, tx)
	}
	res, _ := c.run(burst...)
	want := make([]uint32, selfRotationBurst+1)
	want[selfRotationBurst] = CodeRejected
	wantCodes(t, res, want...)
	if log := res.TxResults[selfRotationBurst].Log; !strings.Contains(log, "later") {
		t.Errorf("the refused rotation's log %q does not say the issuer may rotate later", log)
	}
	e := c.rotatedAt("rate", last, c.height)
	c.advanceTo(e)

	over := c.asIssuer("rate", last, rotateKey("rate", pubOf(issuerTestKey("rate-over"))))
	wantCheck(t, c, over, CodeRejected)
	res, _ = c.run(over)
	wantCodes(t, res, CodeRejected)

	// The sponsor rotates at once.
	bySponsor := issuerTestKey("rate-sponsor")
	c.runOK(c.asMember(uni, rotateKey("rate", pubOf(bySponsor))))
	c.advanceTo(c.height + selfRotationWindow + 1)
	c.runOK(c.asIssuer("rate", bySponsor, rotateKey("rate", pubOf(issuerTestKey("rate-after")))))
}
