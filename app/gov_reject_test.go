package app

// Governance transactions refused, and the limits accepted: the chain the
// rejection cases start from (govRejectSetup), the cases, and the check that
// each is refused everywhere and changes nothing.

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"math"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

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
