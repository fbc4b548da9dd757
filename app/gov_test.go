package app

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	ics23 "github.com/cosmos/ics23/go"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestGovTally: a proposal passes when members holding more than 2/3 of
// the power vote yes (exactly 2/3 is not enough) and is rejected as soon as
// the no votes make that impossible. The proposer votes yes by proposing;
// each further vote is in its own block.
func TestGovTally(t *testing.T) {
	const (
		open     = pb.ProposalStatus_PROPOSAL_STATUS_OPEN
		passed   = pb.ProposalStatus_PROPOSAL_STATUS_PASSED
		rejected = pb.ProposalStatus_PROPOSAL_STATUS_REJECTED
	)
	type vote struct {
		voter int
		yes   bool
		want  pb.ProposalStatus
	}
	for _, tc := range []struct {
		name     string
		powers   []int64
		proposer int
		first    pb.ProposalStatus
		votes    []vote
	}{
		{"4x10: 10/40, 20/40 open, 30/40 passes", []int64{10, 10, 10, 10}, 0, open, []vote{{1, true, open}, {2, true, passed}}},
		{"4x10: two no (max 20/40) rejects", []int64{10, 10, 10, 10}, 0, open, []vote{{1, false, open}, {2, false, rejected}}},
		{"4x10: yes, no, yes passes at 30/40", []int64{10, 10, 10, 10}, 0, open, []vote{{1, true, open}, {2, false, open}, {3, true, passed}}},
		{"4x10: no, yes, no rejects", []int64{10, 10, 10, 10}, 0, open, []vote{{1, false, open}, {2, true, open}, {3, false, rejected}}},
		{"4x10: proposal by the last member", []int64{10, 10, 10, 10}, 3, open, []vote{{0, true, open}, {1, true, passed}}},
		{"3x10: exactly 2/3 (20/30) stays open, 30/30 passes", []int64{10, 10, 10}, 0, open, []vote{{1, true, open}, {2, true, passed}}},
		{"3x10: exactly 2/3 yes, then no: rejected", []int64{10, 10, 10}, 0, open, []vote{{1, true, open}, {2, false, rejected}}},
		{"3x10: one no leaves at most 2/3: rejected", []int64{10, 10, 10}, 0, open, []vote{{1, false, rejected}}},
		{"2x10: yes passes", []int64{10, 10}, 0, open, []vote{{1, true, passed}}},
		{"2x10: no rejects", []int64{10, 10}, 0, open, []vote{{1, false, rejected}}},
		{"40,10,10,10: 40/70 open, 50/70 passes", []int64{40, 10, 10, 10}, 0, open, []vote{{1, true, passed}}},
		{"10,40,10,10: a no of more than 1/3 rejects at once", []int64{10, 40, 10, 10}, 0, open, []vote{{1, false, rejected}}},
		{"10,40,10,10: small no votes leave it open", []int64{10, 40, 10, 10}, 0, open, []vote{{2, false, open}, {3, false, open}, {1, true, passed}}},
		{"1,2: proposer with exactly 2/3 stays open", []int64{1, 2}, 1, open, []vote{{0, true, passed}}},
		{"1,3: proposer with 3/4 passes alone", []int64{1, 3}, 1, passed, nil},
		{"single member passes alone", []int64{10}, 0, passed, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startGov(t, 0, tc.powers...)
			check := func(res *abci.ResponseFinalizeBlock, ups []abci.ValidatorUpdate, typ string, want pb.ProposalStatus) {
				t.Helper()
				if len(ups) != 0 {
					t.Fatalf("validator updates %s for a parameter change", fmtUpdates(ups))
				}
				evs := res.TxResults[0].Events
				if len(evs) != 1 || evs[0].Type != typ || attr(evs[0], "status") != want.String() {
					t.Errorf("height %d: events %v, want a %s event with status %s", c.height, evs, typ, want)
				}
			}
			decided := int64(0)
			res, ups := c.runOK(c.propose(c.m[tc.proposer], setMaxHashes(20)))
			check(res, ups, "proposal", tc.first)
			if tc.first != open {
				decided = c.height
			}
			c.wantStatus(1, tc.first, decided)
			for _, v := range tc.votes {
				res, ups := c.runOK(c.vote(c.m[v.voter], 1, v.yes))
				check(res, ups, "vote", v.want)
				if attr(res.TxResults[0].Events[0], "member") != c.m[v.voter].id || attr(res.TxResults[0].Events[0], "proposal") != "1" {
					t.Errorf("vote event %v", res.TxResults[0].Events[0])
				}
				if v.want != open && decided == 0 {
					decided = c.height
				}
				c.wantStatus(1, v.want, decided)
			}
			p := c.proposal(1)
			var yes, no []string
			yes = append(yes, c.m[tc.proposer].id)
			for _, v := range tc.votes {
				if v.yes {
					yes = append(yes, c.m[v.voter].id)
				} else {
					no = append(no, c.m[v.voter].id)
				}
			}
			if fmt.Sprint(p.Yes) != fmt.Sprint(yes) || fmt.Sprint(p.No) != fmt.Sprint(no) {
				t.Errorf("yes %v no %v, want %v %v", p.Yes, p.No, yes, no)
			}
			// The action applied if and only if the proposal passed.
			wantMax := uint64(testMaxHashes)
			if p.Status == passed {
				wantMax = 20
			}
			if got := c.params().MaxBatchHashes; got != wantMax {
				t.Errorf("max_batch_hashes %d, want %d", got, wantMax)
			}
			if p.Status != open {
				// A decided proposal takes no more votes.
				for i, m := range c.m {
					if slices.Contains(p.Yes, m.id) || slices.Contains(p.No, m.id) {
						continue
					}
					tx := c.vote(c.m[i], 1, true)
					if r := c.checkTx(tx); r.Code != CodeRejected {
						t.Errorf("vote on a decided proposal: CheckTx code %d (%s)", r.Code, r.Log)
					}
					res, _ := c.run(tx)
					wantCodes(t, res, CodeRejected)
				}
				c.wantStatus(1, p.Status, decided)
			}
		})
	}
}

