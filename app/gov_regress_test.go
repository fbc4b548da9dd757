package app

// Regressions of governance: bugs these tests found, now fixed (validator
// updates CometBFT refuses or that change after their block, powers and
// proposal lifetimes past their bounds).

import (
	"math"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	cmttypes "github.com/cometbft/cometbft/types"

	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestGovOneValidatorUpdatePerKey (regression): actions that touch one
// validator several times in a block give one ValidatorUpdate, the last:
// CometBFT refuses two updates of a validator in a block ("duplicate
// entry", types.processChanges) and panics applying it, on every replay.
// PrepareProposal and ProcessProposal accept these blocks.
func TestGovOneValidatorUpdatePerKey(t *testing.T) {
	t.Run("single member re-powers itself twice in one block", func(t *testing.T) {
		c := startGov(t, 0, 10)
		txs := [][]byte{c.propose(c.m[0], changePower(memberID, 20)), c.propose(c.m[0], changePower(memberID, 30))}
		if got := c.prepare(txs...); !sameTxs(got, txs) {
			t.Fatalf("PrepareProposal keeps %d of 2", len(got))
		}
		if s := c.process(txs...); s != abci.ResponseProcessProposal_ACCEPT {
			t.Fatalf("ProcessProposal %v", s)
		}
		res, ups := c.run(txs...)
		wantCodes(t, res, CodeOK, CodeOK)
		wantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(memberValKey), 30))
	})
	t.Run("re-power and removal of one member pass in one block", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		d := c.m[3]
		c.runOK(c.propose(c.m[0], changePower(d.id, 5)), c.propose(c.m[0], removeMember(d.id)))
		c.runOK(c.vote(c.m[1], 1, true), c.vote(c.m[1], 2, true))
		// #1 passes (30/40), then #2 (30/35).
		res, ups := c.run(c.vote(c.m[2], 1, true), c.vote(c.m[2], 2, true))
		wantCodes(t, res, CodeOK, CodeOK)
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height)
		wantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(d.val), 0))
	})
	t.Run("removal and an addition reusing the validator key pass in one block", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		d := c.m[3]
		e := newMember("member-e", 15).addMember()
		e.ValidatorKey = pubOf(d.val) // the operator keeps its node, under a new member
		c.runOK(c.propose(c.m[0], removeMember(d.id)), c.propose(c.m[0], addMember(e)))
		c.runOK(c.vote(c.m[1], 1, true), c.vote(c.m[1], 2, true))
		res, ups := c.run(c.vote(c.m[2], 1, true), c.vote(c.m[2], 2, true))
		wantCodes(t, res, CodeOK, CodeOK)
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height)
		wantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(d.val), 15))
	})
}

// TestAddThenRemoveValidatorInOneBlock: a member added and removed in the
// same block. The block's updates for its validator key once coalesced to
// [key: 0] for a key CometBFT's set never held: UpdateWithChangeSet fails
// ("failed to find validator ... to remove") and the chain halts on every
// replay. The app now drops such a removal.
//
// The path is ordinary traffic: #1 and #2 both remove member-d; #1 passes
// and member-d leaves; #3 admits member-d again (new validator key); then
// one block carries the last yes of #3 and the last yes of #2, which
// PrepareProposal and ProcessProposal accept (both are open in the
// committed state).
func TestAddThenRemoveValidatorInOneBlock(t *testing.T) {
	c := startGov(t, 0, 10, 10, 10, 10)
	a, b, cc, d := c.m[0], c.m[1], c.m[2], c.m[3]
	c.runOK(c.propose(a, removeMember(d.id)), c.propose(a, removeMember(d.id))) // #1, #2
	c.runOK(c.vote(b, 1, true), c.vote(b, 2, true))
	c.runOK(c.vote(cc, 1, true)) // #1 passes: member-d leaves
	c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 3)
	c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)

	back := newMember(d.id, 10)
	back.val = testKey("gov-validator-member-d-new-node")
	c.runOK(c.propose(a, addMember(back.addMember()))) // #3
	c.runOK(c.vote(b, 3, true))                        // 20/30: open

	txs := [][]byte{c.vote(cc, 3, true), c.vote(cc, 2, true)}
	if got := c.prepare(txs...); !sameTxs(got, txs) {
		t.Fatalf("PrepareProposal keeps %d of 2", len(got))
	}
	if s := c.process(txs...); s != abci.ResponseProcessProposal_ACCEPT {
		t.Fatalf("ProcessProposal %v", s)
	}
	res, ups, err := c.runRaw(txs...)
	wantCodes(t, res, CodeOK, CodeOK)
	c.wantStatus(3, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height) // member-d is back (30/30)...
	c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height) // ...and out again (30/40)
	if m := c.member(d.id); m != nil {
		t.Fatalf("member-d present: %v", m)
	}
	if err != nil {
		t.Errorf("FinalizeBlock returns validator updates %s for a key CometBFT's set does not hold: CometBFT refuses them: %v (the chain halts)", fmtUpdates(ups), err)
	} else {
		c.checkValidatorSet()
	}
}

