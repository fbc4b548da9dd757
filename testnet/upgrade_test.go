//go:build e2e

package testnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cnode "github.com/credence-ledger/credence/node"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

var nextBinary struct {
	once sync.Once
	path string
	err  error
}

// credencedNext is release N+1 of the upgrade test: the upgradetest build,
// whose version 3 handler runs a small migration and changes one rule.
func credencedNext(t testing.TB) string {
	t.Helper()
	nextBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "credenced-e2e-next")
		if err != nil {
			nextBinary.err = err
			return
		}
		nextBinary.path = filepath.Join(dir, "credenced")
		out, err := exec.Command("go", "build", "-tags", "badgerdb,upgradetest", "-o", nextBinary.path, "../cmd/credenced").CombinedOutput()
		if err != nil {
			nextBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if nextBinary.err != nil {
		t.Fatal(nextBinary.err)
	}
	return nextBinary.path
}

// headerAppVersion is the app version in the header of nd's block h.
func (nd *node) headerAppVersion(ctx context.Context, h int64) (string, error) {
	var b struct {
		Block struct {
			Header struct {
				Version struct {
					App string `json:"app"`
				} `json:"version"`
			} `json:"header"`
		} `json:"block"`
	}
	if err := nd.rpcJSON(ctx, fmt.Sprintf("/block?height=%d", h), &b); err != nil {
		return "", err
	}
	return b.Block.Header.Version.App, nil
}