// TestGovActions: each action applies in the block where its proposal
// passes, and its validator updates are exactly the change.
func TestGovActions(t *testing.T) {
	t.Run("add_member", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		e := newMember("member-e", 7)
		_, res, ups := c.pass(addMember(e.addMember()), nil)
		wantCodes(t, res, CodeOK)
		wantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(e.val), 7))
		want := &pb.Member{Id: e.id, Name: "Member " + e.id, AdminKey: pubOf(e.admin), ValidatorKey: pubOf(e.val), Power: 7}
		if got := c.member(e.id); !proto.Equal(got, want) {
			t.Fatalf("member record %v, want %v", got, want)
		}
		// The new member proposes and votes with its admin key, and its
		// power counts: 7+10+10 = 27/47 is open, with member-c 37/47 passes
		// (30/47 without member-e would not).
		_, ups = c.runOK(c.propose(e, setMaxHashes(20)))
		if len(ups) != 0 {
			t.Fatalf("updates %s", fmtUpdates(ups))
		}
		c.runOK(c.vote(c.m[0], 2, true), c.vote(c.m[1], 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
		c.runOK(c.vote(c.m[2], 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height)
		if p := c.proposal(2); p.Proposer != e.id {
			t.Errorf("proposer %q", p.Proposer)
		}
		// Its validator key does not sign governance.
		bad := sign(t, proposeBody(e.id, c.next(memberAccount(e.id)), setMaxHashes(21)), e.val)
		if r := c.checkTx(bad); r.Code != CodeUnauthorized {
			t.Errorf("propose with the new member's validator key: code %d (%s)", r.Code, r.Log)
		}
	})

	t.Run("change_power", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		_, _, ups := c.pass(changePower(c.m[1].id, 25), nil)
		wantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(c.m[1].val), 25))
		if m := c.member(c.m[1].id); m == nil || m.Power != 25 || !bytes.Equal(m.ValidatorKey, pubOf(c.m[1].val)) || !bytes.Equal(m.AdminKey, pubOf(c.m[1].admin)) {
			t.Fatalf("member record %v", m)
		}
		// The tally uses the new power: 10+25 = 35/55 is open, 45/55 passes.
		c.runOK(c.propose(c.m[0], setMaxHashes(20)))
		c.runOK(c.vote(c.m[1], 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
		c.runOK(c.vote(c.m[2], 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height)
	})

	t.Run("remove_member", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		d := c.m[3] // gamma's sponsor
		c.runOK(c.anchorTx(gammaID, gamma1, 2))
		_, res, ups := c.pass(removeMember(d.id), func(v []byte) [][]byte {
			return [][]byte{
				c.anchorTx(gammaID, gamma1, 2), // before: gamma is active
				v,                              // passes: member-d leaves, gamma is suspended
				c.anchorTx(gammaID, gamma1, 2), // after, in the same block
				sign(t, proposeBody(d.id, 1, setMaxHashes(9)), d.admin), // member-d is gone
			}
		})
		wantCodes(t, res, CodeOK, CodeOK, CodeUnauthorized, CodeUnknownSigner)
		wantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(d.val), 0))
		if m := c.member(d.id); m != nil {
			t.Fatalf("removed member still present: %v", m)
		}
		if s := c.issuerStatus(gammaID); s != pb.IssuerStatus_ISSUER_STATUS_SUSPENDED {
			t.Errorf("gamma (sponsored by the removed member) is %s", s)
		}
		for _, id := range []string{alphaID, betaID} {
			if s := c.issuerStatus(id); s != pb.IssuerStatus_ISSUER_STATUS_ACTIVE {
				t.Errorf("%s (sponsored by another member) is %s", id, s)
			}
		}
		tx := c.anchorTx(gammaID, gamma1, 2)
		if r := c.checkTx(tx); r.Code != CodeUnauthorized || !strings.Contains(r.Log, "SUSPENDED") {
			t.Errorf("CheckTx of a suspended issuer's batch: code %d (%s)", r.Code, r.Log)
		}
		res, _ = c.run(tx, c.vote(d, 1, true))
		wantCodes(t, res, CodeUnauthorized, CodeUnknownSigner)

		// Three members of 10 remain: 20/30 is open, 30/30 passes; gamma
		// can be reinstated.
		c.runOK(c.propose(c.m[0], setIssuerStatus(gammaID, pb.IssuerStatus_ISSUER_STATUS_ACTIVE)))
		c.runOK(c.vote(c.m[1], 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
		_, ups = c.runOK(c.vote(c.m[2], 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height)
		if len(ups) != 0 {
			t.Errorf("updates %s", fmtUpdates(ups))
		}
		c.runOK(c.anchorTx(gammaID, gamma1, 2))
	})

	t.Run("set_issuer_status", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		_, res, ups := c.pass(setIssuerStatus(alphaID, pb.IssuerStatus_ISSUER_STATUS_SUSPENDED), func(v []byte) [][]byte {
			return [][]byte{c.anchorTx(alphaID, alpha1, 1), v, c.anchorTx(alphaID, alpha1, 1)}
		})
		wantCodes(t, res, CodeOK, CodeOK, CodeUnauthorized)
		if len(ups) != 0 {
			t.Errorf("updates %s", fmtUpdates(ups))
		}
		if s := c.issuerStatus(alphaID); s != pb.IssuerStatus_ISSUER_STATUS_SUSPENDED {
			t.Fatalf("alpha is %s", s)
		}
		tx := c.anchorTx(alphaID, alpha1, 3)
		if r := c.checkTx(tx); r.Code != CodeUnauthorized {
			t.Errorf("CheckTx of a suspended issuer's batch: code %d (%s)", r.Code, r.Log)
		}
		res, _ = c.run(tx, c.anchorTx(betaID, beta1, 1))
		wantCodes(t, res, CodeUnauthorized, CodeOK)

		c.pass(setIssuerStatus(alphaID, pb.IssuerStatus_ISSUER_STATUS_ACTIVE), nil)
		if s := c.issuerStatus(alphaID); s != pb.IssuerStatus_ISSUER_STATUS_ACTIVE {
			t.Fatalf("alpha is %s", s)
		}
		tx = c.anchorTx(alphaID, alpha1, 3)
		if r := c.checkTx(tx); r.Code != CodeOK {
			t.Errorf("CheckTx of a reinstated issuer's batch: code %d (%s)", r.Code, r.Log)
		}
		c.runOK(tx)
		if rec, _ := c.batchRecord(alphaID, c.seq[issuerAccount(alphaID)]); rec == nil {
			t.Error("reinstated issuer's batch not stored")
		}
	})

	t.Run("change_params max_batch_hashes", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		if r := c.checkTx(c.anchorTx(alphaID, alpha1, testMaxHashes+1)); r.Code != CodeTooLarge {
			t.Fatalf("batch over the genesis limit: code %d", r.Code)
		}
		// Raised to 20: a batch of 17 after the passing vote, in the same
		// block, is accepted.
		_, res, _ := c.pass(setMaxHashes(20), func(v []byte) [][]byte {
			return [][]byte{c.anchorTx(alphaID, alpha1, testMaxHashes+1), v, c.anchorTx(alphaID, alpha1, testMaxHashes+1)}
		})
		wantCodes(t, res, CodeTooLarge, CodeOK, CodeOK)
		if p := c.params(); p.MaxBatchHashes != 20 || p.ProposalTtlBlocks != DefaultProposalTTLBlocks {
			t.Fatalf("params %v", p)
		}
		at, over := c.anchorTx(alphaID, alpha1, 20), c.anchorTx(alphaID, alpha1, 21)
		if r := c.checkTx(at); r.Code != CodeOK {
			t.Errorf("batch of 20: code %d (%s)", r.Code, r.Log)
		}
		if r := c.checkTx(over); r.Code != CodeTooLarge {
			t.Errorf("batch of 21: code %d (%s)", r.Code, r.Log)
		}
		res, _ = c.run(at, over)
		wantCodes(t, res, CodeOK, CodeTooLarge)

		// Lowered to 8: a batch of 12 that CheckTx accepted (and cached)
		// under 20 is refused after the passing vote.
		twelve := c.anchorTx(alphaID, alpha1, 12)
		if r := c.checkTx(twelve); r.Code != CodeOK {
			t.Fatalf("batch of 12: code %d (%s)", r.Code, r.Log)
		}
		_, res, _ = c.pass(setMaxHashes(8), func(v []byte) [][]byte { return [][]byte{v, twelve} })
		wantCodes(t, res, CodeOK, CodeTooLarge)
		if r := c.checkTx(twelve); r.Code != CodeTooLarge {
			t.Errorf("CheckTx after the change: code %d (%s)", r.Code, r.Log)
		}
		// The limit is state: it survives a restart.
		c.reopen()
		if r := c.checkTx(c.anchorTx(alphaID, alpha1, 9)); r.Code != CodeTooLarge {
			t.Errorf("after reopen, batch of 9: code %d (%s)", r.Code, r.Log)
		}
		c.runOK(c.anchorTx(alphaID, alpha1, 8))
	})

	t.Run("change_params proposal_ttl_blocks", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		c.runOK(c.propose(c.m[3], setMaxHashes(30))) // #1, under the old ttl
		c.pass(setTTL(3), nil)                       // #2
		if p := c.params(); p.ProposalTtlBlocks != 3 || p.MaxBatchHashes != testMaxHashes {
			t.Fatalf("params %v", p)
		}
		c.runOK(c.propose(c.m[0], setMaxHashes(40))) // #3
		if p := c.proposal(3); p.ExpiresHeight != c.height+3 {
			t.Errorf("new proposal expires at %d, want %d", p.ExpiresHeight, c.height+3)
		}
		if p := c.proposal(1); p.ExpiresHeight != 1+DefaultProposalTTLBlocks {
			t.Errorf("older proposal expires at %d, want %d", p.ExpiresHeight, 1+DefaultProposalTTLBlocks)
		}
		h := c.height
		c.advanceTo(h + 4)
		c.wantStatus(3, pb.ProposalStatus_PROPOSAL_STATUS_EXPIRED, h+4)
		c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
	})

	t.Run("passing without effect fails", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		d, e := c.m[3], newMember("member-e", 5)
		sameKey := e.addMember()
		sameKey.ValidatorKey = pubOf(c.m[1].val)
		// #1 remove member-d, #2 re-power member-d, #3 add member-e with
		// member-b's validator key, #4 and #5 add member-e twice.
		c.runOK(c.propose(c.m[0], removeMember(d.id)), c.propose(c.m[0], changePower(d.id, 20)), c.propose(c.m[0], addMember(sameKey)),
			c.propose(c.m[0], addMember(e.addMember())), c.propose(c.m[0], addMember(e.addMember())))
		var votes [][]byte
		for id := uint64(1); id <= 5; id++ {
			votes = append(votes, c.vote(c.m[1], id, true))
		}
		c.runOK(votes...)
		for _, step := range []struct {
			id      uint64
			status  pb.ProposalStatus
			outcome string
			ups     []abci.ValidatorUpdate
		}{
			{1, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, "", []abci.ValidatorUpdate{abci.Ed25519ValidatorUpdate(pubOf(d.val), 0)}},
			{2, pb.ProposalStatus_PROPOSAL_STATUS_FAILED, "not a member", nil},
			{3, pb.ProposalStatus_PROPOSAL_STATUS_FAILED, "validator key", nil},
			{4, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, "", []abci.ValidatorUpdate{abci.Ed25519ValidatorUpdate(pubOf(e.val), 5)}},
			{5, pb.ProposalStatus_PROPOSAL_STATUS_FAILED, "already a member", nil},
		} {
			before := c.params()
			res, ups := c.runOK(c.vote(c.m[2], step.id, true))
			if attr(res.TxResults[0].Events[0], "status") != step.status.String() {
				t.Errorf("#%d: vote event %v", step.id, res.TxResults[0].Events)
			}
			p := c.wantStatus(step.id, step.status, c.height)
			if !strings.Contains(p.Outcome, step.outcome) {
				t.Errorf("#%d: outcome %q, want %q", step.id, p.Outcome, step.outcome)
			}
			wantUpdates(t, ups, step.ups...)
			if !proto.Equal(before, c.params()) {
				t.Errorf("#%d: params changed", step.id)
			}
		}
		if m := c.member(c.m[1].id); m == nil || m.Power != 10 {
			t.Errorf("member-b %v", m)
		}
		if m := c.member(e.id); m == nil || !bytes.Equal(m.ValidatorKey, pubOf(e.val)) || m.Power != 5 {
			t.Errorf("member-e %v", m)
		}
	})
}

