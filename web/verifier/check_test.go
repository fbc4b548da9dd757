package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const vectors = "../../proof/testdata/vectors/"

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The page's answer for every test vector: the valid ones with what they
// prove, each invalid one failing at the step its .want names.
func TestCheckReceiptVectors(t *testing.T) {
	for _, chain := range []string{"one-validator", "four-validators"} {
		genesis := read(t, vectors+chain+"/genesis.json")
		files, _ := filepath.Glob(vectors + chain + "/*.receipt.json")
		if len(files) == 0 {
			t.Fatalf("no vectors in %s", chain)
		}
		for _, f := range files {
			o := checkReceipt(genesis, read(t, f), nil)
			if !o.Valid || o.Step != "" || o.Issuer == "" || o.Height <= 0 || o.GenesisChainID != "e2e" || o.LeafCount == 0 {
				t.Errorf("%s: %+v", f, o)
			}
		}
	}
	wants, _ := filepath.Glob(vectors + "invalid/*.want")
	if len(wants) == 0 {
		t.Fatal("no invalid vectors")
	}
	for _, w := range wants {
		var want struct{ Genesis, Step string }
		if err := json.Unmarshal(read(t, w), &want); err != nil {
			t.Fatal(err)
		}
		o := checkReceipt(read(t, vectors+want.Genesis), read(t, strings.TrimSuffix(w, ".want")+".receipt.json"), nil)
		if o.Valid || o.Step != want.Step || o.Reason == "" || o.Issuer != "" {
			t.Errorf("%s: got step %q (%s), want %q", filepath.Base(w), o.Step, o.Reason, want.Step)
		}
	}
}

func TestCheckReceiptCredentialFile(t *testing.T) {
	genesis := read(t, vectors+"one-validator/genesis.json")
	receipt := read(t, vectors+"one-validator/single-hash.receipt.json")
	o := checkReceipt(genesis, receipt, []byte("not the credential"))
	if o.Valid || o.Step != stepCredential || !strings.Contains(o.Reason, o.FileHash) || o.Issuer == "" {
		t.Fatalf("wrong file: %+v", o)
	}
	o = checkReceipt([]byte(`{"chain_id": "x"}`), receipt, nil)
	if o.Valid || o.Step != stepGenesis {
		t.Fatalf("bad genesis: %+v", o)
	}
	o = checkReceipt(genesis, []byte(`{"version": 2}`), nil)
	if o.Valid || o.Step != stepFileForm {
		t.Fatalf("bad receipt file: %+v", o)
	}
}

func TestCheckStatusRefusesWhatIsNotAStatus(t *testing.T) {
	genesis := read(t, vectors+"one-validator/genesis.json")
	for _, in := range []string{`not json`, `{"status": {"version": 1}}`, `{"status": {"unknown_field": 1}}`, `{}`} {
		s := checkStatus(genesis, []byte(in), time.Now())
		if s.Verified || s.Step == "" || s.Stands {
			t.Errorf("%s: %+v", in, s)
		}
	}
}

// A credential file that is not a credential, or a genesis that is not
// one: INVALID naming the step for the first, COULD NOT CHECK for the
// second (the verifier's own input, not the credential, is at fault).
func TestCheckCredentialRefuses(t *testing.T) {
	genesis := read(t, vectors+"one-validator/genesis.json")
	for _, in := range []string{`not json`, `{"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiableCredential"]}`, `[]`} {
		o := checkCredential(genesis, []byte(in))
		if o.Verdict != "INVALID" || o.Step == "" || o.Reason == "" {
			t.Errorf("%s: %+v", in, o)
		}
	}
	o := checkCredential([]byte(`{"chain_id": "x"}`), []byte(`{}`))
	if o.Verdict != verdictUnchecked || o.Step != stepGenesis {
		t.Errorf("bad genesis: %+v", o)
	}
	s := checkListStatus(genesis, []byte(`{"StatusListCredential": "https://x/v1/statuslists/a/b", "StatusPurpose": "revocation"}`), []byte(`{}`), []byte(`{}`), "did:key:z6Mk", time.Now())
	if s.Verified || s.Set || s.Step == "" {
		t.Errorf("list that is not one: %+v", s)
	}
	for in, want := range map[string]string{
		"https://status.example.edu/v1/statuslists/member-1/diplomas": "/v1/statuslists/member-1/diplomas",
		"https://status.example.edu/v1/statuslists/member-1":          "",
		"https://status.example.edu/lists/diplomas":                   "",
		"urn:x": "",
	} {
		if got := listPath(in); got != want {
			t.Errorf("listPath(%q) = %q, want %q", in, got, want)
		}
	}
}
