package app

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	iavldb "github.com/cosmos/iavl/db"

	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// withHandler registers h for app version v for the test only.
func withHandler(t testing.TB, v uint64, h upgradeHandler) {
	t.Helper()
	old, had := handlers[v]
	handlers[v] = h
	t.Cleanup(func() {
		if had {
			handlers[v] = old
		} else {
			delete(handlers, v)
		}
	})
}

func upgradeTo(name string, height int64, v uint64) *pb.Propose {
	sum := sha256.Sum256([]byte(name))
	return &pb.Propose{Description: "upgrade " + name, Action: &pb.Propose_Upgrade{Upgrade: &pb.UpgradePlan{Name: name, Height: height, AppVersion: v, BinarySha256: sum[:]}}}
}

func cancelUpgrade(name string) *pb.Propose {
	return &pb.Propose{Description: "cancel " + name, Action: &pb.Propose_CancelUpgrade{CancelUpgrade: &pb.CancelUpgrade{Name: name}}}
}

// passUpgrade has four members of power 10 pass p at height 1 and 2: the
// proposer's yes and two votes.
func passUpgrade(t *testing.T, p *pb.Propose) *chain {
	c := startGov(t, 50, 10, 10, 10, 10)
	c.runOK(c.propose(c.m[0], p))
	c.runOK(c.vote(c.m[1], 1, true), c.vote(c.m[2], 1, true))
	c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 2)
	return c
}

func (c *chain) appVersionInState() []byte {
	c.t.Helper()
	return c.query("/key", []byte(proof.KeyAppVersion), 0, false).Value
}

// TestUpgradeApplies: a passed plan is stored; up to its height the chain
// runs version 2 and Info says 2; the block at the height runs the
// migration, runs its transactions by the new rules, moves
// ConsensusParams.Version.App, and the version stays after a restart.
func TestUpgradeApplies(t *testing.T) {
	withHandler(t, 3, testV3Handler)
	c := passUpgrade(t, upgradeTo("v3-test", 6, 3))
	plan, known, err := c.app.UpgradePlan()
	if err != nil || plan == nil || !known || plan.Name != "v3-test" || plan.Height != 6 || plan.AppVersion != 3 {
		t.Fatalf("UpgradePlan() = %v, %v, %v", plan, known, err)
	}
	if v := c.appVersionInState(); v != nil {
		t.Fatalf("app version key written before any upgrade: %x", v)
	}
	ttl := c.params().ProposalTtlBlocks
	c.advanceTo(5)
	if got := c.info().AppVersion; got != 2 {
		t.Fatalf("Info.AppVersion before the plan height = %d, want 2", got)
	}
	// Block 6 runs by version 3's rules: a proposal without a description
	// is refused in the proposal and in the block.
	bare := c.propose(c.m[0], setTTL(70))
	if st := c.process(bare); st != abci.ResponseProcessProposal_REJECT {
		t.Fatalf("ProcessProposal at the plan height of a v3-invalid tx = %s, want REJECT", st)
	}
	res := c.block(bare)
	if res.TxResults[0].Code == CodeOK {
		t.Fatal("a proposal without a description was accepted at the plan height")
	}
	if res.ConsensusParamUpdates == nil || res.ConsensusParamUpdates.Version == nil || res.ConsensusParamUpdates.Version.App != 3 {
		t.Fatalf("ConsensusParamUpdates at the plan height = %v, want Version.App 3", res.ConsensusParamUpdates)
	}
	if got := c.info().AppVersion; got != 3 {
		t.Fatalf("Info.AppVersion after the plan height = %d, want 3", got)
	}
	if got := c.params().ProposalTtlBlocks; got != ttl+1 {
		t.Fatalf("migration: proposal_ttl_blocks %d, want %d", got, ttl+1)
	}
	if p, _, err := c.app.UpgradePlan(); err != nil || p != nil {
		t.Fatalf("plan still pending after its height: %v, %v", p, err)
	}
	if v := c.query("/key", proof.UpgradeDoneKey("v3-test"), 0, false).Value; len(v) != 8 || v[7] != 6 {
		t.Fatalf("done record = %x, want height 6", v)
	}
	// The migration ran once: the next block changes no params.
	res = c.block()
	if res.ConsensusParamUpdates != nil || c.params().ProposalTtlBlocks != ttl+1 {
		t.Fatalf("the upgrade ran again at height 7: %v, ttl %d", res.ConsensusParamUpdates, c.params().ProposalTtlBlocks)
	}
	c.reopen()
	if got := c.info().AppVersion; got != 3 {
		t.Fatalf("Info.AppVersion after a restart = %d, want 3", got)
	}
	if res := c.checkTx(c.propose(c.m[1], setTTL(80))); res.Code == CodeOK {
		t.Fatal("after a restart, version 3's rule is not applied")
	}
}

// TestUpgradeWithoutHandler: a binary without the plan's version reports
// the plan as unknown and refuses to finalize the plan's block (the node
// halts before it; this is the last guard), and a state at a version it
// does not know is refused at open.
func TestUpgradeWithoutHandler(t *testing.T) {
	c := passUpgrade(t, upgradeTo("v9", 5, 9))
	if p, known, err := c.app.UpgradePlan(); err != nil || p == nil || known {
		t.Fatalf("UpgradePlan() = %v, known %v, %v; want the plan, unknown", p, known, err)
	}
	var told []*pb.UpgradePlan
	c.app.onUpgradeHalt = func(p *pb.UpgradePlan) { told = append(told, p) }
	c.advanceTo(3)
	if len(told) != 0 {
		t.Fatalf("halt told at height 3 of a plan at 5: %v", told)
	}
	c.advanceTo(4)
	if len(told) != 1 || told[0].Name != "v9" {
		t.Fatalf("after committing the block before the plan's, the halt was told %v; want plan v9 once", told)
	}
	if st := c.process(); st != abci.ResponseProcessProposal_REJECT {
		t.Fatalf("ProcessProposal of the plan's block without its handler = %s, want REJECT", st)
	}
	_, err := c.app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: 5, Time: blockTime(5), Hash: []byte("block")})
	if !errors.Is(err, ErrUpgradeNeeded) {
		t.Fatalf("FinalizeBlock at the plan height without a handler: %v, want ErrUpgradeNeeded", err)
	}
}

