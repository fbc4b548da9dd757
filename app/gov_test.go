package app

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	cmttypes "github.com/cometbft/cometbft/types"
	ics23 "github.com/cosmos/ics23/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// govRejectSetup is the chain the rejection cases start from: four members
// of power 10, proposal_ttl_blocks 5, and
//
//	height 1: uni proposes #1 (max_batch_hashes 20), open until height 6;
//	height 2: uni proposes #2 (suspend beta); member-b votes yes on #1;
//	height 3: member-b and member-c vote no on #2: #2 is REJECTED.
//
// hist keeps the accepted transactions by name.
func govRejectSetup(t testing.TB) (*chain, map[string][]byte) {
	c := startGov(t, 5, 10, 10, 10, 10)
	hist := map[string][]byte{}
	hist["p1"] = c.propose(c.m[0], setMaxHashes(20))
	c.runOK(hist["p1"])
	hist["p2"] = c.propose(c.m[0], setIssuerStatus(betaID, pb.IssuerStatus_ISSUER_STATUS_SUSPENDED))
	hist["b-yes-1"] = c.vote(c.m[1], 1, true)
	c.runOK(hist["p2"], hist["b-yes-1"])
	c.runOK(c.vote(c.m[1], 2, false), c.vote(c.m[2], 2, false))
	c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
	c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_REJECTED, 3)
	return c, hist
}

type govRejectCase struct {
	name string
	at   int64 // height of the block holding the bad transaction (default 4)
	bad  func(c *chain, hist map[string][]byte) []byte
	code uint32
	why  string // in the log
}

// govProposeBy is a rejection case's proposal by uni with a valid key.
func govProposeBy(p *pb.Propose) func(c *chain, _ map[string][]byte) []byte {
	return func(c *chain, _ map[string][]byte) []byte { return c.propose(c.m[0], p) }
}

