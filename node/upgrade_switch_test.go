//go:build upgradetest

package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestUpgradeSwitch runs, in one process, the release before an upgrade
// (no version 3 handler) until it halts, then the release after: the chain
// goes on at app version 3, and every hash acknowledged before the halt,
// and one after, gets a receipt that verifies with the original genesis.
func TestUpgradeSwitch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	app.SetVersion3ForTest(false)
	defer app.SetVersion3ForTest(true)
	h := newTestHome(t)
	n := h.start(t)
	cl := dialTest(t, n.GRPCAddr())
	plan := proposeUpgrade(ctx, t, h, n, cl, "v3-test", 6, 3)
	acked := submitUntilHalt(ctx, t, h, cl)
	select {
	case <-n.UpgradeHalt():
	case <-ctx.Done():
		t.Fatal("the node never halted for the upgrade")
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	app.SetVersion3ForTest(true)
	n = h.start(t)
	defer func() { n.Stop() }()
	cl = dialTest(t, n.GRPCAddr())
	after := randomHashes(t, 1)
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: after}); err != nil {
		t.Fatalf("Submit after the switch: %v", err)
	}
	for _, hash := range append(acked, after) {
		r := waitReceipt(ctx, t, cl, hash)
		if _, err := proof.Verify(r, h.trust); err != nil {
			t.Fatalf("receipt of a hash acknowledged around the upgrade at %d does not verify with the genesis: %v", plan.Height, err)
		}
	}
	if v := n.app.AppVersion(); v != 3 {
		t.Fatalf("app version after the switch = %d, want 3", v)
	}
	if hdr := n.cmt.BlockStore().LoadBlockMeta(plan.Height + 1); hdr == nil || hdr.Header.Version.App != 3 {
		t.Fatalf("header %d after the plan: %v, want app version 3", plan.Height+1, hdr)
	}
	if hdr := n.cmt.BlockStore().LoadBlockMeta(plan.Height); hdr == nil || hdr.Header.Version.App != 2 {
		t.Fatalf("header of the plan's block: %v, want app version 2 (it moves from the next)", hdr)
	}
	t.Logf("%d hashes acknowledged before the halt at %d anchored after it", len(acked), plan.Height-1)
}

// TestUpgradeTooEarly: the release with a pending plan's handler refuses a
// chain that has not reached the block before the plan, unless told to.
func TestUpgradeTooEarly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := newTestHome(t)
	n := h.start(t)
	cl := dialTest(t, n.GRPCAddr())
	proposeUpgrade(ctx, t, h, n, cl, "v3-early", 1000, 3)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, h.dir, h.ov, testLogger(t)); !errors.Is(err, ErrUpgradeTooEarly) {
		t.Fatalf("start before the plan: %v, want ErrUpgradeTooEarly", err)
	}
	ov := h.ov
	ov.UnsafeSkipUpgradeCheck = true
	n, err := Start(ctx, h.dir, ov, testLogger(t))
	if err != nil {
		t.Fatalf("start with UnsafeSkipUpgradeCheck: %v", err)
	}
	n.Stop()
}
