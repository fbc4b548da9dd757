package vc

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/credence-ledger/credence/proof"
)

// signedTestList returns a signed Bitstring Status List credential of n
// entries with the given ones set, issued by key's did:key.
func signedTestList(t *testing.T, key ed25519.PrivateKey, signer ed25519.PrivateKey, purpose string, n int, set ...uint64) []byte {
	t.Helper()
	bits := make([]byte, n/8)
	for _, i := range set {
		bits[i/8] |= 0x80 >> (i % 8)
	}
	enc, err := proof.EncodeStatusList(bits)
	if err != nil {
		t.Fatal(err)
	}
	did, err := DIDKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	sl := StatusList{URL: "https://node.example/v1/statuslists/registrar/2026", Issuer: did,
		ValidFrom: "2026-01-01T00:00:00Z", Purpose: purpose, EncodedList: enc, TTLms: 300_000}
	doc, err := sl.Document()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := Sign(doc, EddsaRDFC2022, signer, WithCreated(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestCheckStatus: the Bitstring Status List validate algorithm with
// Digital Bazaar's rules; every refusal wraps ErrStatus.
func TestCheckStatus(t *testing.T) {
	key := vectorKeyPair(t)
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	issuer, _ := DIDKey(key.Public().(ed25519.PublicKey))
	otherDID, _ := DIDKey(other.Public().(ed25519.PublicKey))
	list := signedTestList(t, key, key, "revocation", MinStatusListEntries, 7, 131071)
	entry := func(i uint64) StatusEntry {
		return StatusEntry{ID: "x", Type: "BitstringStatusListEntry", StatusPurpose: "revocation", StatusListIndex: i,
			StatusListCredential: "https://node.example/v1/statuslists/registrar/2026", StatusSize: 1}
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i, want := range map[uint64]bool{7: true, 8: false, 0: false, 131071: true} {
		got, err := CheckStatus(entry(i), list, issuer, now)
		if err != nil || got != want {
			t.Errorf("index %d: set %v, %v; want %v", i, got, err, want)
		}
	}
	if _, err := CheckStatus(entry(7), list, issuer, time.Time{}); err != nil {
		t.Errorf("zero now (validity not checked): %v", err)
	}

	suspension := entry(7)
	suspension.StatusPurpose = "suspension"
	otherList := entry(7)
	otherList.StatusListCredential = "https://node.example/v1/statuslists/registrar/2027"
	size2 := entry(7)
	size2.StatusSize = 2
	otherType := entry(7)
	otherType.Type = "StatusList2021Entry"
	message := entry(7)
	message.StatusPurpose = "message"
	tampered := bytes.Replace(list, []byte(`"statusPurpose":"revocation"`), []byte(`"statusPurpose":"suspension"`), 1)
	for name, tc := range map[string]struct {
		e      StatusEntry
		list   []byte
		issuer string
		now    time.Time
	}{
		"purpose differs":                   {suspension, list, issuer, now},
		"list of another issuer":            {entry(7), list, otherDID, now},
		"list is not the entry's":           {otherList, list, issuer, now},
		"index past the list (RANGE_ERROR)": {entry(MinStatusListEntries), list, issuer, now},
		"list too short (LENGTH_ERROR)":     {entry(7), signedTestList(t, key, key, "revocation", 1024, 7), issuer, now},
		"before validFrom":                  {entry(7), list, issuer, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		"signed by a key not the issuer's":  {entry(7), signedTestList(t, key, other, "revocation", MinStatusListEntries, 7), issuer, now},
		"changed after signing":             {entry(7), tampered, issuer, now},
		"statusSize 2":                      {size2, list, issuer, now},
		"entry type not Bitstring":          {otherType, list, issuer, now},
		"purpose message":                   {message, list, issuer, now},
		"not a credential":                  {entry(7), []byte(`[]`), issuer, now},
		"unsigned":                          {entry(7), mustDocument(t, key), issuer, now},
	} {
		set, err := CheckStatus(tc.e, tc.list, tc.issuer, tc.now)
		if !errors.Is(err, ErrStatus) || set {
			t.Errorf("%s: set %v, error %v; want ErrStatus", name, set, err)
		}
	}
}

func mustDocument(t *testing.T, key ed25519.PrivateKey) []byte {
	t.Helper()
	list := signedTestList(t, key, key, "revocation", MinStatusListEntries)
	o := mustParse(t, list)
	d, err := o.without("proof").marshal()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