// TestGovSameBlock: within a block, later transactions see earlier ones: a
// proposal can be voted on, and passed, in the block that opens it; a
// second vote of a member in a block is refused.
func TestGovSameBlock(t *testing.T) {
	c := startGov(t, 0, 10, 10, 10, 10)
	res, _ := c.run(c.propose(c.m[0], setMaxHashes(20)), c.vote(c.m[1], 1, true), c.vote(c.m[1], 1, false), c.vote(c.m[2], 1, true), c.vote(c.m[3], 1, true))
	wantCodes(t, res, CodeOK, CodeOK, CodeRejected, CodeOK, CodeRejected)
	p := c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 1)
	if fmt.Sprint(p.Yes) != fmt.Sprint([]string{memberID, "member-b", "member-c"}) || len(p.No) != 0 {
		t.Errorf("yes %v no %v", p.Yes, p.No)
	}
	if c.params().MaxBatchHashes != 20 {
		t.Error("params not changed")
	}
	// Proposal ids are consecutive across blocks and proposers.
	c.runOK(c.propose(c.m[2], setMaxHashes(21)), c.propose(c.m[1], setMaxHashes(22)))
	c.runOK(c.propose(c.m[0], setMaxHashes(23)))
	for id, who := range map[uint64]string{2: "member-c", 3: "member-b", 4: memberID} {
		if p := c.proposal(id); p == nil || p.Proposer != who || p.Id != id {
			t.Errorf("proposal %d: %v, want by %s", id, p, who)
		}
	}
	if got := c.nextProposalID(); got != 5 {
		t.Errorf("next proposal id %d, want 5", got)
	}
}