func TestUnknownVersionRefusedAtOpen(t *testing.T) {
	withHandler(t, 4, upgradeHandler{})
	c := passUpgrade(t, upgradeTo("v4", 4, 4))
	c.advanceTo(4)
	delete(handlers, 4)
	c.close()
	_, err := New(store4(t, c), testChainID, WithLogger(quiet))
	if !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("New on a version-4 state without its handler: %v, want ErrUnknownVersion", err)
	}
}

// TestUpgradeCancel: a later act cancels a pending plan; its height then
// passes like any other.
func TestUpgradeCancel(t *testing.T) {
	withHandler(t, 3, testV3Handler)
	c := passUpgrade(t, upgradeTo("v3-test", 8, 3))
	if res := c.checkTx(c.propose(c.m[0], cancelUpgrade("other"))); res.Code == CodeOK || !strings.Contains(res.Log, "no pending upgrade") {
		t.Fatalf("cancel of a plan that is not pending: code %d %q", res.Code, res.Log)
	}
	c.seq[memberAccount(c.m[0].id)]--
	c.runOK(c.propose(c.m[0], cancelUpgrade("v3-test")))
	c.runOK(c.vote(c.m[1], 2, true), c.vote(c.m[2], 2, true))
	c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 4)
	if p, _, _ := c.app.UpgradePlan(); p != nil {
		t.Fatalf("plan pending after its cancellation: %v", p)
	}
	for c.height < 9 {
		if res := c.block(); res.ConsensusParamUpdates != nil {
			t.Fatalf("height %d: a cancelled upgrade moved the version", c.height)
		}
	}
	if c.info().AppVersion != 2 || c.appVersionInState() != nil {
		t.Fatal("a cancelled upgrade changed the app version")
	}
}

// TestUpgradeProposalChecks: bad plans get clear refusals, never a panic.
func TestUpgradeProposalChecks(t *testing.T) {
	c := startGov(t, 50, 10, 10, 10, 10)
	c.advanceTo(3)
	cases := []struct {
		name string
		p    *pb.Propose
		code uint32
		why  string
	}{
		{"past height", upgradeTo("v3", 3, 3), CodeRejected, "not after height"},
		{"current version", upgradeTo("v2", 10, 2), CodeMalformed, "app_version must be above 2"},
		{"bad name", upgradeTo("V 3", 10, 3), CodeMalformed, "upgrade.name"},
		{"zero height", upgradeTo("v3", 0, 3), CodeMalformed, "height must be positive"},
		{"short sha", &pb.Propose{Action: &pb.Propose_Upgrade{Upgrade: &pb.UpgradePlan{Name: "v3", Height: 10, AppVersion: 3, BinarySha256: []byte{1, 2}}}}, CodeMalformed, "binary_sha256"},
		{"cancel nothing", cancelUpgrade("v3"), CodeRejected, "no pending upgrade"},
	}
	for _, tc := range cases {
		raw := c.propose(c.m[0], tc.p)
		c.seq[memberAccount(c.m[0].id)]--
		res := c.checkTx(raw)
		if res.Code != tc.code || !strings.Contains(res.Log, tc.why) {
			t.Errorf("%s: code %d %q, want %d containing %q", tc.name, res.Code, res.Log, tc.code, tc.why)
		}
	}
	// A plan that passes only after its height fails without effect.
	c2 := startGov(t, 50, 10, 10, 10, 10)
	c2.runOK(c2.propose(c2.m[0], upgradeTo("late", 3, 3)))
	c2.advanceTo(3)
	c2.runOK(c2.vote(c2.m[1], 1, true), c2.vote(c2.m[2], 1, true))
	p := c2.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_FAILED, 4)
	if !strings.Contains(p.Outcome, "not after height") {
		t.Fatalf("outcome %q", p.Outcome)
	}
	if pl, _, _ := c2.app.UpgradePlan(); pl != nil {
		t.Fatalf("a late plan was stored: %v", pl)
	}
}

// TestUpgradeReplay: the same blocks replayed on a fresh node give the same
// app hashes across the upgrade.
func TestUpgradeReplay(t *testing.T) {
	withHandler(t, 3, testV3Handler)
	a := passUpgrade(t, upgradeTo("v3-test", 5, 3))
	b := passUpgrade(t, upgradeTo("v3-test", 5, 3))
	for a.height < 8 {
		a.block()
		b.block()
	}
	for h := int64(1); h <= 8; h++ {
		if !bytes.Equal(a.appHash[h], b.appHash[h]) {
			t.Fatalf("height %d: app hashes differ", h)
		}
	}
}

// store4 opens c's database again without an app on it.
func store4(t *testing.T, c *chain) iavldb.DB {
	t.Helper()
	db, err := store.OpenBadger(c.dir, store.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return store.NewIAVLDB(db, []byte("s/"))
}
