package vc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/credence-ledger/credence/proof"
)

type credentialVector struct {
	JCS       string `json:"jcs"`
	SHA256    string `json:"sha256"`
	Multibase string `json:"multibase"`
}

func credentialVectors(t *testing.T) map[string]credentialVector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "credentials", "credential-hashes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs map[string]credentialVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 9 {
		t.Fatalf("%d credential vectors, want the 9 of testdata/credentials/README.md", len(vs))
	}
	return vs
}

// reserialize writes the JSON value v (decoded with UseNumber, so numbers
// keep their spelling) with every object's members in an order drawn from
// rnd and the given indentation: the same credential as other software
// would write it.
func reserialize(t *testing.T, v any, rnd *rand.Rand, indent string) []byte {
	t.Helper()
	var b bytes.Buffer
	var write func(v any, depth int)
	nl := func(depth int) {
		if indent != "" {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(indent, depth))
		}
	}
	write = func(v any, depth int) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			rnd.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
			b.WriteByte('{')
			for i, k := range keys {
				if i > 0 {
					b.WriteByte(',')
				}
				nl(depth + 1)
				b.Write(marshalString(k))
				b.WriteString(": ")
				write(x[k], depth+1)
			}
			nl(depth)
			b.WriteByte('}')
		case []any:
			b.WriteByte('[')
			for i, it := range x {
				if i > 0 {
					b.WriteByte(',')
				}
				nl(depth + 1)
				write(it, depth+1)
			}
			nl(depth)
			b.WriteByte(']')
		case string:
			// \u escapes where the original had none: still the same string.
			s, _ := json.Marshal(x)
			b.Write(s)
		case json.Number:
			b.WriteString(x.String())
		default:
			s, err := json.Marshal(x)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(s)
		}
	}
	write(v, 0)
	return b.Bytes()
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCredentialHashVectors: the credential hash of each example credential
// of the VC 2.0, Bitstring Status List and Open Badges 3.0 specifications is
// the vector's (JCS text and SHA-256, made by testdata/credentials/
// credential_hash.py, an RFC 8785 of its own); re-serializing the credential
// (member order, indentation, escapes) or adding proofs keeps it; changing a
// claim does not.
func TestCredentialHashVectors(t *testing.T) {
	dir := filepath.Join("testdata", "credentials")
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	key := vectorKeyPair(t)
	for name, want := range credentialVectors(t) {
		t.Run(name, func(t *testing.T) {
			doc, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			fileSum := sha256.Sum256(doc)
			if !strings.Contains(string(readme), "| "+name+" |") || !strings.Contains(string(readme), hex.EncodeToString(fileSum[:])) {
				t.Errorf("README.md does not list %s with its SHA-256 %x", name, fileSum)
			}
			jcsText, err := os.ReadFile(filepath.Join(dir, want.JCS))
			if err != nil {
				t.Fatal(err)
			}
			o, _, err := splitProofs(doc, newConfig(nil))
			if err != nil {
				t.Fatal(err)
			}
			canon, err := canonicalize(EddsaJCS2022, o.without("proof"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(canon, jcsText) {
				t.Fatalf("JCS text differs from %s:\n got %s\nwant %s", want.JCS, canon, jcsText)
			}
			h, err := CredentialHash(doc)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(h[:]) != want.SHA256 || proof.FormatBinary(h[:]) != want.Multibase {
				t.Fatalf("hash %x (%s), vector %s (%s)", h, proof.FormatBinary(h[:]), want.SHA256, want.Multibase)
			}
			if sum := sha256.Sum256(jcsText); sum != h {
				t.Fatalf("hash is not SHA-256 of the JCS text")
			}

			v := decodeJSON(t, doc)
			rnd := rand.New(rand.NewPCG(1, uint64(len(doc))))
			for i, indent := range []string{"", "  ", "\t", "    "} {
				again := reserialize(t, v, rnd, indent)
				if bytes.Equal(again, doc) {
					t.Fatalf("re-serialization %d did not change the bytes", i)
				}
				if got, err := CredentialHash(again); err != nil || got != h {
					t.Fatalf("re-serialization %d (indent %q): hash %x, %v; want %x\n%s", i, indent, got, err, h, again)
				}
			}

			// Proofs: a signature of ours, then a proof set with a proof
			// of a suite nobody here knows.
			unproofed, err := object(o).without("proof").marshal()
			if err != nil {
				t.Fatal(err)
			}
			signed, err := Sign(unproofed, EddsaJCS2022, key, WithCreated(vectorCreated))
			if err != nil {
				t.Fatal(err)
			}
			set, err := object(mustParse(t, signed)).with("proof", json.RawMessage(`[`+string(mustProof(t, signed))+`,{"type":"DataIntegrityProof","cryptosuite":"bbs-2023","proofValue":"u2V0"}]`)).marshal()
			if err != nil {
				t.Fatal(err)
			}
			for what, d := range map[string][]byte{"no proof": unproofed, "eddsa-jcs-2022 proof": signed, "proof set": set} {
				if got, err := CredentialHash(d); err != nil || got != h {
					t.Errorf("%s: hash %x, %v; want %x", what, got, err, h)
				}
			}

			// A claim changed: another hash.
			v["validFrom"] = "2031-01-01T00:00:00Z"
			changed := reserialize(t, v, rnd, "")
			if got, err := CredentialHash(changed); err != nil || got == h {
				t.Errorf("validFrom changed: hash %x, %v; want another hash than %x", got, err, h)
			}
		})
	}
}

func mustParse(t *testing.T, doc []byte) object {
	t.Helper()
	o, err := parseObject(doc)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func mustProof(t *testing.T, doc []byte) json.RawMessage {
	t.Helper()
	p, err := ExtractProof(doc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCredentialHashIsJCSDocumentHash: the credential hash is eddsa-jcs-2022's
// document hash (W3C vc-di-eddsa vector docHashJCS.txt), so an issuer's JCS
// proof and the anchor bind the same bytes.
func TestCredentialHashIsJCSDocumentHash(t *testing.T) {
	signed := readVector(t, "eddsa-jcs-2022", "signedJCS.json")
	h, err := CredentialHash(signed)
	if err != nil {
		t.Fatal(err)
	}
	want := trimmed(readVector(t, "eddsa-jcs-2022", "docHashJCS.txt"))
	if hex.EncodeToString(h[:]) != want {
		t.Fatalf("credential hash %x, vc-di-eddsa document hash %s", h, want)
	}
	canon := trimmed(readVector(t, "eddsa-jcs-2022", "canonDocJCS.txt"))
	if sum := sha256.Sum256([]byte(canon)); sum != h {
		t.Fatalf("credential hash is not SHA-256 of the vector's canonical document")
	}
}

// TestCredentialHashRefuses: what has two readings or is not a credential
// object is an error, not a hash.
func TestCredentialHashRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"duplicate member": `{"issuer":"did:example:1","issuer":"did:example:2"}`,
		"inexact number":   `{"n":12345678901234567890}`,
		"array":            `["not","an","object"]`,
		"trailing data":    `{"a":1}{"b":2}`,
		"not UTF-8":        "{\"a\":\"\xff\"}",
		"proof a string":   `{"a":1,"proof":"z123"}`,
	} {
		if _, err := CredentialHash([]byte(doc)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v, want ErrMalformed", name, err)
		}
	}
	big := `{"a":"` + strings.Repeat("x", DefaultMaxDocumentBytes) + `"}`
	if _, err := CredentialHash([]byte(big)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized: error %v, want ErrTooLarge", err)
	}
}

// TestCredentialHashPython runs testdata/credentials/credential_hash.py on
// the vectors: the independent JCS gives the hashes the Go code checks.
func TestCredentialHashPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 not found: make test-deps")
	}
	dir := filepath.Join("testdata", "credentials")
	vs := credentialVectors(t)
	args := []string{"credential_hash.py"}
	for name := range vs {
		args = append(args, name)
	}
	cmd := exec.Command(py, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("credential_hash.py: %v\n%s", err, out)
	}
	line := regexp.MustCompile(`(?m)^([0-9a-f]{64})  (z\w+)  (\S+)$`)
	got := line.FindAllStringSubmatch(string(out), -1)
	if len(got) != len(vs) {
		t.Fatalf("credential_hash.py printed %d hashes for %d files:\n%s", len(got), len(vs), out)
	}
	for _, m := range got {
		if want := vs[m[3]]; m[1] != want.SHA256 || m[2] != want.Multibase {
			t.Errorf("%s: python %s %s, vector %s %s", m[3], m[1], m[2], want.SHA256, want.Multibase)
		}
	}
}

// TestAttachReceiptRefuses: AttachReceipt only returns what verifies; it
// keeps the document's other proofs byte for byte (compacted).
func TestAttachReceiptRefuses(t *testing.T) {
	src := loadAnchorSource(t)
	attached, err := AttachReceipt(src.credential, src.receipt, src.genesis)
	if err != nil {
		t.Fatal(err)
	}
	issuerProof := mustProof(t, src.credential)
	var compact bytes.Buffer
	if err := json.Compact(&compact, issuerProof); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(attached, compact.Bytes()) {
		t.Error("the issuer's proof did not keep its bytes")
	}
	if got, _ := CredentialHash(attached); got != mustHash(t, src.credential) {
		t.Error("attaching changed the credential hash")
	}
	otherGenesis, err := os.ReadFile("../proof/testdata/vectors/one-validator/genesis.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		doc     []byte
		r       *proof.Receipt
		genesis []byte
		want    error
	}{
		"receipt of another credential":   {src.other, src.receipt, src.genesis, ErrAnchor},
		"receipt of another issuer's key": {src.other, src.otherRcpt, src.genesis, ErrAnchor},
		"another chain's genesis":         {src.credential, src.receipt, otherGenesis, ErrAnchor},
		"not a genesis":                   {src.credential, src.receipt, []byte(`{}`), ErrAnchor},
		"already anchored on this chain":  {attached, src.receipt, src.genesis, ErrAnchor},
		"not a credential":                {[]byte(`[1]`), src.receipt, src.genesis, ErrMalformed},
		"no issuer":                       {[]byte(`{"a":1}`), src.receipt, src.genesis, ErrMalformed},
	} {
		if _, err := AttachReceipt(tc.doc, tc.r, tc.genesis); !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", name, err, tc.want)
		}
	}
	if _, err := AttachReceipt(src.credential, src.receipt, src.genesis, WithMaxAnchorBytes(100)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("receipt above the limit: error %v, want ErrTooLarge", err)
	}
}