func govRejectCases() []govRejectCase {
	e := newMember("member-e", 10)
	addE := func(mod func(m *pb.AddMember)) *pb.Propose {
		m := e.addMember()
		mod(m)
		return addMember(m)
	}
	signed := func(signer string, key func(c *chain) ed25519.PrivateKey, vote bool) func(c *chain, _ map[string][]byte) []byte {
		return func(c *chain, _ map[string][]byte) []byte {
			var b *pb.TxBody
			if vote {
				b = voteBody(signer, c.next(memberAccount(signer)), 1, true)
			} else {
				b = proposeBody(signer, c.next(memberAccount(signer)), setMaxHashes(30))
			}
			return sign(c.t, b, key(c))
		}
	}
	fixed := func(k ed25519.PrivateKey) func(*chain) ed25519.PrivateKey {
		return func(*chain) ed25519.PrivateKey { return k }
	}
	adminOf := func(i int) func(*chain) ed25519.PrivateKey {
		return func(c *chain) ed25519.PrivateKey { return c.m[i].admin }
	}
	valOf := func(i int) func(*chain) ed25519.PrivateKey {
		return func(c *chain) ed25519.PrivateKey { return c.m[i].val }
	}
	withBody := func(b func(c *chain) *pb.TxBody) func(c *chain, _ map[string][]byte) []byte {
		return func(c *chain, _ map[string][]byte) []byte { return sign(c.t, b(c), c.m[0].admin) }
	}
	voteBy := func(i int, id uint64, yes bool) func(c *chain, _ map[string][]byte) []byte {
		return func(c *chain, _ map[string][]byte) []byte { return c.vote(c.m[i], id, yes) }
	}
	return []govRejectCase{
		// Who signs.
		{name: "propose by a non-member", bad: signed("stranger", fixed(strangerKey), false), code: CodeUnknownSigner, why: "not a member"},
		{name: "propose by an issuer with its own key", bad: signed(alphaID, fixed(alpha1), false), code: CodeUnknownSigner, why: "not a member"},
		{name: "vote by a non-member", bad: signed("stranger", fixed(strangerKey), true), code: CodeUnknownSigner, why: "not a member"},
		{name: "vote by an issuer with its own key", bad: signed(alphaID, fixed(alpha1), true), code: CodeUnknownSigner, why: "not a member"},
		{name: "propose signed with the member's validator key", bad: signed(memberID, valOf(0), false), code: CodeUnauthorized, why: "admin key"},
		{name: "propose signed with an issuer key", bad: signed(memberID, fixed(alpha1), false), code: CodeUnauthorized, why: "admin key"},
		{name: "propose signed with another member's admin key", bad: signed(memberID, adminOf(1), false), code: CodeUnauthorized, why: "admin key"},
		{name: "vote signed with the member's validator key", bad: signed("member-d", valOf(3), true), code: CodeUnauthorized, why: "admin key"},
		{name: "vote signed with another member's admin key", bad: signed("member-d", adminOf(2), true), code: CodeUnauthorized, why: "admin key"},
		{name: "vote signed with a stranger's key", bad: signed("member-d", fixed(strangerKey), true), code: CodeUnauthorized, why: "admin key"},

		// Replays and envelopes.
		{name: "replay of an accepted propose", bad: func(_ *chain, h map[string][]byte) []byte { return h["p1"] }, code: CodeReplay, why: "sequence"},
		{name: "new propose with a used sequence", bad: func(c *chain, _ map[string][]byte) []byte {
			return sign(c.t, proposeBody(memberID, 2, setMaxHashes(31)), c.m[0].admin)
		}, code: CodeReplay, why: "sequence"},
		{name: "vote with a used sequence", bad: func(c *chain, _ map[string][]byte) []byte {
			return sign(c.t, voteBody("member-c", 1, 1, true), c.m[2].admin) // member-c's seq 1 voted on #2
		}, code: CodeReplay, why: "sequence"},
		// The vote rule is checked before the sequence: a replayed vote, or
		// a used sequence on a proposal the member voted on, is
		// CodeRejected rather than CodeReplay.
		{name: "vote with a used sequence, on a proposal it voted on", bad: func(c *chain, _ map[string][]byte) []byte {
			return sign(c.t, voteBody("member-b", 1, 1, false), c.m[1].admin)
		}, code: CodeRejected, why: "already voted"},
		{name: "replay of an accepted vote", bad: func(_ *chain, h map[string][]byte) []byte { return h["b-yes-1"] }, code: CodeRejected, why: "already voted"},
		{name: "propose for another chain", bad: withBody(func(c *chain) *pb.TxBody {
			b := proposeBody(memberID, c.next(memberAccount(memberID)), setMaxHashes(30))
			b.ChainId = "credence-other-1"
			return b
		}), code: CodeWrongChain, why: "chain_id"},
		{name: "vote for another chain", bad: func(c *chain, _ map[string][]byte) []byte {
			b := voteBody("member-d", c.next(memberAccount("member-d")), 1, true)
			b.ChainId = ""
			return sign(c.t, b, c.m[3].admin)
		}, code: CodeWrongChain, why: "chain_id"},
		{name: "propose with sequence 0", bad: withBody(func(*chain) *pb.TxBody { return proposeBody(memberID, 0, setMaxHashes(30)) }), code: CodeMalformed, why: "sequence"},
		{name: "propose signature over another body", bad: func(c *chain, _ map[string][]byte) []byte {
			b1, _ := deterministic.Marshal(proposeBody(memberID, c.next(memberAccount(memberID)), setMaxHashes(30)))
			b2, _ := deterministic.Marshal(proposeBody(memberID, c.seq[memberAccount(memberID)], setMaxHashes(31)))
			return envelope(c.t, b1, pubOf(c.m[0].admin), ed25519.Sign(c.m[0].admin, SignBytes(b2)))
		}, code: CodeBadSignature},
		{name: "propose in a non-canonical envelope", bad: func(c *chain, _ map[string][]byte) []byte {
			bz, _ := deterministic.Marshal(proposeBody(memberID, c.next(memberAccount(memberID)), setMaxHashes(30)))
			var raw []byte
			raw = protowire.AppendTag(raw, 3, protowire.BytesType)
			raw = protowire.AppendBytes(raw, ed25519.Sign(c.m[0].admin, SignBytes(bz)))
			raw = protowire.AppendTag(raw, 2, protowire.BytesType)
			raw = protowire.AppendBytes(raw, pubOf(c.m[0].admin))
			raw = protowire.AppendTag(raw, 1, protowire.BytesType)
			return protowire.AppendBytes(raw, bz)
		}, code: CodeMalformed, why: "canonical"},
		{name: "body with no message", bad: withBody(func(c *chain) *pb.TxBody {
			return &pb.TxBody{ChainId: testChainID, Signer: memberID, Sequence: c.next(memberAccount(memberID))}
		}), code: CodeMalformed, why: "no message"},

		// Malformed actions.
		{name: "add_member with empty id", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Id = "" })), code: CodeMalformed, why: "add_member.id"},
		{name: "add_member with upper-case id", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Id = "Member-E" })), code: CodeMalformed, why: "add_member.id"},
		{name: "add_member with '/' in id", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Id = "member/e" })), code: CodeMalformed, why: "add_member.id"},
		{name: "add_member with 65-character id", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Id = strings.Repeat("e", 65) })), code: CodeMalformed, why: "add_member.id"},
		{name: "add_member admin key identity (small order)", bad: govProposeBy(addE(func(m *pb.AddMember) { m.AdminKey = identityPoint })), code: CodeMalformed, why: "admin_key"},
		{name: "add_member admin key (0,-1) (small order)", bad: govProposeBy(addE(func(m *pb.AddMember) { m.AdminKey = minusOnePoint })), code: CodeMalformed, why: "admin_key"},
		{name: "add_member admin key 31 bytes", bad: govProposeBy(addE(func(m *pb.AddMember) { m.AdminKey = m.AdminKey[:31] })), code: CodeMalformed, why: "admin_key"},
		{name: "add_member admin key empty", bad: govProposeBy(addE(func(m *pb.AddMember) { m.AdminKey = nil })), code: CodeMalformed, why: "admin_key"},
		{name: "add_member validator key identity (small order)", bad: govProposeBy(addE(func(m *pb.AddMember) { m.ValidatorKey = identityPoint })), code: CodeMalformed, why: "validator_key"},
		{name: "add_member validator key 33 bytes", bad: govProposeBy(addE(func(m *pb.AddMember) { m.ValidatorKey = append(m.ValidatorKey, 0) })), code: CodeMalformed, why: "validator_key"},
		{name: "add_member validator key off the curve", bad: func(c *chain, _ map[string][]byte) []byte {
			m := e.addMember()
			m.ValidatorKey = notOnCurve(c.t)
			return c.propose(c.m[0], addMember(m))
		}, code: CodeMalformed, why: "validator_key"},
		{name: "add_member power 0", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Power = 0 })), code: CodeMalformed, why: "power"},
		{name: "add_member power negative", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Power = -10 })), code: CodeMalformed, why: "power"},
		{name: "add_member power above maxPower", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Power = maxPower + 1 })), code: CodeMalformed, why: "power"},
		{name: "add_member power MaxInt64", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Power = math.MaxInt64 })), code: CodeMalformed, why: "power"},
		{name: "remove_member with empty id", bad: govProposeBy(removeMember("")), code: CodeMalformed, why: "remove_member.id"},
		{name: "remove_member with invalid id", bad: govProposeBy(removeMember("Member-D")), code: CodeMalformed, why: "remove_member.id"},
		{name: "change_power to 0", bad: govProposeBy(changePower("member-b", 0)), code: CodeMalformed, why: "power"},
		{name: "change_power negative", bad: govProposeBy(changePower("member-b", -1)), code: CodeMalformed, why: "power"},
		{name: "change_power above maxPower", bad: govProposeBy(changePower("member-b", maxPower+1)), code: CodeMalformed, why: "power"},
		{name: "change_power with invalid id", bad: govProposeBy(changePower("member b", 5)), code: CodeMalformed, why: "change_power.id"},
		{name: "set_issuer_status UNSPECIFIED", bad: govProposeBy(setIssuerStatus(alphaID, pb.IssuerStatus_ISSUER_STATUS_UNSPECIFIED)), code: CodeMalformed, why: "status"},
		{name: "set_issuer_status unknown enum value", bad: govProposeBy(setIssuerStatus(alphaID, pb.IssuerStatus(42))), code: CodeMalformed, why: "status"},
		{name: "set_issuer_status with invalid issuer id", bad: govProposeBy(setIssuerStatus("", pb.IssuerStatus_ISSUER_STATUS_SUSPENDED)), code: CodeMalformed, why: "set_issuer_status.issuer"},
		{name: "change_params changing nothing", bad: govProposeBy(&pb.Propose{Action: &pb.Propose_ChangeParams{ChangeParams: &pb.ChangeParams{}}}), code: CodeMalformed, why: "changes nothing"},
		{name: "change_params negative ttl", bad: govProposeBy(setTTL(-1)), code: CodeMalformed, why: "proposal_ttl_blocks"},
		{name: "change_params ttl above maxProposalTTL", bad: govProposeBy(setTTL(maxProposalTTL + 1)), code: CodeMalformed, why: "proposal_ttl_blocks"},
		{name: "change_params max_batch_hashes beyond a transaction", bad: govProposeBy(setMaxHashes(MaxBatchHashesLimit + 1)), code: CodeMalformed, why: "max_batch_hashes"},
		{name: "description of 1001 bytes", bad: govProposeBy(&pb.Propose{Description: strings.Repeat("d", maxDescription+1), Action: setMaxHashes(30).Action}), code: CodeMalformed, why: "description"},
		{name: "propose with no action", bad: govProposeBy(&pb.Propose{Description: "nothing to do"}), code: CodeMalformed, why: "no action"},
		{name: "empty propose", bad: govProposeBy(&pb.Propose{}), code: CodeMalformed, why: "no action"},
		{name: "vote on proposal 0", bad: voteBy(3, 0, true), code: CodeMalformed, why: "proposal_id"},

		// Actions that make no sense in the state.
		{name: "add_member of an existing member", bad: govProposeBy(addMember(newMember("member-b", 10).addMember())), code: CodeRejected, why: "already a member"},
		{name: "add_member of the proposer itself", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Id = memberID })), code: CodeRejected, why: "already a member"},
		{name: "remove_member of a non-member", bad: govProposeBy(removeMember("nobody")), code: CodeRejected, why: "not a member"},
		{name: "remove_member of an issuer", bad: govProposeBy(removeMember(alphaID)), code: CodeRejected, why: "not a member"},
		{name: "change_power of a non-member", bad: govProposeBy(changePower("member-e", 5)), code: CodeRejected, why: "not a member"},
		// The target issuer is unknown: the code is the one of an unknown
		// issuer (CodeUnknownSigner), although the signer is known.
		{name: "set_issuer_status of an unknown issuer", bad: govProposeBy(setIssuerStatus("nobody", pb.IssuerStatus_ISSUER_STATUS_SUSPENDED)), code: CodeUnknownSigner, why: "not registered"},

		// Votes that the proposal's state refuses.
		{name: "vote on a nonexistent proposal", bad: voteBy(3, 99, true), code: CodeRejected, why: "no proposal 99"},
		{name: "vote on the next proposal id, not yet created", bad: voteBy(3, 3, true), code: CodeRejected, why: "no proposal 3"},
		{name: "vote on a rejected proposal", bad: voteBy(3, 2, true), code: CodeRejected, why: "PROPOSAL_STATUS_REJECTED"},
		{name: "second vote by the same member", bad: voteBy(1, 1, true), code: CodeRejected, why: "already voted"},
		{name: "second vote by the same member, changing its mind", bad: voteBy(1, 1, false), code: CodeRejected, why: "already voted"},
		{name: "vote by the proposer on its own proposal", bad: voteBy(0, 1, true), code: CodeRejected, why: "already voted"},
		{name: "vote after expires_height, before the sweep", at: 7, bad: voteBy(3, 1, true), code: CodeRejected, why: "expired at height 6"},
		{name: "vote on an expired proposal", at: 8, bad: voteBy(3, 1, true), code: CodeRejected, why: "PROPOSAL_STATUS_EXPIRED"},
	}
}