// TestGovExpiry: a proposal that does not pass within proposal_ttl_blocks
// is EXPIRED at the end of the first block after expires_height; votes are
// taken up to expires_height and refused after.
func TestGovExpiry(t *testing.T) {
	const ttl = 3
	c := startGov(t, ttl, 10, 10, 10, 10)
	a, b, cc, d := c.m[0], c.m[1], c.m[2], c.m[3]
	c.runOK(c.propose(a, setMaxHashes(20)), c.propose(b, setIssuerStatus(betaID, pb.IssuerStatus_ISSUER_STATUS_SUSPENDED))) // #1 and #2 at height 1
	p1 := c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
	if p1.SubmitHeight != 1 || p1.ExpiresHeight != 1+ttl {
		t.Fatalf("proposal %v: want submitted at 1, expiring at %d", p1, 1+ttl)
	}
	c.runOK(c.vote(cc, 1, true), c.vote(cc, 2, true), c.vote(d, 2, true)) // #2 passes at 2
	c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 2)
	c.runOK()
	c.runOK(c.vote(d, 1, false)) // height 4 = expires_height: still taken
	c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
	open := proof.OpenProposalKey(1+ttl, 1)
	if v := c.query("/key", open, 0, false).Value; v == nil {
		t.Error("open proposal not in the expiry index")
	}

	late := c.vote(b, 1, true) // would pass it (30/40)
	if r := c.checkTx(late); r.Code != CodeRejected || !strings.Contains(r.Log, "expired") {
		t.Errorf("CheckTx at height 5: code %d (%s), want rejected", r.Code, r.Log)
	}
	res, _ := c.run(late)
	wantCodes(t, res, CodeRejected)
	p := c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_EXPIRED, 5)
	if !strings.Contains(p.Outcome, "expired") || fmt.Sprint(p.Yes) != fmt.Sprint([]string{a.id, cc.id}) || fmt.Sprint(p.No) != fmt.Sprint([]string{d.id}) {
		t.Errorf("expired proposal %v", p)
	}
	if got := c.proposalAt(1, 4); got.Status != pb.ProposalStatus_PROPOSAL_STATUS_OPEN {
		t.Errorf("at height 4 the proposal is %s, want open", got.Status)
	}
	if v := c.query("/key", open, 0, false).Value; v != nil {
		t.Error("expired proposal still in the expiry index")
	}
	c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 2) // decided ones are left alone
	if c.params().MaxBatchHashes != testMaxHashes {
		t.Error("expired proposal's action applied")
	}

	again := c.vote(b, 1, true)
	if r := c.checkTx(again); r.Code != CodeRejected || !strings.Contains(r.Log, "EXPIRED") {
		t.Errorf("CheckTx after expiry: code %d (%s)", r.Code, r.Log)
	}
	res, _ = c.run(again)
	wantCodes(t, res, CodeRejected)
	c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_EXPIRED, 5)

	// Several proposals expiring at one height expire together, in id
	// order; one that passes in the block of its expiry height does not.
	h := c.height                                                                                            // 6
	c.runOK(c.propose(a, setMaxHashes(21)), c.propose(b, setMaxHashes(22)), c.propose(cc, setMaxHashes(23))) // #3 #4 #5, expire at h+1+ttl
	c.advanceTo(h + ttl)                                                                                     // last committed: h+ttl
	c.runOK(c.vote(b, 5, true), c.vote(d, 5, true))                                                          // at h+1+ttl: #5 passes
	c.wantStatus(3, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)                                               // expires_height itself
	c.runOK()                                                                                                // h+2+ttl
	c.wantStatus(3, pb.ProposalStatus_PROPOSAL_STATUS_EXPIRED, h+2+ttl)
	c.wantStatus(4, pb.ProposalStatus_PROPOSAL_STATUS_EXPIRED, h+2+ttl)
	c.wantStatus(5, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, h+1+ttl)
	if c.params().MaxBatchHashes != 23 {
		t.Errorf("max_batch_hashes %d, want 23", c.params().MaxBatchHashes)
	}
}

