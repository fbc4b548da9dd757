package vc

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// statusListVC is the shape Credence signs: a Bitstring Status List
// credential under VCDM 2.0.
const statusListVC = `{
  "@context": ["https://www.w3.org/ns/credentials/v2"],
  "id": "https://credence.example/status/1",
  "type": ["VerifiableCredential", "BitstringStatusListCredential"],
  "issuer": "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",
  "validFrom": "2026-12-01T00:00:00Z",
  "credentialSubject": {
    "id": "https://credence.example/status/1#list",
    "type": "BitstringStatusList",
    "statusPurpose": "revocation",
    "encodedList": "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"
  }
}`

func TestSignVerifyRoundTrip(t *testing.T) {
	key := vectorKeyPair(t)
	for _, suite := range []Suite{EddsaRDFC2022, EddsaJCS2022} {
		t.Run(string(suite), func(t *testing.T) {
			a, err := Sign([]byte(statusListVC), suite, key, WithCreated(vectorCreated))
			if err != nil {
				t.Fatal(err)
			}
			b, err := Sign([]byte(statusListVC), suite, key, WithCreated(vectorCreated))
			if err != nil || !bytes.Equal(a, b) {
				t.Fatalf("same input, different output (%v)", err)
			}
			res, err := Verify(a, ResolveDIDKey)
			if err != nil || len(res) != 1 || res[0].Err != nil {
				t.Fatalf("verify: %v %+v", err, res)
			}
			// Every claim is covered: change one byte of the list.
			bad := bytes.Replace(a, []byte("PbQwf"), []byte("PbQwg"), 1)
			if bytes.Equal(bad, a) {
				t.Fatal("tamper did not apply")
			}
			res, err = Verify(bad, ResolveDIDKey)
			if !errors.Is(err, ErrSignature) || len(res) != 1 || !errors.Is(res[0].Err, ErrSignature) {
				t.Fatalf("tampered: %v %+v", err, res)
			}
			// The proof options are covered too.
			bad = bytes.Replace(a, []byte("2023-02-24T23:36:38Z"), []byte("2023-02-24T23:36:39Z"), 1)
			if _, err := Verify(bad, ResolveDIDKey); !errors.Is(err, ErrSignature) {
				t.Fatalf("tampered created: %v", err)
			}
			// Another key does not verify it; a resolver failure is ErrKey.
			other := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
			if _, err := Verify(a, func(string) (ed25519.PublicKey, error) { return other, nil }); !errors.Is(err, ErrSignature) {
				t.Fatalf("other key: %v", err)
			}
			boom := errors.New("unknown issuer")
			if _, err := Verify(a, func(string) (ed25519.PublicKey, error) { return nil, boom }); !errors.Is(err, ErrKey) || !errors.Is(err, boom) {
				t.Fatalf("resolver error: %v", err)
			}
		})
	}
}

// TestProofSetMixedSuites: a proof set of both suites, each over the
// document without proofs; one bad proof fails only itself.
func TestProofSetMixedSuites(t *testing.T) {
	key := vectorKeyPair(t)
	one, err := Sign([]byte(statusListVC), EddsaRDFC2022, key)
	if err != nil {
		t.Fatal(err)
	}
	two, err := Sign(one, EddsaJCS2022, key)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(two, ResolveDIDKey)
	if err != nil || len(res) != 2 || res[0].Cryptosuite != EddsaRDFC2022 || res[1].Cryptosuite != EddsaJCS2022 {
		t.Fatalf("%v %+v", err, res)
	}
	// Break the first proof's signature only.
	i := bytes.Index(two, []byte(`"proofValue":"z`)) + len(`"proofValue":"z`)
	bad := append([]byte{}, two...)
	bad[i+5] = map[bool]byte{true: '2', false: '3'}[bad[i+5] != '2']
	res, err = Verify(bad, ResolveDIDKey)
	if !errors.Is(err, ErrSignature) || len(res) != 2 || !errors.Is(res[0].Err, ErrSignature) || res[1].Err != nil {
		t.Fatalf("%v %+v", err, res)
	}
}

