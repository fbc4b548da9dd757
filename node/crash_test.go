//go:build e2e

package node

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestKill9WhileSubmitting kills the node with SIGKILL while clients submit,
// restarts it, and checks that every acknowledged hash is anchored exactly
// once with a receipt that verifies.
func TestKill9WhileSubmitting(t *testing.T) {
	kill9WhileSubmitting(t, newTestHome(t), nil)
}

// TestKill9WhilePruning is the same on a node that prunes all but its
// newest blocks: the catch-up after each kill finds every block it needs.
func TestKill9WhilePruning(t *testing.T) {
	h := newTestHome(t)
	h.setConfig(t, func(c *config) {
		c.RetainBlocks = 1
		c.SnapshotInterval = 0
	})
	kill9WhileSubmitting(t, h, func() {
		// CometBFT's own status: the earliest block the node still holds.
		res, err := http.Get("http://" + strings.TrimPrefix(h.ov.Ports.RPC, "tcp://") + "/status")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var st struct {
			Result struct {
				SyncInfo struct {
					Earliest string `json:"earliest_block_height"`
					Latest   string `json:"latest_block_height"`
				} `json:"sync_info"`
			} `json:"result"`
		}
		if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		if st.Result.SyncInfo.Earliest == "1" {
			t.Fatalf("no block pruned: the node holds %s to %s", st.Result.SyncInfo.Earliest, st.Result.SyncInfo.Latest)
		}
		t.Logf("the node holds blocks %s to %s", st.Result.SyncInfo.Earliest, st.Result.SyncInfo.Latest)
	})
}

// kill9WhileSubmitting runs two rounds of submitting, SIGKILL, restart
// and checking; running is called on the last restart before its stop.
func kill9WhileSubmitting(t *testing.T, h *testHome, running func()) {
	bin := credencedBinary(t)
	logPath := filepath.Join(t.TempDir(), "node.log")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cl := dialTest(t, h.ov.GRPCAddress)

	var all [][]byte
	for round := 0; round < 2; round++ {
		p := startProcess(t, bin, h, logPath)
		waitServing(ctx, t, cl, p, logPath)

		// Four clients submit small requests until the node dies under them.
		var mu sync.Mutex
		var acked [][]byte
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for c := 0; c < 4; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					hs := randomHashes(t, 50)
					res, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hs})
					if err != nil {
						return // the node is gone; this request was never acknowledged
					}
					if res.Queued != 50 {
						t.Errorf("fresh random hashes: queued %d of 50", res.Queued)
					}
					mu.Lock()
					for i := 0; i < len(hs); i += 32 {
						acked = append(acked, hs[i:i+32])
					}
					mu.Unlock()
				}
			}()
		}
		// Let batches be cut and committed mid-stream, then kill.
		deadline := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.done
		close(stop)
		wg.Wait()
		mu.Lock()
		hashes := acked
		mu.Unlock()
		if len(hashes) == 0 {
			t.Fatal("no submission was acknowledged before the kill")
		}
		t.Logf("round %d: %d hashes acknowledged before SIGKILL", round, len(hashes))

		all = append(all, hashes...)
		p = startProcess(t, bin, h, logPath)
		waitServing(ctx, t, cl, p, logPath)
		// The earlier rounds' receipts too: their blocks may be pruned.
		checkAnchoredOnce(ctx, t, cl, h, all)
		if round == 1 {
			if running != nil {
				running()
			}
			// A clean stop after recovery.
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-ctx.Done():
				t.Fatal("node did not stop on SIGTERM")
			}
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("clean stop exited %d", code)
			}
		} else {
			p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
	}
	if b, err := os.ReadFile(logPath); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			if strings.Contains(sc.Text(), "level=ERROR") {
				t.Logf("node log: %s", sc.Text())
			}
		}
	}
}
