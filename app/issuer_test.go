package app

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"

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
