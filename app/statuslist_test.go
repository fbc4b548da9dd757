package app

import (
	"testing"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

func slCreate(id string, p pb.RegistryPurpose, size uint64) regMsg {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_CreateRegistry{CreateRegistry: &pb.CreateRegistry{Id: id, Purpose: p, Size: size}}}
	}
}

func slUpdate(issuer, id string, set, clear []uint64) regMsg {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_UpdateRegistry{UpdateRegistry: &pb.UpdateRegistry{Issuer: issuer, Id: id, Set: set, Clear: clear}}}
	}
}

const (
	slRevocation = pb.RegistryPurpose_REGISTRY_PURPOSE_REVOCATION
	slSuspension = pb.RegistryPurpose_REGISTRY_PURPOSE_SUSPENSION
)

// slSetup is regSetup with two registries of alpha: "rev" (revocation) and
// "sus" (suspension).
func slSetup(t *testing.T) *regFixture {
	f := regSetup(t)
	f.runOK(
		f.regByIssuer(alphaID, alpha1, slCreate("rev", slRevocation, MinStatusListSize)),
		f.regByIssuer(alphaID, alpha1, slCreate("sus", slSuspension, MinStatusListSize)),
	)
	f.runOK(f.regByIssuer(alphaID, alpha1, slUpdate(alphaID, "rev", []uint64{3}, nil)))
	return f
}

// TestStatusListRules: each refused registry transaction is refused in
// CheckTx and in block execution with its code and reason, kept out of
// proposals, and changes nothing.
func TestStatusListRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  func(f *regFixture) []byte
		code uint32
		why  string
	}{
		{"registry under 131,072 entries", func(f *regFixture) []byte {
			return f.regByIssuer(alphaID, alpha1, slCreate("small", slRevocation, MinStatusListSize-8))
		}, CodeMalformed, "131072"},
		{"size not a multiple of 8", func(f *regFixture) []byte {
			return f.regByIssuer(alphaID, alpha1, slCreate("odd", slRevocation, MinStatusListSize+1))
		}, CodeMalformed, "multiple of 8"},
		{"too large", func(f *regFixture) []byte {
			return f.regByIssuer(alphaID, alpha1, slCreate("huge", slRevocation, MaxStatusListSize+8))
		}, CodeMalformed, "multiple of 8"},
		{"no purpose", func(f *regFixture) []byte {
			return f.regByIssuer(alphaID, alpha1, slCreate("np", pb.RegistryPurpose_REGISTRY_PURPOSE_UNSPECIFIED, MinStatusListSize))
		}, CodeMalformed, "purpose"},
		{"existing registry", func(f *regFixture) []byte {
			return f.regByIssuer(alphaID, alpha1, slCreate("rev", slRevocation, MinStatusListSize))
		}, CodeRejected, "already has registry"},
		{"created by a member", func(f *regFixture) []byte {
			return f.regByMember(f.m[0], slCreate("bym", slRevocation, MinStatusListSize))
		}, CodeUnknownSigner, "not registered"},
		{"created by a suspended issuer", func(f *regFixture) []byte {
			return f.regByIssuer(regSusID, regSus1, slCreate("x", slRevocation, MinStatusListSize))
		}, CodeUnauthorized, "SUSPENDED"},
		{"clearing a bit of a revocation registry", func(f *regFixture) []byte {
			return f.regByIssuer(alphaID, alpha1, slUpdate(alphaID, "rev", nil, []uint64{3}))
		}, CodeRejected, "never cleared"},
		{"index past the end", func(f *regFixture) []byte {
			return f.regByIssuer(alphaID, alpha1, slUpdate(alphaID, "rev", []uint64{MinStatusListSize}, nil))
		}, CodeRejected, "outside registry"},
		{"unknown registry", func(f *regFixture) []byte {
			return f.regByIssuer(alphaID, alpha1, slUpdate(alphaID, "nope", []uint64{1}, nil))
		}, CodeRejected, "has no registry"},
		{"an index set and cleared at once", func(f *regFixture) []byte {
			return f.regByIssuer(alphaID, alpha1, slUpdate(alphaID, "sus", []uint64{5}, []uint64{5}))
		}, CodeMalformed, "given twice"},
		{"nothing to change", func(f *regFixture) []byte {
			return f.regByIssuer(alphaID, alpha1, slUpdate(alphaID, "sus", nil, nil))
		}, CodeMalformed, "1 to"},
		{"updated by a member that is not the sponsor", func(f *regFixture) []byte {
			body := slUpdate(alphaID, "sus", []uint64{1}, nil)(f.m[1].id, f.next(memberAccount(f.m[1].id)))
			return govSign(t, body, f.m[1].admin)
		}, CodeUnauthorized, "does not sponsor"},
		{"another issuer's registry", func(f *regFixture) []byte {
			return f.regByIssuer(govGammaID, govGamma1, slUpdate(alphaID, "sus", []uint64{1}, nil))
		}, CodeUnknownSigner, "not a member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, ref := slSetup(t), slSetup(t)
			good := anchor(t, testChainID, govGammaID, 50, hashesN("sl-good", 2), govGamma1)
			regWantRefused(t, f.govChain, ref.govChain, good, tc.bad(f), tc.code, tc.why, true)
		})
	}
}

// TestStatusListChunks: bits land in the right chunk and bit; a chunk
// cleared to all zeros leaves state (absent means zeros).
func TestStatusListChunks(t *testing.T) {
	f := slSetup(t)
	set := []uint64{0, 7, 8, proof.ChunkBits - 1, proof.ChunkBits, MinStatusListSize - 1}
	f.runOK(f.regByIssuer(alphaID, alpha1, slUpdate(alphaID, "sus", set, nil)))
	for _, i := range set {
		chunk := regProved(t, f.node, proof.ChunkKey(alphaID, "sus", uint32(i/proof.ChunkBits)), 0)
		if len(chunk) != proof.ChunkBits/8 || chunk[(i%proof.ChunkBits)/8]&(0x80>>(i%8)) == 0 {
			t.Fatalf("entry %d not set in its chunk", i)
		}
	}
	f.runOK(f.regByIssuer(alphaID, alpha1, slUpdate(alphaID, "sus", nil, []uint64{MinStatusListSize - 1})))
	if v := regProved(t, f.node, proof.ChunkKey(alphaID, "sus", uint32((MinStatusListSize-1)/proof.ChunkBits)), 0); v != nil {
		t.Fatalf("a chunk cleared to zeros is still in state (%d bytes)", len(v))
	}
}
