package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