// TestUpgrade: four validators run release N under load; an upgrade to app
// version 3 is proposed and voted; every node halts with exit status 3 and
// data/upgrade-info.json at the same height; release N+1 starts on every
// home and the chain goes on at version 3; receipts of batches before and
// after the upgrade height verify offline with the original genesis; a
// fifth node joins by state sync; no acknowledged hash is lost.
func TestUpgrade(t *testing.T) {
	next := credencedNext(t)
	n := newNetworkWith(t, 4, func(home string) {
		editAppToml(t, home, "snapshot_interval = 1000", "snapshot_interval = 10",
			"snapshot_keep_recent = 2", "snapshot_keep_recent = 20")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	a := n.nodes[0]
	l := startLoad(ctx, a, 2)
	drive := startLoad(ctx, n.nodes[1], 1)

	h0 := n.waitHeight(ctx, a, 3)
	planAt := h0 + 20
	out := runCLI(t, n.bin, "gov", "propose", "upgrade", "--node", a.grpc, "--home", a.home,
		"--description", "release N+1", "--name", "v3-test", "--height", fmt.Sprint(planAt), "--app-version", "3")
	m := regexp.MustCompile(`proposal (\d+) submitted`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("gov propose upgrade: %s", out)
	}
	runCLI(t, n.bin, "gov", "vote", m[1], "yes", "--node", a.grpc, "--home", n.nodes[1].home)
	out = runCLI(t, n.bin, "gov", "vote", m[1], "yes", "--node", a.grpc, "--home", n.nodes[2].home)
	if !strings.Contains(out, "PASSED") {
		t.Fatalf("upgrade proposal did not pass: %s", out)
	}
	status := runCLI(t, n.bin, "upgrade", "status", "--node", "tcp://"+a.rpc)
	if !strings.Contains(status, "pending: upgrade v3-test") {
		t.Fatalf("upgrade status: %s", status)
	}
	t.Logf("upgrade v3-test passed for height %d: %s", planAt, strings.TrimSpace(status))

	// Every node halts by itself, with status 3, before the plan's height.
	for _, nd := range n.nodes {
		select {
		case <-nd.exited:
		case <-ctx.Done():
			t.Fatalf("node%d did not halt for the upgrade", nd.i)
		}
		if code := nd.cmd.ProcessState.ExitCode(); code != cnode.ExitUpgradeNeeded {
			t.Fatalf("node%d exited %d, want %d", nd.i, code, cnode.ExitUpgradeNeeded)
		}
		info, err := cnode.ReadUpgradeInfo(nd.home)
		if err != nil || info.Name != "v3-test" || info.Height != planAt {
			t.Fatalf("node%d upgrade-info.json: %+v, %v", nd.i, info, err)
		}
	}
	acked := l.finish()
	drive.finish()
	t.Logf("all four halted before height %d; %d hashes acknowledged before the halt", planAt, len(acked))

	// Release N+1 on every home.
	n.bin = next
	for _, nd := range n.nodes {
		n.start(nd)
	}
	for _, nd := range n.nodes {
		n.waitHeight(ctx, nd, planAt+2)
	}
	for h, want := range map[int64]string{planAt: "2", planAt + 1: "3"} {
		got, err := a.headerAppVersion(ctx, h)
		if err != nil || got != want {
			t.Fatalf("header %d app version %q (%v), want %s", h, got, err, want)
		}
	}
	status = runCLI(t, n.bin, "upgrade", "status", "--node", "tcp://"+a.rpc)
	if !strings.Contains(status, "app version 3") || !strings.Contains(status, "no pending upgrade") {
		t.Fatalf("upgrade status after the switch: %s", status)
	}

	// Anchoring goes on; version 3's rule holds (a proposal needs a description).
	l = startLoad(ctx, a, 2)
	drive = startLoad(ctx, n.nodes[1], 1)
	if out, err := exec.Command(n.bin, "gov", "propose", "params", "--proposal-ttl-blocks", "9", "--node", a.grpc, "--home", a.home).CombinedOutput(); err == nil || !strings.Contains(string(out), "needs a description") {
		t.Fatalf("a proposal without a description after the upgrade: %v %s", err, out)
	}
	trustHeight := n.waitHeight(ctx, a, planAt+12)
	n.waitHeight(ctx, a, planAt+22)
	after := l.finish()

	// Receipts from before and after the upgrade height verify with the
	// original genesis; each acknowledged hash is anchored exactly once.
	all := append(acked, after...)
	n.checkAnchoredOnce(ctx, n.nodes[2], "member-0-registrar", all)
	var before, past int
	for _, h := range [][]byte{acked[0], acked[len(acked)-1], after[0], after[len(after)-1]} {
		r, err := n.nodes[3].receipt(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		v, err := proof.Verify(r, n.trust)
		if err != nil {
			t.Fatalf("receipt: %v", err)
		}
		if v.Height < planAt {
			before++
		} else {
			past++
		}
	}
	if before == 0 || past == 0 {
		t.Fatalf("receipts checked: %d before height %d, %d at or after it; want both", before, planAt, past)
	}
	n.checkNoFork(ctx, planAt+2)

	// A fifth node joins by state sync, from a snapshot after the upgrade.
	joiner := n.newMember(stateSyncFrom(n, trustHeight, a.blockHash(ctx, t, trustHeight)))
	n.start(joiner)
	target := n.height(ctx, a)
	n.waitHeight(ctx, joiner, target)
	for _, h := range [][]byte{acked[0], after[len(after)-1]} {
		r, err := joiner.receipt(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := proof.Verify(r, n.trust); err != nil {
			t.Fatalf("receipt from the state-synced node: %v", err)
		}
	}
	var st struct {
		SyncInfo struct {
			EarliestBlockHeight string `json:"earliest_block_height"`
		} `json:"sync_info"`
	}
	if err := joiner.rpcJSON(ctx, "/status", &st); err != nil || st.SyncInfo.EarliestBlockHeight == "1" {
		t.Fatalf("node4 did not state sync (earliest block %q): %v", st.SyncInfo.EarliestBlockHeight, err)
	}
	t.Logf("node4 joined by state sync at %d (after the upgrade at %d) and serves verifying receipts", trustHeight, planAt)

	// Its member is voted in after the upgrade: a receipt anchored then
	// carries a validator-set link from the genesis set across the upgrade.
	keys := runCLI(t, n.bin, "keys", "--home", joiner.home)
	field := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `:\s+(\S+)`).FindStringSubmatch(keys)
		if m == nil {
			t.Fatalf("credenced keys printed no %q", name)
		}
		return m[1]
	}
	out = runCLI(t, n.bin, "gov", "propose", "add-member", "--node", a.grpc, "--home", a.home, "--description", "node4 joins",
		"--id", field("member"), "--admin-key", field("admin key"), "--validator-key", field("validator key"), "--power", "10")
	if m = regexp.MustCompile(`proposal (\d+) submitted`).FindStringSubmatch(out); m == nil {
		t.Fatalf("gov propose add-member: %s", out)
	}
	runCLI(t, n.bin, "gov", "vote", m[1], "yes", "--node", a.grpc, "--home", n.nodes[1].home)
	runCLI(t, n.bin, "gov", "vote", m[1], "yes", "--node", a.grpc, "--home", n.nodes[2].home)
	linked := randomHashes(1)
	for {
		var vs struct {
			ValidatorInfo struct {
				VotingPower string `json:"voting_power"`
			} `json:"validator_info"`
		}
		if err := joiner.rpcJSON(ctx, "/status", &vs); err == nil && vs.ValidatorInfo.VotingPower == "10" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("node4 did not become a validator")
		case <-time.After(200 * time.Millisecond):
		}
	}
	b := n.nodes[1]
	if _, err := b.client.Submit(b.authed(ctx), &pb.SubmitRequest{Hashes: linked}); err != nil {
		t.Fatal(err)
	}
	r, err := joiner.receipt(ctx, linked)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.ValidatorLinks) == 0 {
		t.Fatal("receipt after the validator change carries no link")
	}
	if _, err := proof.Verify(r, n.trust); err != nil {
		t.Fatalf("receipt with a validator link across the upgrade: %v", err)
	}
	drive.finish()
	t.Logf("a receipt at height %d with %d validator link(s) across the upgrade verifies with the original genesis", r.Batch.Height, len(r.ValidatorLinks))
}
