package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/credence-ledger/credence/internal/testport"
	"github.com/credence-ledger/credence/proof"
	"github.com/credence-ledger/credence/vc"
)

// testNode is a node process of the real binary, on ports of its own.
type testNode struct {
	home, grpc, http, genesis string
}

func startTestNode(t *testing.T, bin, chainID string) *testNode {
	t.Helper()
	dir := t.TempDir()
	n := &testNode{home: filepath.Join(dir, "home"),
		grpc: fmt.Sprintf("127.0.0.1:%d", testport.Free(t)), http: fmt.Sprintf("127.0.0.1:%d", testport.Free(t))}
	n.genesis = filepath.Join(n.home, "config", "genesis.json")
	if r := run(t, bin, "init", "--home", n.home, "--chain-id", chainID, "--grpc-address", n.grpc, "--http-address", n.http,
		"--rpc-laddr", fmt.Sprintf("tcp://127.0.0.1:%d", testport.Free(t)), "--p2p-laddr", fmt.Sprintf("tcp://127.0.0.1:%d", testport.Free(t)),
		"--prometheus-laddr", fmt.Sprintf("127.0.0.1:%d", testport.Free(t))); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	logf, err := os.Create(filepath.Join(dir, "node.log"))
	if err != nil {
		t.Fatal(err)
	}
	p := exec.Command(bin, "start", "--home", n.home)
	p.Stdout, p.Stderr = logf, logf
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.Wait() }()
	t.Cleanup(func() {
		p.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("node did not stop cleanly on SIGINT: %v", err)
			}
		case <-time.After(30 * time.Second):
			p.Process.Kill()
			t.Error("node did not stop within 30s of SIGINT")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("node log:\n%s", b)
		}
	})
	return n
}

