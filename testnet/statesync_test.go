//go:build e2e

package testnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cfg "github.com/cometbft/cometbft/config"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestStateSyncJoin: a fifth node joins a running 4-validator chain by
// state sync (not by replaying it), and serves verifying receipts for
// batches anchored before it joined, and after.
func TestStateSyncJoin(t *testing.T) {
	n := newNetworkWith(t, 4, func(home string) {
		// Snapshots every 10 blocks, kept long enough for the joiner to
		// fetch one while the chain moves on under load.
		editAppToml(t, home, "snapshot_interval = 1000", "snapshot_interval = 10",
			"snapshot_keep_recent = 2", "snapshot_keep_recent = 20")
		// Two members prune their blocks; the other two (the joiner's
		// light client servers) keep every block, as its trust height
		// needs.
		if strings.HasSuffix(home, "node2") || strings.HasSuffix(home, "node3") {
			editAppToml(t, home, retainBlocks...)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	a := n.nodes[0]

	// Batches over several heights, all before the join.
	var before [][]byte
	for round := 0; round < 6; round++ {
		hs := randomHashes(50)
		if _, err := a.client.Submit(a.authed(ctx), &pb.SubmitRequest{Hashes: hs}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.receipt(ctx, hs[:32]); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(hs); i += 32 {
			before = append(before, hs[i:i+32])
		}
	}
	// Keep blocks coming so snapshots are taken and the joiner has blocks to follow.
	l := startLoad(ctx, a, 1)
	trustHeight := n.waitHeight(ctx, a, 12)
	n.waitHeight(ctx, a, 22)

	// The fifth node: same genesis, its own keys, no issuer.
	joiner := n.newMember(stateSyncFrom(n, trustHeight, a.blockHash(ctx, t, trustHeight)))
	// The joiner prunes too: the headers its restored index needs came
	// with the snapshot, the rest it keeps as it indexes. It snapshots as
	// the others do: before its first snapshot (at 1000 by default) it
	// would keep its blocks for the peers that restore it.
	editAppToml(t, joiner.home, append([]string{"snapshot_interval = 1000", "snapshot_interval = 10"}, retainBlocks...)...)
	n.start(joiner)
	target := n.height(ctx, a)
	n.waitHeight(ctx, joiner, target)

	var st struct {
		SyncInfo struct {
			EarliestBlockHeight string `json:"earliest_block_height"`
		} `json:"sync_info"`
	}
	if err := joiner.rpcJSON(ctx, "/status", &st); err != nil {
		t.Fatal(err)
	}
	earliest, _ := strconv.ParseInt(st.SyncInfo.EarliestBlockHeight, 10, 64)
	if earliest <= 1 {
		t.Fatalf("node4's earliest block is %d: it replayed the chain instead of state syncing", earliest)
	}
	t.Logf("node4 state-synced: its block store starts at height %d; caught up to %d", earliest, target)

	for _, h := range before {
		r, err := joiner.receipt(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		v, err := proof.Verify(r, n.trust)
		if err != nil {
			t.Fatalf("receipt from node4 of a batch before it joined: %v", err)
		}
		if v.Height >= earliest {
			t.Fatalf("batch at height %d is not before node4's first block %d", v.Height, earliest)
		}
	}
	t.Logf("node4 serves verifying receipts for %d hashes anchored before its first block", len(before))
	acked := l.finish()
	n.checkAnchoredOnce(ctx, joiner, "member-0-registrar", acked[:min(len(acked), 3000)])

	// Anchoring on node1 keeps blocks coming (an idle chain makes one every
	// 30 s); these batches are not checked here.
	drive := startLoad(ctx, n.nodes[1], 1)
	defer drive.finish()

	// The members vote node4's member in; its validator joins the set.
	n.voteIn(ctx, joiner)
	t.Logf("node4 is a validator with power 10 (5 validators, 50 in all)")

	// A receipt anchored after the change verifies from the genesis trust
	// root through the link the change left; one from before still does.
	after := randomHashes(1)
	b := n.nodes[1]
	if _, err := b.client.Submit(b.authed(ctx), &pb.SubmitRequest{Hashes: after}); err != nil {
		t.Fatal(err)
	}
	served := make(map[int]*proof.Receipt)
	var afterHeight int64
	for _, from := range []*node{joiner, n.nodes[2]} {
		r, err := from.receipt(ctx, after)
		if err != nil {
			t.Fatal(err)
		}
		served[from.i], afterHeight = r, r.Batch.Height
		if len(r.ValidatorLinks) == 0 {
			t.Fatalf("receipt from node%d of a batch after the validator change carries no link", from.i)
		}
		if _, err := proof.Verify(r, n.trust); err != nil {
			t.Fatalf("receipt from node%d after the validator change: %v", from.i, err)
		}
		old, err := from.receipt(ctx, before[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := proof.Verify(old, n.trust); err != nil {
			t.Fatalf("receipt from node%d from before the change: %v", from.i, err)
		}
	}
	t.Logf("receipts anchored before and after the change verify from the genesis trust root (node2, node4)")

	// One original validator stops; 40 of 50 is more than 2/3: blocks go on.
	n.stop(a, syscall.SIGTERM)
	h := n.height(ctx, n.nodes[1])
	n.waitHeight(ctx, n.nodes[1], h+3)
	n.waitHeight(ctx, joiner, h+3)
	t.Logf("node0 stopped at height %d; the chain went on to %d with node4 validating", h, h+3)

	// The pruning nodes let go of the blocks of the change and of the
	// batch after it; they serve the same receipt, which still verifies.
	for _, nd := range []*node{n.nodes[2], joiner} {
		for {
			if err := nd.rpcJSON(ctx, "/status", &st); err != nil {
				t.Fatal(err)
			}
			first, _ := strconv.ParseInt(st.SyncInfo.EarliestBlockHeight, 10, 64)
			if first > afterHeight+2 {
				t.Logf("node%d (retain_blocks = 5) holds blocks from %d", nd.i, first)
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("node%d still holds blocks from %d, want above %d", nd.i, first, afterHeight+2)
			case <-time.After(200 * time.Millisecond):
			}
		}
		r, err := nd.receipt(ctx, after)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(r, served[nd.i]) {
			t.Fatalf("node%d's receipt changed when its blocks were pruned", nd.i)
		}
		if _, err := proof.Verify(r, n.trust); err != nil {
			t.Fatalf("receipt from node%d after pruning: %v", nd.i, err)
		}
	}
}

// retainBlocks is the edit of an app.toml to retain_blocks = 5.
var retainBlocks = []string{"retain_blocks = 100000", "retain_blocks = 5"}

// editAppToml replaces in home's app.toml each old string by the new one
// after it; an old string it does not hold fails the test.
func editAppToml(t testing.TB, home string, oldNew ...string) {
	t.Helper()
	p := filepath.Join(home, "config", "app.toml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("%s has no %q to change", p, oldNew[i])
		}
		s = strings.Replace(s, oldNew[i], oldNew[i+1], 1)
	}
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func runCLI(t testing.TB, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("credenced %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// blockHash is the hash of nd's block at height, as a joiner's trust_hash.
func (nd *node) blockHash(ctx context.Context, t testing.TB, height int64) string {
	t.Helper()
	var commit struct {
		SignedHeader struct {
			Commit struct {
				BlockID struct {
					Hash string `json:"hash"`
				} `json:"block_id"`
			} `json:"commit"`
		} `json:"signed_header"`
	}
	if err := nd.rpcJSON(ctx, fmt.Sprintf("/commit?height=%d", height), &commit); err != nil {
		t.Fatal(err)
	}
	return commit.SignedHeader.Commit.BlockID.Hash
}

// stateSyncFrom configures a new member to join by state sync, trusting
// the block hash at height from node0 and node1's RPC.
func stateSyncFrom(n *network, height int64, hash string) func(*cfg.Config) {
	return func(c *cfg.Config) {
		c.StateSync.Enable = true
		c.StateSync.RPCServers = []string{n.nodes[0].rpc, n.nodes[1].rpc}
		c.StateSync.TrustHeight = height
		c.StateSync.TrustHash = hash
		c.StateSync.TrustPeriod = 24 * time.Hour
		c.StateSync.DiscoveryTime = 5 * time.Second
	}
}
