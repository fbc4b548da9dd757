package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credence-ledger/credence/internal/testport"
	"github.com/credence-ledger/credence/proof"
	"github.com/credence-ledger/credence/vc"
)

// The CLI as a user runs it: the real binary, a real node process.

// cli is the binary buildCLI builds once for every test of the run, in a
// directory of its own that TestMain removes: a test's TempDir would go
// with the first test that asked.
var cli struct {
	once      sync.Once
	dir, path string
	err       error
}

func buildCLI(t *testing.T) string {
	t.Helper()
	cli.once.Do(func() {
		if cli.dir, cli.err = os.MkdirTemp("", "credenced-cli"); cli.err != nil {
			return
		}
		cli.path = filepath.Join(cli.dir, "credenced")
		if out, err := exec.Command("go", "build", "-tags", "badgerdb", "-o", cli.path, ".").CombinedOutput(); err != nil {
			cli.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if cli.err != nil {
		t.Fatal(cli.err)
	}
	return cli.path
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return result{so.String(), se.String(), code}
}

func TestCLIEndToEnd(t *testing.T) {
	t.Parallel()
	bin := buildCLI(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", testport.Free(t))
	initRes := run(t, bin, "init", "--home", home, "--chain-id", "cli-test",
		"--grpc-address", grpcAddr, "--http-address", fmt.Sprintf("127.0.0.1:%d", testport.Free(t)), "--rpc-laddr", "tcp://"+fmt.Sprintf("127.0.0.1:%d", testport.Free(t)),
		"--p2p-laddr", "tcp://"+fmt.Sprintf("127.0.0.1:%d", testport.Free(t)), "--prometheus-laddr", fmt.Sprintf("127.0.0.1:%d", testport.Free(t)))
	if initRes.code != 0 || !strings.Contains(initRes.stdout, "API token") {
		t.Fatalf("init: %+v", initRes)
	}
	if again := run(t, bin, "init", "--home", home); again.code == 0 || !strings.Contains(again.stderr, "already holds a node") {
		t.Fatalf("second init over the same home must refuse: %+v", again)
	}
	for _, f := range []string{"priv_validator_key.json", "node_key.json", "app.toml", "api-token-member-1-registrar", "issuer-member-1-registrar.key.json"} {
		st, err := os.Stat(filepath.Join(home, "config", f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}

	logf, err := os.Create(filepath.Join(dir, "node.log"))
	if err != nil {
		t.Fatal(err)
	}
	node := exec.Command(bin, "start", "--home", home)
	node.Stdout, node.Stderr = logf, logf
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- node.Wait() }()
	defer func() {
		node.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("node did not stop cleanly on SIGINT: %v", err)
			}
		case <-time.After(30 * time.Second):
			node.Process.Kill()
			t.Error("node did not stop within 30s of SIGINT")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("node log:\n%s", b)
		}
	}()

	creds := filepath.Join(dir, "creds")
	os.MkdirAll(creds, 0o755)
	var files []string
	for i := 0; i < 3; i++ {
		f := filepath.Join(creds, fmt.Sprintf("diploma-%d.txt", i))
		os.WriteFile(f, []byte(fmt.Sprintf("Graduate %d, BSc, 2026\n", i)), 0o644)
		files = append(files, f)
	}
	out := filepath.Join(dir, "receipts")
	var anchored result
	deadline := time.Now().Add(time.Minute)
	for {
		anchored = run(t, bin, append([]string{"anchor", "--node", grpcAddr, "--home", home, "--out", out}, files...)...)
		if anchored.code == 0 || time.Now().After(deadline) || !strings.Contains(anchored.stderr, "Unavailable") {
			break
		}
		time.Sleep(100 * time.Millisecond) // the node's API is not up yet
	}
	if anchored.code != 0 {
		t.Fatalf("anchor: %+v", anchored)
	}
	lines := strings.Split(strings.TrimSpace(anchored.stdout), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "diploma-0.txt") || !strings.Contains(lines[0], "issuer=member-1-registrar") {
		t.Fatalf("anchor output: %q", anchored.stdout)
	}

	// Anchoring again without waiting says what the node already knew,
	// with the token read from standard input rather than a flag.
	fresh := filepath.Join(creds, "new.txt")
	os.WriteFile(fresh, []byte("Graduate 9, MSc, 2026\n"), 0o644)
	tokenBytes, err := os.ReadFile(filepath.Join(home, "config", "api-token-member-1-registrar"))
	if err != nil {
		t.Fatal(err)
	}
	again := exec.Command(bin, "anchor", "--node", grpcAddr, "--token-file", "-", "--no-wait", files[0], fresh)
	again.Stdin = bytes.NewReader(tokenBytes)
	againOut, err := again.Output()
	if err != nil {
		t.Fatalf("anchor --no-wait: %v", err)
	}
	if al := strings.Split(strings.TrimSpace(string(againOut)), "\n"); len(al) != 2 ||
		!strings.Contains(al[0], "already anchored") || !strings.HasSuffix(al[1], "\tqueued") {
		t.Fatalf("anchor --no-wait of one anchored and one new file: %q", againOut)
	}

	genesis := filepath.Join(home, "config", "genesis.json")
	receipt := filepath.Join(out, "diploma-1.txt.receipt.json")
	ok := run(t, bin, "verify", "--genesis", genesis, "--file", files[1], receipt)
	if ok.code != 0 || !strings.Contains(ok.stdout, "VALID") || !strings.Contains(ok.stdout, "member-1-registrar") {
		t.Fatalf("verify: %+v", ok)
	}
	wrongFile := run(t, bin, "verify", "--genesis", genesis, "--file", files[0], receipt)
	if wrongFile.code != 1 || !strings.Contains(wrongFile.stderr, "INVALID") {
		t.Fatalf("verify with another credential file: %+v", wrongFile)
	}

	// The same receipt, fetched by hash, verifies; tampered, it names the failing step.
	hash := strings.Fields(lines[1])[1]
	fetched := run(t, bin, "receipt", "--node", grpcAddr, hash)
	if fetched.code != 0 {
		t.Fatalf("receipt: %+v", fetched)
	}
	fetchedPath := filepath.Join(dir, "fetched.json")
	os.WriteFile(fetchedPath, []byte(fetched.stdout), 0o644)
	if r := run(t, bin, "verify", "--genesis", genesis, fetchedPath); r.code != 0 {
		t.Fatalf("verify fetched receipt: %+v", r)
	}
	tampered := strings.Replace(fetched.stdout, `"issuer": "member-1-registrar"`, `"issuer": "member-2-registrar"`, 1)
	tamperedPath := filepath.Join(dir, "tampered.json")
	os.WriteFile(tamperedPath, []byte(tampered), 0o644)
	if r := run(t, bin, "verify", "--genesis", genesis, tamperedPath); r.code != 1 || !strings.Contains(r.stderr, "batch proof") {
		t.Fatalf("tampered receipt: %+v", r)
	}

	// A write answers the next question: the proposal id voters need, the
	// height a query waits for to see the write.
	heightOf := func(r result) string {
		t.Helper()
		m := regexp.MustCompile(`at height (\d+)`).FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil {
			t.Fatalf("no height in %+v", r)
		}
		return m[1]
	}
	revokedAt := heightOf(run(t, bin, "revoke", "--node", grpcAddr, "--home", home, hash))
	if r := run(t, bin, "status", "--node", grpcAddr, "--genesis", genesis, "--min-height", revokedAt, hash); r.code != 1 ||
		!strings.Contains(r.stdout, "revoked:    at height "+revokedAt) {
		t.Fatalf("status after revoke at %s: %+v", revokedAt, r)
	}
	prop := run(t, bin, "gov", "propose", "params", "--proposal-ttl-blocks", "500", "--node", grpcAddr, "--home", home)
	if m := regexp.MustCompile(`^proposal (\d+) submitted at height \d+: PASSED`).FindStringSubmatch(prop.stdout); prop.code != 0 || m == nil {
		t.Fatalf("gov propose does not name its proposal: %+v", prop)
	} else if r := run(t, bin, "gov", "show", "--node", grpcAddr, m[1]); r.code != 0 || !strings.Contains(r.stdout, "proposal_ttl_blocks 500") {
		t.Fatalf("gov show %s: %+v", m[1], r)
	}
	if r := run(t, bin, "status-list", "create", "--id", "list-1", "--no-url", "--node", grpcAddr, "--home", home); r.code != 0 {
		t.Fatalf("status-list create: %+v", r)
	}
	setAt := heightOf(run(t, bin, "status-list", "set", "--id", "list-1", "--node", grpcAddr, "--home", home, "7"))
	if r := run(t, bin, "status-list", "status", "--node", grpcAddr, "--issuer", "member-1-registrar", "--id", "list-1",
		"--genesis", genesis, "--min-height", setAt, "7"); r.code != 1 || !strings.Contains(r.stdout, "entry 7: SET") || strings.Contains(r.stderr, "error") {
		t.Fatalf("status-list status after set at %s: %+v", setAt, r)
	}
	entry := run(t, bin, "status-list", "entry", "--id", "list-1", "--node", grpcAddr, "--home", home, "--base-url", "https://node.example.edu", "7")
	var got map[string]string
	if err := json.Unmarshal([]byte(entry.stdout), &got); err != nil || entry.code != 0 {
		t.Fatalf("status-list entry: %v %+v", err, entry)
	}
	list := "https://node.example.edu/v1/statuslists/member-1-registrar/list-1"
	if got["type"] != "BitstringStatusListEntry" || got["statusPurpose"] != "revocation" || got["statusListIndex"] != "7" ||
		got["statusListCredential"] != list || got["id"] != list+"#7" {
		t.Fatalf("status-list entry: %v", got)
	}

	// Issuers as DIDs, and a list with a url (by default at the home's
	// HTTP address): each set is signed by the issuer's key, the second
	// one after the list moved under it (it signs again); the entry's
	// statusListCredential fetches the signed list, issued by that DID.
	show := run(t, bin, "issuer", "show", "--node", grpcAddr, "member-1-registrar")
	didM := regexp.MustCompile(`DID (did:key:z6Mk[1-9A-HJ-NP-Za-km-z]+)`).FindStringSubmatch(show.stdout)
	if show.code != 0 || didM == nil || !strings.Contains(show.stdout, "verificationMethod "+didM[1]+"#z6Mk") {
		t.Fatalf("issuer show prints no did:key: %+v", show)
	}
	if r := run(t, bin, "status-list", "create", "--id", "list-2", "--node", grpcAddr, "--home", home); r.code != 0 ||
		!strings.Contains(r.stdout, "/v1/statuslists/member-1-registrar/list-2") {
		t.Fatalf("status-list create with the default url: %+v", r)
	}
	heightOf(run(t, bin, "status-list", "set", "--id", "list-2", "--node", grpcAddr, "--home", home, "9"))
	set2 := heightOf(run(t, bin, "status-list", "set", "--id", "list-2", "--node", grpcAddr, "--home", home, "10"))
	entry2 := run(t, bin, "status-list", "entry", "--id", "list-2", "--node", grpcAddr, "--home", home, "9")
	var got2 map[string]string
	if err := json.Unmarshal([]byte(entry2.stdout), &got2); err != nil || entry2.code != 0 {
		t.Fatalf("status-list entry of list-2: %v %+v", err, entry2)
	}
	listURL := got2["statusListCredential"]
	if !strings.HasPrefix(listURL, "http://127.0.0.1:") || !strings.HasSuffix(listURL, "/v1/statuslists/member-1-registrar/list-2") {
		t.Fatalf("status-list entry of list-2: statusListCredential %q", listURL)
	}
	want, _ := strconv.ParseInt(set2, 10, 64)
	var doc []byte
	for deadline := time.Now().Add(time.Minute); ; {
		res, err := http.Get(listURL)
		if err == nil {
			doc, _ = io.ReadAll(res.Body)
			res.Body.Close()
			h, _ := strconv.ParseInt(res.Header.Get("Credence-Height"), 10, 64)
			if res.StatusCode == 200 && h >= want && res.Header.Get("Credence-List-Signed") == "true" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no signed list of height >= %d at %s (%v): %s", want, listURL, err, doc)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := vc.Verify(doc, vc.ResolveDIDKey); err != nil {
		t.Fatalf("the served list does not verify: %v\n%s", err, doc)
	}
	var d struct {
		ID      string `json:"id"`
		Issuer  string `json:"issuer"`
		Subject struct {
			EncodedList string `json:"encodedList"`
		} `json:"credentialSubject"`
	}
	if err := json.Unmarshal(doc, &d); err != nil || d.ID != listURL || d.Issuer != didM[1] {
		t.Fatalf("served list id %q issuer %q, want %q %q (%v)", d.ID, d.Issuer, listURL, didM[1], err)
	}
	if bits, err := proof.DecodeStatusList(d.Subject.EncodedList, 1<<20); err != nil || !proof.BitSet(bits, 9) || !proof.BitSet(bits, 10) {
		t.Fatalf("served list does not hold entries 9 and 10 (%v)", err)
	}

	// Bad input gets a clear message naming what is wrong.
	other := filepath.Join(dir, "other")
	run(t, bin, "init", "--home", other, "--chain-id", "another-chain")
	badToken := filepath.Join(dir, "bad-token")
	if err := os.WriteFile(badToken, []byte("nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Exit 1 is an answer (invalid); 2 a check that could not be made
	// (bad flags, a file not readable); other commands fail with 1.
	bad := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"unknown hash", []string{"receipt", "--node", grpcAddr, strings.Repeat("ab", 32)}, "not anchored", 1},
		{"short hash", []string{"receipt", "--node", grpcAddr, "abcd"}, "2 bytes, want 32", 1},
		{"negative wait", []string{"receipt", "--node", grpcAddr, "--wait", "-1s", strings.Repeat("ab", 32)}, "--wait must not be negative", 1},
		{"bad multibase", []string{"receipt", "--node", grpcAddr, "zI0OI0"}, "not multibase or hex", 1},
		{"anchor bad --hash", []string{"anchor", "--node", grpcAddr, "--home", home, "--hash", "xyz"}, "--hash", 1},
		{"anchor nothing", []string{"anchor", "--node", grpcAddr, "--home", home}, "nothing to anchor", 1},
		{"anchor bad token", []string{"anchor", "--node", grpcAddr, "--token-file", badToken, files[0]}, "unknown API token", 1},
		{"anchor token in argv", []string{"anchor", "--node", grpcAddr, "--token", "nope", files[0]}, "--token-file", 1},
		{"verify other chain", []string{"verify", "--genesis", filepath.Join(other, "config", "genesis.json"), receipt}, "chain id", 1},
		{"verify no genesis", []string{"verify", receipt}, "--genesis is required", 2},
		{"verify truncated", []string{"verify", "--genesis", genesis, truncated(t, receipt)}, "receipt JSON", 1},
		{"verify missing file", []string{"verify", "--genesis", genesis, filepath.Join(dir, "nope.json")}, "no such file", 2},
		{"verify version 1", []string{"verify", "--genesis", genesis, "../../proof/testdata/receipt-v1.json"}, "version 1, this verifier reads version 2; fetch a new receipt from any member node (credenced receipt HASH)", 1},
		{"verify too large", []string{"verify", "--genesis", genesis, "--max-receipt-bytes", "100", receipt}, "--max-receipt-bytes", 2},
	}
	// The benchmark's load generator, briefly: two receipts of every request
	// verified, and receipts read back while it anchors, every read verified.
	loadArgs := []string{"loadgen", "--node", grpcAddr, "--home", home, "--rate", "400", "--per-request", "50",
		"--clients", "2", "--duration", "3s", "--receipt-clients", "2", "--receipt-rate", "200", "--verify-reads-every", "1"}
	resFile := filepath.Join(dir, "loadgen.kv")
	if r := run(t, bin, append(loadArgs, "--result", resFile)...); r.code != 0 {
		t.Fatalf("loadgen: %+v", r)
	}
	kv, err := os.ReadFile(resFile)
	if err != nil {
		t.Fatal(err)
	}
	figures := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(kv)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		figures[k] = v
	}
	n := func(k string) int {
		v, err := strconv.Atoi(figures[k])
		if err != nil {
			t.Fatalf("loadgen figure %s: %v (%v)", k, err, figures)
		}
		return v
	}
	// Two hashes of each request: its last and one other.
	if n("verified") == 0 || n("verified") != 2*n("ack_requests") || n("bad") != 0 ||
		n("reads") == 0 || n("reads_verified") != n("reads") || n("reads_bad") != 0 {
		t.Fatalf("loadgen figures: %v", figures)
	}
	bad = append(bad, struct {
		name string
		args []string
		want string
		code int
	}{"loadgen other chain", append(loadArgs, "--genesis", filepath.Join(other, "config", "genesis.json")), "does not verify", 1})
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, bin, c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("want exit %d and %q, got %+v", c.code, c.want, r)
			}
			if strings.Contains(r.stderr, "panic") {
				t.Fatalf("panicked: %s", r.stderr)
			}
		})
	}
}

func truncated(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "truncated.json")
	os.WriteFile(p, b[:len(b)/2], 0o644)
	return p
}
