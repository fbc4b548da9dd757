//go:build e2e

package testnet

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/credence-ledger/credence/proto/credence/v1"

	"github.com/credence-ledger/credence/proof"
)

var (
	syncHashes = flag.Int("statesync.hashes", 1_000_000, "BenchmarkStateSyncJoin: hashes anchored before the fifth node joins")
	syncRate   = flag.Int("statesync.rate", 35_000, "BenchmarkStateSyncJoin: hashes per second offered while the chain fills")
)

// BenchmarkStateSyncJoin measures a fifth node joining, by state sync, a
// chain of four validators that holds -statesync.hashes anchored hashes:
// from its start to a verifying receipt of the chain's first batch, with
// the restore time it logs, the snapshot's size and its peak RSS. The
// chain is filled by `credenced loadgen` first; that takes hashes/rate
// seconds and is not measured. Run it once: `make bench-statesync`.
func BenchmarkStateSyncJoin(b *testing.B) {
	n := newNetworkWith(b, 4, func(home string) {
		// A snapshot about every 50 s of blocks: often enough that one
		// comes soon after the fill, rarely enough not to weigh on it.
		editAppToml(b, home, "snapshot_interval = 1000", "snapshot_interval = 200",
			"snapshot_keep_recent = 2", "snapshot_keep_recent = 3")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	a := n.nodes[0]
	first := randomHashes(1)
	if _, err := a.client.Submit(a.authed(ctx), &pb.SubmitRequest{Hashes: first}); err != nil {
		b.Fatal(err)
	}
	if _, err := a.receipt(ctx, first); err != nil {
		b.Fatal(err)
	}

	fillStart := time.Now()
	var acked int
	for acked < *syncHashes {
		secs := min(max((*syncHashes-acked) / *syncRate, 1), 120)
		result := filepath.Join(n.dir, "loadgen.result")
		out, err := exec.Command(n.bin, "loadgen", "--node", a.grpc, "--home", a.home,
			"--rate", fmt.Sprint(*syncRate), "--duration", fmt.Sprintf("%ds", secs), "--clients", "32",
			"--verify-every", "100", "--result", result).CombinedOutput()
		if err != nil {
			b.Fatalf("loadgen: %v\n%s", err, out)
		}
		kv := readKV(b, result)
		got, _ := strconv.Atoi(kv["acked"])
		acked += got
		b.Logf("filled %d of %d hashes (this run: %s/s, final p99 %s ms)", acked, *syncHashes, kv["acked_per_s"], kv["final_p99_ms"])
	}
	filled := n.height(ctx, a)
	b.Logf("chain holds %d hashes at height %d after %s", acked+1, filled, time.Since(fillStart).Round(time.Second))

	// A trickle keeps blocks coming, so that a snapshot is taken above the
	// fill and the joiner has blocks to follow, without weighing on the
	// join.
	trickle, stopTrickle := context.WithCancel(ctx)
	defer stopTrickle()
	go func() {
		for trickle.Err() == nil {
			a.client.Submit(a.authed(trickle), &pb.SubmitRequest{Hashes: randomHashes(10)})
			time.Sleep(250 * time.Millisecond)
		}
	}()
	snap := waitSnapshot(ctx, b, a, filled)
	b.Logf("node0 holds a snapshot at height %d", snap)
	trustHeight := n.height(ctx, a)

	joiner := n.newMember(stateSyncFrom(n, trustHeight, a.blockHash(ctx, b, trustHeight)))
	b.ResetTimer()
	start := time.Now()
	n.start(joiner)
	// Joined: restored, caught up with the chain, and serving receipts.
	restore, chunks := restoreFigures(ctx, b, joiner.log)
	n.waitHeight(ctx, joiner, n.height(ctx, a))
	r, err := joiner.receipt(ctx, first)
	if err != nil {
		b.Fatal(err)
	}
	joined := time.Since(start)
	b.StopTimer()
	if _, err := proof.Verify(r, n.trust); err != nil {
		b.Fatalf("receipt of the first batch from the joiner: %v", err)
	}
	hwm := peakRSS(b, joiner)
	b.Logf("node4 joined by state sync in %s (restore %s of %d chunks), caught up and served a verifying receipt of the first batch; peak RSS %d MB",
		joined.Round(time.Millisecond), restore, chunks, hwm>>20)
	b.ReportMetric(float64(acked+1), "hashes")
	b.ReportMetric(joined.Seconds(), "s/join")
	b.ReportMetric(restore.Seconds(), "s/restore")
	b.ReportMetric(float64(chunks), "chunks")
	b.ReportMetric(float64(hwm>>20), "MB-peak-RSS")
}

func readKV(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// waitSnapshot waits until nd holds a snapshot at or above height.
func waitSnapshot(ctx context.Context, t testing.TB, nd *node, height int64) int64 {
	t.Helper()
	for {
		entries, _ := os.ReadDir(filepath.Join(nd.home, "data", "snapshots"))
		for _, e := range entries {
			if h, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && h >= height {
				return h
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node%d took no snapshot at or above height %d", nd.i, height)
		case <-time.After(time.Second):
		}
	}
}

// peakRSS is the running node's peak resident set (VmHWM).
func peakRSS(t testing.TB, nd *node) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", nd.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// restoreFigures reads the restore's duration and chunk count from a
// node's log, once the restore is done.
func restoreFigures(ctx context.Context, t testing.TB, log string) (time.Duration, int) {
	t.Helper()
	for ctx.Err() == nil {
		if took, chunks, _ := restoreLogged(t, log); took > 0 {
			return took, chunks
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, _, b := restoreLogged(t, log)
	var said []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "snapshot") || strings.Contains(l, "statesync") {
			said = append(said, l)
		}
	}
	t.Fatalf("the joiner logged no restore; of snapshots it said:\n%s", strings.Join(said[:min(len(said), 40)], "\n"))
	return 0, 0
}

func restoreLogged(t testing.TB, log string) (took time.Duration, chunks int, b []byte) {
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "chunks="); ok && strings.Contains(l, "restoring snapshot") {
				chunks, _ = strconv.Atoi(v)
			}
			if v, ok := strings.CutPrefix(f, "took="); ok && strings.Contains(l, "snapshot restored") {
				took, _ = time.ParseDuration(v)
			}
		}
	}
	return took, chunks, b
}
