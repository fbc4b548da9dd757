//go:build e2e && torture

package testnet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credence-ledger/credence/internal/testport"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// Where a kill landed in a joiner's restore, as its log tells (node/restore.go
// and CometBFT's state sync log these lines).
const (
	phaseFetching = iota // the snapshot accepted, no chunk applied yet: fetching, or restoring the last chunk
	phaseChunks          // some chunks applied
	phaseIndexing        // state imported, the index being written
	phaseRestored        // restore done, consensus not yet told
	phaseTakenUp         // consensus verified the restore, its state not yet saved
	phaseBlocks          // consensus saved its state from the restore, and fetches blocks
	phases
)

var phaseNames = [phases]string{"fetching or applying the first chunk", "between chunks", "while indexing", "restored, consensus not yet told", "consensus taking it up", "consensus fetching blocks on it"}

// restoreTally counts the restore trials by where the kill landed.
type restoreTally struct {
	trials  int
	landed  [phases]int
	refused int
	// took is the last restore measured, from the snapshot accepted to
	// consensus taking it up; the kill moments are drawn within it.
	took time.Duration
}

func (rt restoreTally) String() string {
	var parts []string
	for i, n := range rt.landed {
		parts = append(parts, fmt.Sprintf("%s %d", phaseNames[i], n))
	}
	return fmt.Sprintf("%d (%s); restarts refused %d; last restore took %v", rt.trials, strings.Join(parts, ", "), rt.refused, rt.took)
}

