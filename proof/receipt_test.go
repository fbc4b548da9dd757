package proof

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	cmttypes "github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The testdata receipt: leaf 3 of a 7-leaf batch anchored by
// member-1-registrar on the single-validator chain of genesis.json.
const (
	testChainID   = "credence-dev"
	testIssuer    = "member-1-registrar"
	testBatchSeq  = 2
	testLeafIndex = 3
	testLeafCount = 7
	testHeight    = 4
	testBatchTime = "2026-11-28T12:58:03.14096041Z"
)

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// testReceipt returns a fresh copy of the testdata receipt; callers may
// modify it.
func testReceipt(tb testing.TB) *Receipt {
	tb.Helper()
	r, err := UnmarshalReceiptJSON(readTestdata(tb, "receipt.json"))
	if err != nil {
		tb.Fatalf("testdata receipt: %v", err)
	}
	return r
}

func testTrust(tb testing.TB) *TrustRoot {
	tb.Helper()
	return trustFrom(tb, "genesis.json")
}

func trustFrom(tb testing.TB, genesis string) *TrustRoot {
	tb.Helper()
	tr, err := TrustRootFromGenesis(readTestdata(tb, genesis))
	if err != nil {
		tb.Fatalf("%s: %v", genesis, err)
	}
	return tr
}