func mustHash(t *testing.T, doc []byte) [32]byte {
	t.Helper()
	h, err := CredentialHash(doc)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestVerifyCredentialInputs: a genesis or DID document the verifier
// cannot use is an error (could not check), distinct from an INVALID
// credential; an oversized receipt is refused before it is decoded.
func TestVerifyCredentialInputs(t *testing.T) {
	src := loadAnchorSource(t)
	attached, err := AttachReceipt(src.credential, src.receipt, src.genesis)
	if err != nil {
		t.Fatal(err)
	}
	for name, g := range map[string][]byte{"empty": nil, "not JSON": []byte("{"), "no validators": []byte(`{"chain_id":"x"}`)} {
		if res, err := VerifyCredential(attached, g); err == nil || res != nil {
			t.Errorf("genesis %s: result %+v, error %v; want no result and an error", name, res, err)
		}
	}
	for name, d := range map[string][]byte{
		"not JSON":             []byte("{"),
		"no id":                []byte(`{"verificationMethod":[]}`),
		"key of no controller": bytes.Replace(src.didDocument, []byte(`"controller": "did:web:`), []byte(`"controller": "did:web:x`), 1),
		"no Ed25519 key":       []byte(`{"id":"did:web:a.example","verificationMethod":[],"assertionMethod":[]}`),
	} {
		if res, err := VerifyCredential(attached, src.genesis, WithDIDDocument(d)); !errors.Is(err, ErrDIDDocument) || res != nil {
			t.Errorf("DID document %s: result %+v, error %v; want ErrDIDDocument", name, res, err)
		}
	}
	res, err := VerifyCredential([]byte("not json"), src.genesis)
	if err != nil || res.Verdict != Invalid || res.Step != StepFormat {
		t.Errorf("not JSON: %+v, %v; want INVALID at format", res, err)
	}
	// A proofValue far beyond the limit fails fast, at anchor, as too large.
	huge := setAnchorMember(t, attached, "proofValue", marshalString("z"+strings.Repeat("2", 200_000)))
	res, err = VerifyCredential(huge, src.genesis)
	if err != nil || res.Verdict != Invalid || res.Step != StepAnchor || !errors.Is(res.Err, ErrTooLarge) {
		t.Errorf("huge proofValue: %+v, %v; want INVALID at anchor, ErrTooLarge", res, err)
	}
	if res, err := VerifyCredential(attached, src.genesis, WithMaxAnchorBytes(100)); err != nil || res.Step != StepAnchor || !errors.Is(res.Err, ErrTooLarge) {
		t.Errorf("receipt above a lowered limit: %+v, %v", res, err)
	}
	for v, s := range map[Verdict]string{Valid: "VALID", Invalid: "INVALID", Revoked: "REVOKED", Suspended: "SUSPENDED", Unchecked: "UNCHECKED"} {
		if v.String() != s {
			t.Errorf("%d.String() = %q, want %q", v, v.String(), s)
		}
	}
}

// TestVerifyCredentialStatusEntries: the credentialStatus entries are
// returned for the caller's online check; a malformed one is a format
// failure, not a silently unchecked status.
func TestVerifyCredentialStatusEntries(t *testing.T) {
	for name, tc := range map[string]struct {
		status string
		want   []StatusEntry
		bad    bool
	}{
		"one entry": {status: `{"id":"https://n.example/v1/statuslists/i/r#7","type":"BitstringStatusListEntry","statusPurpose":"revocation","statusListIndex":"7","statusListCredential":"https://n.example/v1/statuslists/i/r"}`,
			want: []StatusEntry{{ID: "https://n.example/v1/statuslists/i/r#7", Type: "BitstringStatusListEntry", StatusPurpose: "revocation", StatusListIndex: 7, StatusListCredential: "https://n.example/v1/statuslists/i/r", StatusSize: 1}}},
		"other type kept": {status: `[{"type":"StatusList2021Entry","statusListIndex":"x"}]`, want: []StatusEntry{{Type: "StatusList2021Entry"}}},
		"index a number":  {status: `{"type":"BitstringStatusListEntry","statusPurpose":"revocation","statusListIndex":7,"statusListCredential":"https://a"}`, bad: true},
		"index leading 0": {status: `{"type":"BitstringStatusListEntry","statusPurpose":"revocation","statusListIndex":"07","statusListCredential":"https://a"}`, bad: true},
		"no list":         {status: `{"type":"BitstringStatusListEntry","statusPurpose":"revocation","statusListIndex":"7"}`, bad: true},
		"no purpose":      {status: `{"type":"BitstringStatusListEntry","statusListIndex":"7","statusListCredential":"https://a"}`, bad: true},
		"statusSize 0":    {status: `{"type":"BitstringStatusListEntry","statusPurpose":"revocation","statusListIndex":"7","statusListCredential":"https://a","statusSize":0}`, bad: true},
		"a string":        {status: `"https://a"`, bad: true},
	} {
		o := object{{"issuer", marshalString("did:example:1")}, {"credentialStatus", json.RawMessage(tc.status)}}
		got, err := statusEntries(o)
		if tc.bad {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: error %v, want ErrMalformed", name, err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("%s: %+v, %v; want %+v", name, got, err, tc.want)
		}
	}
}
