package proof_test

import (
	"fmt"
	"os"

	"github.com/credence-ledger/credence/proof"
)

// A verifier reads the genesis it trusts and a receipt file, then checks
// the receipt offline.
func ExampleVerify() {
	genesis, err := os.ReadFile("testdata/vectors/four-validators/genesis.json")
	if err != nil {
		panic(err)
	}
	trust, err := proof.TrustRootFromGenesis(genesis)
	if err != nil {
		panic(err)
	}
	file, err := os.ReadFile("testdata/vectors/four-validators/validator-link.receipt.json")
	if err != nil {
		panic(err)
	}
	r, err := proof.UnmarshalReceiptJSON(file, proof.Limits{})
	if err != nil {
		panic(err)
	}
	v, err := proof.Verify(r, trust)
	if err != nil {
		fmt.Println("invalid:", err)
		return
	}
	fmt.Printf("anchored by %s in batch %d (%d leaves) on chain %s\n", v.Issuer, v.BatchSeq, v.LeafCount, v.ChainID)
	// Output: anchored by member-0-registrar in batch 4 (1 leaves) on chain e2e
}
