package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/app"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// unknownVersion is an app version no build of this binary has a handler
// for.
const unknownVersion = 99

// proposeUpgrade has the test home's only member pass a plan (its own yes is
// all the power) ahead blocks after the current height; it returns the plan.
func proposeUpgrade(ctx context.Context, t *testing.T, h *testHome, n *Node, cl pb.CredenceClient, name string, ahead int64, v uint64) *pb.UpgradePlan {
	t.Helper()
	member, key, err := MemberKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	plan := &pb.UpgradePlan{Name: name, Height: n.app.Height() + ahead, AppVersion: v}
	broadcastTx(ctx, t, cl, &pb.TxBody{ChainId: n.ChainID(), Signer: member, Msg: &pb.TxBody_Propose{Propose: &pb.Propose{
		Description: "upgrade " + name, Action: &pb.Propose_Upgrade{Upgrade: plan}}}}, key)
	if p, _, err := n.app.UpgradePlan(); err != nil || p == nil || p.Name != name {
		t.Fatalf("plan after the proposal passed: %v, %v", p, err)
	}
	return plan
}

// submitUntilHalt submits a hash at a time (each makes the chain move on)
// until Submit answers Unavailable for the upgrade; it returns the hashes
// acknowledged.
func submitUntilHalt(ctx context.Context, t *testing.T, h *testHome, cl pb.CredenceClient) [][]byte {
	t.Helper()
	var acked [][]byte
	for i := 0; ; i++ {
		hash := randomHashes(t, 1)
		_, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hash})
		if err == nil {
			acked = append(acked, hash)
		} else if status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "halts for an upgrade") {
			if !strings.Contains(err.Error(), "retry") || !strings.Contains(err.Error(), "nothing of this request was queued") {
				t.Fatalf("refusal during the halt gives no retry hint: %v", err)
			}
			return acked
		} else {
			t.Fatalf("Submit %d: %v", i, err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("the node never refused Submit for the upgrade")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestUpgradeHaltWithoutHandler: a node whose binary has no handler for a
// passed plan commits the block before the plan's height and no further:
// Submit answers Unavailable with a retry hint, the index is synced,
// data/upgrade-info.json names the plan, and the same binary started again
// halts at once (exit status ExitUpgradeNeeded in credenced).
func TestUpgradeHaltWithoutHandler(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := newTestHome(t)
	n := h.start(t)
	defer func() { n.Stop() }()
	cl := dialTest(t, n.GRPCAddr())

	plan := proposeUpgrade(ctx, t, h, n, cl, "future", 6, unknownVersion)
	acked := submitUntilHalt(ctx, t, h, cl)
	select {
	case <-n.UpgradeHalt():
	case <-ctx.Done():
		t.Fatal("the node never halted for the upgrade")
	}
	if got := n.HaltedFor(); got == nil || got.Name != plan.Name {
		t.Fatalf("HaltedFor() = %v", got)
	}
	// Every hash acknowledged before the halt is indexed by now or still
	// durable in the queue; the index holds every block up to the halt.
	if d := n.idx.indexedHeight(); d != plan.Height-1 {
		t.Fatalf("index at %d at the halt, want %d", d, plan.Height-1)
	}
	if ni, err := cl.NodeInfo(ctx, &pb.NodeInfoRequest{}); err != nil || len(ni.Problems) == 0 || !strings.Contains(ni.Problems[len(ni.Problems)-1], "halts for an upgrade") {
		t.Fatalf("NodeInfo during the halt: %v, %v", ni, err)
	}
	hc := healthpb.NewHealthClient(dialConn(t, n.GRPCAddr()))
	for _, svc := range []string{"", pb.Credence_ServiceDesc.ServiceName} {
		if res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc}); err != nil || res.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health of %q during the halt: %v %v, want NOT_SERVING", svc, res, err)
		}
	}
	info, err := ReadUpgradeInfo(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != plan.Name || info.Height != plan.Height || !strings.Contains(info.Info, `"app_version":99`) {
		t.Fatalf("upgrade-info.json = %+v", info)
	}
	// No block of the plan's height is finalized, however long the node
	// waits.
	time.Sleep(2 * time.Second)
	if got := n.app.Height(); got != plan.Height-1 {
		t.Fatalf("app height %d after the halt, want %d", got, plan.Height-1)
	}
	if got := n.cmt.BlockStore().Height(); got >= plan.Height {
		t.Fatalf("block store holds height %d, past the halt at %d", got, plan.Height-1)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d hashes acknowledged before the halt at %d", len(acked), plan.Height-1)

	_, err = Start(ctx, h.dir, h.ov, testLogger(t))
	if !errors.Is(err, app.ErrUpgradeNeeded) {
		t.Fatalf("the old binary started again after its halt: %v; want app.ErrUpgradeNeeded", err)
	}
}