// TestVCSecondFiveMinutes runs the README's second five minutes as a user
// would, with the real binary and a real node: sign an Open Badges 3.0
// credential, anchor it with the receipt attached, verify it offline, see
// that re-serialising it or adding a proof keeps it valid and changing a
// claim does not (naming the step), revoke it, verify again. Every verdict
// and exit code is asserted; an implementation that is not ours (Python:
// pyld, python3-cryptography) recomputes the hash and the proofs.
func TestVCSecondFiveMinutes(t *testing.T) {
	t.Parallel()
	bin := buildCLI(t)
	n := startTestNode(t, bin, "vc-test")
	dir := t.TempDir()

	// status-list create: the first command, retried while the node starts.
	var created result
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		created = run(t, bin, "status-list", "create", "--node", n.grpc, "--home", n.home, "--id", "badges-2026", "--purpose", "revocation")
		if created.code == 0 || time.Now().After(deadline) || !strings.Contains(created.stderr, "Unavailable") {
			break
		}
	}
	if created.code != 0 {
		t.Fatalf("status-list create: %+v", created)
	}

	// A credential of another issuer is not signed with this one's key.
	if r := run(t, bin, "vc", "sign", "--home", n.home, "--out", filepath.Join(dir, "x.json"),
		filepath.Join("..", "..", "vc", "testdata", "credentials", "ob3-basic-openbadge-credential.json")); r.code != 1 ||
		!strings.Contains(r.stderr, "its issuer is https://example.com/issuers/876543") {
		t.Fatalf("vc sign of another issuer's credential: %+v", r)
	}

	example := filepath.Join("..", "..", "docs", "examples", "ob3-achievement-credential.json")
	badge := filepath.Join(dir, "badge.json")
	signed := run(t, bin, "vc", "sign", "--node", n.grpc, "--home", n.home, "--status-list", "badges-2026", "--status-index", "42",
		"--out", badge, filepath.Join("..", "..", "docs", "examples", "ob3-achievement-credential.json"))
	if signed.code != 0 || !strings.Contains(signed.stdout, "did:key:z6Mk") {
		t.Fatalf("vc sign: %+v", signed)
	}
	anchored := run(t, bin, "anchor", "--vc", "--attach", "--in-place", "--node", n.grpc, "--home", n.home, badge)
	if anchored.code != 0 || !strings.Contains(anchored.stdout, "anchored="+badge) {
		t.Fatalf("anchor --vc --attach: %+v", anchored)
	}
	hash := strings.Fields(anchored.stdout)[1]
	doc, err := os.ReadFile(badge)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := vc.CredentialHash(doc); err != nil || hash != proof.FormatBinary(h[:]) {
		t.Fatalf("anchor printed %s, the credential hash is %x (%v)", hash, h, err)
	}

	verify := func(_, file string, extra ...string) result {
		t.Helper()
		return run(t, bin, append(append([]string{"verify", "--genesis", n.genesis}, extra...), file)...)
	}
	expect := func(what string, r result, code int, first string) {
		t.Helper()
		line, _, _ := strings.Cut(r.stdout, "\n")
		if r.code != code || !strings.HasPrefix(line, first) {
			t.Fatalf("%s: want exit %d and a first line %q, got %+v", what, code, first, r)
		}
	}
	ok := verify("offline", badge)
	expect("verify offline", ok, 0, "VALID")
	if !strings.Contains(ok.stdout, "anchored:   at height") || !strings.Contains(ok.stdout, "by issuer member-1-registrar") {
		t.Fatalf("verify prints no anchoring: %s", ok.stdout)
	}
	online := "http://" + n.http
	expect("verify online", verify("online", badge, "--online", online), 0, "VALID")

	// Re-serialised: another key order, another indentation.
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	pretty, _ := json.MarshalIndent(m, "", "\t") // keys sorted, tabs
	reser := filepath.Join(dir, "reserialised.json")
	os.WriteFile(reser, pretty, 0o644)
	expect("re-serialised", verify("re-serialised", reser), 0, "VALID")

	// Another proof added, as a wallet adds its own.
	_, wallet, _ := ed25519.GenerateKey(nil)
	more, err := vc.Sign(doc, vc.EddsaJCS2022, wallet)
	if err != nil {
		t.Fatal(err)
	}
	moreFile := filepath.Join(dir, "more-proofs.json")
	os.WriteFile(moreFile, more, 0o644)
	expect("another proof", verify("another proof", moreFile), 0, "VALID")

	// A claim changed fails, naming the step.
	changed := bytes.Replace(doc, []byte(`"name":"Teamwork"`), []byte(`"name":"Leadership"`), 1)
	if bytes.Equal(changed, doc) {
		t.Fatal("the claim to change is not in the credential")
	}
	changedFile := filepath.Join(dir, "changed.json")
	os.WriteFile(changedFile, changed, 0o644)
	expect("claim changed", verify("claim changed", changedFile), 1, "INVALID (step: ")

	// The independent check, on what the CLI made.
	pythonCheck(t, badge, hash)

	// Revoke: set its entry; both the offline verdict (still VALID: no
	// status offline) and the online one (REVOKED) are what they say.
	set := run(t, bin, "status-list", "set", "--node", n.grpc, "--home", n.home, "--id", "badges-2026", "42")
	at := regexp.MustCompile(`at height (\d+)`).FindStringSubmatch(set.stdout)
	if set.code != 0 || at == nil {
		t.Fatalf("status-list set: %+v", set)
	}
	revoked := verify("revoked", badge, "--online", online, "--min-height", at[1])
	expect("verify after revoke", revoked, 1, "REVOKED")
	if !strings.Contains(revoked.stdout, "revocation entry 42") || revoked.stderr != "" {
		t.Fatalf("verify after revoke: %+v", revoked)
	}
	expect("verify offline after revoke", verify("offline", badge), 0, "VALID")
	expect("node unreachable", verify("down", badge, "--online", fmt.Sprintf("127.0.0.1:%d", testport.Free(t)), "--timeout", "3s"), 2, "COULD NOT CHECK")

	// vc attach from a receipt file gives the same anchored credential.
	plain := filepath.Join(dir, "plain.json")
	if r := run(t, bin, "vc", "sign", "--home", n.home, "--out", plain, filepath.Join("..", "..", "docs", "examples", "ob3-achievement-credential.json")); r.code != 0 {
		t.Fatalf("vc sign without status: %+v", r)
	}
	receipts := filepath.Join(dir, "receipts")
	if r := run(t, bin, "anchor", "--vc", "--node", n.grpc, "--home", n.home, "--out", receipts, plain); r.code != 0 {
		t.Fatalf("anchor --vc: %+v", r)
	}
	if r := run(t, bin, "vc", "attach", "--home", n.home, "--receipt", filepath.Join(receipts, "plain.json.receipt.json"), plain); r.code != 0 {
		t.Fatalf("vc attach: %+v", r)
	}
	expect("vc attach", verify("attached", filepath.Join(dir, "plain.anchored.json")), 0, "VALID")
	// Revoked by hash (credenced revoke), as a file without a status list
	// can be: REVOKED online too, and status --vc says so.
	attached := filepath.Join(dir, "plain.anchored.json")
	rv := run(t, bin, "revoke", "--node", n.grpc, "--home", n.home, "--vc", "--file", attached)
	rvAt := regexp.MustCompile(`revoked at height (\d+)`).FindStringSubmatch(rv.stdout)
	if rv.code != 0 || rvAt == nil {
		t.Fatalf("revoke --vc --file: %+v", rv)
	}
	expect("verify after hash revocation", verify("hash revoked", attached, "--online", online, "--min-height", rvAt[1]), 1, "REVOKED")
	if r := run(t, bin, "status", "--node", n.grpc, "--genesis", n.genesis, "--min-height", rvAt[1], "--vc", "--file", attached); r.code != 1 ||
		!strings.Contains(r.stdout, "revoked:    at height "+rvAt[1]) {
		t.Fatalf("status --vc --file after revoke: %+v", r)
	}
	// A hash no member knows is an answer (not anchored: exit 1), not a
	// failure to ask.
	if r := run(t, bin, "status", "--node", n.grpc, "--genesis", n.genesis, strings.Repeat("cd", 32)); r.code != 1 || !strings.Contains(r.stderr, "INVALID") {
		t.Fatalf("status of an unknown hash: %+v", r)
	}

	// A status list created without url (before signed lists): the entry
	// names the list by its path on a member; the ledger's proof decides.
	// Made with the old names (registry, --status-registry), which scripts
	// written before status-list still use: they work, and the flag says
	// it is deprecated.
	if r := run(t, bin, "registry", "create", "--node", n.grpc, "--home", n.home, "--id", "legacy", "--no-url"); r.code != 0 ||
		!strings.Contains(r.stdout, "status list member-1-registrar/legacy (revocation, 131072 entries) created at height") {
		t.Fatalf("registry create --no-url (the old name of status-list create): %+v", r)
	}
	legacy := filepath.Join(dir, "legacy.json")
	if r := run(t, bin, "vc", "sign", "--node", n.grpc, "--home", n.home, "--status-registry", "legacy", "--status-index", "3",
		"--base-url", online, "--out", legacy, example); r.code != 0 || !strings.Contains(r.stderr, "--status-registry has been deprecated, it is now --status-list") {
		t.Fatalf("vc sign --status-registry (the old name of --status-list) with a list without url: %+v", r)
	}
	if r := run(t, bin, "anchor", "--vc", "--attach", "--in-place", "--node", n.grpc, "--home", n.home, legacy); r.code != 0 {
		t.Fatalf("anchor --vc --attach: %+v", r)
	}
	legacyOK := verify("legacy", legacy, "--online", online)
	expect("verify with a list without url", legacyOK, 0, "VALID")
	if !strings.Contains(legacyOK.stdout, "revocation entry 3 of "+online+"/v1/statuslists/member-1-registrar/legacy: clear") {
		t.Fatalf("verify with a list without url: %+v", legacyOK)
	}

	// A receipt of another credential is refused, and nothing is written.
	other := filepath.Join(dir, "other.json")
	if r := run(t, bin, "vc", "attach", "--home", n.home, "--receipt", filepath.Join(receipts, "plain.json.receipt.json"), "--out", other, badge); r.code == 0 {
		t.Fatalf("vc attach of another credential's receipt: %+v", r)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Fatalf("a refused attach wrote %s", other)
	}
}

