// Command credence-verify checks a receipt file offline against a genesis
// file, and nothing else: it is the verifier alone, small enough to build
// for WebAssembly (GOOS=js GOARCH=wasm) and embed in a web page.
//
//	credence-verify GENESIS.json RECEIPT.json
package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/credence-ledger/credence/proof"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: credence-verify GENESIS.json RECEIPT.json")
	}
	g, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	trust, err := proof.TrustRootFromGenesis(g)
	if err != nil {
		return err
	}
	f, err := os.Open(args[1])
	if err != nil {
		return err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, proof.DefaultMaxReceiptBytes+1))
	if err != nil {
		return err
	}
	r, err := proof.UnmarshalReceiptJSON(raw, proof.Limits{})
	if err != nil {
		return fmt.Errorf("%s: %w", args[1], err)
	}
	v, err := proof.Verify(r, trust)
	if err != nil {
		return fmt.Errorf("INVALID receipt %s: %w", args[1], err)
	}
	fmt.Printf("VALID: %x anchored by %s at height %d, %s, chain %s\n",
		v.CredentialHash, v.Issuer, v.Height, v.Time.Format(time.RFC3339Nano), v.ChainID)
	return nil
}