// TestGovRejections: each rejected governance transaction is refused by
// CheckTx and FinalizeBlock with its code and a log, kept out of proposals,
// and changes nothing: the block's app hash is the one of the same block
// without it.
func TestGovRejections(t *testing.T) {
	for _, tc := range govRejectCases() {
		t.Run(tc.name, func(t *testing.T) {
			at := tc.at
			if at == 0 {
				at = 4
			}
			n, hist := govRejectSetup(t)
			ref, _ := govRejectSetup(t)
			n.advanceTo(at - 1)
			ref.advanceTo(at - 1)
			good := anchor(t, testChainID, alphaID, uint64(at), hashesN("gov-good", 2), alpha1)
			bad := tc.bad(n, hist)

			r := n.checkTx(bad)
			if r.Code != tc.code {
				t.Fatalf("CheckTx: code %d (%s), want %d", r.Code, r.Log, tc.code)
			}
			if r.Log == "" || r.Codespace == "" {
				t.Errorf("CheckTx: rejection without log or codespace: %+v", r)
			}
			if !strings.Contains(r.Log, tc.why) {
				t.Errorf("CheckTx: log %q does not say %q", r.Log, tc.why)
			}
			if got := n.prepare(bad, good, bad); !sameTxs(got, [][]byte{good}) {
				t.Errorf("PrepareProposal keeps %d txs, want only the good one", len(got))
			}
			if s := n.process(good, bad); s != abci.ResponseProcessProposal_REJECT {
				t.Errorf("ProcessProposal [good bad]: %v, want REJECT", s)
			}

			res, ups := n.run(good, bad)
			want, _ := ref.run(good)
			if res.TxResults[0].Code != CodeOK {
				t.Fatalf("good tx: code %d (%s)", res.TxResults[0].Code, res.TxResults[0].Log)
			}
			fr := res.TxResults[1]
			if fr.Code != tc.code {
				t.Errorf("FinalizeBlock: code %d (%s), want %d", fr.Code, fr.Log, tc.code)
			}
			if fr.Log == "" || !strings.Contains(fr.Log, tc.why) {
				t.Errorf("FinalizeBlock: log %q does not say %q", fr.Log, tc.why)
			}
			if len(fr.Events) != 0 {
				t.Errorf("rejected tx has events %v", fr.Events)
			}
			if len(ups) != 0 {
				t.Errorf("validator updates %s", fmtUpdates(ups))
			}
			if !bytes.Equal(res.AppHash, want.AppHash) {
				t.Errorf("app hash %x, want %x (the same block without the bad tx)", res.AppHash, want.AppHash)
			}
			if a, b := n.info().LastBlockAppHash, ref.info().LastBlockAppHash; !bytes.Equal(a, b) {
				t.Errorf("committed app hash %x, want %x", a, b)
			}
		})
	}
}

