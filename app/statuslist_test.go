package app

import (
	"testing"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

const (
	slRevocation = pb.RegistryPurpose_REGISTRY_PURPOSE_REVOCATION
	slSuspension = pb.RegistryPurpose_REGISTRY_PURPOSE_SUSPENSION
)

// statusListSetup is issuerSetup with two status lists of alpha: "rev" (revocation) and
// "sus" (suspension).
func statusListSetup(t *testing.T) *issuerFixture {
	f := issuerSetup(t)
	f.runOK(
		f.asIssuer(alphaID, alpha1, createStatusList("rev", slRevocation, MinStatusListSize)),
		f.asIssuer(alphaID, alpha1, createStatusList("sus", slSuspension, MinStatusListSize)),
	)
	f.runOK(f.asIssuer(alphaID, alpha1, updateStatusList(alphaID, "rev", []uint64{3}, nil)))
	return f
}

// TestStatusListRules: each refused status list transaction is refused in
// CheckTx and in block execution with its code and reason, kept out of
// proposals, and changes nothing.
func TestStatusListRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  func(f *issuerFixture) []byte
		code uint32
		why  string
	}{
		{"a list of under 131,072 entries", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createStatusList("small", slRevocation, MinStatusListSize-8))
		}, CodeMalformed, "131072"},
		{"size not a multiple of 8", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createStatusList("odd", slRevocation, MinStatusListSize+1))
		}, CodeMalformed, "multiple of 8"},
		{"too large", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createStatusList("huge", slRevocation, MaxStatusListSize+8))
		}, CodeMalformed, "multiple of 8"},
		{"no purpose", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createStatusList("np", pb.RegistryPurpose_REGISTRY_PURPOSE_UNSPECIFIED, MinStatusListSize))
		}, CodeMalformed, "purpose"},
		{"existing status list", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createStatusList("rev", slRevocation, MinStatusListSize))
		}, CodeRejected, "already has registry"},
		{"created by a member", func(f *issuerFixture) []byte {
			return f.asMember(f.m[0], createStatusList("bym", slRevocation, MinStatusListSize))
		}, CodeUnknownSigner, "not registered"},
		{"created by a suspended issuer", func(f *issuerFixture) []byte {
			return f.asIssuer(regSusID, regSus1, createStatusList("x", slRevocation, MinStatusListSize))
		}, CodeUnauthorized, "SUSPENDED"},
		{"clearing a bit of a revocation list", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, updateStatusList(alphaID, "rev", nil, []uint64{3}))
		}, CodeRejected, "never cleared"},
		{"index past the end", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, updateStatusList(alphaID, "rev", []uint64{MinStatusListSize}, nil))
		}, CodeRejected, "outside registry"},
		{"unknown status list", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, updateStatusList(alphaID, "nope", []uint64{1}, nil))
		}, CodeRejected, "has no registry"},
		{"an index set and cleared at once", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, updateStatusList(alphaID, "sus", []uint64{5}, []uint64{5}))
		}, CodeMalformed, "given twice"},
		{"nothing to change", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, updateStatusList(alphaID, "sus", nil, nil))
		}, CodeMalformed, "1 to"},
		{"updated by a member that is not the sponsor", func(f *issuerFixture) []byte {
			body := updateStatusList(alphaID, "sus", []uint64{1}, nil)(f.m[1].id, f.next(memberAccount(f.m[1].id)))
			return sign(t, body, f.m[1].admin)
		}, CodeUnauthorized, "does not sponsor"},
		{"another issuer's status list", func(f *issuerFixture) []byte {
			return f.asIssuer(gammaID, gamma1, updateStatusList(alphaID, "sus", []uint64{1}, nil))
		}, CodeUnknownSigner, "not a member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, ref := statusListSetup(t), statusListSetup(t)
			good := anchor(t, testChainID, gammaID, 50, hashesN("sl-good", 2), gamma1)
			wantRefused(t, f.chain, ref.chain, good, tc.bad(f), tc.code, tc.why, true)
		})
	}
}

// TestStatusListChunks: bits land in the right chunk and bit; a chunk
// cleared to all zeros leaves state (absent means zeros).
func TestStatusListChunks(t *testing.T) {
	f := statusListSetup(t)
	set := []uint64{0, 7, 8, proof.ChunkBits - 1, proof.ChunkBits, MinStatusListSize - 1}
	f.runOK(f.asIssuer(alphaID, alpha1, updateStatusList(alphaID, "sus", set, nil)))
	for _, i := range set {
		chunk := proved(t, f.chain, proof.ChunkKey(alphaID, "sus", uint32(i/proof.ChunkBits)), 0)
		if len(chunk) != proof.ChunkBits/8 || chunk[(i%proof.ChunkBits)/8]&(0x80>>(i%8)) == 0 {
			t.Fatalf("entry %d not set in its chunk", i)
		}
	}
	f.runOK(f.asIssuer(alphaID, alpha1, updateStatusList(alphaID, "sus", nil, []uint64{MinStatusListSize - 1})))
	if v := proved(t, f.chain, proof.ChunkKey(alphaID, "sus", uint32((MinStatusListSize-1)/proof.ChunkBits)), 0); v != nil {
		t.Fatalf("a chunk cleared to zeros is still in state (%d bytes)", len(v))
	}
}