// TestGovSingleMember: on a chain of one member, its proposals pass in the
// block that carries them.
func TestGovSingleMember(t *testing.T) {
	t.Run("harness chain: suspend an issuer", func(t *testing.T) {
		c := start(t)
		res, ups := c.run(c.propose(c.m[0], setIssuerStatus(betaID, pb.IssuerStatus_ISSUER_STATUS_SUSPENDED)), c.anchorTx(betaID, beta1, 1))
		wantCodes(t, res, CodeOK, CodeUnauthorized)
		if ev := res.TxResults[0].Events; len(ev) != 1 || attr(ev[0], "status") != "PROPOSAL_STATUS_PASSED" {
			t.Errorf("events %v", ev)
		}
		if len(ups) != 0 {
			t.Errorf("updates %s", fmtUpdates(ups))
		}
		p := c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 1)
		if p.SubmitHeight != 1 || p.ExpiresHeight != 1+DefaultProposalTTLBlocks {
			t.Errorf("proposal %v", p)
		}
	})

	t.Run("add a member, then two must agree", func(t *testing.T) {
		c := startGov(t, 0, 10)
		e := newMember("member-e", 5)
		_, ups := c.runOK(c.propose(c.m[0], addMember(e.addMember())))
		c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 1)
		wantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(e.val), 5))
		// uni holds 10/15, exactly 2/3: its proposal stays open until
		// member-e agrees.
		c.runOK(c.propose(c.m[0], setMaxHashes(20)))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
		c.runOK(c.vote(e, 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 3)
	})

	t.Run("the last member cannot be removed", func(t *testing.T) {
		c := startGov(t, 0, 10)
		_, ups := c.runOK(c.propose(c.m[0], removeMember(memberID)))
		p := c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_FAILED, 1)
		if !strings.Contains(p.Outcome, "last member") {
			t.Errorf("outcome %q", p.Outcome)
		}
		if len(ups) != 0 {
			t.Errorf("updates %s", fmtUpdates(ups))
		}
		if c.member(memberID) == nil || c.issuerStatus(alphaID) != pb.IssuerStatus_ISSUER_STATUS_ACTIVE {
			t.Error("the failed removal changed the state")
		}
		c.runOK(c.propose(c.m[0], setMaxHashes(20)))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 2)
	})
}

