package vc

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
)

var updateAnchor = flag.Bool("update", false, "rewrite testdata/anchor/valid and testdata/anchor/invalid from testdata/anchor/source")

const anchorDir = "testdata/anchor"

// anchorWant is an invalid vector's NAME.want: what was changed, from which
// vector, the genesis to verify against (relative to testdata/anchor) and
// the step that must fail.
type anchorWant struct {
	Mutation string `json:"mutation"`
	Source   string `json:"source"`
	Genesis  string `json:"genesis"`
	// DIDDocument is the issuer's DID document to give, if any.
	DIDDocument string `json:"did_document,omitempty"`
	Step        string `json:"step"`
}

type anchorSource struct {
	genesis                     []byte
	credential, other, web      []byte
	receipt, otherRcpt, webRcpt *proof.Receipt
	didDocument                 []byte
}

func loadAnchorSource(t *testing.T) *anchorSource {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(anchorDir, "source", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	receipt := func(name string) *proof.Receipt {
		r, err := proof.UnmarshalReceiptJSON(read(name), proof.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	return &anchorSource{
		genesis:     read("genesis.json"),
		credential:  read("credential.json"),
		other:       read("other-issuer.json"),
		receipt:     receipt("credential.receipt.json"),
		otherRcpt:   receipt("other-issuer.receipt.json"),
		web:         read("did-web.json"),
		webRcpt:     receipt("did-web.receipt.json"),
		didDocument: read("did-web.did.json"),
	}
}

func indentBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// setAnchorMember returns doc with member name of its anchor proof set to
// value (JSON), or removed when value is nil.
func setAnchorMember(t *testing.T, doc []byte, name string, value json.RawMessage) []byte {
	t.Helper()
	o := mustParse(t, doc)
	raw, _ := o.get("proof")
	var proofs []json.RawMessage
	if err := json.Unmarshal(raw, &proofs); err != nil {
		t.Fatal(err)
	}
	last := mustParse(t, proofs[len(proofs)-1])
	if value == nil {
		last = last.without(name)
	} else {
		last = last.with(name, value)
	}
	var err error
	if proofs[len(proofs)-1], err = last.marshal(); err != nil {
		t.Fatal(err)
	}
	arr, err := marshalArray(proofs)
	if err != nil {
		t.Fatal(err)
	}
	out, err := o.with("proof", arr).marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// anchorReceiptBytes returns the binary receipt of doc's anchor proof.
func anchorReceiptBytes(t *testing.T, doc []byte) []byte {
	t.Helper()
	o := mustParse(t, doc)
	raw, _ := o.get("proof")
	var proofs []json.RawMessage
	if err := json.Unmarshal(raw, &proofs); err != nil {
		t.Fatal(err)
	}
	pv, _ := stringMember(mustParse(t, proofs[len(proofs)-1]), "proofValue")
	b, err := decodeBase58btc(pv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func withReceiptBytes(t *testing.T, doc, bin []byte) []byte {
	t.Helper()
	return setAnchorMember(t, doc, "proofValue", marshalString(proof.FormatBinary(bin)))
}

// buildAnchorVectors makes the valid and invalid anchor vectors from the
// chain output in testdata/anchor/source (node's TestVCAnchorOnLiveChain).
// It is deterministic: the same source gives the same files.
func buildAnchorVectors(t *testing.T, src *anchorSource) (valid, invalid map[string][]byte, wants map[string]anchorWant, extra map[string][]byte) {
	t.Helper()
	gh := GenesisHash(src.genesis)
	cc := newCredConfig(nil)
	attached, err := AttachReceipt(src.credential, src.receipt, src.genesis)
	if err != nil {
		t.Fatal(err)
	}
	valid = map[string][]byte{"anchored": indentBytes(t, attached)}
	// Other software's layout: members shuffled, tabs.
	valid["reserialized"] = reserialize(t, decodeJSON(t, attached), rand.New(rand.NewPCG(7, 7)), "\t")
	// A holder's wallet adds its own proof (eddsa-jcs-2022, another did:key).
	wallet := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	walletSigned, err := Sign(attached, EddsaJCS2022, wallet)
	if err != nil {
		t.Fatal(err)
	}
	valid["wallet-proof-added"] = indentBytes(t, walletSigned)
	// A proof of a suite this verifier does not know is skipped, as generic
	// verifiers skip ours.
	o := mustParse(t, attached)
	raw, _ := o.get("proof")
	unknown := json.RawMessage(`{"type":"DataIntegrityProof","cryptosuite":"bbs-2023","verificationMethod":"did:example:other#key-1","proofPurpose":"assertionMethod","proofValue":"u2V0AhVhA"}`)
	withUnknown, err := o.with("proof", json.RawMessage(strings.TrimSuffix(string(raw), "]")+","+string(unknown)+"]")).marshal()
	if err != nil {
		t.Fatal(err)
	}
	valid["unknown-suite-proof-added"] = indentBytes(t, withUnknown)
	// The issuer's signature is not required: its key anchored this hash.
	unsigned, err := mustParse(t, src.credential).without("proof").marshal()
	if err != nil {
		t.Fatal(err)
	}
	anchorOnly, err := AttachReceipt(unsigned, src.receipt, src.genesis)
	if err != nil {
		t.Fatal(err)
	}
	valid["anchor-only"] = indentBytes(t, anchorOnly)
	web, err := AttachReceipt(src.web, src.webRcpt, src.genesis, WithDIDDocument(src.didDocument))
	if err != nil {
		t.Fatal(err)
	}
	valid["did-web"] = indentBytes(t, web)

	invalid, wants = map[string][]byte{}, map[string]anchorWant{}
	add := func(name, mutation, step string, doc []byte, genesis string) {
		if genesis == "" {
			genesis = "source/genesis.json"
		}
		invalid[name] = indentBytes(t, doc)
		wants[name] = anchorWant{Mutation: mutation, Source: "valid/anchored.json", Genesis: genesis, Step: step}
	}
	add("claim-changed", "credentialSubject.degree.name changed after anchoring", StepCredentialHash,
		bytes.Replace(attached, []byte("Bachelor of Science and Arts"), []byte("Master of Science and Arts"), 1), "")
	issuer, err := credentialIssuer(mustParse(t, attached))
	if err != nil {
		t.Fatal(err)
	}
	add("issuer-changed", "issuer changed to another did:key after anchoring", StepCredentialHash,
		bytes.Replace(attached, []byte(`"issuer":"`+issuer+`"`), []byte(`"issuer":"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"`), 1), "")
	bin := anchorReceiptBytes(t, attached)
	flipped := append([]byte{}, bin...)
	flipped[len(flipped)-1] ^= 0x01
	add("receipt-last-byte-flipped", "last byte of the binary receipt xor 0x01 (a validator's voting power)", StepAnchor,
		withReceiptBytes(t, attached, flipped), "")
	var r proof.Receipt
	if err := proto.Unmarshal(bin, &r); err != nil {
		t.Fatal(err)
	}
	r.SignedHeader = append([]byte{}, r.SignedHeader...)
	r.SignedHeader[len(r.SignedHeader)-1] ^= 0x01
	sigFlipped, err := canonicalReceipt.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	add("receipt-commit-signature-flipped", "last byte of the receipt's signed header (a commit signature) xor 0x01", StepAnchor,
		withReceiptBytes(t, attached, sigFlipped), "")
	add("receipt-not-canonical", "binary receipt with its version field written twice (same values, not canonical)", StepAnchor,
		withReceiptBytes(t, attached, append(append([]byte{}, bin...), 0x08, 0x02)), "")
	add("receipt-truncated", "binary receipt cut to half its length", StepAnchor,
		withReceiptBytes(t, attached, bin[:len(bin)/2]), "")
	add("genesis-of-another-chain", "unchanged; verified against another chain's genesis", StepAnchor,
		attached, "../../../proof/testdata/vectors/one-validator/genesis.json")
	add("verification-method-other-genesis", "verificationMethod names another genesis hash", StepAnchor,
		setAnchorMember(t, attached, "verificationMethod", marshalString(AnchorVerificationMethod(src.receipt.ChainId, make([]byte, 32)))), "")
	add("verification-method-other-chain", "verificationMethod names chain other-chain", StepAnchor,
		setAnchorMember(t, attached, "verificationMethod", marshalString(AnchorVerificationMethod("other-chain", gh[:]))), "")
	add("suite-version-unknown", "cryptosuite credence-anchor-2099", StepAnchor,
		setAnchorMember(t, attached, "cryptosuite", marshalString("credence-anchor-2099")), "")
	add("created-changed", "created 2099-01-01T00:00:00Z, not the receipt's block time", StepAnchor,
		setAnchorMember(t, attached, "created", marshalString("2099-01-01T00:00:00Z")), "")
	add("member-added", "anchor proof given an expires member", StepAnchor,
		setAnchorMember(t, attached, "expires", marshalString("2099-01-01T00:00:00Z")), "")
	add("purpose-changed", "proofPurpose authentication", StepAnchor,
		setAnchorMember(t, attached, "proofPurpose", marshalString("authentication")), "")
	add("anchor-removed", "the anchor proof removed: the issuer's proof alone", StepAnchor, src.credential, "")
	otherAttached, err := attach(src.other, src.otherRcpt, gh, cc)
	if err != nil {
		t.Fatal(err)
	}
	add("issuer-not-anchoring-key", "a credential signed by another did:key, anchored by the chain's issuer key", StepIssuerMatch,
		otherAttached, "")
	issuerProof := mustProof(t, src.credential)
	pv, _ := stringMember(mustParse(t, issuerProof), "proofValue")
	badSig := []byte(pv)
	if badSig[len(badSig)-1] == '2' {
		badSig[len(badSig)-1] = '3'
	} else {
		badSig[len(badSig)-1] = '2'
	}
	add("issuer-proof-flipped", "last digit of the issuer's eddsa-rdfc-2022 proofValue changed", StepIssuerProof,
		bytes.Replace(attached, []byte(pv), badSig, 1), "")
	add("did-web-no-did-document", "unchanged valid/did-web.json, verified without the issuer's DID document", StepIssuerMatch, web, "")
	wants["did-web-no-did-document"] = anchorWant{Mutation: wants["did-web-no-did-document"].Mutation, Source: "valid/did-web.json",
		Genesis: "source/genesis.json", Step: StepIssuerMatch}
	var dd map[string]any
	if err := json.Unmarshal(src.didDocument, &dd); err != nil {
		t.Fatal(err)
	}
	otherMK, err := EncodeMultikey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	dd["verificationMethod"].([]any)[0].(map[string]any)["publicKeyMultibase"] = otherMK
	otherDoc, _ := json.MarshalIndent(dd, "", "  ")
	extra = map[string][]byte{"did-web-other-key.did.json": append(otherDoc, '\n')}
	add("did-web-other-key", "unchanged valid/did-web.json, verified with a DID document whose key is not the anchoring key", StepIssuerMatch, web, "")
	wants["did-web-other-key"] = anchorWant{Mutation: wants["did-web-other-key"].Mutation, Source: "valid/did-web.json",
		Genesis: "source/genesis.json", DIDDocument: "invalid/did-web-other-key.did.json", Step: StepIssuerMatch}
	return valid, invalid, wants, extra
}

// TestAnchorVectors walks testdata/anchor: every valid/*.json verifies
// against source/genesis.json; every invalid/NAME.json fails at the step
// its NAME.want names. The files are what buildAnchorVectors makes from
// source/ (rewrite with go test ./vc -run TestAnchorVectors -args -update).
func TestAnchorVectors(t *testing.T) {
	src := loadAnchorSource(t)
	valid, invalid, wants, extra := buildAnchorVectors(t, src)
	if *updateAnchor {
		for _, d := range []string{"valid", "invalid"} {
			if err := os.RemoveAll(filepath.Join(anchorDir, d)); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(anchorDir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for name, b := range valid {
			writeFile(t, filepath.Join(anchorDir, "valid", name+".json"), b)
		}
		for name, b := range invalid {
			writeFile(t, filepath.Join(anchorDir, "invalid", name+".json"), b)
			w, _ := json.MarshalIndent(wants[name], "", "  ")
			writeFile(t, filepath.Join(anchorDir, "invalid", name+".want"), append(w, '\n'))
		}
		for name, b := range extra {
			writeFile(t, filepath.Join(anchorDir, "invalid", name), b)
		}
	}

	// What is on disk is what the source makes, and nothing else.
	for dir, made := range map[string]map[string][]byte{"valid": valid, "invalid": invalid} {
		files, err := filepath.Glob(filepath.Join(anchorDir, dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		want := len(made)
		if dir == "invalid" {
			want += len(extra)
		}
		if len(files) != want {
			t.Errorf("%s: %d files, the source makes %d (rewrite with -update)", dir, len(files), want)
		}
		for name, b := range made {
			got, err := os.ReadFile(filepath.Join(anchorDir, dir, name+".json"))
			if err != nil || !bytes.Equal(got, b) {
				t.Errorf("%s/%s.json differs from what the source makes (rewrite with -update): %v", dir, name, err)
			}
		}
	}

	genesis := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(anchorDir, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, b := range extra {
		if got, err := os.ReadFile(filepath.Join(anchorDir, "invalid", name)); err != nil || !bytes.Equal(got, b) {
			t.Errorf("invalid/%s differs from what the source makes (rewrite with -update): %v", name, err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(anchorDir, "valid", "*.json"))
	for _, f := range files {
		doc, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var opts []CredentialOption
		if strings.HasPrefix(filepath.Base(f), "did-web") {
			opts = append(opts, WithDIDDocument(src.didDocument))
		}
		res, err := VerifyCredential(doc, src.genesis, opts...)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if res.Verdict != Valid || len(res.Anchors) != 1 {
			t.Errorf("%s: %s at %q: %v", f, res.Verdict, res.Step, res.Err)
			continue
		}
		if a := res.Anchors[0]; a.ChainID != "credence-test" || a.Height <= 0 || !bytes.Equal(a.CredentialHash, res.Hash[:]) {
			t.Errorf("%s: anchor proves %+v", f, a)
		}
		if did, _ := DIDKey(src.receipt.Batch.SignerKey); (res.Issuer != did && !strings.HasPrefix(res.Issuer, "did:web:")) || !bytes.Equal(res.Anchors[0].SignerKey, src.receipt.Batch.SignerKey) {
			t.Errorf("%s: issuer %q, anchoring key's did:key %q", f, res.Issuer, did)
		}
	}
	wantFiles, _ := filepath.Glob(filepath.Join(anchorDir, "invalid", "*.want"))
	if len(wantFiles) < 15 {
		t.Fatalf("%d invalid vectors", len(wantFiles))
	}
	steps := map[string]bool{}
	for _, wf := range wantFiles {
		var w anchorWant
		b, err := os.ReadFile(wf)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &w); err != nil {
			t.Fatalf("%s: %v", wf, err)
		}
		doc, err := os.ReadFile(strings.TrimSuffix(wf, ".want") + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var opts []CredentialOption
		if w.DIDDocument != "" {
			opts = append(opts, WithDIDDocument(genesis(w.DIDDocument)))
		}
		res, err := VerifyCredential(doc, genesis(w.Genesis), opts...)
		if err != nil {
			t.Fatalf("%s: %v", wf, err)
		}
		if res.Verdict != Invalid || res.Step != w.Step || res.Err == nil {
			t.Errorf("%s (%s): %s at %q (%v), want INVALID at %q", filepath.Base(wf), w.Mutation, res.Verdict, res.Step, res.Err, w.Step)
		}
		steps[res.Step] = true
	}
	for _, s := range []string{StepCredentialHash, StepAnchor, StepIssuerMatch, StepIssuerProof} {
		if !steps[s] {
			t.Errorf("no invalid vector fails at %q", s)
		}
	}
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAnchoredPythonCheck: with the anchor proof in the set, the issuer's
// eddsa proof (and a wallet's) still verify under an unrelated
// implementation that skips the suite it does not know, and each anchor's
// receipt anchors the credential hash as that implementation computes it
// (testdata/anchor/check_anchored.py); a changed claim, a changed issuer
// signature or a missing anchor fail it.
func TestAnchoredPythonCheck(t *testing.T) {
	py := pythonWithPyld(t)
	ctxMap := map[string]string{}
	for url, name := range bundledContexts {
		abs, err := filepath.Abs(filepath.Join("contexts", name))
		if err != nil {
			t.Fatal(err)
		}
		ctxMap[url] = abs
	}
	mapFile := filepath.Join(t.TempDir(), "contexts.json")
	b, _ := json.Marshal(ctxMap)
	writeFile(t, mapFile, b)
	run := func(file string) (int, string) {
		args := []string{filepath.Join(anchorDir, "check_anchored.py"), file, mapFile}
		if strings.HasPrefix(filepath.Base(file), "did-web") {
			args = append(args, filepath.Join(anchorDir, "source", "did-web.did.json"))
		}
		out, err := exec.Command(py, args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	valid, _ := filepath.Glob(filepath.Join(anchorDir, "valid", "*.json"))
	if len(valid) == 0 {
		t.Fatal("no valid anchor vectors")
	}
	for _, f := range valid {
		if code, out := run(f); code != 0 || !strings.Contains(out, "match") {
			t.Errorf("%s: python check exit %d:\n%s", f, code, out)
		}
	}
	for _, name := range []string{"claim-changed", "issuer-proof-flipped", "anchor-removed"} {
		if code, out := run(filepath.Join(anchorDir, "invalid", name+".json")); code != 1 {
			t.Errorf("invalid/%s: python check exit %d, want 1:\n%s", name, code, out)
		}
	}
}

// TestAnchoredEveryClaimChanged: changing any value of the credential
// outside its proofs (each string, number and array element in turn) makes
// it INVALID at credential-hash, however the change is spelled.
func TestAnchoredEveryClaimChanged(t *testing.T) {
	src := loadAnchorSource(t)
	doc, err := os.ReadFile(filepath.Join(anchorDir, "valid", "anchored.json"))
	if err != nil {
		t.Fatal(err)
	}
	v := decodeJSON(t, doc)
	proofs := v["proof"]
	delete(v, "proof")
	var paths [][]any
	var walk func(x any, path []any)
	walk = func(x any, path []any) {
		switch y := x.(type) {
		case map[string]any:
			for k, e := range y {
				walk(e, append(append([]any{}, path...), k))
			}
		case []any:
			for i, e := range y {
				walk(e, append(append([]any{}, path...), i))
			}
		default:
			paths = append(paths, path)
		}
	}
	walk(v, nil)
	if len(paths) < 10 {
		t.Fatalf("%d values", len(paths))
	}
	rnd := rand.New(rand.NewPCG(3, 3))
	for _, path := range paths {
		changed := decodeJSON(t, doc)
		var parent any = changed
		for _, p := range path[:len(path)-1] {
			switch k := p.(type) {
			case string:
				parent = parent.(map[string]any)[k]
			case int:
				parent = parent.([]any)[k]
			}
		}
		set := func(old any) any {
			if s, ok := old.(string); ok {
				return s + "x"
			}
			return "changed"
		}
		switch k := path[len(path)-1].(type) {
		case string:
			m := parent.(map[string]any)
			m[k] = set(m[k])
		case int:
			a := parent.([]any)
			a[k] = set(a[k])
		}
		changed["proof"] = proofs
		res, err := VerifyCredential(reserialize(t, changed, rnd, " "), src.genesis)
		if err != nil || res.Verdict != Invalid || res.Step != StepCredentialHash {
			t.Errorf("%v changed: %+v, %v; want INVALID at credential-hash", path, res, err)
		}
	}
}

// FuzzVerifyCredential: whatever the bytes, VerifyCredential returns a
// verdict (never panics), and VALID only with an anchor whose leaf is the
// credential hash.
func FuzzVerifyCredential(f *testing.F) {
	genesis, err := os.ReadFile(filepath.Join(anchorDir, "source", "genesis.json"))
	if err != nil {
		f.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(anchorDir, "*", "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		res, err := VerifyCredential(doc, genesis)
		if err != nil || res == nil {
			t.Fatalf("no verdict: %v", err)
		}
		if res.Verdict == Valid {
			if len(res.Anchors) == 0 || !bytes.Equal(res.Anchors[0].CredentialHash, res.Hash[:]) {
				t.Fatalf("VALID without an anchor of its hash")
			}
		} else if res.Verdict != Invalid || res.Step == "" || res.Err == nil {
			t.Fatalf("verdict %s step %q err %v", res.Verdict, res.Step, res.Err)
		}
	})
}
