package proof

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

const vectorDir = "testdata/vectors"

// vector is a valid receipt of testdata/vectors with its trust root.
type vector struct {
	name  string // chain/receipt
	file  []byte
	trust *TrustRoot
}

// receipt returns a fresh copy of the vector's receipt.
func (v *vector) receipt(tb testing.TB) *Receipt {
	tb.Helper()
	r, err := UnmarshalReceiptJSON(v.file, Limits{})
	if err != nil {
		tb.Fatalf("%s: %v", v.name, err)
	}
	return r
}

func (v *vector) wire(tb testing.TB) []byte {
	tb.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(v.receipt(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func trustFromFile(tb testing.TB, path string) *TrustRoot {
	tb.Helper()
	g, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	tr, err := TrustRootFromGenesis(g)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return tr
}

// validVectors are the valid receipts of testdata/vectors, each chain's
// beside its genesis.
func validVectors(tb testing.TB) []*vector {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(vectorDir, "*", "*.receipt.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no vectors: %v", err)
	}
	var out []*vector
	trust := map[string]*TrustRoot{}
	for _, f := range files {
		chain := filepath.Base(filepath.Dir(f))
		if chain == "invalid" {
			continue
		}
		if trust[chain] == nil {
			trust[chain] = trustFromFile(tb, filepath.Join(vectorDir, chain, "genesis.json"))
		}
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, &vector{name: chain + "/" + strings.TrimSuffix(filepath.Base(f), ".receipt.json"), file: b, trust: trust[chain]})
	}
	return out
}

func vectorNamed(tb testing.TB, name string) *vector {
	tb.Helper()
	for _, v := range validVectors(tb) {
		if v.name == name {
			return v
		}
	}
	tb.Fatalf("no vector %s", name)
	return nil
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

// TestValidVectors: every valid vector verifies against its genesis, says
// what its record says, and its file is exactly what MarshalReceiptJSON
// writes for it.
func TestValidVectors(t *testing.T) {
	vs := validVectors(t)
	want := map[string]bool{}
	for _, v := range vs {
		want[v.name] = true
	}
	for _, n := range []string{"one-validator/single-hash", "one-validator/large-batch",
		"four-validators/full-commit", "four-validators/partial-commit", "four-validators/large-batch",
		"four-validators/validator-link", "four-validators/validator-link-partial-commit"} {
		if !want[n] {
			t.Errorf("vector %s is missing", n)
		}
	}
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			r := v.receipt(t)
			got, err := Verify(r, v.trust)
			if err != nil {
				t.Fatal(err)
			}
			if got.Issuer != r.Batch.Issuer || got.Height != r.Batch.Height || got.LeafCount != r.Batch.LeafCount ||
				!bytes.Equal(got.CredentialHash, r.CredentialHash) || got.Time.UnixNano() != r.Batch.TimeUnixNano {
				t.Errorf("Verify = %+v, receipt says %v", got, r)
			}
			back, err := MarshalReceiptJSON(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(append(back, '\n'), v.file) {
				t.Error("MarshalReceiptJSON does not give back the vector's bytes")
			}
		})
	}
}

// TestVectorsCoverCommitKinds keeps the vectors honest about what they are
// named for: partial commits have an absent signature, full ones none, and
// link vectors carry a link.
func TestVectorsCoverCommitKinds(t *testing.T) {
	for _, v := range validVectors(t) {
		r := v.receipt(t)
		sh, err := decodeSignedHeader(r.SignedHeader, DefaultMaxValidators)
		if err != nil {
			t.Fatal(err)
		}
		absent := 0
		for _, s := range sh.commit.sigs {
			if s.flag == flagAbsent {
				absent++
			}
		}
		partial := strings.Contains(v.name, "partial-commit")
		if partial != (absent > 0) {
			t.Errorf("%s: %d absent signatures", v.name, absent)
		}
		if strings.Contains(v.name, "four-validators/") && len(sh.commit.sigs) < 4 {
			t.Errorf("%s: %d signatures", v.name, len(sh.commit.sigs))
		}
		if strings.Contains(v.name, "validator-link") != (len(r.ValidatorLinks) > 0) {
			t.Errorf("%s: %d links", v.name, len(r.ValidatorLinks))
		}
	}
}

