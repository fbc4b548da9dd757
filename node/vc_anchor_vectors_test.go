package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
	"github.com/credence-ledger/credence/vc"
)

// vcAnchorCredential is the credential of the anchor vectors: VC 2.0 with
// the examples context, so eddsa-rdfc-2022 needs only bundled contexts.
const vcAnchorCredential = `{
  "@context": [
    "https://www.w3.org/ns/credentials/v2",
    "https://www.w3.org/ns/credentials/examples/v2"
  ],
  "id": "urn:uuid:4f2ae1d6-5a0e-4c84-8d7e-0c6f0b4c2d11",
  "type": ["VerifiableCredential", "ExampleDegreeCredential"],
  "issuer": "ISSUER",
  "validFrom": "2026-06-30T09:00:00Z",
  "credentialSubject": {
    "id": "did:example:ebfeb1f712ebc6f1c276e12ec21",
    "degree": {
      "type": "ExampleBachelorDegree",
      "name": "Bachelor of Science and Arts"
    }
  }
}`

// TestVCAnchorOnLiveChain: a credential signed with eddsa-rdfc-2022 by the
// issuer's key and anchored by its node gets a receipt that vc.AttachReceipt
// embeds and vc.VerifyCredential accepts against the chain's genesis file;
// one issued under another did:key but anchored by this issuer is refused at
// issuer-match. With -update it writes the chain's output under
// vc/testdata/anchor/source, from which the vc tests build the anchor vectors.
func TestVCAnchorOnLiveChain(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	t.Cleanup(func() { n.Stop() })
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	genesis, err := os.ReadFile(filepath.Join(h.dir, "config", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := IssuerSigningKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	// The other issuer's key is fixed so the vectors' credential is stable.
	other := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	created := time.Date(2026, 6, 30, 9, 0, 0, 0, time.UTC)
	issue := func(k ed25519.PrivateKey, did string, opts ...vc.Option) []byte {
		if did == "" {
			var err error
			if did, err = vc.DIDKey(k.Public().(ed25519.PublicKey)); err != nil {
				t.Fatal(err)
			}
		}
		raw := []byte(strings.Replace(vcAnchorCredential, "ISSUER", did, 1))
		signed, err := vc.Sign(raw, vc.EddsaRDFC2022, k, append(opts, vc.WithCreated(created))...)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	// An issuer known by did:web, whose DID document lists the node's
	// issuer key.
	const webDID = "did:web:registrar.university.example"
	mk, err := vc.EncodeMultikey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	didDoc, _ := json.MarshalIndent(map[string]any{
		"@context": []string{"https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"},
		"id":       webDID,
		"verificationMethod": []map[string]string{{
			"id": webDID + "#key-1", "type": "Multikey", "controller": webDID, "publicKeyMultibase": mk,
		}},
		"assertionMethod": []string{webDID + "#key-1"},
	}, "", "  ")
	docs := map[string][]byte{
		"credential":   issue(key, ""),
		"other-issuer": issue(other, ""),
		"did-web":      issue(key, webDID, vc.WithVerificationMethod(webDID+"#key-1")),
	}
	var hashes []byte
	for _, d := range docs {
		hsh, err := vc.CredentialHash(d)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hsh[:]...)
	}
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hashes}); err != nil {
		t.Fatal(err)
	}
	receipts := map[string]*proof.Receipt{}
	for name, d := range docs {
		hsh, _ := vc.CredentialHash(d)
		receipts[name] = waitReceipt(ctx, t, cl, hsh[:])
	}

	attached, err := vc.AttachReceipt(docs["credential"], receipts["credential"], genesis)
	if err != nil {
		t.Fatal(err)
	}
	res, err := vc.VerifyCredential(attached, genesis)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != vc.Valid || len(res.Anchors) != 1 || len(res.Proofs) != 2 || res.Proofs[0].Err != nil {
		t.Fatalf("anchored credential: %s at %q: %v (anchors %d, proofs %+v)", res.Verdict, res.Step, res.Err, len(res.Anchors), res.Proofs)
	}
	if _, err := vc.AttachReceipt(docs["other-issuer"], receipts["other-issuer"], genesis); err == nil {
		t.Fatal("AttachReceipt embedded the receipt of another issuer's key")
	}
	web, err := vc.AttachReceipt(docs["did-web"], receipts["did-web"], genesis, vc.WithDIDDocument(didDoc))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := vc.VerifyCredential(web, genesis, vc.WithDIDDocument(didDoc)); err != nil || res.Verdict != vc.Valid {
		t.Fatalf("did:web credential with its DID document: %v %+v", err, res)
	}

	if !*updateGolden {
		return
	}
	dir := filepath.Join("..", "vc", "testdata", "anchor", "source")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("genesis.json", genesis)
	write("did-web.did.json", append(didDoc, '\n'))
	for name, d := range docs {
		write(name+".json", append(indentJSON(t, d), '\n'))
		rj, err := proof.MarshalReceiptJSON(receipts[name])
		if err != nil {
			t.Fatal(err)
		}
		write(name+".receipt.json", append(rj, '\n'))
	}
}

func indentJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
