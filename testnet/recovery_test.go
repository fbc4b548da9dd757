//go:build e2e

package testnet

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cmtcfg "github.com/cometbft/cometbft/config"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/consensus"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestDisasterRecovery rehearses docs/operations.md, "Backup and disaster
// recovery": a member's data/ is destroyed while it holds acknowledged,
// unanchored hashes; it comes back by state sync for the chain and by its
// queue backup for those hashes. Every receipt it served before is served
// again; every hash it acknowledged is anchored, once; and at the start on
// the new data/ it says that the unanchored hashes are lost unless
// restored, and how.
func TestDisasterRecovery(t *testing.T) {
	const xIssuer = "member-3-registrar"
	n := newNetworkWith(t, 4, func(home string) {
		editAppToml(t, home, "snapshot_interval = 1000", "snapshot_interval = 5",
			"snapshot_keep_recent = 2", "snapshot_keep_recent = 20")
		if strings.HasSuffix(home, "node3") {
			// X cuts a batch only once 10 hashes wait (or after an hour):
			// a request of 20 is anchored at once, one of 7 waits.
			editAppToml(t, home, `batch_interval = "250ms"`, `batch_interval = "1h"`,
				"batch_max_leaves = 65536", "batch_max_leaves = 10")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	x := n.nodes[3]
	// Blocks keep coming (an idle chain makes one every 30 s), snapshots
	// are taken, and X has a chain to catch up with.
	drive := startLoad(ctx, n.nodes[0], 1)
	defer drive.finish()

	anchored := randomHashes(20)
	if res, err := x.client.Submit(x.authed(ctx), &pb.SubmitRequest{Hashes: anchored}); err != nil || res.Queued != 20 {
		t.Fatalf("submit on X: %v %v", res, err)
	}
	served := make(map[string]*proof.Verified)
	for i := 0; i < len(anchored); i += 32 {
		h := anchored[i : i+32]
		r, err := x.receipt(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		v, err := proof.Verify(r, n.trust)
		if err != nil {
			t.Fatal(err)
		}
		served[string(h)] = v
	}
	unanchored := randomHashes(7)
	if res, err := x.client.Submit(x.authed(ctx), &pb.SubmitRequest{Hashes: unanchored}); err != nil || res.Queued != 7 {
		t.Fatalf("submit on X: %v %v", res, err)
	}
	if _, err := x.client.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: unanchored[:32]}); status.Code(err) != codes.Unavailable {
		t.Fatalf("a hash X holds unanchored: %v, want Unavailable (queued)", err)
	}
	t.Logf("X (node3) served %d receipts and holds 7 hashes acknowledged, unanchored", len(served))

	// The backup, as the doc says, of the running node.
	backup := filepath.Join(n.dir, "node3-queue.backup")
	out := runCLI(t, n.bin, "backup", "queue", "--home", x.home, "--out", backup)
	if !strings.Contains(out, "7 hashes") {
		t.Fatalf("backup queue: %s", out)
	}

	// The disaster: X dies and its data/ is gone.
	n.stop(x, syscall.SIGKILL)
	lostAt := n.height(ctx, n.nodes[0])
	data := filepath.Join(x.home, "data")
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}

	// The restore, per the doc: an empty validator signing state, state
	// sync for the chain (trusting a block after the loss, as an operator
	// reads it from another member), then the queue backup.
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "priv_validator_state.json"), []byte(`{"height":"0","round":0,"step":0}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	trustHeight := n.waitHeight(ctx, n.nodes[0], lostAt+2)
	// A snapshot above the trust height for X to fetch.
	n.waitHeight(ctx, n.nodes[0], trustHeight+12)
	c, err := consensus.LoadConfig(x.home)
	if err != nil {
		t.Fatal(err)
	}
	stateSyncFrom(n, trustHeight, n.nodes[0].blockHash(ctx, t, trustHeight))(c)
	cmtcfg.WriteConfigFile(filepath.Join(x.home, "config", "config.toml"), c)
	// Not part of the recovery: X batches as its peers do from now on, so
	// that the restored hashes are anchored within the test.
	editAppToml(t, x.home, `batch_interval = "1h"`, `batch_interval = "250ms"`)
	n.start(x)
	target := n.height(ctx, n.nodes[0])
	n.waitHeight(ctx, x, target)

	var st struct {
		SyncInfo struct {
			EarliestBlockHeight string `json:"earliest_block_height"`
		} `json:"sync_info"`
	}
	if err := x.rpcJSON(ctx, "/status", &st); err != nil {
		t.Fatal(err)
	}
	if earliest, _ := strconv.ParseInt(st.SyncInfo.EarliestBlockHeight, 10, 64); earliest <= 1 {
		t.Fatalf("X's earliest block is %d: it replayed the chain instead of state syncing", earliest)
	}

	// Without the backup, this is where the loss shows: X says it, and
	// does not know the hashes.
	logs, err := os.ReadFile(x.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"data/ was recreated", "credenced restore queue --home " + x.home} {
		if !strings.Contains(string(logs), want) {
			t.Fatalf("X started on a new data/ without logging %q", want)
		}
	}
	for i := 0; i < len(unanchored); i += 32 {
		if _, err := x.client.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: unanchored[i : i+32]}); status.Code(err) != codes.NotFound {
			t.Fatalf("a lost hash before the restore: %v, want NotFound", err)
		}
	}

	out = runCLI(t, n.bin, "restore", "queue", "--home", x.home, backup)
	if !strings.Contains(out, "7 hashes in the backup: 7 queued again") {
		t.Fatalf("restore queue: %s", out)
	}

	// Every receipt served before: the same batch and leaf, verifying.
	for i := 0; i < len(anchored); i += 32 {
		h := anchored[i : i+32]
		r, err := x.receipt(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		v, err := proof.Verify(r, n.trust)
		if err != nil {
			t.Fatalf("receipt served again by X: %v", err)
		}
		was := served[string(h)]
		if v.Issuer != was.Issuer || v.BatchSeq != was.BatchSeq || v.LeafIndex != was.LeafIndex || v.Height != was.Height {
			t.Fatalf("X serves %x at %s/%d leaf %d height %d, before at %s/%d leaf %d height %d", h, v.Issuer, v.BatchSeq, v.LeafIndex, v.Height, was.Issuer, was.BatchSeq, was.LeafIndex, was.Height)
		}
	}
	// Every hash acknowledged, none lost, none anchored twice.
	var all [][]byte
	for _, hs := range [][]byte{anchored, unanchored} {
		for i := 0; i < len(hs); i += 32 {
			all = append(all, hs[i:i+32])
		}
	}
	n.checkAnchoredOnce(ctx, x, xIssuer, all)

	// The same backup again, now stale: nothing is queued twice.
	out = runCLI(t, n.bin, "restore", "queue", "--home", x.home, backup)
	if !strings.Contains(out, "7 already anchored") {
		t.Fatalf("restore of a stale backup: %s", out)
	}
	t.Logf("X restored: %d receipts served again, 7 restored hashes anchored once", len(served))
}