// TestGovAcceptedEdges: the limits themselves are accepted.
func TestGovAcceptedEdges(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *pb.Propose
	}{
		{"description of exactly 1000 bytes", &pb.Propose{Description: strings.Repeat("d", maxDescription), Action: setMaxHashes(30).Action}},
		{"max_batch_hashes at the transaction limit", setMaxHashes(MaxBatchHashesLimit)},
		{"ttl of one block", setTTL(1)},
		{"ttl of maxProposalTTL", setTTL(maxProposalTTL)},
		{"add_member power maxPower", addMember(newMember("member-e", maxPower).addMember())},
		{"change_power to maxPower", changePower("member-b", maxPower)},
		{"ttl and max_batch_hashes together", &pb.Propose{Action: &pb.Propose_ChangeParams{ChangeParams: &pb.ChangeParams{MaxBatchHashes: 5, ProposalTtlBlocks: 7}}}},
		{"set_issuer_status to the status it has", setIssuerStatus(alphaID, pb.IssuerStatus_ISSUER_STATUS_ACTIVE)},
		{"add_member whose admin key is another member's", addMember(&pb.AddMember{Id: "member-e", AdminKey: pubOf(memberAdminKey), ValidatorKey: pubOf(testKey("gov-validator-member-e")), Power: 1})},
		{"change_power to the power it has", changePower("member-b", 10)},
		{"remove_member of the proposer", removeMember(memberID)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startGov(t, 0, 10, 10, 10, 10)
			tx := c.propose(c.m[0], tc.p)
			if r := c.checkTx(tx); r.Code != CodeOK {
				t.Fatalf("CheckTx: code %d (%s)", r.Code, r.Log)
			}
			res, _ := c.runOK(tx)
			if evs := res.TxResults[0].Events; len(evs) != 1 || evs[0].Type != "proposal" || attr(evs[0], "id") != "1" || attr(evs[0], "status") != "PROPOSAL_STATUS_OPEN" {
				t.Errorf("events %v", evs)
			}
			p := c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
			var got pb.Propose
			if err := proto.Unmarshal(p.Propose, &got); err != nil || !proto.Equal(&got, tc.p) {
				t.Errorf("stored propose %v (%v), want %v", &got, err, tc.p)
			}
			if p.Id != 1 || p.Proposer != memberID || p.SubmitHeight != 1 || p.ExpiresHeight != 1+DefaultProposalTTLBlocks ||
				fmt.Sprint(p.Yes) != fmt.Sprint([]string{memberID}) || len(p.No) != 0 {
				t.Errorf("proposal %v", p)
			}
		})
	}
}

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