// TestJCSProofContextMustPrefixDocument: an eddsa-jcs-2022 proof whose
// @context is not a prefix of the document's fails.
func TestJCSProofContextMustPrefixDocument(t *testing.T) {
	signed := readVector(t, "eddsa-jcs-2022", "signedJCS.json")
	o := mustObject(t, signed)
	o = o.with("@context", []byte(`["https://www.w3.org/ns/credentials/v2"]`))
	doc, err := o.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(doc, ResolveDIDKey); !errors.Is(err, ErrSignature) {
		t.Fatalf("got %v, want ErrSignature", err)
	}
}

// TestInputLimits: hostile input is refused with a clear sentinel, before
// parsing when it is too big, and no context is ever fetched.
func TestInputLimits(t *testing.T) {
	key := vectorKeyPair(t)
	signed := readVector(t, "eddsa-rdfc-2022", "signedDataInt.json")

	// Too large: refused before parsing (this is not even JSON).
	big := bytes.Repeat([]byte("x"), DefaultMaxDocumentBytes+1)
	if _, err := Verify(big, ResolveDIDKey); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	if _, err := Verify(signed, ResolveDIDKey, WithLimits(len(signed)-1, 0, 0, 0)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over a configured size: %v", err)
	}
	deep := []byte(`{"a":` + strings.Repeat("[", DefaultMaxDepth) + strings.Repeat("]", DefaultMaxDepth) + `}`)
	if _, err := Sign(deep, EddsaRDFC2022, key); !errors.Is(err, ErrTooLarge) {
		t.Errorf("deep: %v", err)
	}
	manyProofs := []byte(`{"proof":[` + strings.TrimSuffix(strings.Repeat(`{},`, DefaultMaxProofs+1), ",") + `]}`)
	if _, err := Verify(manyProofs, ResolveDIDKey); !errors.Is(err, ErrTooLarge) {
		t.Errorf("many proofs: %v", err)
	}
	for name, doc := range map[string]string{
		"not an object":   `["a"]`,
		"duplicate key":   `{"a":1,"a":2}`,
		"trailing data":   `{"a":1} {}`,
		"invalid UTF-8":   "{\"a\":\"\xff\"}",
		"proof is string": `{"proof":"x"}`,
	} {
		if _, err := Verify([]byte(doc), ResolveDIDKey); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := Verify([]byte(statusListVC), ResolveDIDKey); !errors.Is(err, ErrNoProof) {
		t.Errorf("no proof: %v", err)
	}

	// A context URL that is not bundled is an error naming it, and nothing
	// is fetched even when the URL is reachable.
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/ld+json")
		_, _ = w.Write([]byte(`{"@context":{"@vocab":"urn:x#"}}`))
	}))
	defer srv.Close()
	for _, ctx := range []string{
		`["https://www.w3.org/ns/credentials/v2", "` + srv.URL + `/ctx"]`,
		`[{"@import": "` + srv.URL + `/ctx"}]`,
		`"` + srv.URL + `/ctx"`,
	} {
		doc := []byte(`{"@context":` + ctx + `,"type":["VerifiableCredential"],"issuer":"did:example:i"}`)
		_, err := Sign(doc, EddsaRDFC2022, key)
		if !errors.Is(err, ErrUnknownContext) || !strings.Contains(err.Error(), srv.URL+"/ctx") {
			t.Errorf("context %s: %v, want ErrUnknownContext naming the URL", ctx, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the context server was asked %d times", n)
	}

	// A term no context defines is an error, not silently unsigned.
	v1 := []byte(`{"@context":["https://www.w3.org/2018/credentials/v1"],"type":["VerifiableCredential"],` +
		`"issuer":"did:example:i","issuanceDate":"2020-01-01T00:00:00Z","credentialSubject":{"id":"did:example:s"},"undefinedTerm":"x"}`)
	if _, err := Sign(v1, EddsaRDFC2022, key); !errors.Is(err, ErrCanonicalize) {
		t.Errorf("undefined term: %v", err)
	}
	if _, err := Sign([]byte(statusListVC), "eddsa-2022", key); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown suite: %v", err)
	}
	if _, err := Sign([]byte(statusListVC), EddsaRDFC2022, key[:10]); !errors.Is(err, ErrKey) {
		t.Errorf("short key: %v", err)
	}
}

