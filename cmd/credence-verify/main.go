// Command credence-verify checks a receipt file offline against a genesis
// file, and nothing else: it is the verifier alone, small enough to build
// for WebAssembly (GOOS=js GOARCH=wasm) and embed in a web page.
//
//	credence-verify GENESIS.json RECEIPT.json
//
// Exit 0: valid; 1: invalid (the receipt does not verify, or is not a
// receipt this verifier reads); 2: could not check (usage, a file not
// readable), as every verify command of credenced.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/credence-ledger/credence/proof"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(exitCode(err))
	}
}

// invalid marks an answer about the receipt, as against a failure to check.
type invalid struct{ error }

func (e invalid) Unwrap() error { return e.error }

func exitCode(err error) int {
	var iv invalid
	switch {
	case err == nil:
		return 0
	case errors.As(err, &iv):
		return 1
	}
	return 2
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
	if len(raw) > proof.DefaultMaxReceiptBytes {
		return fmt.Errorf("%s is larger than %d bytes", args[1], proof.DefaultMaxReceiptBytes)
	}
	r, err := proof.UnmarshalReceiptJSON(raw, proof.Limits{})
	if err != nil {
		return invalid{fmt.Errorf("INVALID: %s: %w", args[1], err)}
	}
	v, err := proof.Verify(r, trust)
	if err != nil {
		return invalid{fmt.Errorf("INVALID receipt %s: %w", args[1], err)}
	}
	fmt.Printf("VALID: %s anchored by %s at height %d, %s, chain %s\n",
		proof.FormatBinary(v.CredentialHash), v.Issuer, v.Height, v.Time.UTC().Format(time.RFC3339), v.ChainID)
	return nil
}
