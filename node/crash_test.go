package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// buildBinary compiles credenced once per test binary run.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func credencedBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "credenced-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "credenced")
		cmd := exec.Command("go", "build", "-tags", "badgerdb", "-o", buildOnce.path, "../cmd/credenced")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

// process is a credenced start running as a child process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProcess(t *testing.T, bin string, h *testHome, logPath string) *process {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "start", "--home", h.dir,
		"--grpc-address", h.ov.GRPCAddress, "--rpc-laddr", h.ov.Ports.RPC,
		"--p2p-laddr", h.ov.Ports.P2P, "--prometheus-laddr", h.ov.Ports.Prometheus)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func waitServing(ctx context.Context, t *testing.T, cl pb.CredenceClient, p *process, logPath string) {
	t.Helper()
	for {
		if _, err := cl.NodeInfo(ctx, &pb.NodeInfoRequest{}); err == nil {
			return
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("node exited before serving:\n%s", tail(string(b), 40))
		case <-ctx.Done():
			t.Fatal("node did not serve before the deadline")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

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

// checkAnchoredOnce: every hash has a verifying receipt, and across all the
// issuer's batches each appears exactly once.
func checkAnchoredOnce(ctx context.Context, t *testing.T, cl pb.CredenceClient, h *testHome, hashes [][]byte) {
	t.Helper()
	var maxSeq uint64
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan []byte)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for hash := range work {
				r, err := pollReceipt(ctx, cl, hash)
				if err != nil {
					t.Error(err)
					continue
				}
				if _, err := proof.Verify(r, h.trust); err != nil {
					t.Errorf("receipt of acknowledged hash %x: %v", hash, err)
				}
				mu.Lock()
				maxSeq = max(maxSeq, r.Batch.Seq)
				mu.Unlock()
			}
		}()
	}
	for _, hash := range hashes {
		work <- hash
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	count := make(map[string]int)
	var found uint64
	for seq := uint64(1); seq <= maxSeq; seq++ {
		res, err := cl.GetBatch(ctx, &pb.GetBatchRequest{Issuer: "member-1-registrar", Seq: seq, IncludeHashes: true})
		if status.Code(err) == codes.NotFound {
			continue // a sequence number used by a batch that was never anchored
		}
		if err != nil {
			t.Fatal(err)
		}
		found++
		for i := 0; i < len(res.Hashes); i += 32 {
			count[string(res.Hashes[i:i+32])]++
		}
	}
	for _, hash := range hashes {
		if c := count[string(hash)]; c != 1 {
			t.Fatalf("acknowledged hash %x anchored %d times", hash, c)
		}
	}
	for hash, c := range count {
		if c != 1 {
			t.Fatalf("hash %x anchored %d times", []byte(hash), c)
		}
	}
	t.Logf("%d acknowledged hashes anchored exactly once across %d batches", len(hashes), found)
}
