package app

// Rejections of the issuer transactions: the chain the cases start from
// (issuerFixture), the cases, the check that each is refused everywhere and
// changes nothing, and the controls that show each refusal is for its
// reason.

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

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

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
