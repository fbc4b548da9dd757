package proof

import (
	"bytes"
	"strings"
	"testing"

	cmttypes "github.com/cometbft/cometbft/types"
)

// TestTrustRootMatchesCometBFT: for the vectors' genesis files, the trust
// root is CometBFT's genesis validator set, in its order, with its hash.
func TestTrustRootMatchesCometBFT(t *testing.T) {
	for _, chain := range []string{"one-validator", "four-validators"} {
		g := readTestdata(t, "vectors/"+chain+"/genesis.json")
		tr, err := TrustRootFromGenesis(g)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := cmttypes.GenesisDocFromJSON(g)
		if err != nil {
			t.Fatal(err)
		}
		var vals []*cmttypes.Validator
		for _, v := range doc.Validators {
			vals = append(vals, cmttypes.NewValidator(v.PubKey, v.Power))
		}
		set := cmttypes.NewValidatorSet(vals)
		if tr.ChainID != doc.ChainID || len(tr.Validators) != set.Size() {
			t.Fatalf("%s: chain %q with %d validators, CometBFT %q with %d", chain, tr.ChainID, len(tr.Validators), doc.ChainID, set.Size())
		}
		for i, v := range set.Validators {
			if !bytes.Equal(tr.Validators[i].Ed25519PublicKey, v.PubKey.Bytes()) || tr.Validators[i].VotingPower != v.VotingPower {
				t.Errorf("%s: validator %d differs from CometBFT's", chain, i)
			}
		}
		ours, err := newValidatorSet(tr.Validators, DefaultMaxValidators)
		if err != nil || !bytes.Equal(ours.hash[:], set.Hash()) {
			t.Errorf("%s: set hash %X (%v), CometBFT %X", chain, ours.hash, err, set.Hash())
		}
	}
}

// TestTrustRootFromGenesisRefuses: the genesis forms the strict reading
// refuses, with the field named, and without a panic. The first cases
// made CometBFT's genesis validation panic (a nil key) when the pre-check
// matched "pub_key" without regard to case.
func TestTrustRootFromGenesisRefuses(t *testing.T) {
	const key = `"pub_key":{"type":"tendermint/PubKeyEd25519","value":"O95JeydbAfQM7h4ne2u2E77I0lbzFwWKMIcJ/Z08VzY="}`
	valid := `{"chain_id":"c","validators":[{` + key + `,"power":"10"}]}`
	if _, err := TrustRootFromGenesis([]byte(valid)); err != nil {
		t.Fatalf("the valid base case: %v", err)
	}
	for _, c := range []struct{ name, genesis, says string }{
		{"Pub_Key", strings.Replace(valid, `"pub_key"`, `"Pub_Key"`, 1), `"Pub_Key"`},
		{"PUB_KEY", strings.Replace(valid, `"pub_key"`, `"PUB_KEY"`, 1), `"PUB_KEY"`},
		{"no pub_key", `{"chain_id":"0","validators":[{"power":"1"}]}`, "pub_key"},
		{"pub_key twice", strings.Replace(valid, key, key+","+key, 1), "twice"},
		{"Chain_ID", strings.Replace(valid, `"chain_id"`, `"Chain_ID"`, 1), "chain_id"},
		{"chain_id twice", strings.Replace(valid, `"chain_id":"c"`, `"chain_id":"c","chain_id":"d"`, 1), "twice"},
		{"no validators", `{"chain_id":"c","validators":[]}`, "validators"},
		{"secp256k1 key", strings.Replace(valid, "PubKeyEd25519", "PubKeySecp256k1", 1), "pub_key.type"},
		{"short key", strings.Replace(valid, "O95Jeydb", "O95J", 1), "pub_key.value"},
		{"power as number", strings.Replace(valid, `"10"`, `10`, 1), "power"},
		{"power zero", strings.Replace(valid, `"10"`, `"0"`, 1), "power"},
		{"power with plus", strings.Replace(valid, `"10"`, `"+10"`, 1), "power"},
		{"wrong address", strings.Replace(valid, `"power"`, `"address":"00112233445566778899AABBCCDDEEFF00112233","power"`, 1), "address"},
		{"validator twice", strings.Replace(valid, `"power":"10"}`, `"power":"10"},{`+key+`,"power":"10"}`, 1), "twice"},
		{"trailing data", valid + "{}", "after"},
		{"chain id too long", strings.Replace(valid, `"c"`, `"`+strings.Repeat("c", 51)+`"`, 1), "chain_id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			noPanic(t, "TrustRootFromGenesis", func() { _, err = TrustRootFromGenesis([]byte(c.genesis)) })
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("error %q does not say %q", err, c.says)
			}
		})
	}
}
