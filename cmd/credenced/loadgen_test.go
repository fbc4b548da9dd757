package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credence-ledger/credence/proof"
)

func vector(t *testing.T, chain, name string) (*proof.Receipt, *proof.TrustRoot) {
	t.Helper()
	dir := filepath.Join("..", "..", "proof", "testdata", "vectors", chain)
	raw, err := os.ReadFile(filepath.Join(dir, name+".receipt.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := proof.UnmarshalReceiptJSON(raw, proof.Limits{MaxReceiptBytes: proof.DefaultMaxReceiptBytes})
	if err != nil {
		t.Fatal(err)
	}
	trust, err := trustFromFlag(filepath.Join(dir, "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	return r, trust
}

// The loadgen's sampled check must pass a good receipt and catch a receipt
// for another hash or from another chain: it is what lets a benchmark claim
// that acknowledged hashes became provable.
func TestCheckReceipt(t *testing.T) {
	t.Parallel()
	r, trust := vector(t, "four-validators", "full-commit")
	v, err := proof.Verify(r, trust)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkReceipt(r, v.CredentialHash, trust); err != nil {
		t.Fatalf("good receipt refused: %v", err)
	}
	other := append([]byte(nil), v.CredentialHash...)
	other[0] ^= 1
	if err := checkReceipt(r, other, trust); err == nil || !strings.Contains(err.Error(), "proves") {
		t.Fatalf("receipt of another hash accepted: %v", err)
	}
	_, otherChain := vector(t, "one-validator", "single-hash")
	if err := checkReceipt(r, v.CredentialHash, otherChain); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("receipt checked against another chain's genesis accepted: %v", err)
	}
}

func TestBadReceiptsKeepsFirst(t *testing.T) {
	t.Parallel()
	var b badReceipts
	if b.err() != nil {
		t.Fatal("no failure yet, but an error")
	}
	r, trust := vector(t, "four-validators", "full-commit")
	b.add(checkReceipt(r, make([]byte, 32), trust))
	b.add(checkReceipt(nil, make([]byte, 32), trust))
	err := b.err()
	if err == nil || !strings.HasPrefix(err.Error(), "2 receipts") || !strings.Contains(err.Error(), "proves") {
		t.Fatalf("got %v", err)
	}
}

func TestPct(t *testing.T) {
	t.Parallel()
	if pct(nil, 0.99) != 0 {
		t.Fatal("empty")
	}
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p := pct(ds, 0.5); p != 51*time.Millisecond {
		t.Fatalf("p50 %v", p)
	}
	if p := pct(ds, 0.99); p != 100*time.Millisecond {
		t.Fatalf("p99 %v", p)
	}
}
