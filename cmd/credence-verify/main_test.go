package main

import (
	"path/filepath"
	"testing"
)

// TestExitCodes: 0 valid, 1 invalid, 2 could not check (bad usage, a file
// not readable), as every verify command of credenced.
func TestExitCodes(t *testing.T) {
	v := filepath.Join("..", "..", "proof", "testdata", "vectors")
	one := filepath.Join(v, "one-validator", "genesis.json")
	four := filepath.Join(v, "four-validators", "genesis.json")
	missing := filepath.Join(t.TempDir(), "nope.json")
	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"valid", []string{one, filepath.Join(v, "one-validator", "single-hash.receipt.json")}, 0},
		{"tampered", []string{four, filepath.Join(v, "invalid", "batch-root-flipped.receipt.json")}, 1},
		{"other chain", []string{four, filepath.Join(v, "one-validator", "single-hash.receipt.json")}, 1},
		{"malformed", []string{four, filepath.Join(v, "invalid", "json-trailing-data.receipt.json")}, 1},
		{"usage", []string{one}, 2},
		{"genesis unreadable", []string{missing, filepath.Join(v, "one-validator", "single-hash.receipt.json")}, 2},
		{"receipt unreadable", []string{one, missing}, 2},
	} {
		if code := exitCode(run(c.args)); code != c.code {
			t.Errorf("%s: exit %d, want %d (%v)", c.name, code, c.code, run(c.args))
		}
	}
}