// FuzzVerify must never panic, whatever the document; a nil error means
// every proof verified.
func FuzzVerify(f *testing.F) {
	for _, p := range [][]string{
		{"eddsa-rdfc-2022", "signedDataInt.json"},
		{"eddsa-jcs-2022", "signedJCS.json"},
		{"proof-set-chain", "signedProofSet2.json"},
		{"proof-set-chain", "signedProofChain2.json"},
	} {
		f.Add(readVector(f, p...))
	}
	f.Add([]byte(statusListVC))
	f.Add([]byte(`{"proof":[{}, []]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		res, err := Verify(doc, ResolveDIDKey, WithLimits(64<<10, 0, 0, 0))
		if err == nil {
			if len(res) == 0 {
				t.Fatal("verified without proofs")
			}
			for _, r := range res {
				if r.Err != nil {
					t.Fatalf("nil error with a failed proof: %v", r.Err)
				}
			}
		}
	})
}

// TestSignKeepsBytes: signing keeps the caller's members and existing
// proofs as written (compacted only), not re-encoded with HTML escapes.
func TestSignKeepsBytes(t *testing.T) {
	key := vectorKeyPair(t)
	doc := strings.Replace(statusListVC, `"validFrom"`, `"description": "a<b&c \u00e9", "validFrom"`, 1)
	one, err := Sign([]byte(doc), EddsaJCS2022, key, WithProofID("urn:x:a<b&c"))
	if err != nil {
		t.Fatal(err)
	}
	two, err := Sign(one, EddsaRDFC2022, key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(two, []byte(`"description":"a<b&c \u00e9"`)) ||
		!bytes.Contains(two, one[bytes.Index(one, []byte(`"proof":`))+len(`"proof":`):len(one)-1]) {
		t.Fatalf("bytes changed:\n%s\n%s", one, two)
	}
	if _, err := Verify(two, ResolveDIDKey); err != nil {
		t.Fatal(err)
	}
}

// TestNumbersMustBeExact: a JSON number a double cannot hold exactly (both
// canonicalizations read numbers as doubles) is refused instead of being
// signed as a different number than the document shows.
func TestNumbersMustBeExact(t *testing.T) {
	key := vectorKeyPair(t)
	with := func(n string) []byte {
		doc := strings.Replace(statusListVC, `"validFrom"`, `"n": `+n+`, "validFrom"`, 1)
		return []byte(strings.Replace(doc, `"https://www.w3.org/ns/credentials/v2"]`,
			`"https://www.w3.org/ns/credentials/v2", {"n": "urn:example:n"}]`, 1))
	}
	for _, n := range []string{"12345678901234567890", "9007199254740993", "0.30000000000000001", "1e400", "1e-99999999999999999999"} {
		for _, suite := range []Suite{EddsaJCS2022, EddsaRDFC2022} {
			if _, err := Sign(with(n), suite, key); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s %s: %v, want ErrMalformed", suite, n, err)
			}
		}
	}
	for _, n := range []string{"0", "-0", "5", "0.1", "1e2", "1.5E-7", "9007199254740992", "[1, 2.5]"} {
		for _, suite := range []Suite{EddsaJCS2022, EddsaRDFC2022} {
			if _, err := Sign(with(n), suite, key); err != nil {
				t.Errorf("%s %s: %v", suite, n, err)
			}
		}
	}
}
