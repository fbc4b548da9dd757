package vc

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readVector(t testing.TB, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"testdata", "vc-di-eddsa"}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vectorKey(t testing.TB, pubMB, privMB string) ed25519.PrivateKey {
	t.Helper()
	priv, err := DecodeMultikeyPrivate(privMB)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := DecodeMultikey(pubMB)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), pub) {
		t.Fatal("vector private key does not match its public key")
	}
	return priv
}

func vectorKeyPair(t testing.TB) ed25519.PrivateKey {
	var kp struct{ PublicKeyMultibase, PrivateKeyMultibase string }
	if err := json.Unmarshal(readVector(t, "keyPair.json"), &kp); err != nil {
		t.Fatal(err)
	}
	return vectorKey(t, kp.PublicKeyMultibase, kp.PrivateKeyMultibase)
}

// indent lays signed output out as the W3C vector files are (two spaces).
func indent(t testing.TB, b []byte) string {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func trimmed(b []byte) string { return strings.TrimSpace(string(b)) }

var vectorCreated = time.Date(2023, 2, 24, 23, 36, 38, 0, time.UTC)

// TestW3CVectors reproduces every intermediate of the vc-di-eddsa test
// vectors: canonical document, canonical proof configuration, both hashes,
// the signature, proofValue and the signed document, byte for byte.
func TestW3CVectors(t *testing.T) {
	cases := []struct {
		name, dir, suffix, unsigned string
		suite                       Suite
		extra                       []Option
	}{
		{"rdfc", "eddsa-rdfc-2022", "DataInt", "unsigned.json", EddsaRDFC2022, nil},
		{"jcs", "eddsa-jcs-2022", "JCS", "unsigned.json", EddsaJCS2022, nil},
		{"rdfc-employ", "eddsa-rdfc-2022/employ", "DataInt", "employmentAuth.json", EddsaRDFC2022,
			[]Option{WithContext("https://w3id.org/citizenship/v4rc1", readVector(t, "citizenship-v4rc1.jsonld"))}},
	}
	key := vectorKeyPair(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newConfig(tc.extra)
			unsigned, err := parseObject(readVector(t, tc.unsigned))
			if err != nil {
				t.Fatal(err)
			}
			// The vector's proof configuration, without the @context that
			// hashData adds from the document.
			pc, err := parseObject(readVector(t, tc.dir, "proofConfig"+tc.suffix+".json"))
			if err != nil {
				t.Fatal(err)
			}
			ctx, _ := unsigned.get("@context")
			pctx, _ := pc.get("@context")
			if !bytes.Equal(mustCompact(t, ctx), mustCompact(t, pctx)) {
				t.Fatal("vector proof config @context differs from the document's")
			}
			canonDoc, err := canonicalize(tc.suite, unsigned, c)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := trimmed(canonDoc), trimmed(readVector(t, tc.dir, "canonDoc"+tc.suffix+".txt")); got != want {
				t.Errorf("canonical document:\n got %s\nwant %s", got, want)
			}
			canonCfg, err := canonicalize(tc.suite, pc, c)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := trimmed(canonCfg), trimmed(readVector(t, tc.dir, "proofCanon"+tc.suffix+".txt")); got != want {
				t.Errorf("canonical proof config:\n got %s\nwant %s", got, want)
			}
			// The W3C files end canonical N-Quads with a newline; the hash
			// covers the exact canonical bytes, which must end with one.
			docHash := sha256.Sum256(canonDoc)
			if got, want := hex.EncodeToString(docHash[:]), trimmed(readVector(t, tc.dir, "docHash"+tc.suffix+".txt")); got != want {
				t.Errorf("document hash %s, want %s", got, want)
			}
			cfgHash := sha256.Sum256(canonCfg)
			if got, want := hex.EncodeToString(cfgHash[:]), trimmed(readVector(t, tc.dir, "proofHash"+tc.suffix+".txt")); got != want {
				t.Errorf("proof config hash %s, want %s", got, want)
			}
			data, err := hashData(tc.suite, unsigned, pc.without("@context"), c)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := hex.EncodeToString(data), trimmed(readVector(t, tc.dir, "combinedHash"+tc.suffix+".txt")); got != want {
				t.Errorf("combined hash %s, want %s", got, want)
			}
			sig := ed25519.Sign(key, data)
			if got, want := hex.EncodeToString(sig), trimmed(readVector(t, tc.dir, "sigHex"+tc.suffix+".txt")); got != want {
				t.Errorf("signature %s, want %s", got, want)
			}

			opts := append([]Option{WithCreated(vectorCreated)}, tc.extra...)
			signed, err := Sign(readVector(t, tc.unsigned), tc.suite, key, opts...)
			if err != nil {
				t.Fatal(err)
			}
			want := trimmed(readVector(t, tc.dir, "signed"+tc.suffix+".json"))
			if tc.name == "rdfc-employ" {
				// That vector file keeps the input's four-space layout;
				// compare in one layout, members still in the same order.
				want = trimmed([]byte(indent(t, mustCompact(t, []byte(want)))))
			}
			if got := indent(t, signed); got != want {
				t.Errorf("signed document:\n got %s\nwant %s", got, want)
			}
			sp, _ := mustObject(t, signed).get("proof")
			pv, _ := mustObject(t, sp).get("proofValue")
			if got, want := strings.Trim(string(pv), `"`), trimmed(readVector(t, tc.dir, "sigBTC58"+tc.suffix+".txt")); got != want {
				t.Errorf("proofValue %s, want %s", got, want)
			}

			// The vector's own signed document verifies with a did:key
			// resolver, and so does ours.
			for _, doc := range [][]byte{readVector(t, tc.dir, "signed"+tc.suffix+".json"), signed} {
				res, err := Verify(doc, ResolveDIDKey, tc.extra...)
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				if len(res) != 1 || res[0].Cryptosuite != tc.suite || res[0].Created != "2023-02-24T23:36:38Z" {
					t.Fatalf("results %+v", res)
				}
			}
		})
	}
}

