package app

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
	"github.com/credence-ledger/credence/vc"
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
		// A URL client normalises "." and ".." away, so such a list's URL
		// would name another resource (finding 11).
		{"registry id \".\"", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createStatusList(".", slRevocation, MinStatusListSize))
		}, CodeMalformed, "URL path segment"},
		{"registry id \"..\"", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createStatusList("..", slRevocation, MinStatusListSize))
		}, CodeMalformed, "URL path segment"},
		{"no purpose", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createStatusList("np", pb.RegistryPurpose_REGISTRY_PURPOSE_UNSPECIFIED, MinStatusListSize))
		}, CodeMalformed, "purpose"},
		{"existing status list", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createStatusList("rev", slRevocation, MinStatusListSize))
		}, CodeRejected, "already has status list"},
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
		}, CodeRejected, "outside status list"},
		{"unknown status list", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, updateStatusList(alphaID, "nope", []uint64{1}, nil))
		}, CodeRejected, "has no status list"},
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

const (
	slURL       = "https://status.example/v1/statuslists/alpha/srev"
	slValidFrom = "2026-01-02T03:04:05Z"
)

// signedListSetup is statusListSetup with two lists of alpha that have a
// url: "srev" (revocation) and "ssus" (suspension), whose credentials the
// issuer signs.
func signedListSetup(t *testing.T) *issuerFixture {
	f := statusListSetup(t)
	f.runOK(
		f.asIssuer(alphaID, alpha1, createListWithURL("srev", slRevocation, slURL)),
		f.asIssuer(alphaID, alpha1, createListWithURL("ssus", slSuspension, slURL+"-sus")),
	)
	return f
}

func createListWithURL(id string, p pb.RegistryPurpose, url string) bodyFn {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_CreateRegistry{CreateRegistry: &pb.CreateRegistry{Id: id, Purpose: p, Size: MinStatusListSize, Url: url}}}
	}
}

// listBits is the committed bitstring of alpha's list id.
func listBits(t *testing.T, f *issuerFixture, id string) []byte {
	bits := make([]byte, MinStatusListSize/8)
	for c := uint32(0); uint64(c)*proof.ChunkBits < MinStatusListSize; c++ {
		copy(bits[int(c)*proof.ChunkBits/8:], proved(t, f.chain, proof.ChunkKey(alphaID, id, c), 0))
	}
	return bits
}

// signedUpdate is the issuer's update of list id as the CLI makes it: the
// bits after the update, encoded, in a credential signed by signKey. edit
// may change the message after signing.
func signedUpdate(t *testing.T, f *issuerFixture, id string, set, clear []uint64, signKey ed25519.PrivateKey, edit func(*pb.UpdateRegistry)) bodyFn {
	t.Helper()
	var r pb.Registry
	if err := proto.Unmarshal(proved(t, f.chain, proof.RegistryKey(alphaID, id), 0), &r); err != nil {
		t.Fatal(err)
	}
	bits := listBits(t, f, id)
	for _, i := range set {
		bits[i/8] |= 0x80 >> (i % 8)
	}
	for _, i := range clear {
		bits[i/8] &^= 0x80 >> (i % 8)
	}
	enc, err := proof.EncodeStatusList(bits)
	if err != nil {
		t.Fatal(err)
	}
	did, _ := vc.DIDKey(pubOf(signKey))
	prf, err := StatusListOf(&r, did, slValidFrom, enc).Sign(signKey)
	if err != nil {
		t.Fatal(err)
	}
	m := &pb.UpdateRegistry{Issuer: alphaID, Id: id, Set: set, Clear: clear, EncodedList: enc, ValidFrom: slValidFrom, Proof: prf}
	if edit != nil {
		edit(m)
	}
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q, Msg: &pb.TxBody_UpdateRegistry{UpdateRegistry: proto.Clone(m).(*pb.UpdateRegistry)}}
	}
}

// TestSignedStatusList: an issuer's signed update is applied and what it
// signed is kept, so the credential rebuilt from state verifies as the
// issuer's did:key; a sponsor's update (no issuer proof) drops it.
func TestSignedStatusList(t *testing.T) {
	f := signedListSetup(t)
	var r pb.Registry
	if err := proto.Unmarshal(proved(t, f.chain, proof.RegistryKey(alphaID, "srev"), 0), &r); err != nil {
		t.Fatal(err)
	}
	if r.Url != slURL || r.TtlMs != DefaultStatusListTTL {
		t.Fatalf("registry url %q ttl %d, want %q %d", r.Url, r.TtlMs, slURL, DefaultStatusListTTL)
	}
	f.runOK(f.asIssuer(alphaID, alpha1, signedUpdate(t, f, "srev", []uint64{5, 70_000}, nil, alpha1, nil)))
	raw := proved(t, f.chain, proof.SignedListKey(alphaID, "srev"), 0)
	var sd pb.SignedStatusList
	if err := proto.Unmarshal(raw, &sd); err != nil || sd.Height == 0 || sd.ValidFrom != slValidFrom {
		t.Fatalf("signed list record %v (%v)", &sd, err)
	}
	did, _ := vc.DIDKey(pubOf(alpha1))
	doc, err := StatusListOf(&r, did, sd.ValidFrom, sd.EncodedList).SignedDocument(sd.Proof)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vc.Verify(doc, vc.ResolveDIDKey); err != nil {
		t.Fatalf("credential rebuilt from state does not verify: %v\n%s", err, doc)
	}
	bits, err := proof.DecodeStatusList(sd.EncodedList, MinStatusListSize/8)
	if err != nil || !proof.BitSet(bits, 5) || !proof.BitSet(bits, 70_000) || proof.BitSet(bits, 6) {
		t.Fatalf("signed list bits wrong (%v)", err)
	}

	f.runOK(f.asMember(f.m[0], updateStatusList(alphaID, "srev", []uint64{9}, nil)))
	if v := proved(t, f.chain, proof.SignedListKey(alphaID, "srev"), 0); v != nil {
		t.Fatal("a sponsor's update left the issuer's older signature as current")
	}
	if !proof.BitSet(listBits(t, f, "srev"), 9) {
		t.Fatal("sponsor's update not applied")
	}
	// The issuer signs again over the new state.
	f.runOK(f.asIssuer(alphaID, alpha1, signedUpdate(t, f, "srev", []uint64{10}, nil, alpha1, nil)))
	if v := proved(t, f.chain, proof.SignedListKey(alphaID, "srev"), 0); v == nil {
		t.Fatal("signed again, but no signature kept")
	}
}