// TestGovBounds (regression): voting powers and proposal lifetimes are
// bounded. A power above CometBFT's MaxTotalVotingPower halts the chain
// when applied, and near MaxInt64 the tally's sums overflow (3*yes >
// 2*total would hold for a minority); height + ttl overflowed for a large
// ttl, so every vote was refused as expired.
func TestGovBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *pb.Propose
	}{
		{"add_member power maxPower+1", addMember(newMember("member-e", maxPower+1).addMember())},
		{"add_member power MaxTotalVotingPower", addMember(newMember("member-e", cmttypes.MaxTotalVotingPower).addMember())},
		{"add_member power MaxInt64", addMember(newMember("member-e", math.MaxInt64).addMember())},
		{"change_power maxPower+1", changePower(memberID, maxPower+1)},
		{"change_power MaxInt64", changePower(memberID, math.MaxInt64)},
		{"ttl maxProposalTTL+1", setTTL(maxProposalTTL + 1)},
		{"ttl MaxInt64", setTTL(math.MaxInt64)},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			c := startGov(t, 0, 10)
			tx := c.propose(c.m[0], tc.p)
			if r := c.checkTx(tx); r.Code != CodeMalformed || r.Log == "" {
				t.Errorf("CheckTx: code %d (%s), want malformed", r.Code, r.Log)
			}
			res, _ := c.run(tx)
			wantCodes(t, res, CodeMalformed)
		})
	}
	t.Run("genesis", func(t *testing.T) {
		for name, mod := range map[string]func(g *Genesis){
			"power maxPower+1": func(g *Genesis) { g.Members[1].Power = maxPower + 1 },
			"ttl MaxInt64":     func(g *Genesis) { g.Params.ProposalTTLBlocks = math.MaxInt64 },
		} {
			g, _ := govGenesis(0, 10, 10)
			mod(&g)
			n := newChain(t)
			if _, err := n.app.InitChain(ctx, &abci.RequestInitChain{ChainId: testChainID, InitialHeight: 1, AppStateBytes: mustJSON(t, g)}); err == nil {
				t.Errorf("%s: InitChain accepted", name)
			}
		}
	})
	t.Run("the largest power", func(t *testing.T) {
		c := startGov(t, 0, 10)
		e := newMember("member-e", maxPower)
		_, ups := c.runOK(c.propose(c.m[0], addMember(e.addMember())))
		wantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(e.val), maxPower))
		// uni (10) is now a small minority: its proposal stays open.
		c.runOK(c.propose(c.m[0], setMaxHashes(20)))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
		c.runOK(c.vote(e, 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 3)
	})
	t.Run("the longest ttl", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		c.pass(setTTL(maxProposalTTL), nil)
		c.runOK(c.propose(c.m[0], setMaxHashes(20)))
		if p := c.proposal(2); p.ExpiresHeight != p.SubmitHeight+maxProposalTTL {
			t.Errorf("proposal submitted at %d expires at %d", p.SubmitHeight, p.ExpiresHeight)
		}
		c.runOK(c.vote(c.m[1], 2, true))
		c.runOK(c.vote(c.m[2], 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height)
	})
}

// TestGovValidatorUpdatesNotReused (regression): a FinalizeBlock
// response's ValidatorUpdates do not change when the next block is
// finalized (CometBFT hands the response on, e.g. in the NewBlock event
// that subscribers serialise later).
func TestGovValidatorUpdatesNotReused(t *testing.T) {
	c := startGov(t, 0, 10)
	first, _ := c.runOK(c.propose(c.m[0], changePower(memberID, 20)))
	wantUpdates(t, first.ValidatorUpdates, abci.Ed25519ValidatorUpdate(pubOf(memberValKey), 20))
	c.runOK(c.propose(c.m[0], changePower(memberID, 30)))
	if len(first.ValidatorUpdates) != 1 || first.ValidatorUpdates[0].Power != 20 {
		t.Errorf("block 1's validator updates became %s after block 2", fmtUpdates(first.ValidatorUpdates))
	}
}
