package vc

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

func testStatusList(t *testing.T, key ed25519.PrivateKey) StatusList {
	did, err := DIDKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return StatusList{URL: "https://status.example/l/1", Issuer: did, ValidFrom: "2026-01-02T03:04:05Z",
		Purpose: "revocation", EncodedList: "uH4sIAAAAAAAA_-zAMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA", TTLms: 300000}
}

// TestStatusListDocument: the builder's bytes are pinned (the state
// machine, every node and every issuer's client must agree on them), and a
// proof made over them verifies only for the key that made it.
func TestStatusListDocument(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	sl := testStatusList(t, key)
	doc, err := sl.Document()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"@context":["https://www.w3.org/ns/credentials/v2"],"id":"https://status.example/l/1",` +
		`"type":["VerifiableCredential","BitstringStatusListCredential"],"issuer":"` + sl.Issuer + `",` +
		`"validFrom":"2026-01-02T03:04:05Z","credentialSubject":{"id":"https://status.example/l/1#list",` +
		`"type":"BitstringStatusList","statusPurpose":"revocation","encodedList":"` + sl.EncodedList + `","ttl":300000}}`
	if string(doc) != want {
		t.Fatalf("document\n%s\nwant\n%s", doc, want)
	}
	prf, err := sl.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := sl.Verify(prf, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(signed, ResolveDIDKey); err != nil {
		t.Fatalf("signed document does not verify by did:key: %v", err)
	}
	other := ed25519.NewKeyFromSeed(append(make([]byte, 31), 1))
	if _, err := sl.Verify(prf, other.Public().(ed25519.PublicKey)); !errors.Is(err, ErrKey) {
		t.Errorf("another key: %v, want ErrKey", err)
	}
	moved := sl
	moved.ValidFrom = "2026-01-02T03:04:06Z"
	if _, err := moved.Verify(prf, key.Public().(ed25519.PublicKey)); !errors.Is(err, ErrSignature) {
		t.Errorf("other content: %v, want ErrSignature", err)
	}
	jcs, err := Sign(doc, EddsaJCS2022, key)
	if err != nil {
		t.Fatal(err)
	}
	jcsProof, _ := ExtractProof(jcs)
	if _, err := sl.Verify(jcsProof, key.Public().(ed25519.PublicKey)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("an eddsa-jcs-2022 proof: %v, want ErrUnsupported", err)
	}
}

func TestStatusListFieldsRefused(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	for name, edit := range map[string]func(*StatusList){
		"ftp url":          func(s *StatusList) { s.URL = "ftp://status.example/l" },
		"relative url":     func(s *StatusList) { s.URL = "/l/1" },
		"url with user":    func(s *StatusList) { s.URL = "https://u:p@status.example/l" },
		"url fragment":     func(s *StatusList) { s.URL = "https://status.example/l#x" },
		"url empty frag":   func(s *StatusList) { s.URL = "https://status.example/l#" },
		"url space":        func(s *StatusList) { s.URL = "https://status.example/a b" },
		"url too long":     func(s *StatusList) { s.URL = "https://status.example/" + strings.Repeat("a", MaxStatusListURL) },
		"validFrom offset": func(s *StatusList) { s.ValidFrom = "2026-01-02T04:04:05+01:00" },
		"validFrom frac":   func(s *StatusList) { s.ValidFrom = "2026-01-02T03:04:05.5Z" },
		"purpose":          func(s *StatusList) { s.Purpose = "message" },
		"no issuer":        func(s *StatusList) { s.Issuer = "" },
		"ttl inexact":      func(s *StatusList) { s.TTLms = 1<<53 + 1 },
	} {
		sl := testStatusList(t, key)
		edit(&sl)
		if _, err := sl.Document(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
