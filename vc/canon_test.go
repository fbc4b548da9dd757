package vc

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gowebpki/jcs"
)

// TestJCSVectors runs cyberphone's RFC 8785 reference vectors through
// github.com/gowebpki/jcs.
func TestJCSVectors(t *testing.T) {
	names, err := filepath.Glob("testdata/jcs/input/*.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no JCS vectors: %v", err)
	}
	for _, in := range names {
		t.Run(filepath.Base(in), func(t *testing.T) {
			input, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("testdata/jcs/output", filepath.Base(in)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := jcs.Transform(input)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != strings.TrimRight(string(want), "\n") {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

type rdfcEntry struct {
	ID, Type, Name, Action, Result, HashAlgorithm string
}

// TestRDFC10Suite runs the W3C RDFC-1.0 test suite's evaluation tests
// (N-Quads in, canonical N-Quads out) through json-gold's URDNA2015, and the
// negative (poison graph) test through the blank node limit. The map tests
// check the issued identifier map, which json-gold does not expose; each of
// them shares its input with an eval test, so their inputs are covered.
func TestRDFC10Suite(t *testing.T) {
	raw, err := os.ReadFile("testdata/rdfc10/manifest.jsonld")
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Entries []rdfcEntry }
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	// The two eval tests json-gold cannot pass, each with the exact way it
	// must not pass: never a wrong canonical form.
	known := map[string]error{
		// Control characters that canonical N-Quads escapes and json-gold
		// does not: refused by checkTerms.
		"#test060c": ErrCanonicalize,
		// SHA-384 as the RDFC-1.0 hash: json-gold has SHA-256 only, and
		// the eddsa cryptosuites use SHA-256.
		"#test075c": errSHA384,
	}
	var eval, passed, negative int
	for _, e := range m.Entries {
		switch e.Type {
		case "rdfc:RDFC10EvalTest":
			eval++
			if want, ok := known[e.ID]; ok {
				t.Run(e.ID+" "+e.Name+" (known refusal)", func(t *testing.T) {
					in, err := os.ReadFile(filepath.Join("testdata", e.Action))
					if err != nil {
						t.Fatal(err)
					}
					if e.HashAlgorithm != "" && e.HashAlgorithm != "SHA256" {
						err = errSHA384
					} else {
						_, err = canonicalizeNQuads(string(in), 1<<20)
					}
					if !errors.Is(err, want) {
						t.Fatalf("got %v, want %v", err, want)
					}
				})
				continue
			}
			t.Run(e.ID+" "+e.Name, func(t *testing.T) {
				in, err := os.ReadFile(filepath.Join("testdata", e.Action))
				if err != nil {
					t.Fatal(err)
				}
				want, err := os.ReadFile(filepath.Join("testdata", e.Result))
				if err != nil {
					t.Fatal(err)
				}
				if e.HashAlgorithm != "" && e.HashAlgorithm != "SHA256" {
					t.Fatalf("hash algorithm %s: json-gold implements SHA-256 only", e.HashAlgorithm)
				}
				got, err := canonicalizeNQuads(string(in), 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != string(want) {
					t.Fatalf("got\n%s\nwant\n%s", got, want)
				}
				passed++
			})
		case "rdfc:RDFC10NegativeEvalTest":
			negative++
			t.Run(e.ID+" "+e.Name, func(t *testing.T) {
				in, err := os.ReadFile(filepath.Join("testdata", e.Action))
				if err != nil {
					t.Fatal(err)
				}
				_, err = canonicalizeNQuads(string(in), DefaultMaxAmbiguousBlankNodes)
				if !errors.Is(err, ErrCanonicalize) {
					t.Fatalf("poison graph: %v, want ErrCanonicalize", err)
				}
			})
		}
	}
	t.Logf("RDFC-1.0 eval tests: %d/%d give the expected canonical N-Quads, %d refused as known; negative tests: %d",
		passed, eval, len(known), negative)
	if eval < 60 || negative != 1 {
		t.Fatalf("manifest has %d eval and %d negative tests", eval, negative)
	}
}

var errSHA384 = errors.New("SHA-384 not implemented by json-gold")

// TestRDFCRefusesNonCanonicalEscapes: a credential string holding a control
// character json-gold does not escape the RDFC-1.0 way is refused, on sign
// and on verify, instead of being signed over non-canonical bytes.
func TestRDFCRefusesNonCanonicalEscapes(t *testing.T) {
	key := vectorKeyPair(t)
	for _, s := range []string{`\u0001`, `\b`, `\f`, `\u007f`} {
		doc := []byte(`{"@context":["https://www.w3.org/ns/credentials/v2"],"type":["VerifiableCredential"],` +
			`"issuer":"did:example:i","credentialSubject":{"id":"did:example:s","name":"a` + s + `b"}}`)
		_, err := Sign(doc, EddsaRDFC2022, key)
		if !errors.Is(err, ErrCanonicalize) {
			t.Errorf("sign with %s: %v, want ErrCanonicalize", s, err)
		}
		// JCS escapes them all exactly; that suite signs the same document.
		if _, err := Sign(doc, EddsaJCS2022, key); err != nil {
			t.Errorf("jcs sign with %s: %v", s, err)
		}
	}
	bad := []byte(`{"@context":["https://www.w3.org/ns/credentials/v2"],"id":"urn:a\\b","type":["VerifiableCredential"]}`)
	if _, err := Sign(bad, EddsaRDFC2022, key); !errors.Is(err, ErrCanonicalize) {
		t.Errorf("IRI with backslash: %v, want ErrCanonicalize", err)
	}
}

// TestBundledContexts: every embedded context is listed in contexts/README.md
// with the SHA-256 of the embedded bytes, under the URL the loader serves it at.
func TestBundledContexts(t *testing.T) {
	readme, err := os.ReadFile("contexts/README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][2]string{} // url -> file, sha256
	for _, line := range strings.Split(string(readme), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) == 6 && strings.HasPrefix(strings.TrimSpace(cells[1]), "https://") {
			rows[strings.TrimSpace(cells[1])] = [2]string{strings.TrimSpace(cells[2]), strings.TrimSpace(cells[4])}
		}
	}
	entries, err := contextFS.ReadDir("contexts")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(bundledContexts) || len(rows) != len(bundledContexts) {
		t.Fatalf("%d embedded files, %d loader entries, %d README rows", len(entries), len(bundledContexts), len(rows))
	}
	for url, name := range bundledContexts {
		b, err := contextFS.ReadFile("contexts/" + name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if row := rows[url]; row[0] != name || row[1] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: README says %v, embedded %s has %x", url, row, name, sum)
		}
		if _, err := (contextLoader{}).LoadDocument(url); err != nil {
			t.Errorf("%s: %v", url, err)
		}
	}
}

// TestRDFCRefusesDroppedData: JSON-LD to RDF silently drops what it cannot
// turn into an absolute IRI or a valid literal; such a claim would travel
// with the document unsigned (change it, the proof still verifies). Each of
// these is refused instead.
func TestRDFCRefusesDroppedData(t *testing.T) {
	key := vectorKeyPair(t)
	base := `{"@context":["https://www.w3.org/ns/credentials/v2","https://www.w3.org/ns/credentials/examples/v2"],` +
		`"id":"urn:x","type":["VerifiableCredential"],"issuer":"did:example:i","credentialSubject":%s}`
	for name, subject := range map[string]string{
		"relative subject id":    `{"id":"relative","alumniOf":"X"}`,
		"bad language tag":       `{"id":"did:example:s","alumniOf":{"@value":"X","@language":"e n"}}`,
		"relative datatype":      `{"id":"did:example:s","alumniOf":{"@value":"X","@type":"bad type"}}`,
		"relative nested id":     `{"id":"did:example:s","alumniOf":{"id":"../x","name":"X"}}`,
		"relative id, @included": `{"id":"did:example:s","alumniOf":"X","@included":[{"@id":"rel/x","alumniOf":"Y"}]}`,
	} {
		doc := []byte(strings.Replace(base, "%s", subject, 1))
		if _, err := Sign(doc, EddsaRDFC2022, key); !errors.Is(err, ErrCanonicalize) {
			t.Errorf("%s: %v, want ErrCanonicalize", name, err)
		}
	}
	// Relative type under a context without @vocab.
	v2only := []byte(`{"@context":["https://www.w3.org/ns/credentials/v2"],"id":"urn:x",` +
		`"type":["VerifiableCredential","NotDefined"],"issuer":"did:example:i","credentialSubject":{"id":"did:example:s"}}`)
	if _, err := Sign(v2only, EddsaRDFC2022, key); !errors.Is(err, ErrCanonicalize) {
		t.Errorf("relative type: %v, want ErrCanonicalize", err)
	}
}
