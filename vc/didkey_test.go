package vc

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/multiformats/go-multibase"
)

// TestDIDKeyVectors checks encoding, decoding and resolution against the
// did:key method's Ed25519 test vectors (seed -> DID -> key).
func TestDIDKeyVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/did-key/ed25519-x25519.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors map[string]struct {
		Seed                string
		VerificationKeyPair struct {
			PublicKeyBase58 string
			PublicKeyJwk    struct{ X string } // the last vector gives the key as a JWK
		}
		DIDDocument struct {
			ID                 string
			VerificationMethod []struct{ ID, Controller string }
			AssertionMethod    []string
			Authentication     []string
		} `json:"didDocument"`
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) < 5 {
		t.Fatalf("%d vectors", len(vectors))
	}
	for did, v := range vectors {
		seed, err := hex.DecodeString(v.Seed)
		if err != nil {
			t.Fatal(err)
		}
		pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
		enc := "z" + v.VerificationKeyPair.PublicKeyBase58
		if v.VerificationKeyPair.PublicKeyBase58 == "" {
			enc = "u" + v.VerificationKeyPair.PublicKeyJwk.X
		}
		_, vecKey, err := multibase.Decode(enc)
		if err != nil || !bytes.Equal(vecKey, pub) {
			t.Fatalf("%s: vector key does not match its seed", did)
		}
		got, err := DIDKey(pub)
		if err != nil || got != did {
			t.Errorf("DIDKey = %q, %v; want %q", got, err, did)
		}
		vm, err := DIDKeyVerificationMethod(pub)
		if err != nil || vm != v.DIDDocument.VerificationMethod[0].ID {
			t.Errorf("verification method = %q, %v; want %q", vm, err, v.DIDDocument.VerificationMethod[0].ID)
		}
		for _, s := range []string{did, vm} {
			back, err := ResolveDIDKey(s)
			if err != nil || !bytes.Equal(back, pub) {
				t.Errorf("ResolveDIDKey(%q) = %x, %v", s, back, err)
			}
		}
		doc, err := ResolveDIDKeyDocument(did)
		if err != nil {
			t.Fatal(err)
		}
		if doc.ID != did || len(doc.VerificationMethod) != 1 ||
			doc.VerificationMethod[0].ID != vm || doc.VerificationMethod[0].Type != "Multikey" ||
			doc.VerificationMethod[0].Controller != v.DIDDocument.VerificationMethod[0].Controller ||
			doc.VerificationMethod[0].PublicKeyMultibase != strings.TrimPrefix(did, "did:key:") ||
			strings.Join(doc.AssertionMethod, ",") != strings.Join(v.DIDDocument.AssertionMethod, ",") ||
			strings.Join(doc.Authentication, ",") != strings.Join(v.DIDDocument.Authentication, ",") {
			t.Errorf("DID document %+v", doc)
		}
	}
}

// TestDIDKeyRefusals: everything that is not an Ed25519 did:key is refused
// with ErrDIDKey, never read as one.
func TestDIDKeyRefusals(t *testing.T) {
	good := "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
	x25519 := "did:key:z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW"
	p256 := "did:key:zDnaegE6RR3atJtHKwTRTWHsJ3kNHqFwv7n9YjTgmU7TyfU76"
	pub, _ := ResolveDIDKey(good)
	short, _ := multibase.Encode(multibase.Base58BTC, append([]byte{0xed, 0x01}, pub[:31]...))
	long, _ := multibase.Encode(multibase.Base58BTC, append([]byte{0xed, 0x01}, append(pub, 0)...))
	b64, _ := multibase.Encode(multibase.Base64url, append([]byte{0xed, 0x01}, pub...))
	for _, s := range []string{
		"", "did:web:example.com", "did:key:", x25519, p256,
		"did:key:" + short, "did:key:" + long, "did:key:" + b64,
		"did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW0", // '0' is not base58
		good + "#z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG", // someone else's fragment
	} {
		if _, err := ResolveDIDKey(s); !errors.Is(err, ErrDIDKey) {
			t.Errorf("ResolveDIDKey(%q) = %v, want ErrDIDKey", s, err)
		}
	}
	if _, err := ResolveDIDKeyDocument(good + "#x"); !errors.Is(err, ErrDIDKey) {
		t.Errorf("DID URL resolved as a DID: %v", err)
	}
	if _, err := DIDKey(pub[:31]); !errors.Is(err, ErrDIDKey) {
		t.Errorf("short key encoded: %v", err)
	}
}