// TestGovProposalProofs: a proposal's record at any height is proved by
// Query against that height's app hash.
func TestGovProposalProofs(t *testing.T) {
	c := startGov(t, 0, 10, 10, 10, 10)
	c.runOK(c.propose(c.m[0], setMaxHashes(20)))
	c.runOK(c.vote(c.m[1], 1, false))
	c.runOK(c.vote(c.m[2], 1, true))
	c.runOK(c.vote(c.m[3], 1, true)) // 30/40: passes at 4
	c.runOK()
	key := ProposalKey(1)
	if !bytes.Equal(key, proof.ProposalKey(1)) || !bytes.HasPrefix(key, []byte(proof.PrefixProposal)) {
		t.Fatalf("ProposalKey(1) = %q", key)
	}
	for _, tc := range []struct {
		height, want int64
		status       pb.ProposalStatus
		decided      int64
	}{
		{1, 1, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0},
		{3, 3, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0},
		{4, 4, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 4},
		{0, 5, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 4},
	} {
		t.Run(fmt.Sprintf("height %d", tc.height), func(t *testing.T) {
			res := c.query("/key", key, tc.height, true)
			if res.Code != CodeOK || res.Value == nil || res.Height != tc.want || !bytes.Equal(res.Key, key) {
				t.Fatalf("code %d height %d value %x (%s)", res.Code, res.Height, res.Value, res.Log)
			}
			var p pb.Proposal
			if err := proto.Unmarshal(res.Value, &p); err != nil {
				t.Fatal(err)
			}
			if p.Id != 1 || p.Status != tc.status || p.DecidedHeight != tc.decided {
				t.Errorf("proposal %v, want %s decided at %d", &p, tc.status, tc.decided)
			}
			if res.ProofOps == nil || len(res.ProofOps.Ops) != 1 || res.ProofOps.Ops[0].Type != "ics23:iavl" || !bytes.Equal(res.ProofOps.Ops[0].Key, key) {
				t.Fatalf("proof ops %v", res.ProofOps)
			}
			verifyMembership(t, c.appHash[tc.want], res.ProofOps.Ops[0].Data, key, res.Value)
			pr := unmarshalProof(t, res.ProofOps.Ops[0].Data)
			if tc.want != 1 && ics23.VerifyMembership(ics23.IavlSpec, c.appHash[1], pr, key, res.Value) {
				t.Error("proof verifies against height 1's app hash")
			}
			forged := proto.Clone(&p).(*pb.Proposal)
			forged.Status = pb.ProposalStatus_PROPOSAL_STATUS_REJECTED
			fv, _ := deterministic.Marshal(forged)
			if ics23.VerifyMembership(ics23.IavlSpec, c.appHash[tc.want], pr, key, fv) {
				t.Error("proof verifies for another outcome")
			}
		})
	}
	t.Run("no such proposal", func(t *testing.T) {
		res := c.query("/key", ProposalKey(2), 0, true)
		if res.Code != CodeOK || res.Value != nil || res.ProofOps == nil || len(res.ProofOps.Ops) != 1 {
			t.Fatalf("code %d value %x proof %v", res.Code, res.Value, res.ProofOps)
		}
		if !ics23.VerifyNonMembership(ics23.IavlSpec, c.appHash[5], unmarshalProof(t, res.ProofOps.Ops[0].Data), ProposalKey(2)) {
			t.Error("non-membership proof does not verify")
		}
	})
}