// TestSignedStatusListRules: each refused signed-list transaction is
// refused in CheckTx and in block execution with its code and reason.
func TestSignedStatusListRules(t *testing.T) {
	bomb := func() string {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(make([]byte, 64<<20))
		zw.Close()
		return "u" + base64.RawURLEncoding.EncodeToString(buf.Bytes())
	}()
	for _, tc := range []struct {
		name string
		bad  func(f *issuerFixture) []byte
		code uint32
		why  string
	}{
		{"encoded_list is not the bits the update leaves", func(f *issuerFixture) []byte {
			other := make([]byte, MinStatusListSize/8)
			other[0] = 0xff
			enc, _ := proof.EncodeStatusList(other)
			return f.asIssuer(alphaID, alpha1, signedUpdate(t, f, "srev", []uint64{1}, nil, alpha1, func(m *pb.UpdateRegistry) { m.EncodedList = enc }))
		}, CodeRejected, "changed since"},
		{"proof over other content", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, signedUpdate(t, f, "srev", []uint64{1}, nil, alpha1, func(m *pb.UpdateRegistry) { m.ValidFrom = "2026-01-02T03:04:06Z" }))
		}, CodeBadSignature, "signature does not verify"},
		{"proof by another key of the issuer", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, signedUpdate(t, f, "srev", []uint64{1}, nil, alpha2, nil))
		}, CodeBadSignature, "not the signer's"},
		{"proof by a key that is not the issuer's", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, signedUpdate(t, f, "srev", []uint64{1}, nil, strangerKey, nil))
		}, CodeBadSignature, "not the signer's"},
		{"a gzip bomb", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, signedUpdate(t, f, "srev", []uint64{1}, nil, alpha1, func(m *pb.UpdateRegistry) { m.EncodedList = bomb }))
		}, CodeMalformed, "decompresses beyond"},
		{"proof that is not JSON", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, signedUpdate(t, f, "srev", []uint64{1}, nil, alpha1, func(m *pb.UpdateRegistry) { m.Proof = []byte("{x") }))
		}, CodeMalformed, "not a JSON object"},
		{"valid_from not in UTC", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, signedUpdate(t, f, "srev", []uint64{1}, nil, alpha1, func(m *pb.UpdateRegistry) { m.ValidFrom = "2026-01-02T04:04:05+01:00" }))
		}, CodeMalformed, "valid_from"},
		{"encoded_list without proof", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, signedUpdate(t, f, "srev", []uint64{1}, nil, alpha1, func(m *pb.UpdateRegistry) { m.Proof = nil }))
		}, CodeMalformed, "go together"},
		{"the issuer's update of a list with a url, unsigned", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, updateStatusList(alphaID, "srev", []uint64{1}, nil))
		}, CodeMalformed, "carries encoded_list"},
		{"a sponsor's update carrying a proof", func(f *issuerFixture) []byte {
			return f.asMember(f.m[0], signedUpdate(t, f, "srev", []uint64{1}, nil, alpha1, nil))
		}, CodeMalformed, "sponsor"},
		{"a signed update of a list without url", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, signedUpdate(t, f, "srev", []uint64{1}, nil, alpha1, func(m *pb.UpdateRegistry) { m.Id = "rev" }))
		}, CodeRejected, "has no url"},
		{"url not http(s)", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createListWithURL("u1", slRevocation, "ftp://status.example/l"))
		}, CodeMalformed, "create_registry.url"},
		{"url relative", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createListWithURL("u2", slRevocation, "/v1/statuslists/alpha/u2"))
		}, CodeMalformed, "create_registry.url"},
		{"url with a fragment", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createListWithURL("u3", slRevocation, "https://status.example/l#x"))
		}, CodeMalformed, "create_registry.url"},
		{"url with a space", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createListWithURL("u4", slRevocation, "https://status.example/a b"))
		}, CodeMalformed, "create_registry.url"},
		{"url too long", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, createListWithURL("u5", slRevocation, "https://status.example/"+strings.Repeat("a", vc.MaxStatusListURL)))
		}, CodeMalformed, "create_registry.url"},
		{"ttl without url", func(f *issuerFixture) []byte {
			return f.asIssuer(alphaID, alpha1, func(s string, q uint64) *pb.TxBody {
				return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
					Msg: &pb.TxBody_CreateRegistry{CreateRegistry: &pb.CreateRegistry{Id: "u6", Purpose: slRevocation, Size: MinStatusListSize, TtlMs: 1000}}}
			})
		}, CodeMalformed, "ttl_ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, ref := signedListSetup(t), signedListSetup(t)
			good := anchor(t, testChainID, gammaID, 50, hashesN("sl-good", 2), gamma1)
			wantRefused(t, f.chain, ref.chain, good, tc.bad(f), tc.code, tc.why, true)
		})
	}
}
