package vc

import (
	"errors"
	"testing"
)

// The bundled contexts are parsed once and shared; json-gold writes into
// the documents it loads (an @import merges the importing context into the
// imported one), so a document that imports a bundled context must not
// change what that context defines for the next one.
func TestBundledContextNotChangedByImport(t *testing.T) {
	c := &config{maxAmbiguousBlankNodes: 64}
	doc := func(ctx any) map[string]any {
		return map[string]any{
			"@context":          ctx,
			"id":                "urn:uuid:1",
			"type":              []any{"VerifiableCredential"},
			"issuer":            "did:example:issuer",
			"credentialSubject": map[string]any{"id": "did:example:subject"},
			"injected":          "x",
		}
	}
	plain := doc("https://www.w3.org/ns/credentials/v2")
	_, before := canonicalizeJSONLD(plain, c)
	if !errors.Is(before, ErrCanonicalize) {
		t.Fatalf("undefined term: got %v, want ErrCanonicalize", before)
	}
	importing := doc(map[string]any{
		"@version": 1.1,
		"@import":  "https://www.w3.org/ns/credentials/v2",
		"injected": "https://example.com/injected",
	})
	if _, err := canonicalizeJSONLD(importing, c); err != nil {
		t.Fatalf("importing document: %v", err)
	}
	if _, after := canonicalizeJSONLD(plain, c); after == nil || after.Error() != before.Error() {
		t.Fatalf("after a document imported the bundled context: got %v, want %v", after, before)
	}
}