// restoreTrial: a node joins n by state sync and is killed with SIGKILL at
// a random moment of its snapshot restore, then started again. The moment
// is seeded: in half the trials a fraction, 0 to 1.5, of the last restore's
// measured time after the snapshot is accepted; in the other half 0 to 50
// ms after the restore is done, around consensus taking it up. It must restore anew or go on from where consensus took
// the restore up (or refuse with a clear remedy, which the trial then
// follows), catch up with the validators' app hash, and serve verifying
// receipts for hashes anchored before it joined. It returns the hashes
// acknowledged during the trial.
func restoreTrial(ctx context.Context, t *testing.T, r *rand.Rand, n *network, trial int, tally *restoreTally) int {
	t.Helper()
	submitter := n.nodes[r.IntN(len(n.nodes))]
	atEnd, frac := r.IntN(2) == 0, r.IntN(1000)
	issuer := fmt.Sprintf("member-%d-registrar", submitter.i)
	// Blocks keep coming: the joiner's light client and catch-up need them.
	l := startLoad(ctx, submitter, 1)

	before := randomHashes(64)
	if _, err := submitter.client.Submit(submitter.authed(ctx), &pb.SubmitRequest{Hashes: before}); err != nil {
		t.Fatal(err)
	}
	var anchored [][]byte
	for i := 0; i < len(before); i += 32 {
		anchored = append(anchored, before[i:i+32])
	}
	if _, err := submitter.receipt(ctx, anchored[len(anchored)-1]); err != nil {
		t.Fatal(err)
	}
	a := n.nodes[0]
	trustHeight := n.height(ctx, a)
	trustHash := a.blockHash(ctx, t, trustHeight)
	// A snapshot above the trust height (every 5 blocks, taken 2 after).
	n.waitHeight(ctx, a, trustHeight+7)

	j := n.newHome(10+trial, testport.Range(t, 10), stateSyncFrom(n, trustHeight, trustHash))
	t.Cleanup(func() {
		if j.running() {
			j.cmd.Process.Kill()
			<-j.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(j.log)
			lines := strings.Split(string(b), "\n")
			t.Logf("node%d (joiner) log tail:\n%s", j.i, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	n.start(j)
	waitLog(ctx, t, j, 0, `msg="restoring snapshot" `)
	took := tally.took
	if took == 0 {
		took = time.Second
	}
	after := took * time.Duration(frac) * 3 / 2000
	if atEnd {
		// Aimed at the moments around consensus taking the restore up.
		waitLog(ctx, t, j, 0, `msg="snapshot restored"`)
		after = time.Duration(frac) * 50 * time.Microsecond
	}
	select {
	case <-time.After(after):
	case <-j.exited:
		t.Fatalf("node%d exited while restoring", j.i)
	}
	n.stop(j, syscall.SIGKILL)
	killed := readLog(t, j, 0)
	phase := restorePhase(killed)
	tally.landed[phase]++
	if d, ok := restoreTook(killed); ok {
		tally.took = d
	}

	from := int64(len(killed))
	n.start(j)
	target := n.height(ctx, a) + 1
	if !caughtUp(ctx, j, target) {
		log := readLog(t, j, from)
		if !strings.Contains(log, "recover by") {
			t.Fatalf("node%d exited on restart after a kill %s, naming no remedy", j.i, phaseNames[phase])
		}
		// Refused, naming the remedy: state sync into a fresh data
		// directory (the validator state file stays).
		tally.refused++
		t.Logf("trial %d: node%d refused to restart: %s", trial, j.i, lastLine(log))
		entries, _ := os.ReadDir(filepath.Join(j.home, "data"))
		for _, e := range entries {
			if e.Name() != "priv_validator_state.json" {
				os.RemoveAll(filepath.Join(j.home, "data", e.Name()))
			}
		}
		from = int64(len(readLog(t, j, 0)))
		n.start(j)
		if !caughtUp(ctx, j, target) {
			t.Fatalf("node%d did not catch up after its data directory was cleared", j.i)
		}
	}
	restarted := readLog(t, j, from)
	if d, ok := restoreTook(restarted); ok {
		tally.took = d
	}
	if strings.Contains(restarted, "panic:") || strings.Contains(killed, "panic:") {
		t.Fatalf("node%d panicked", j.i)
	}
	want := blockAppHash(ctx, t, a, target)
	if got := blockAppHash(ctx, t, j, target); got != want {
		t.Fatalf("node%d has app hash %s at height %d, node0 %s", j.i, got, target, want)
	}
	from0 := "the snapshot accepted"
	if atEnd {
		from0 = "the restore done"
	}
	t.Logf("trial %d: state sync of node%d killed %v after %s (%s); restarted, it caught up to height %d with node0's app hash",
		trial, j.i, after, from0, phaseNames[phase], target)
	acked := l.finish()
	n.checkAnchoredOnce(ctx, j, issuer, anchored)
	n.checkAnchoredOnce(ctx, submitter, issuer, acked)
	if len(acked) > 0 {
		n.checkAnchoredOnce(ctx, j, issuer, acked[:min(len(acked), 200)])
	}
	n.stop(j, syscall.SIGTERM)
	os.RemoveAll(j.home)
	tally.trials++
	return len(acked)
}

// caughtUp waits until nd has committed height h; false if it exited.
func caughtUp(ctx context.Context, nd *node, h int64) bool {
	for {
		if st, err := nd.status(ctx); err == nil && st.LatestHeight >= h {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-nd.exited:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// blockAppHash is the app hash in nd's block h, once nd serves it.
func blockAppHash(ctx context.Context, t *testing.T, nd *node, h int64) string {
	t.Helper()
	for {
		got, err := nd.appHash(ctx, h)
		if err == nil {
			return got
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node%d block %d: %v", nd.i, h, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// readLog is nd's log from byte from on.
func readLog(t *testing.T, nd *node, from int64) string {
	t.Helper()
	b, err := os.ReadFile(nd.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[min(from, int64(len(b))):])
}

// waitLog waits for a line holding s in nd's log after byte from.
func waitLog(ctx context.Context, t *testing.T, nd *node, from int64, s string) {
	t.Helper()
	for !strings.Contains(readLog(t, nd, from), s) {
		select {
		case <-ctx.Done():
			t.Fatalf("node%d never logged %q", nd.i, s)
		case <-nd.exited:
			t.Fatalf("node%d exited before logging %q", nd.i, s)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func restorePhase(log string) int {
	switch {
	case strings.Contains(log, `msg="Enabling blocksync reactor"`):
		return phaseBlocks
	case strings.Contains(log, `msg="Snapshot restored"`):
		return phaseTakenUp
	case strings.Contains(log, `msg="snapshot restored"`):
		return phaseRestored
	case strings.Contains(log, `msg="restoring snapshot: batches indexed"`):
		return phaseIndexing
	case strings.Contains(log, `msg="Applied snapshot chunk to ABCI app"`):
		return phaseChunks
	}
	return phaseFetching
}

// restoreTook is the time from the node accepting a snapshot to consensus
// taking the restore up, from the log's timestamps.
func restoreTook(log string) (time.Duration, bool) {
	start, ok1 := logTime(log, `msg="restoring snapshot" `)
	end, ok2 := logTime(log, `msg="Snapshot restored"`)
	if !ok1 || !ok2 || end.Before(start) {
		return 0, false
	}
	return end.Sub(start), true
}

// logTime is the time of the last line holding s.
func logTime(log, s string) (time.Time, bool) {
	i := strings.LastIndex(log, s)
	if i < 0 {
		return time.Time{}, false
	}
	line := log[strings.LastIndex(log[:i], "\n")+1:]
	f, ok := strings.CutPrefix(line, "time=")
	if !ok {
		return time.Time{}, false
	}
	ts, _, _ := strings.Cut(f, " ")
	tm, err := time.Parse(time.RFC3339Nano, ts)
	return tm, err == nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