// testWire is the canonical (deterministic) protobuf encoding of the
// testdata receipt.
func testWire(tb testing.TB) []byte {
	tb.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(testReceipt(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// stepOf returns the step of a verification error, failing the test if err
// is not a *VerifyError wrapping ErrInvalid.
func stepOf(tb testing.TB, err error) Step {
	tb.Helper()
	if err == nil {
		tb.Fatal("verification succeeded, want an error")
	}
	var ve *VerifyError
	if !errors.As(err, &ve) {
		tb.Fatalf("error %v (%T) is not a *VerifyError", err, err)
	}
	if !errors.Is(err, ErrInvalid) {
		tb.Fatalf("error %v does not wrap ErrInvalid", err)
	}
	return ve.Step
}

// safeVerify runs Verify and turns a panic into an error return so that one
// crashing case does not hide the others.
func safeVerify(r *Receipt, tr *TrustRoot) (v *Verified, panicked any, err error) {
	defer func() {
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	v, err = Verify(r, tr)
	return v, nil, err
}

func TestVerifyTestdataReceipt(t *testing.T) {
	r := testReceipt(t)
	v, err := Verify(r, testTrust(t))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	credHash := sha256.Sum256(readTestdata(t, "credential.txt"))
	wantTime, err := time.Parse(time.RFC3339Nano, testBatchTime)
	if err != nil {
		t.Fatal(err)
	}
	// The issuer's key is registered in the genesis app state; the batch
	// record names the key that signed the batch, which must be that one.
	var gen struct {
		AppState struct {
			Issuers []struct {
				ID   string `json:"id"`
				Keys []struct {
					PublicKey string `json:"public_key"`
				} `json:"keys"`
			} `json:"issuers"`
		} `json:"app_state"`
	}
	if err := json.Unmarshal(readTestdata(t, "genesis.json"), &gen); err != nil {
		t.Fatal(err)
	}
	if len(gen.AppState.Issuers) != 1 || gen.AppState.Issuers[0].ID != testIssuer || len(gen.AppState.Issuers[0].Keys) != 1 {
		t.Fatalf("unexpected genesis app state: %+v", gen.AppState)
	}
	issuerKey, err := ParseBinary(gen.AppState.Issuers[0].Keys[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"ChainID", v.ChainID, testChainID},
		{"CredentialHash", v.CredentialHash, credHash[:]},
		{"Issuer", v.Issuer, testIssuer},
		{"SignerKey", v.SignerKey, issuerKey},
		{"BatchSeq", v.BatchSeq, uint64(testBatchSeq)},
		{"BatchRoot", v.BatchRoot, r.Batch.Root},
		{"LeafIndex", v.LeafIndex, uint64(testLeafIndex)},
		{"LeafCount", v.LeafCount, uint64(testLeafCount)},
		{"Height", v.Height, int64(testHeight)},
		{"Time", v.Time, wantTime},
		{"Time.Location", v.Time.Location(), time.UTC},
	} {
		t.Run(c.field, func(t *testing.T) {
			if b, ok := c.want.([]byte); ok {
				if !bytes.Equal(c.got.([]byte), b) {
					t.Errorf("%s = %x, want %x", c.field, c.got, b)
				}
				return
			}
			if wt, ok := c.want.(time.Time); ok {
				if !c.got.(time.Time).Equal(wt) {
					t.Errorf("%s = %v, want %v", c.field, c.got, wt)
				}
				return
			}
			if c.got != c.want {
				t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
			}
		})
	}

	// The batch root is not just echoed: it is the RFC 6962 root the audit
	// path leads to from the credential's leaf.
	root, err := RootFromAuditPath(LeafHash(credHash[:]), testLeafIndex, testLeafCount, r.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root[:], v.BatchRoot) {
		t.Errorf("BatchRoot %x, audit path gives %x", v.BatchRoot, root)
	}
}

func TestVerifyWrongTrustRoot(t *testing.T) {
	for _, c := range []struct {
		name    string
		genesis string
		want    Step
	}{
		// Chain id is checked first: a receipt of another chain is never
		// looked at further.
		{"other chain id", "other-chain-genesis.json", StepChain},
		// Same chain id, but the header was signed by a set that is not
		// the genesis set: the receipt's own set is consistent with its
		// header, so the failure is the link to the trust root.
		{"other validator, same chain id", "other-validator-genesis.json", StepTrustRoot},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(testReceipt(t), trustFrom(t, c.genesis))
			if got := stepOf(t, err); got != c.want {
				t.Errorf("step %q (%v), want %q", got, err, c.want)
			}
		})
	}

	// The receipt's validator list replaced by the other genesis's set, so
	// that it matches the trust root: now the set does not match the
	// header's validators hash.
	t.Run("validators swapped to match trust root", func(t *testing.T) {
		other := trustFrom(t, "other-validator-genesis.json")
		r := testReceipt(t)
		vs, err := ValidatorsFromSet(other.Validators)
		if err != nil {
			t.Fatal(err)
		}
		r.Validators = vs
		_, err = Verify(r, other)
		if got := stepOf(t, err); got != StepValidators {
			t.Errorf("step %q (%v), want %q", got, err, StepValidators)
		}
	})
}

func TestTrustRootFromGenesis(t *testing.T) {
	tr := testTrust(t)
	if tr.ChainID != testChainID {
		t.Errorf("chain id %q, want %q", tr.ChainID, testChainID)
	}
	if tr.Validators.Size() != 1 || tr.Validators.TotalVotingPower() != 10 {
		t.Errorf("validator set: %d validators, power %d; want 1, 10", tr.Validators.Size(), tr.Validators.TotalVotingPower())
	}
	vs, err := ValidatorsFromSet(tr.Validators)
	if err != nil {
		t.Fatal(err)
	}
	r := testReceipt(t)
	if len(vs) != 1 || !proto.Equal(vs[0], r.Validators[0]) {
		t.Errorf("ValidatorsFromSet(genesis) = %v, receipt carries %v", vs, r.Validators)
	}
}

func TestTrustRootFromGenesisErrors(t *testing.T) {
	valid := string(readTestdata(t, "genesis.json"))
	noVals := strings.Replace(valid, `"validators": [`, `"validators": [], "x_validators": [`, 1)
	if noVals == valid {
		t.Fatal("genesis.json layout changed; fix the test")
	}
	const genVal = `{"pub_key":{"type":"tendermint/PubKeyEd25519","value":"O95JeydbAfQM7h4ne2u2E77I0lbzFwWKMIcJ/Z08VzY="},"power":"10"}`
	for _, c := range []struct{ name, genesis string }{
		{"empty", ""},
		{"not JSON", "garbage"},
		{"JSON array", "[1,2,3]"},
		{"truncated", valid[:len(valid)/2]},
		{"no chain id", `{"validators":[]}`},
		{"no validators", `{"chain_id":"credence-dev"}`},
		{"empty validator list", `{"chain_id":"credence-dev","validators":[]}`},
		{"zero power", `{"chain_id":"credence-dev","validators":[{"pub_key":{"type":"tendermint/PubKeyEd25519","value":"O95JeydbAfQM7h4ne2u2E77I0lbzFwWKMIcJ/Z08VzY="},"power":"0"}]}`},
		{"negative power", `{"chain_id":"credence-dev","validators":[{"pub_key":{"type":"tendermint/PubKeyEd25519","value":"O95JeydbAfQM7h4ne2u2E77I0lbzFwWKMIcJ/Z08VzY="},"power":"-10"}]}`},
		{"wrong address", `{"chain_id":"credence-dev","validators":[{"address":"0000000000000000000000000000000000000000","pub_key":{"type":"tendermint/PubKeyEd25519","value":"O95JeydbAfQM7h4ne2u2E77I0lbzFwWKMIcJ/Z08VzY="},"power":"10"}]}`},
		{"unknown key type", `{"chain_id":"credence-dev","validators":[{"pub_key":{"type":"no/such/key","value":"AA=="},"power":"10"}]}`},
		// BUG (reported): CometBFT's GenesisDoc.ValidateAndComplete calls
		// PubKey.Address() on a nil key, so TrustRootFromGenesis panics
		// instead of returning an error.
		// BUG (reported): the same validator twice makes CometBFT's
		// ValidatorSetFromExistingValidators panic.
		{"validator listed twice", `{"chain_id":"credence-dev","validators":[` + genVal + `,` + genVal + `]}`},
		{"validator without pub_key", `{"chain_id":"credence-dev","validators":[{"power":"10"}]}`},
		{"validator without pub_key, with address", `{"chain_id":"credence-dev","validators":[{"address":"EA20A81C3BEE2BD2F5335EBEBCEE529D91FF70A5","power":"10"}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var (
				tr  *TrustRoot
				err error
			)
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("TrustRootFromGenesis panicked: %v", p)
						err = errors.New("panicked")
					}
				}()
				tr, err = TrustRootFromGenesis([]byte(c.genesis))
			}()
			if err == nil {
				t.Errorf("TrustRootFromGenesis accepted it: chain %q, %d validators", tr.ChainID, tr.Validators.Size())
			}
		})
	}
}

func TestVerifyErrorsAreVerifyErrors(t *testing.T) {
	trust := testTrust(t)
	for _, c := range []struct {
		name   string
		mutate func(r *Receipt) (*Receipt, *TrustRoot)
		want   Step
	}{
		{"nil receipt", func(*Receipt) (*Receipt, *TrustRoot) { return nil, trust }, StepFormat},
		{"nil trust root", func(r *Receipt) (*Receipt, *TrustRoot) { return r, nil }, StepFormat},
		{"trust root without validators", func(r *Receipt) (*Receipt, *TrustRoot) {
			return r, &TrustRoot{ChainID: testChainID}
		}, StepFormat},
		{"empty receipt", func(*Receipt) (*Receipt, *TrustRoot) { return &Receipt{}, trust }, StepFormat},
		{"version 0", func(r *Receipt) (*Receipt, *TrustRoot) { r.Version = 0; return r, trust }, StepFormat},
		{"version 2", func(r *Receipt) (*Receipt, *TrustRoot) { r.Version = 2; return r, trust }, StepFormat},
		{"no batch", func(r *Receipt) (*Receipt, *TrustRoot) { r.Batch = nil; return r, trust }, StepFormat},
		{"short credential hash", func(r *Receipt) (*Receipt, *TrustRoot) {
			r.CredentialHash = r.CredentialHash[:31]
			return r, trust
		}, StepFormat},
		{"long batch root", func(r *Receipt) (*Receipt, *TrustRoot) {
			r.Batch.Root = append(r.Batch.Root, 0)
			return r, trust
		}, StepFormat},
		{"empty chain id", func(r *Receipt) (*Receipt, *TrustRoot) { r.ChainId = ""; return r, trust }, StepChain},
		{"leaf index = leaf count", func(r *Receipt) (*Receipt, *TrustRoot) {
			r.LeafIndex = r.Batch.LeafCount
			return r, trust
		}, StepAuditPath},
		{"zero leaf count", func(r *Receipt) (*Receipt, *TrustRoot) { r.Batch.LeafCount = 0; return r, trust }, StepAuditPath},
		{"audit path too short", func(r *Receipt) (*Receipt, *TrustRoot) {
			r.AuditPath = r.AuditPath[:2]
			return r, trust
		}, StepAuditPath},
		{"audit path too long", func(r *Receipt) (*Receipt, *TrustRoot) {
			r.AuditPath = append(r.AuditPath, r.AuditPath[0])
			return r, trust
		}, StepAuditPath},
		{"audit path element short", func(r *Receipt) (*Receipt, *TrustRoot) {
			r.AuditPath[1] = r.AuditPath[1][:31]
			return r, trust
		}, StepAuditPath},
		{"audit path reversed", func(r *Receipt) (*Receipt, *TrustRoot) {
			slices.Reverse(r.AuditPath)
			return r, trust
		}, StepAuditPath},
		{"other leaf of the same batch", func(r *Receipt) (*Receipt, *TrustRoot) {
			r.LeafIndex = 2
			return r, trust
		}, StepAuditPath},
		{"empty signed header", func(r *Receipt) (*Receipt, *TrustRoot) { r.SignedHeader = nil; return r, trust }, StepHeader},
		{"signed header of the wrong height", func(r *Receipt) (*Receipt, *TrustRoot) {
			// Batch height and header height must differ by exactly one;
			// the batch height is also in the proven record, so this can
			// only fail, whichever check sees it first.
			r.Batch.Height++
			return r, trust
		}, StepHeader},
		{"empty batch proof", func(r *Receipt) (*Receipt, *TrustRoot) { r.BatchProof = nil; return r, trust }, StepBatchProof},
		{"batch proof not canonical", func(r *Receipt) (*Receipt, *TrustRoot) {
			// An unknown field appended to a valid proof: it decodes to the
			// same proof but is not the canonical encoding.
			r.BatchProof = protowire.AppendVarint(protowire.AppendTag(r.BatchProof, 99, protowire.VarintType), 1)
			return r, trust
		}, StepBatchProof},
		{"signed header not canonical", func(r *Receipt) (*Receipt, *TrustRoot) {
			r.SignedHeader = protowire.AppendVarint(protowire.AppendTag(r.SignedHeader, 99, protowire.VarintType), 1)
			return r, trust
		}, StepHeader},
		{"no validators", func(r *Receipt) (*Receipt, *TrustRoot) { r.Validators = nil; return r, trust }, StepValidators},
		{"empty validator entry", func(r *Receipt) (*Receipt, *TrustRoot) {
			r.Validators = []*Validator{{}}
			return r, trust
		}, StepValidators},
		{"nil validator pointer", func(r *Receipt) (*Receipt, *TrustRoot) {
			r.Validators = []*Validator{nil}
			return r, trust
		}, StepValidators},
		// BUG (reported): two entries with the same key make CometBFT's
		// ValidatorSetFromExistingValidators panic ("Cannot compare
		// identical validators"), so Verify panics on such a receipt.
		{"validator listed twice", func(r *Receipt) (*Receipt, *TrustRoot) {
			r.Validators = append(r.Validators, r.Validators[0])
			return r, trust
		}, StepValidators},
		{"validator listed twice, other power", func(r *Receipt) (*Receipt, *TrustRoot) {
			r.Validators = append(r.Validators, &Validator{Ed25519PublicKey: r.Validators[0].Ed25519PublicKey, VotingPower: 1})
			return r, trust
		}, StepValidators},
		{"zero voting power", func(r *Receipt) (*Receipt, *TrustRoot) { r.Validators[0].VotingPower = 0; return r, trust }, StepValidators},
		{"negative voting power", func(r *Receipt) (*Receipt, *TrustRoot) { r.Validators[0].VotingPower = -10; return r, trust }, StepValidators},
		{"other voting power", func(r *Receipt) (*Receipt, *TrustRoot) { r.Validators[0].VotingPower = 11; return r, trust }, StepValidators},
		{"short validator key", func(r *Receipt) (*Receipt, *TrustRoot) {
			r.Validators[0].Ed25519PublicKey = r.Validators[0].Ed25519PublicKey[:31]
			return r, trust
		}, StepValidators},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, tr := c.mutate(testReceipt(t))
			v, p, err := safeVerify(r, tr)
			if p != nil {
				t.Fatalf("Verify panicked: %v", p)
			}
			if v != nil {
				t.Errorf("Verify returned a result with error %v", err)
			}
			got := stepOf(t, err)
			if got != c.want {
				t.Errorf("step %q (%v), want %q", got, err, c.want)
			}
			if !strings.HasPrefix(err.Error(), string(got)+": ") {
				t.Errorf("message %q does not start with the step", err)
			}
		})
	}
}

// signedHeaderEdit decodes the receipt's signed header, lets edit change it,
// and stores its canonical re-encoding. With fixBlockID the commit's block
// id is pointed at the edited header's hash, as a forger would.
func signedHeaderEdit(tb testing.TB, r *Receipt, fixBlockID bool, edit func(*cmtproto.SignedHeader)) {
	tb.Helper()
	var p cmtproto.SignedHeader
	if err := p.Unmarshal(r.SignedHeader); err != nil {
		tb.Fatal(err)
	}
	edit(&p)
	if fixBlockID {
		h, err := cmttypes.HeaderFromProto(p.Header)
		if err != nil {
			tb.Fatal(err)
		}
		p.Commit.BlockID.Hash = h.Hash()
	}
	raw, err := p.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	r.SignedHeader = raw
}

// TestVerifySignedHeaderTamper forges the signed header field by field and
// checks that each forgery is caught at the step that covers it.
func TestVerifySignedHeaderTamper(t *testing.T) {
	flip := func(b []byte) []byte { b = slices.Clone(b); b[len(b)/2] ^= 1; return b }
	for _, c := range []struct {
		name       string
		fixBlockID bool
		edit       func(*cmtproto.SignedHeader)
		want       Step
	}{
		// Any change to the header changes its hash, which the commit's
		// block id no longer names.
		{"header app hash", false, func(p *cmtproto.SignedHeader) { p.Header.AppHash = flip(p.Header.AppHash) }, StepHeader},
		{"header time", false, func(p *cmtproto.SignedHeader) { p.Header.Time = p.Header.Time.Add(time.Second) }, StepHeader},
		{"header chain id", false, func(p *cmtproto.SignedHeader) { p.Header.ChainID = "credence-other" }, StepHeader},
		{"header height and commit height", false, func(p *cmtproto.SignedHeader) { p.Header.Height++; p.Commit.Height++ }, StepHeader},
		// With the block id fixed up, the header is self-consistent and
		// each field is caught by the link that uses it...
		{"forged app hash", true, func(p *cmtproto.SignedHeader) { p.Header.AppHash = flip(p.Header.AppHash) }, StepBatchProof},
		{"forged validators hash", true, func(p *cmtproto.SignedHeader) {
			p.Header.ValidatorsHash = flip(p.Header.ValidatorsHash)
		}, StepValidators},
		// ...or, for fields no other link uses, by the signatures.
		{"forged time", true, func(p *cmtproto.SignedHeader) { p.Header.Time = p.Header.Time.Add(time.Second) }, StepCommit},
		{"forged data hash", true, func(p *cmtproto.SignedHeader) { p.Header.DataHash = flip(p.Header.DataHash) }, StepCommit},
		{"forged proposer", true, func(p *cmtproto.SignedHeader) {
			p.Header.ProposerAddress = flip(p.Header.ProposerAddress)
		}, StepCommit},
		{"signature", false, func(p *cmtproto.SignedHeader) {
			p.Commit.Signatures[0].Signature = flip(p.Commit.Signatures[0].Signature)
		}, StepCommit},
		{"signature timestamp", false, func(p *cmtproto.SignedHeader) {
			p.Commit.Signatures[0].Timestamp = p.Commit.Signatures[0].Timestamp.Add(time.Nanosecond)
		}, StepCommit},
		{"signature names another validator", false, func(p *cmtproto.SignedHeader) {
			p.Commit.Signatures[0].ValidatorAddress = flip(p.Commit.Signatures[0].ValidatorAddress)
		}, StepCommit},
		{"signature for nil", false, func(p *cmtproto.SignedHeader) {
			p.Commit.Signatures[0].BlockIdFlag = cmtproto.BlockIDFlagNil
		}, StepCommit},
		{"signature absent", false, func(p *cmtproto.SignedHeader) {
			p.Commit.Signatures[0] = cmtproto.CommitSig{BlockIdFlag: cmtproto.BlockIDFlagAbsent}
		}, StepCommit},
		{"commit round", false, func(p *cmtproto.SignedHeader) { p.Commit.Round++ }, StepCommit},
		{"commit part set header", false, func(p *cmtproto.SignedHeader) {
			p.Commit.BlockID.PartSetHeader.Hash = flip(p.Commit.BlockID.PartSetHeader.Hash)
		}, StepCommit},
		{"no signatures", false, func(p *cmtproto.SignedHeader) { p.Commit.Signatures = nil }, StepHeader},
		{"no commit", false, func(p *cmtproto.SignedHeader) { p.Commit = nil }, StepHeader},
		{"no header", false, func(p *cmtproto.SignedHeader) { p.Header = nil }, StepHeader},
		// BUG (reported): a commit with more signatures than the
		// receipt's validator set makes Verify index past the set
		// (receipt.go, the signature/address loop) and panic. The extra
		// signature needs no valid signature: it is looked at before any
		// signature is checked.
		{"extra signature", false, func(p *cmtproto.SignedHeader) {
			s := p.Commit.Signatures[0]
			s.ValidatorAddress = make([]byte, 20)
			p.Commit.Signatures = append(p.Commit.Signatures, s)
		}, StepCommit},
		{"extra absent signature", false, func(p *cmtproto.SignedHeader) {
			p.Commit.Signatures = append(p.Commit.Signatures, cmtproto.CommitSig{BlockIdFlag: cmtproto.BlockIDFlagAbsent})
		}, StepCommit},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := testReceipt(t)
			signedHeaderEdit(t, r, c.fixBlockID, c.edit)
			_, p, err := safeVerify(r, testTrust(t))
			if p != nil {
				t.Fatalf("Verify panicked: %v", p)
			}
			if got := stepOf(t, err); got != c.want {
				t.Errorf("step %q (%v), want %q", got, err, c.want)
			}
		})
	}
}

// wireByte locates one byte of a receipt's protobuf encoding: the field
// path ("batch.issuer", "audit_path[1]", "validators[0].voting_power") and
// the part of the field the byte is in.
type wireByte struct {
	field string
	part  string // "tag", "len" or "value"
}

func (w wireByte) String() string { return w.field + "/" + w.part }

// wireLayout labels every byte of a protobuf encoding of md, recursing into
// message fields. It fails on anything but a clean encoding.
func wireLayout(md protoreflect.MessageDescriptor, b []byte, prefix string) ([]wireByte, error) {
	var out []wireByte
	counts := map[protowire.Number]int{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		fd := md.Fields().ByNumber(num)
		if fd == nil {
			return nil, fmt.Errorf("%sunknown field %d", prefix, num)
		}
		name := prefix + string(fd.Name())
		if fd.IsList() {
			name = fmt.Sprintf("%s[%d]", name, counts[num])
		}
		counts[num]++
		for range n {
			out = append(out, wireByte{name, "tag"})
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			_, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			for range m {
				out = append(out, wireByte{name, "value"})
			}
			b = b[m:]
		case protowire.BytesType:
			l, m := protowire.ConsumeVarint(b)
			if m < 0 || uint64(len(b)-m) < l {
				return nil, fmt.Errorf("%s: bad length", name)
			}
			for range m {
				out = append(out, wireByte{name, "len"})
			}
			v := b[m : m+int(l)]
			b = b[m+int(l):]
			if fd.Kind() == protoreflect.MessageKind {
				inner, err := wireLayout(fd.Message(), v, name+".")
				if err != nil {
					return nil, err
				}
				out = append(out, inner...)
			} else {
				for range v {
					out = append(out, wireByte{name, "value"})
				}
			}
		default:
			return nil, fmt.Errorf("%s: unexpected wire type %d", name, typ)
		}
	}
	return out, nil
}

// wireValueSteps is, for the value bytes of each field of the receipt
// encoding, the steps at which a change to them may be caught. A value byte
// flip keeps the message structure (for varints, unless it sets or clears a
// continuation bit, in which case the next tag is eaten and decoding almost
// always fails; the steps still apply when it does not). Tag and length
// bytes change the structure, and any step, or a decode failure, is fine
// for them: what matters is that they are rejected.
func wireValueSteps(field string) []Step {
	base := field
	if i := strings.IndexByte(base, '['); i >= 0 {
		base = base[:i] + base[strings.IndexByte(base, ']')+1:]
	}
	switch base {
	case "version":
		return []Step{StepFormat}
	case "chain_id":
		return []Step{StepChain}
	case "credential_hash", "leaf_index", "audit_path", "batch.root":
		return []Step{StepAuditPath}
	case "batch.leaf_count":
		// The leaf count both shapes the path and is in the proven
		// record: a count of the same path shape passes the path and
		// fails the proof (7 ^ 1 = 6 has the same shape for leaf 3).
		return []Step{StepAuditPath, StepBatchProof}
	case "batch.height":
		return []Step{StepHeader}
	case "batch.issuer", "batch.seq", "batch.signer_key", "batch.time_unix_nano", "batch_proof":
		return []Step{StepBatchProof}
	case "signed_header":
		// Decoding, canonical form and header hash are StepHeader; a
		// flip that decodes to a valid header of other content can only
		// meet a later link. All must be rejected.
		return []Step{StepHeader, StepBatchProof, StepValidators, StepTrustRoot, StepCommit}
	case "validators.ed25519_public_key", "validators.voting_power":
		return []Step{StepValidators}
	}
	return nil
}

// receiptHasUnknown reports whether decoding kept unknown fields anywhere in
// the receipt.
func receiptHasUnknown(r *Receipt) bool {
	if len(r.ProtoReflect().GetUnknown()) > 0 || r.Batch != nil && len(r.Batch.ProtoReflect().GetUnknown()) > 0 {
		return true
	}
	for _, v := range r.Validators {
		if len(v.ProtoReflect().GetUnknown()) > 0 {
			return true
		}
	}
	return false
}

// TestVerifyWireTamper flips every byte of the receipt's canonical protobuf
// encoding in several ways (xor 0x01, 0x80, 0xff), and renumbers every tag,
// and checks that no altered encoding verifies.
//
// The set of bytes whose change still verifies must equal wantUncovered,
// keyed by field as computed from the encoding (wireLayout), and it is
// empty. Empirically: of 3543 flips, 195 do not decode and all 3348 others
// are rejected; none decodes with an unknown field (xor 0x01 changes a
// tag's wire type; xor 0x80 or 0xff makes the tag a multi-byte varint that
// swallows the next byte and derails decoding). Why none can be uncovered:
// every field of the receipt is used by the verifier: version and chain id
// are compared; credential hash, leaf index, audit path, root and leaf
// count feed the RFC 6962 recomputation; the whole batch record is
// re-encoded as the value proven by the ICS23 proof (so its seq, signer key
// and time are covered by the app hash); batch proof and signed header are
// accepted only in their canonical encoding, and every header and commit
// field is covered by the header hash or the signature; the validator keys
// and powers make the set hash named by the header and trusted by genesis.
// Renumbered tags (fields turned unknown) are rejected too: the field then
// reads as absent, and Verify refuses unknown fields.
func TestVerifyWireTamper(t *testing.T) {
	wire := testWire(t)
	trust := testTrust(t)
	layout, err := wireLayout((&Receipt{}).ProtoReflect().Descriptor(), wire, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(layout) != len(wire) {
		t.Fatalf("layout covers %d of %d bytes", len(layout), len(wire))
	}
	// The layout must see every field, so that every field is tampered.
	seen := map[string]bool{}
	for _, w := range layout {
		seen[w.field] = true
	}
	for _, f := range []string{
		"version", "chain_id", "credential_hash", "leaf_index",
		"audit_path[0]", "audit_path[1]", "audit_path[2]",
		"batch", "batch.issuer", "batch.seq", "batch.root", "batch.leaf_count",
		"batch.signer_key", "batch.height", "batch.time_unix_nano",
		"batch_proof", "signed_header", "validators[0]",
		"validators[0].ed25519_public_key", "validators[0].voting_power",
	} {
		if !seen[f] {
			t.Errorf("field %s is not in the encoding", f)
		}
	}

	// uncovered is the set of bytes whose flip still verifies. It must be
	// exactly the set of bytes the receipt format leaves uncovered by
	// design, which is none (see above).
	uncovered := map[string][]string{}
	wantUncovered := map[string][]string{}
	decodeFailures, rejected, withUnknown := 0, 0, 0
	for _, x := range []byte{0x01, 0x80, 0xff} {
		for i := range wire {
			m := slices.Clone(wire)
			m[i] ^= x
			var r Receipt
			if err := proto.Unmarshal(m, &r); err != nil {
				decodeFailures++
				continue
			}
			if receiptHasUnknown(&r) {
				withUnknown++
			}
			_, p, err := safeVerify(&r, trust)
			if p != nil {
				t.Errorf("byte %d (%s) ^ %#02x: Verify panicked: %v", i, layout[i], x, p)
				continue
			}
			if err == nil {
				key := layout[i].String()
				uncovered[key] = append(uncovered[key], fmt.Sprintf("%d^%#02x", i, x))
				continue
			}
			rejected++
			step := stepOf(t, err)
			if layout[i].part != "value" {
				continue
			}
			if allowed := wireValueSteps(layout[i].field); !slices.Contains(allowed, step) {
				t.Errorf("byte %d (%s) ^ %#02x: rejected at %q (%v), want one of %q", i, layout[i], x, step, err, allowed)
			}
		}
	}
	// Renumbering a field (its tag to an unused number, same wire type)
	// is the flip the ones above never produce: the encoding still decodes,
	// the field's value moves to the unknown fields and the field itself
	// reads as absent. Every such receipt must be rejected.
	renumbered := 0
	for i := range wire {
		if layout[i].part != "tag" || (i > 0 && layout[i-1] == layout[i]) {
			continue
		}
		_, typ, n := protowire.ConsumeTag(wire[i:])
		if n != 1 {
			t.Fatalf("byte %d: %d-byte tag", i, n)
		}
		m := slices.Clone(wire)
		m[i] = byte(protowire.EncodeTag(15, typ)) // 15: no message of the receipt has it
		var r Receipt
		if err := proto.Unmarshal(m, &r); err != nil {
			t.Errorf("byte %d (%s) renumbered: does not decode: %v", i, layout[i], err)
			continue
		}
		if !receiptHasUnknown(&r) {
			t.Errorf("byte %d (%s) renumbered: no unknown field after decoding", i, layout[i])
		}
		renumbered++
		if _, p, err := safeVerify(&r, trust); p != nil {
			t.Errorf("byte %d (%s) renumbered: Verify panicked: %v", i, layout[i], p)
		} else if err == nil {
			key := layout[i].String() + " renumbered"
			uncovered[key] = append(uncovered[key], fmt.Sprint(i))
		} else {
			stepOf(t, err)
		}
	}
	if renumbered < 20 {
		t.Errorf("only %d tags renumbered", renumbered)
	}

	if fmt.Sprint(uncovered) != fmt.Sprint(wantUncovered) {
		t.Errorf("flipped encodings that still verify, by field: %v; want %v", uncovered, wantUncovered)
	}
	t.Logf("%d bytes x 3 flips: %d decode failures, %d rejected by Verify (%d of them decoded with unknown fields)",
		len(wire), decodeFailures, rejected, withUnknown)
	if rejected == 0 {
		t.Error("no flip reached Verify; the test is not testing the verifier")
	}
}

// TestVerifyWireFieldValues sets each varint field of the encoding to other
// values (a semantic change, unlike the flips above that mostly break the
// structure) and checks the step.
func TestVerifyWireFieldValues(t *testing.T) {
	trust := testTrust(t)
	for _, c := range []struct {
		name string
		set  func(r *Receipt)
		want Step
	}{
		{"version 0", func(r *Receipt) { r.Version = 0 }, StepFormat},
		{"version 2", func(r *Receipt) { r.Version = 2 }, StepFormat},
		{"version max", func(r *Receipt) { r.Version = ^uint32(0) }, StepFormat},
		{"leaf index 0", func(r *Receipt) { r.LeafIndex = 0 }, StepAuditPath},
		{"leaf index max", func(r *Receipt) { r.LeafIndex = ^uint64(0) }, StepAuditPath},
		{"leaf count 6 (same path shape)", func(r *Receipt) { r.Batch.LeafCount = 6 }, StepBatchProof},
		{"leaf count 8 (same path shape)", func(r *Receipt) { r.Batch.LeafCount = 8 }, StepBatchProof},
		{"leaf count 4", func(r *Receipt) { r.Batch.LeafCount = 4 }, StepAuditPath},
		{"leaf count 9", func(r *Receipt) { r.Batch.LeafCount = 9 }, StepAuditPath},
		{"leaf count max", func(r *Receipt) { r.Batch.LeafCount = ^uint64(0) }, StepAuditPath},
		{"seq 0", func(r *Receipt) { r.Batch.Seq = 0 }, StepBatchProof},
		{"seq 3", func(r *Receipt) { r.Batch.Seq = 3 }, StepBatchProof},
		{"height 3", func(r *Receipt) { r.Batch.Height = 3 }, StepHeader},
		{"height -1", func(r *Receipt) { r.Batch.Height = -1 }, StepHeader},
		{"time +1ns", func(r *Receipt) { r.Batch.TimeUnixNano++ }, StepBatchProof},
		{"time 0", func(r *Receipt) { r.Batch.TimeUnixNano = 0 }, StepBatchProof},
		{"issuer", func(r *Receipt) { r.Batch.Issuer = "member-1-registrat" }, StepBatchProof},
		{"issuer with slash", func(r *Receipt) { r.Batch.Issuer = "member-1/registrar" }, StepBatchProof},
		{"signer key", func(r *Receipt) { r.Batch.SignerKey[0] ^= 1 }, StepBatchProof},
		{"no signer key", func(r *Receipt) { r.Batch.SignerKey = nil }, StepBatchProof},
		{"voting power 9", func(r *Receipt) { r.Validators[0].VotingPower = 9 }, StepValidators},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := testReceipt(t)
			c.set(r)
			// Through the wire, as a verifier receiving bytes would.
			wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var got Receipt
			if err := proto.Unmarshal(wire, &got); err != nil {
				t.Fatal(err)
			}
			_, p, err := safeVerify(&got, trust)
			if p != nil {
				t.Fatalf("Verify panicked: %v", p)
			}
			if step := stepOf(t, err); step != c.want {
				t.Errorf("step %q (%v), want %q", step, err, c.want)
			}
		})
	}
}

// TestVerifyRejectsUnknownWireFields inserts unknown fields into the
// receipt's encoding. proto3 decoding keeps them, and nothing in them is
// checked, so a receipt carrying them is not "the canonical protobuf" the
// format promises and carries data no one vouches for; the JSON form
// refuses unknown fields for the same reason. (Verify accepted them at the
// top level and in a validator entry until commit b7d96d2; those in the
// batch record were always caught, at StepBatchProof, because the record
// is re-encoded, with them, as the proven value.)
func TestVerifyRejectsUnknownWireFields(t *testing.T) {
	wire := testWire(t)
	trust := testTrust(t)
	unknownVarint := protowire.AppendVarint(protowire.AppendTag(nil, 15, protowire.VarintType), 1)
	unknownBytes := protowire.AppendBytes(protowire.AppendTag(nil, 100, protowire.BytesType), []byte("anything"))

	// insertIntoField re-encodes the wire with extra appended to the
	// value of the (first) message field number num.
	insertIntoField := func(num protowire.Number, extra []byte) []byte {
		var out []byte
		b, done := wire, false
		for len(b) > 0 {
			n, typ, tl := protowire.ConsumeTag(b)
			fl := protowire.ConsumeFieldValue(n, typ, b[tl:])
			if n == num && typ == protowire.BytesType && !done {
				v, _ := protowire.ConsumeBytes(b[tl:])
				out = protowire.AppendTag(out, n, typ)
				out = protowire.AppendBytes(out, append(slices.Clone(v), extra...))
				done = true
			} else {
				out = append(out, b[:tl+fl]...)
			}
			b = b[tl+fl:]
		}
		if !done {
			t.Fatalf("no field %d", num)
		}
		return out
	}
	for _, c := range []struct {
		name string
		wire []byte
	}{
		{"receipt: unknown varint field appended", append(slices.Clone(wire), unknownVarint...)},
		{"receipt: unknown bytes field prepended", append(slices.Clone(unknownBytes), wire...)},
		{"batch record: unknown field", insertIntoField(6, unknownVarint)},
		{"validator: unknown field", insertIntoField(9, unknownBytes)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r Receipt
			if err := proto.Unmarshal(c.wire, &r); err != nil {
				t.Fatalf("unmarshal: %v", err) // it is valid protobuf
			}
			if len(r.ProtoReflect().GetUnknown()) == 0 && len(r.Batch.ProtoReflect().GetUnknown()) == 0 &&
				len(r.Validators[0].ProtoReflect().GetUnknown()) == 0 {
				t.Fatal("the decoded receipt kept no unknown field; the case tests nothing")
			}
			_, p, err := safeVerify(&r, trust)
			if p != nil {
				t.Fatalf("Verify panicked: %v", p)
			}
			if err == nil {
				t.Fatal("receipt with unknown fields verifies")
			}
			if step := stepOf(t, err); step != StepFormat && step != StepBatchProof {
				t.Errorf("step %q (%v), want %q (or %q for the batch record)", step, err, StepFormat, StepBatchProof)
			}
		})
	}
}

// TestVerifyWireEquivalentEncodings: encodings that differ from the
// canonical one but decode to an equal receipt carry nothing unverified, and
// verify (Verify sees only the decoded receipt). This pins down that the
// flips above are rejected for their content, not for their form.
func TestVerifyWireEquivalentEncodings(t *testing.T) {
	wire := testWire(t)
	trust := testTrust(t)
	want := testReceipt(t)
	// version (field 1) = 1 as a two-byte varint: 0x81 0x00.
	if wire[0] != 0x08 || wire[1] != 0x01 {
		t.Fatalf("encoding starts % x, want 08 01", wire[:2])
	}
	for _, c := range []struct {
		name string
		wire []byte
	}{
		{"non-minimal varint", append([]byte{0x08, 0x81, 0x00}, wire[2:]...)},
		{"field repeated, last wins", append([]byte{0x08, 0x05}, wire...)},
		{"fields out of order", append(slices.Clone(wire[2:]), 0x08, 0x01)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r Receipt
			if err := proto.Unmarshal(c.wire, &r); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&r, want) {
				t.Fatalf("decodes to %v, want the testdata receipt", &r)
			}
			if _, err := Verify(&r, trust); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}