// TestOldVersionRefused: a version 1 receipt file is refused, naming the
// version and how to get a new receipt.
func TestOldVersionRefused(t *testing.T) {
	_, err := UnmarshalReceiptJSON(readTestdata(t, "receipt-v1.json"), Limits{})
	if !errors.Is(err, ErrOldVersion) || !strings.Contains(err.Error(), "version 1") || !strings.Contains(err.Error(), "credenced receipt") {
		t.Fatalf("UnmarshalReceiptJSON(v1) = %v", err)
	}
	v := vectorNamed(t, "four-validators/full-commit")
	r := v.receipt(t)
	r.Version = 1
	_, err = Verify(r, v.trust)
	if !errors.Is(err, ErrOldVersion) || stepOf(t, err) != StepFormat {
		t.Fatalf("Verify(version 1) = %v", err)
	}
}

// TestVerifyWrongTrustRoot: a receipt checked against another chain's
// genesis fails, at the chain id when it differs, else at the trust root.
func TestVerifyWrongTrustRoot(t *testing.T) {
	four := vectorNamed(t, "four-validators/full-commit")
	one := vectorNamed(t, "one-validator/single-hash")
	if _, err := Verify(four.receipt(t), one.trust); stepOf(t, err) != StepTrustRoot {
		t.Errorf("4-validator receipt against the 1-validator genesis: %v", err)
	}
	other := *four.trust
	other.ChainID = "other"
	if _, err := Verify(four.receipt(t), &other); stepOf(t, err) != StepChain {
		t.Errorf("against another chain id: %v", err)
	}
	if _, err := Verify(four.receipt(t), &TrustRoot{ChainID: four.trust.ChainID}); stepOf(t, err) != StepFormat {
		t.Errorf("against a trust root without validators: %v", err)
	}
}

// TestLimits: what a receipt may demand of a verifier is bounded, and
// refused before the work.
func TestLimits(t *testing.T) {
	v := vectorNamed(t, "four-validators/validator-link")
	trust := *v.trust
	trust.Limits = Limits{MaxValidators: 4}
	if _, err := Verify(v.receipt(t), &trust); err == nil || !strings.Contains(err.Error(), "at most 4") && !strings.Contains(err.Error(), "more than") {
		t.Errorf("5 validators under MaxValidators 4: %v", err)
	}
	trust.Limits = Limits{MaxLinks: 1}
	r := v.receipt(t)
	r.ValidatorLinks = append(r.ValidatorLinks, r.ValidatorLinks[0])
	if _, err := Verify(r, &trust); err == nil || !strings.Contains(err.Error(), "at most 1") {
		t.Errorf("2 links under MaxLinks 1: %v", err)
	}
	r = v.receipt(t)
	r.AuditPath = make([][]byte, 65)
	if _, err := Verify(r, v.trust); stepOf(t, err) != StepAuditPath {
		t.Errorf("65 path entries: %v", err)
	}
	if _, err := UnmarshalReceiptJSON(v.file, Limits{MaxReceiptBytes: len(v.file) - 1}); err == nil {
		t.Error("file one byte over MaxReceiptBytes accepted")
	}
	if _, err := UnmarshalReceiptJSON(v.file, Limits{MaxReceiptBytes: len(v.file)}); err != nil {
		t.Errorf("file at MaxReceiptBytes: %v", err)
	}
}

// TestVectorsEveryFormatVersion: the vectors hold receipts of every format
// version from 2 to ReceiptVersion, and each verifies against the genesis
// beside it, so a later format cannot silently drop an earlier one's
// vectors (a verifier keeps verifying every receipt ever served).
func TestVectorsEveryFormatVersion(t *testing.T) {
	const firstKept = 2 // version 1 receipts are refused (docs/receipt.md)
	byVersion := map[uint32][]string{}
	for _, v := range validVectors(t) {
		r := v.receipt(t)
		if _, err := Verify(r, v.trust); err != nil {
			t.Errorf("%s (format version %d): %v", v.name, r.Version, err)
		}
		byVersion[r.Version] = append(byVersion[r.Version], v.name)
	}
	for ver := uint32(firstKept); ver <= ReceiptVersion; ver++ {
		if len(byVersion[ver]) == 0 {
			t.Errorf("no vector of receipt format version %d in %s: every version from %d on keeps its vectors", ver, vectorDir, firstKept)
		}
	}
	for ver, names := range byVersion {
		if ver < firstKept || ver > ReceiptVersion {
			t.Errorf("vectors %v have format version %d, outside %d to %d", names, ver, firstKept, ReceiptVersion)
		}
	}
}
