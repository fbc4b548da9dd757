//go:build e2e

package testnet

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestAnchorOnOneReceiptsFromOthers: hashes anchored through node 0 have
// receipts from nodes 1 and 2 that verify offline against the genesis.
func TestAnchorOnOneReceiptsFromOthers(t *testing.T) {
	n := newNetwork(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b, c := n.nodes[0], n.nodes[1], n.nodes[2]
	hs := randomHashes(500)
	res, err := a.client.Submit(a.authed(ctx), &pb.SubmitRequest{Hashes: hs})
	if err != nil {
		t.Fatal(err)
	}
	if res.Queued != 500 {
		t.Fatalf("queued %d of 500", res.Queued)
	}
	for i := 0; i < len(hs); i += 32 {
		h := hs[i : i+32]
		for _, from := range []*node{b, c} {
			r, err := from.receipt(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			v, err := proof.Verify(r, n.trust)
			if err != nil {
				t.Fatalf("receipt from node%d: %v", from.i, err)
			}
			if v.Issuer != "member-0-registrar" || !bytes.Equal(v.CredentialHash, h) {
				t.Fatalf("receipt from node%d proves %x by %s", from.i, v.CredentialHash, v.Issuer)
			}
		}
	}
	t.Logf("500 hashes anchored through node0; 1000 receipts from node1 and node2 verify")
}

// TestKillOneOfFourUnderLoad: SIGKILL a validator while node 0 takes
// submissions; blocks go on; the killed node restarts and catches up;
// every acknowledged hash is anchored exactly once.
func TestKillOneOfFourUnderLoad(t *testing.T) {
	n := newNetwork(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	a, victim := n.nodes[0], n.nodes[3]
	l := startLoad(ctx, a, 2)
	h0 := n.waitHeight(ctx, a, 3)
	n.stop(victim, syscall.SIGKILL)
	t.Logf("node3 killed at height %d", h0)
	h1 := n.waitHeight(ctx, a, h0+3)
	t.Logf("with 3 of 4 validators the chain went on to height %d", h1)
	n.start(victim)
	caught := n.waitHeight(ctx, victim, h1)
	acked := l.finish()
	t.Logf("node3 restarted and caught up to height %d; %d hashes acknowledged under load", caught, len(acked))
	n.checkAnchoredOnce(ctx, a, "member-0-registrar", acked)
	// The restarted node serves receipts for all of them too.
	n.checkAnchoredOnce(ctx, victim, "member-0-registrar", acked[:min(len(acked), 2000)])
}

// TestTwoOfFourDown: with 2 of 4 validators stopped there is no quorum and
// no block; started again, blocks resume and every node agrees at every
// height.
func TestTwoOfFourDown(t *testing.T) {
	n := newNetwork(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	a := n.nodes[0]
	// Keep blocks coming: anchoring makes blocks even with empty blocks rare.
	l := startLoad(ctx, a, 1)
	n.waitHeight(ctx, a, 3)
	n.stop(n.nodes[2], syscall.SIGTERM)
	n.stop(n.nodes[3], syscall.SIGTERM)
	// A round already under way may still finish one height; none after.
	stalled := n.height(ctx, a)
	observe := time.Now().Add(5 * time.Second)
	for time.Now().Before(observe) {
		if h := n.height(ctx, a); h > stalled+1 {
			t.Fatalf("with 2 of 4 validators down the chain went from %d to %d", stalled, h)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("2 of 4 down: height held at %d for 5s", stalled)
	n.start(n.nodes[2])
	n.start(n.nodes[3])
	resumed := n.waitHeight(ctx, a, stalled+3)
	for _, nd := range n.nodes {
		n.waitHeight(ctx, nd, resumed)
	}
	acked := l.finish()
	t.Logf("both restarted: blocks resumed, all nodes at height >= %d", resumed)
	n.checkNoFork(ctx, resumed)
	n.checkAnchoredOnce(ctx, a, "member-0-registrar", acked)
}

// TestPauseResume: a frozen validator (SIGSTOP) does not stop the other
// three; thawed, it catches up.
func TestPauseResume(t *testing.T) {
	n := newNetwork(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, frozen := n.nodes[0], n.nodes[1]
	l := startLoad(ctx, a, 1)
	h0 := n.waitHeight(ctx, a, 2)
	n.signal(frozen, syscall.SIGSTOP)
	h1 := n.waitHeight(ctx, a, h0+3)
	t.Logf("node1 paused at about height %d; the others went on to %d", h0, h1)
	n.signal(frozen, syscall.SIGCONT)
	n.waitHeight(ctx, frozen, h1)
	acked := l.finish()
	t.Logf("node1 resumed and caught up to %d", h1)
	n.checkNoFork(ctx, h1)
	n.checkAnchoredOnce(ctx, frozen, "member-0-registrar", acked)
}

// TestCopiedDiskMidRun: a validator's home is copied while it runs (an
// inconsistent snapshot of every store, as a crash or a careless backup
// leaves), the node is killed and restarted on the copy. It must either
// resume and serve only receipts that verify, or refuse to start with a
// message saying why.
func TestCopiedDiskMidRun(t *testing.T) {
	n := newNetwork(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	a, victim := n.nodes[0], n.nodes[3]
	l := startLoad(ctx, a, 2)
	n.waitHeight(ctx, victim, 4)
	copyDir := victim.home + ".copy"
	if out, err := exec.Command("cp", "-a", victim.home, copyDir).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v\n%s", err, out)
	}
	copiedAt := n.height(ctx, a)
	n.waitHeight(ctx, a, copiedAt+2)
	n.stop(victim, syscall.SIGKILL)
	if err := os.RemoveAll(victim.home); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(copyDir, victim.home); err != nil {
		t.Fatal(err)
	}
	t.Logf("node3's home copied mid-run near height %d; node3 killed and restarted on the copy", copiedAt)
	n.start(victim)
	target := n.waitHeight(ctx, a, copiedAt+4)
	for {
		if st, err := victim.status(ctx); err == nil && st.LatestHeight >= target {
			break
		}
		select {
		case <-victim.exited:
			b, _ := os.ReadFile(victim.log)
			tail := string(b)
			if i := strings.LastIndex(tail, "error:"); i >= 0 {
				t.Logf("node3 refused to start on the copied disk: %s", strings.TrimSpace(tail[i:]))
				l.finish()
				return
			}
			t.Fatalf("node3 exited on the copied disk without saying why:\n%s", tail[max(0, len(tail)-2000):])
		case <-ctx.Done():
			t.Fatal("node3 neither caught up nor exited")
		case <-time.After(200 * time.Millisecond):
		}
	}
	acked := l.finish()
	t.Logf("node3 resumed on the copied disk and caught up to %d", target)
	n.waitHeight(ctx, victim, n.height(ctx, a))
	n.checkAnchoredOnce(ctx, victim, "member-0-registrar", acked)
}
