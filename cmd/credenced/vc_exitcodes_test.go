package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credence-ledger/credence/internal/testport"
)

// TestExitCodes: every verify and status command answers 0 valid or clear,
// 1 invalid (revoked, set: TestCLIEndToEnd, TestVCSecondFiveMinutes), and 2
// when it could not check: a node not reachable, a file not readable, bad
// flags. A script tells "revoked" from "try again".
func TestExitCodes(t *testing.T) {
	t.Parallel()
	bin := buildCLI(t)
	vectors := filepath.Join("..", "..", "proof", "testdata", "vectors")
	genesis := filepath.Join(vectors, "one-validator", "genesis.json")
	otherGenesis := filepath.Join(vectors, "four-validators", "genesis.json")
	receipt := filepath.Join(vectors, "one-validator", "single-hash.receipt.json")
	tampered := filepath.Join(vectors, "invalid", "batch-root-flipped.receipt.json")
	// Nothing listens there: a port of ours, bound by nobody.
	down := fmt.Sprintf("127.0.0.1:%d", testport.Free(t))
	missing := filepath.Join(t.TempDir(), "nope.json")
	hash := strings.Repeat("ab", 32)
	cases := []struct {
		class, name string
		args        []string
		code        int
		want        string // in stdout or stderr
	}{
		{"verify", "valid receipt", []string{"verify", "--genesis", genesis, receipt}, 0, "VALID"},
		{"verify", "tampered receipt", []string{"verify", "--genesis", otherGenesis, tampered}, 1, "INVALID"},
		{"verify", "receipt of another chain", []string{"verify", "--genesis", otherGenesis, receipt}, 1, "INVALID"},
		{"verify", "no genesis", []string{"verify", receipt}, 2, "--genesis is required"},
		{"verify", "unreadable genesis", []string{"verify", "--genesis", missing, receipt}, 2, "no such file"},
		{"verify", "unreadable file", []string{"verify", "--genesis", genesis, missing}, 2, "no such file"},
		{"verify", "unknown flag", []string{"verify", "--genesis", genesis, "--bogus", receipt}, 2, "unknown flag"},
		{"verify", "no file", []string{"verify", "--genesis", genesis}, 2, "arg"},
		{"verify", "node unreachable", []string{"verify", "--genesis", genesis, "--online", down, "--timeout", "3s", receipt}, 2, "online status"},
		{"status", "node unreachable", []string{"status", "--node", down, "--timeout", "3s", "--genesis", genesis, hash}, 2, "status"},
		{"status", "hash and file", []string{"status", "--genesis", genesis, "--file", receipt, hash}, 2, "not both"},
		{"status", "bad flag value", []string{"status", "--genesis", genesis, "--max-age", "soon", hash}, 2, "invalid argument"},
		{"status-list status", "node unreachable", []string{"status-list", "status", "--node", down, "--timeout", "3s", "--issuer", "i", "--id", "r", "--genesis", genesis, "7"}, 2, "status-list status"},
		{"status-list status", "bad index", []string{"status-list", "status", "--node", down, "--timeout", "3s", "--issuer", "i", "--id", "r", "--genesis", genesis, "seven"}, 2, "not a whole number"},
		{"status-list export", "node unreachable", []string{"status-list", "export", "--node", down, "--timeout", "3s", "--issuer", "i", "--id", "r", "--genesis", genesis}, 2, "export"},
		{"any", "unknown command", []string{"verfiy", receipt}, 2, "unknown command"},
	}
	for _, c := range cases {
		t.Run(c.class+"/"+c.name, func(t *testing.T) {
			r := run(t, bin, c.args...)
			if r.code != c.code || !strings.Contains(r.stdout+r.stderr, c.want) {
				t.Fatalf("want exit %d and %q, got %+v", c.code, c.want, r)
			}
			if strings.Contains(r.stderr, "panic") {
				t.Fatalf("panicked: %s", r.stderr)
			}
		})
	}
}

// TestVCCommandsBadInput: the vc commands and anchor --vc refuse what they
// cannot do with a message naming it, before reaching any node.
func TestVCCommandsBadInput(t *testing.T) {
	t.Parallel()
	bin := buildCLI(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "diploma.txt")
	os.WriteFile(text, []byte("Jane Doe, BSc, 2026\n"), 0o644)
	notVC := filepath.Join(dir, "plain.json")
	os.WriteFile(notVC, []byte(`{"name":"not a credential"}`), 0o644)
	example := filepath.Join("..", "..", "docs", "examples", "ob3-achievement-credential.json")
	down := fmt.Sprintf("127.0.0.1:%d", testport.Free(t))
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"anchor --vc of a text file", []string{"anchor", "--node", down, "--token-file", text, "--vc", text}, 1, "not a JSON object"},
		{"anchor --vc of JSON that is no VC", []string{"anchor", "--node", down, "--token-file", text, "--vc", notVC}, 1, "not a Verifiable Credential"},
		{"anchor --attach without --vc", []string{"anchor", "--attach", text}, 2, "add --vc"},
		{"vc attach without --receipt", []string{"vc", "attach", example}, 2, "--receipt is required"},
		{"vc sign: status list without index", []string{"vc", "sign", "--status-list", "r", example}, 2, "go together"},
		{"vc sign: no key", []string{"vc", "sign", "--home", filepath.Join(dir, "nohome"), example}, 1, "--home"},
		{"verify --file with a VC", []string{"verify", "--genesis", filepath.Join("..", "..", "proof", "testdata", "vectors", "one-validator", "genesis.json"), "--file", text, example}, 2, "--file is for receipts"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, bin, c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "panic") {
				t.Fatalf("want exit %d and %q, got %+v", c.code, c.want, r)
			}
		})
	}
}
