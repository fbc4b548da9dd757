package app

// Regressions of the issuer transactions: bugs these tests found, now fixed
// (a rotation takes effect at the next height, a not-yet-valid key gets an
// empty window, and TxBody's as_sponsor says who acts).

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"

	"github.com/credence-ledger/credence/proof"
)

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