// TestW3CProofSet reproduces the vc-di-eddsa proof set vectors: two
// independent eddsa-rdfc-2022 proofs over the same document.
func TestW3CProofSet(t *testing.T) {
	var keys map[string]struct{ PublicKeyMultibase, PrivateKeyMultibase string }
	if err := json.Unmarshal(readVector(t, "proof-set-chain", "multiKeyPairs.json"), &keys); err != nil {
		t.Fatal(err)
	}
	k1 := vectorKey(t, keys["keyPair1"].PublicKeyMultibase, keys["keyPair1"].PrivateKeyMultibase)
	k2 := vectorKey(t, keys["keyPair2"].PublicKeyMultibase, keys["keyPair2"].PrivateKeyMultibase)
	one, err := Sign(readVector(t, "proof-set-chain", "unsigned.json"), EddsaRDFC2022, k1,
		WithCreated(vectorCreated), WithProofID("urn:uuid:26329423-bec9-4b2e-88cb-a7c7d9dc4544"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := indent(t, one), trimmed(readVector(t, "proof-set-chain", "signedProofSet1.json")); got != want {
		t.Errorf("first proof:\n got %s\nwant %s", got, want)
	}
	two, err := Sign(one, EddsaRDFC2022, k2,
		WithCreated(vectorCreated), WithProofID("urn:uuid:8cc9022b-6b14-4cf3-8571-74972c5feb54"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := indent(t, two), trimmed(readVector(t, "proof-set-chain", "signedProofSet2.json")); got != want {
		t.Errorf("proof set:\n got %s\nwant %s", got, want)
	}
	res, err := Verify(readVector(t, "proof-set-chain", "signedProofSet2.json"), ResolveDIDKey)
	if err != nil || len(res) != 2 {
		t.Fatalf("verify proof set: %v %+v", err, res)
	}
	// A proof chain (previousProof) is refused by name, not misreported.
	_, err = Verify(readVector(t, "proof-set-chain", "signedProofChain2.json"), ResolveDIDKey)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("proof chain: %v, want ErrUnsupported", err)
	}
}

func mustCompact(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func mustObject(t testing.TB, b []byte) object {
	t.Helper()
	o, err := parseObject(b)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