// pythonCheck runs vc/testdata/check_vc.py on a credential: it must pass
// and print the hash the CLI printed, and fail on the credential with a
// claim changed. Same rule as vc/python_test.go: without python3-pyld and
// python3-cryptography it fails (make test installs them).
func pythonCheck(t *testing.T, credential, hash string) {
	t.Helper()
	py := ""
	for _, c := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(c, "-c", "import pyld.jsonld, cryptography.hazmat.primitives.asymmetric.ed25519").Run() == nil {
			py = c
			break
		}
	}
	if py == "" {
		t.Fatal("python3 with pyld and cryptography not found: make test-deps (apt-get install python3-pyld python3-cryptography)")
	}
	// The contexts the Go code bundles, by their README rows (URL | file).
	readme, err := os.ReadFile(filepath.Join("..", "..", "vc", "contexts", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := map[string]string{}
	for _, line := range strings.Split(string(readme), "\n") {
		if c := strings.Split(line, "|"); len(c) == 6 && strings.HasPrefix(strings.TrimSpace(c[1]), "https://") {
			abs, _ := filepath.Abs(filepath.Join("..", "..", "vc", "contexts", strings.TrimSpace(c[2])))
			ctx[strings.TrimSpace(c[1])] = abs
		}
	}
	mapFile := filepath.Join(t.TempDir(), "contexts.json")
	b, _ := json.Marshal(ctx)
	os.WriteFile(mapFile, b, 0o600)
	check := func(file string) (int, string) {
		out, err := exec.Command(py, filepath.Join("..", "..", "vc", "testdata", "check_vc.py"), file, mapFile).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	code, out := check(credential)
	if code != 0 || !strings.Contains(out, "credential-hash "+hash+"\n") || !strings.Contains(out, "(eddsa-rdfc-2022): verified") ||
		!strings.Contains(out, "("+vc.AnchorCryptosuite+"): verified") {
		t.Fatalf("python check of %s: exit %d, want 0 and hash %s:\n%s", credential, code, hash, out)
	}
	doc, _ := os.ReadFile(credential)
	bad := filepath.Join(t.TempDir(), "changed.json")
	os.WriteFile(bad, bytes.Replace(doc, []byte("Teamwork"), []byte("Teamwork!"), 1), 0o644)
	if code, out := check(bad); code != 1 {
		t.Fatalf("python check of a changed credential: exit %d, want 1:\n%s", code, out)
	}
}
