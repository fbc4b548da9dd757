package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/credence-ledger/credence/internal/testport"
	"github.com/credence-ledger/credence/node"
)

// TestCLIUpgradeHalt: gov propose upgrade passes on a one-member chain,
// upgrade status shows the plan and the blocks left, the node (a binary
// without the plan's version) halts before its height and exits with
// status 3, and a second start exits 3 at once.
func TestCLIUpgradeHalt(t *testing.T) {
	t.Parallel()
	bin := buildCLI(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", testport.Free(t))
	rpcAddr := fmt.Sprintf("tcp://127.0.0.1:%d", testport.Free(t))
	if r := run(t, bin, "init", "--home", home, "--chain-id", "cli-upgrade",
		"--grpc-address", grpcAddr, "--http-address", fmt.Sprintf("127.0.0.1:%d", testport.Free(t)), "--rpc-laddr", rpcAddr,
		"--p2p-laddr", fmt.Sprintf("tcp://127.0.0.1:%d", testport.Free(t)), "--prometheus-laddr", fmt.Sprintf("127.0.0.1:%d", testport.Free(t))); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	logf, err := os.Create(filepath.Join(dir, "node.log"))
	if err != nil {
		t.Fatal(err)
	}
	start := func() (*exec.Cmd, chan int) {
		cmd := exec.Command(bin, "start", "--home", home)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan int, 1)
		go func() {
			cmd.Wait()
			exited <- cmd.ProcessState.ExitCode()
		}()
		return cmd, exited
	}
	proc, exited := start()
	defer func() {
		proc.Process.Signal(os.Interrupt)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("node log:\n%s", b)
		}
	}()

	var st result
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		st = run(t, bin, "upgrade", "status", "--node", rpcAddr)
		if st.code == 0 || time.Now().After(deadline) {
			break
		}
	}
	if st.code != 0 || !strings.Contains(st.stdout, "app version 2") || !strings.Contains(st.stdout, "no pending upgrade") {
		t.Fatalf("upgrade status before a plan: %+v", st)
	}
	height, _ := strconv.ParseInt(regexp.MustCompile(`height (\d+)`).FindStringSubmatch(st.stdout)[1], 10, 64)
	// Far enough ahead that the plan is still pending when the status is
	// read below: at +5, with the other tests running beside it, the node
	// had already halted by then.
	planAt := height + 20
	sum := sha256.Sum256([]byte("release"))
	if r := run(t, bin, "gov", "propose", "upgrade", "--node", grpcAddr, "--home", home, "--description", "test release",
		"--name", "next", "--height", fmt.Sprint(planAt), "--app-version", "99", "--binary-sha256", hex.EncodeToString(sum[:])); r.code != 0 || !strings.Contains(r.stdout, "PASSED") {
		t.Fatalf("gov propose upgrade: %+v", r)
	}
	if r := run(t, bin, "gov", "propose", "upgrade", "--node", grpcAddr, "--home", home, "--name", "x", "--height", "1", "--app-version", "3", "--binary-sha256", "abc"); r.code != 2 || !strings.Contains(r.stderr, "--binary-sha256") {
		t.Fatalf("a bad --binary-sha256 is a usage error: %+v", r)
	}
	st = run(t, bin, "upgrade", "status", "--node", rpcAddr)
	if st.code != 0 || !strings.Contains(st.stdout, "pending: upgrade next at height "+fmt.Sprint(planAt)+" to app version 99") || !strings.Contains(st.stdout, "blocks remain") {
		t.Fatalf("upgrade status with a plan: %+v", st)
	}

	// Anchoring makes blocks until the node halts.
	var code int
	for i := 0; ; i++ {
		select {
		case code = <-exited:
		case <-time.After(300 * time.Millisecond):
			h := sha256.Sum256([]byte(fmt.Sprint("credential ", i)))
			run(t, bin, "anchor", "--node", grpcAddr, "--home", home, "--hash", hex.EncodeToString(h[:]), "--no-wait", "--timeout", "5s")
			if i > 200 {
				t.Fatal("the node never halted for the upgrade")
			}
			continue
		}
		break
	}
	if code != node.ExitUpgradeNeeded {
		t.Fatalf("node exited with %d at the upgrade, want %d", code, node.ExitUpgradeNeeded)
	}
	info, err := node.ReadUpgradeInfo(home)
	if err != nil || info.Name != "next" || info.Height != planAt {
		t.Fatalf("upgrade-info.json: %+v, %v", info, err)
	}
	proc, exited = start()
	select {
	case code = <-exited:
	case <-time.After(time.Minute):
		t.Fatal("the old binary kept running after its halt")
	}
	if code != node.ExitUpgradeNeeded {
		t.Fatalf("the old binary restarted after the halt exits %d, want %d", code, node.ExitUpgradeNeeded)
	}
}
