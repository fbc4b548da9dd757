package app

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmttypes "github.com/cometbft/cometbft/types"
	ics23 "github.com/cosmos/ics23/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// The governance chains: the test genesis with its members replaced by
// members of the given powers, and a third issuer "gamma" sponsored by the
// last member (so that removing that member suspends it).
//
// Member 0 is the harness's "uni" (memberAdminKey, memberValKey); member i
// is "member-<letter>" with keys derived from its id.

const govGammaID = "gamma"

var govGamma1 = testKey("gamma-1")

type govMember struct {
	id         string
	admin, val ed25519.PrivateKey
	power      int64
}

func govMemberAt(i int, power int64) govMember {
	if i == 0 {
		return govMember{id: memberID, admin: memberAdminKey, val: memberValKey, power: power}
	}
	return govNewMember(fmt.Sprintf("member-%c", 'a'+i), power)
}

// govNewMember is a member not (yet) on the chain, with keys from its id.
func govNewMember(id string, power int64) govMember {
	return govMember{id: id, admin: testKey("gov-admin-" + id), val: testKey("gov-validator-" + id), power: power}
}

func (m govMember) addMember() *pb.AddMember {
	return &pb.AddMember{Id: m.id, Name: "Member " + m.id, AdminKey: pubOf(m.admin), ValidatorKey: pubOf(m.val), Power: m.power}
}

func govGenesis(ttl int64, powers ...int64) (Genesis, []govMember) {
	g := testGenesisDoc()
	ms := make([]govMember, len(powers))
	g.Members = nil
	for i, p := range powers {
		ms[i] = govMemberAt(i, p)
		g.Members = append(g.Members, GenesisMember{
			ID: ms[i].id, Name: "Member " + ms[i].id, Power: p,
			AdminKey: proof.FormatBinary(pubOf(ms[i].admin)), ValidatorKey: proof.FormatBinary(pubOf(ms[i].val)),
		})
	}
	g.Issuers = append(g.Issuers, GenesisIssuer{
		ID: govGammaID, Name: "Registrar Gamma", Sponsor: ms[len(ms)-1].id,
		Keys: []GenesisKey{{PublicKey: proof.FormatBinary(pubOf(govGamma1)), FromHeight: 1}},
	})
	g.Params.ProposalTTLBlocks = ttl
	return g, ms
}

// govChain is a node with the governance genesis, the sequences its
// transactions use, and the validator set CometBFT would hold: every
// block's validator updates are applied to it as CometBFT applies them.
type govChain struct {
	*node
	m    []govMember       // genesis members, in order
	seq  map[string]uint64 // last sequence used, by account
	vals *cmttypes.ValidatorSet
}

// startGov starts a chain with members of the given powers; ttl 0 keeps the
// default proposal_ttl_blocks.
func startGov(t testing.TB, ttl int64, powers ...int64) *govChain {
	t.Helper()
	g, ms := govGenesis(ttl, powers...)
	n := newNode(t)
	n.initChain(mustJSON(t, g))
	vs := make([]*cmttypes.Validator, len(ms))
	for i, m := range ms {
		vs[i] = cmttypes.NewValidator(cmted25519.PubKey(pubOf(m.val)), m.power)
	}
	return &govChain{node: n, m: ms, seq: map[string]uint64{}, vals: cmttypes.NewValidatorSet(vs)}
}

func (c *govChain) next(account string) uint64 {
	c.seq[account]++
	return c.seq[account]
}

// govSign signs body with key and wraps it in a canonical envelope.
func govSign(t testing.TB, body *pb.TxBody, key ed25519.PrivateKey) []byte {
	t.Helper()
	bz, err := deterministic.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := deterministic.Marshal(&pb.Tx{Body: bz, PublicKey: pubOf(key), Signature: ed25519.Sign(key, SignBytes(bz))})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func govProposeBody(signer string, seq uint64, p *pb.Propose) *pb.TxBody {
	return &pb.TxBody{ChainId: testChainID, Signer: signer, Sequence: seq, Msg: &pb.TxBody_Propose{Propose: p}}
}

func govVoteBody(signer string, seq uint64, id uint64, yes bool) *pb.TxBody {
	return &pb.TxBody{ChainId: testChainID, Signer: signer, Sequence: seq, Msg: &pb.TxBody_Vote{Vote: &pb.Vote{ProposalId: id, Yes: yes}}}
}

// propose is m's next Propose, signed with its admin key.
func (c *govChain) propose(m govMember, p *pb.Propose) []byte {
	return govSign(c.t, govProposeBody(m.id, c.next(memberAccount(m.id)), p), m.admin)
}

// vote is m's next Vote, signed with its admin key.
func (c *govChain) vote(m govMember, id uint64, yes bool) []byte {
	return govSign(c.t, govVoteBody(m.id, c.next(memberAccount(m.id)), id, yes), m.admin)
}

// anchorN is issuer's next batch, of n hashes.
func (c *govChain) anchorN(issuer string, key ed25519.PrivateKey, n int) []byte {
	seq := c.next(issuerAccount(issuer))
	return anchor(c.t, testChainID, issuer, seq, hashesN(fmt.Sprintf("gov/%s/%d", issuer, seq), n), key)
}

// Proposals used throughout.
func govSetMax(n uint64) *pb.Propose {
	return &pb.Propose{Description: fmt.Sprintf("max_batch_hashes %d", n), Action: &pb.Propose_ChangeParams{ChangeParams: &pb.ChangeParams{MaxBatchHashes: n}}}
}

func govSetTTL(n int64) *pb.Propose {
	return &pb.Propose{Action: &pb.Propose_ChangeParams{ChangeParams: &pb.ChangeParams{ProposalTtlBlocks: n}}}
}

func govIssuerStatus(id string, s pb.IssuerStatus) *pb.Propose {
	return &pb.Propose{Action: &pb.Propose_SetIssuerStatus{SetIssuerStatus: &pb.SetIssuerStatus{Issuer: id, Status: s}}}
}

func govAdd(m *pb.AddMember) *pb.Propose {
	return &pb.Propose{Description: "admit " + m.Id, Action: &pb.Propose_AddMember{AddMember: m}}
}

func govRemove(id string) *pb.Propose {
	return &pb.Propose{Action: &pb.Propose_RemoveMember{RemoveMember: &pb.RemoveMember{Id: id}}}
}

func govPower(id string, power int64) *pb.Propose {
	return &pb.Propose{Action: &pb.Propose_ChangePower{ChangePower: &pb.ChangePower{Id: id, Power: power}}}
}

// applyVals applies validator updates to the set as CometBFT's
// state.updateState does; an error is a halted chain.
func (c *govChain) applyVals(ups []abci.ValidatorUpdate) error {
	if len(ups) == 0 {
		return nil
	}
	vs, err := cmttypes.PB2TM.ValidatorUpdates(ups)
	if err != nil {
		return err
	}
	next := c.vals.Copy()
	if err := next.UpdateWithChangeSet(vs); err != nil {
		return err
	}
	c.vals = next
	return nil
}

// runRaw finalizes and commits a block and returns its response, a copy of
// its validator updates, and the error CometBFT meets applying them.
func (c *govChain) runRaw(txs ...[]byte) (*abci.ResponseFinalizeBlock, []abci.ValidatorUpdate, error) {
	c.t.Helper()
	res := c.block(txs...)
	ups := slices.Clone(res.ValidatorUpdates)
	return res, ups, c.applyVals(ups)
}

// run is runRaw that requires CometBFT to accept the validator updates and
// the resulting validator set to be the members of the committed state.
func (c *govChain) run(txs ...[]byte) (*abci.ResponseFinalizeBlock, []abci.ValidatorUpdate) {
	c.t.Helper()
	res, ups, err := c.runRaw(txs...)
	if err != nil {
		c.t.Fatalf("height %d: CometBFT refuses validator updates %s: %v (the chain would halt)", c.height, govUpdates(ups), err)
	}
	c.checkValidatorSet()
	return res, ups
}

func (c *govChain) runOK(txs ...[]byte) (*abci.ResponseFinalizeBlock, []abci.ValidatorUpdate) {
	c.t.Helper()
	res, ups := c.run(txs...)
	for i, r := range res.TxResults {
		if r.Code != CodeOK {
			c.t.Fatalf("block %d tx %d: code %d (%s), want OK", c.height, i, r.Code, r.Log)
		}
	}
	return res, ups
}

// checkValidatorSet: CometBFT's validator set is the committed members,
// each with its validator key and power.
func (c *govChain) checkValidatorSet() {
	c.t.Helper()
	ms := govStateMembers(c.node)
	if len(ms) != c.vals.Size() {
		c.t.Fatalf("height %d: %d members, CometBFT has %d validators", c.height, len(ms), c.vals.Size())
	}
	for _, m := range ms {
		_, v := c.vals.GetByAddress(cmted25519.PubKey(m.ValidatorKey).Address())
		if v == nil || v.VotingPower != m.Power {
			c.t.Fatalf("height %d: member %q has power %d, CometBFT's validator is %v", c.height, m.Id, m.Power, v)
		}
	}
}

// govStateMembers lists the members of n's last committed state.
func govStateMembers(n *node) []*pb.Member {
	n.t.Helper()
	var out []*pb.Member
	if n.height == 0 { // nothing saved yet: genesis
		for _, k := range slices.Sorted(maps.Keys(n.app.genesis)) {
			if strings.HasPrefix(k, proof.PrefixMember) {
				var m pb.Member
				if err := proto.Unmarshal(n.app.genesis[k], &m); err != nil {
					n.t.Fatal(err)
				}
				out = append(out, &m)
			}
		}
		return out
	}
	it, err := n.app.tree.GetImmutable(n.height)
	if err != nil {
		n.t.Fatal(err)
	}
	iter, err := it.Iterator([]byte(proof.PrefixMember), proof.PrefixEnd(proof.PrefixMember), true)
	if err != nil {
		n.t.Fatal(err)
	}
	defer iter.Close()
	for ; iter.Valid(); iter.Next() {
		var m pb.Member
		if err := proto.Unmarshal(iter.Value(), &m); err != nil {
			n.t.Fatal(err)
		}
		out = append(out, &m)
	}
	return out
}

// govNextID is the id the next proposal of n will get.
func govNextID(n *node) uint64 {
	n.t.Helper()
	v := n.query("/key", []byte(proof.KeyNextProposal), 0, false).Value
	if len(v) != 8 {
		return 1
	}
	return binary.BigEndian.Uint64(v)
}

// govValue decodes into m the value of a committed key, read through Query
// (height 0: latest); false when the key is absent.
func (n *node) govValue(key []byte, height int64, m proto.Message) bool {
	n.t.Helper()
	res := n.query("/key", key, height, false)
	if res.Code != CodeOK {
		n.t.Fatalf("query %q at %d: code %d %s", key, height, res.Code, res.Log)
	}
	if res.Value == nil {
		return false
	}
	if err := proto.Unmarshal(res.Value, m); err != nil {
		n.t.Fatalf("decode %q: %v", key, err)
	}
	return true
}

func (c *govChain) proposalAt(id uint64, height int64) *pb.Proposal {
	var p pb.Proposal
	if !c.govValue(ProposalKey(id), height, &p) {
		return nil
	}
	return &p
}

func (c *govChain) proposal(id uint64) *pb.Proposal { return c.proposalAt(id, 0) }

func (c *govChain) member(id string) *pb.Member {
	var m pb.Member
	if !c.govValue(proof.MemberKey(id), 0, &m) {
		return nil
	}
	return &m
}

func (c *govChain) issuerStatus(id string) pb.IssuerStatus {
	var is pb.Issuer
	if !c.govValue(proof.IssuerKey(id), 0, &is) {
		c.t.Fatalf("issuer %q not found", id)
	}
	return is.Status
}

func (c *govChain) params() *pb.Params {
	var p pb.Params
	if !c.govValue([]byte(proof.KeyParams), 0, &p) {
		c.t.Fatal("no params")
	}
	return &p
}

// wantStatus requires proposal id to have status want (decided at height
// decided, when it is not open) in the last committed state.
func (c *govChain) wantStatus(id uint64, want pb.ProposalStatus, decided int64) *pb.Proposal {
	c.t.Helper()
	p := c.proposal(id)
	if p == nil {
		c.t.Fatalf("height %d: no proposal %d", c.height, id)
	}
	if p.Status != want {
		c.t.Fatalf("height %d: proposal %d is %s (%q), want %s", c.height, id, p.Status, p.Outcome, want)
	}
	if want == pb.ProposalStatus_PROPOSAL_STATUS_OPEN {
		decided = 0
	}
	if p.DecidedHeight != decided {
		c.t.Fatalf("proposal %d: decided_height %d, want %d", id, p.DecidedHeight, decided)
	}
	if (want == pb.ProposalStatus_PROPOSAL_STATUS_OPEN || want == pb.ProposalStatus_PROPOSAL_STATUS_PASSED) != (p.Outcome == "") {
		c.t.Fatalf("proposal %d is %s with outcome %q", id, p.Status, p.Outcome)
	}
	return p
}

// pass takes a proposal through a 4-member chain of equal powers: m[0]
// proposes (OPEN), m[1] votes yes (OPEN), m[2] votes yes in the block
// final(vote) builds (PASSED). It returns the proposal id and that block.
func (c *govChain) pass(p *pb.Propose, final func(vote []byte) [][]byte) (uint64, *abci.ResponseFinalizeBlock, []abci.ValidatorUpdate) {
	c.t.Helper()
	id := govNextID(c.node)
	if _, ups := c.runOK(c.propose(c.m[0], p)); len(ups) != 0 {
		c.t.Fatalf("validator updates %s on an open proposal", govUpdates(ups))
	}
	c.wantStatus(id, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
	if _, ups := c.runOK(c.vote(c.m[1], id, true)); len(ups) != 0 {
		c.t.Fatalf("validator updates %s on an open proposal", govUpdates(ups))
	}
	c.wantStatus(id, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
	v := c.vote(c.m[2], id, true)
	txs := [][]byte{v}
	if final != nil {
		txs = final(v)
	}
	res, ups := c.run(txs...)
	c.wantStatus(id, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height)
	return id, res, ups
}

// govUpdates prints validator updates by key and power.
func govUpdates(ups []abci.ValidatorUpdate) string {
	var b strings.Builder
	for _, u := range ups {
		fmt.Fprintf(&b, "[%x:%d]", u.PubKey.GetEd25519(), u.Power)
	}
	return b.String()
}

func govWantUpdates(t testing.TB, got []abci.ValidatorUpdate, want ...abci.ValidatorUpdate) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("validator updates %s, want %s", govUpdates(got), govUpdates(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].PubKey.GetEd25519(), want[i].PubKey.GetEd25519()) || got[i].Power != want[i].Power {
			t.Fatalf("validator update %d: %s, want %s", i, govUpdates(got[i:i+1]), govUpdates(want[i:i+1]))
		}
	}
}

func govWantCodes(t testing.TB, res *abci.ResponseFinalizeBlock, want ...uint32) {
	t.Helper()
	if got := codes(res); fmt.Sprint(got) != fmt.Sprint(want) {
		logs := make([]string, len(res.TxResults))
		for i, r := range res.TxResults {
			logs[i] = r.Log
		}
		t.Fatalf("codes %v, want %v (logs %q)", got, want, logs)
	}
}

func govAttr(ev abci.Event, key string) string {
	for _, a := range ev.Attributes {
		if a.Key == key {
			return a.Value
		}
	}
	return ""
}

// govNotOnCurve is 32 bytes that are no ed25519 point.
func govNotOnCurve(t testing.TB) []byte {
	for i := 2; i < 256; i++ {
		b := make([]byte, 32)
		b[0] = byte(i)
		if err := checkPublicKey(b); err != nil && strings.Contains(err.Error(), "not a curve point") {
			return b
		}
	}
	t.Fatal("no 32-byte string off the curve found")
	return nil
}

var (
	govIdentity = append([]byte{1}, make([]byte, 31)...)
	// (0, -1), another small-order point.
	govMinusOne = []byte{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
)

// govRejectSetup is the chain the rejection cases start from: four members
// of power 10, proposal_ttl_blocks 5, and
//
//	height 1: uni proposes #1 (max_batch_hashes 20), open until height 6;
//	height 2: uni proposes #2 (suspend beta); member-b votes yes on #1;
//	height 3: member-b and member-c vote no on #2: #2 is REJECTED.
//
// hist keeps the accepted transactions by name.
func govRejectSetup(t testing.TB) (*govChain, map[string][]byte) {
	c := startGov(t, 5, 10, 10, 10, 10)
	hist := map[string][]byte{}
	hist["p1"] = c.propose(c.m[0], govSetMax(20))
	c.runOK(hist["p1"])
	hist["p2"] = c.propose(c.m[0], govIssuerStatus(betaID, pb.IssuerStatus_ISSUER_STATUS_SUSPENDED))
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
	bad  func(c *govChain, hist map[string][]byte) []byte
	code uint32
	why  string // in the log
}

// govProposeBy is a rejection case's proposal by uni with a valid key.
func govProposeBy(p *pb.Propose) func(c *govChain, _ map[string][]byte) []byte {
	return func(c *govChain, _ map[string][]byte) []byte { return c.propose(c.m[0], p) }
}

func govRejectCases() []govRejectCase {
	e := govNewMember("member-e", 10)
	addE := func(mod func(m *pb.AddMember)) *pb.Propose {
		m := e.addMember()
		mod(m)
		return govAdd(m)
	}
	signed := func(signer string, key func(c *govChain) ed25519.PrivateKey, vote bool) func(c *govChain, _ map[string][]byte) []byte {
		return func(c *govChain, _ map[string][]byte) []byte {
			var b *pb.TxBody
			if vote {
				b = govVoteBody(signer, c.next(memberAccount(signer)), 1, true)
			} else {
				b = govProposeBody(signer, c.next(memberAccount(signer)), govSetMax(30))
			}
			return govSign(c.t, b, key(c))
		}
	}
	fixed := func(k ed25519.PrivateKey) func(*govChain) ed25519.PrivateKey {
		return func(*govChain) ed25519.PrivateKey { return k }
	}
	adminOf := func(i int) func(*govChain) ed25519.PrivateKey {
		return func(c *govChain) ed25519.PrivateKey { return c.m[i].admin }
	}
	valOf := func(i int) func(*govChain) ed25519.PrivateKey {
		return func(c *govChain) ed25519.PrivateKey { return c.m[i].val }
	}
	withBody := func(b func(c *govChain) *pb.TxBody) func(c *govChain, _ map[string][]byte) []byte {
		return func(c *govChain, _ map[string][]byte) []byte { return govSign(c.t, b(c), c.m[0].admin) }
	}
	voteBy := func(i int, id uint64, yes bool) func(c *govChain, _ map[string][]byte) []byte {
		return func(c *govChain, _ map[string][]byte) []byte { return c.vote(c.m[i], id, yes) }
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
		{name: "replay of an accepted propose", bad: func(_ *govChain, h map[string][]byte) []byte { return h["p1"] }, code: CodeReplay, why: "sequence"},
		{name: "new propose with a used sequence", bad: func(c *govChain, _ map[string][]byte) []byte {
			return govSign(c.t, govProposeBody(memberID, 2, govSetMax(31)), c.m[0].admin)
		}, code: CodeReplay, why: "sequence"},
		{name: "vote with a used sequence", bad: func(c *govChain, _ map[string][]byte) []byte {
			return govSign(c.t, govVoteBody("member-c", 1, 1, true), c.m[2].admin) // member-c's seq 1 voted on #2
		}, code: CodeReplay, why: "sequence"},
		// The vote rule is checked before the sequence: a replayed vote, or
		// a used sequence on a proposal the member voted on, is
		// CodeRejected rather than CodeReplay.
		{name: "vote with a used sequence, on a proposal it voted on", bad: func(c *govChain, _ map[string][]byte) []byte {
			return govSign(c.t, govVoteBody("member-b", 1, 1, false), c.m[1].admin)
		}, code: CodeRejected, why: "already voted"},
		{name: "replay of an accepted vote", bad: func(_ *govChain, h map[string][]byte) []byte { return h["b-yes-1"] }, code: CodeRejected, why: "already voted"},
		{name: "propose for another chain", bad: withBody(func(c *govChain) *pb.TxBody {
			b := govProposeBody(memberID, c.next(memberAccount(memberID)), govSetMax(30))
			b.ChainId = "credence-other-1"
			return b
		}), code: CodeWrongChain, why: "chain_id"},
		{name: "vote for another chain", bad: func(c *govChain, _ map[string][]byte) []byte {
			b := govVoteBody("member-d", c.next(memberAccount("member-d")), 1, true)
			b.ChainId = ""
			return govSign(c.t, b, c.m[3].admin)
		}, code: CodeWrongChain, why: "chain_id"},
		{name: "propose with sequence 0", bad: withBody(func(*govChain) *pb.TxBody { return govProposeBody(memberID, 0, govSetMax(30)) }), code: CodeMalformed, why: "sequence"},
		{name: "propose signature over another body", bad: func(c *govChain, _ map[string][]byte) []byte {
			b1, _ := deterministic.Marshal(govProposeBody(memberID, c.next(memberAccount(memberID)), govSetMax(30)))
			b2, _ := deterministic.Marshal(govProposeBody(memberID, c.seq[memberAccount(memberID)], govSetMax(31)))
			return envelope(c.t, b1, pubOf(c.m[0].admin), ed25519.Sign(c.m[0].admin, SignBytes(b2)))
		}, code: CodeBadSignature},
		{name: "propose in a non-canonical envelope", bad: func(c *govChain, _ map[string][]byte) []byte {
			bz, _ := deterministic.Marshal(govProposeBody(memberID, c.next(memberAccount(memberID)), govSetMax(30)))
			var raw []byte
			raw = protowire.AppendTag(raw, 3, protowire.BytesType)
			raw = protowire.AppendBytes(raw, ed25519.Sign(c.m[0].admin, SignBytes(bz)))
			raw = protowire.AppendTag(raw, 2, protowire.BytesType)
			raw = protowire.AppendBytes(raw, pubOf(c.m[0].admin))
			raw = protowire.AppendTag(raw, 1, protowire.BytesType)
			return protowire.AppendBytes(raw, bz)
		}, code: CodeMalformed, why: "canonical"},
		{name: "body with no message", bad: withBody(func(c *govChain) *pb.TxBody {
			return &pb.TxBody{ChainId: testChainID, Signer: memberID, Sequence: c.next(memberAccount(memberID))}
		}), code: CodeMalformed, why: "no message"},

		// Malformed actions.
		{name: "add_member with empty id", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Id = "" })), code: CodeMalformed, why: "add_member.id"},
		{name: "add_member with upper-case id", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Id = "Member-E" })), code: CodeMalformed, why: "add_member.id"},
		{name: "add_member with '/' in id", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Id = "member/e" })), code: CodeMalformed, why: "add_member.id"},
		{name: "add_member with 65-character id", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Id = strings.Repeat("e", 65) })), code: CodeMalformed, why: "add_member.id"},
		{name: "add_member admin key identity (small order)", bad: govProposeBy(addE(func(m *pb.AddMember) { m.AdminKey = govIdentity })), code: CodeMalformed, why: "admin_key"},
		{name: "add_member admin key (0,-1) (small order)", bad: govProposeBy(addE(func(m *pb.AddMember) { m.AdminKey = govMinusOne })), code: CodeMalformed, why: "admin_key"},
		{name: "add_member admin key 31 bytes", bad: govProposeBy(addE(func(m *pb.AddMember) { m.AdminKey = m.AdminKey[:31] })), code: CodeMalformed, why: "admin_key"},
		{name: "add_member admin key empty", bad: govProposeBy(addE(func(m *pb.AddMember) { m.AdminKey = nil })), code: CodeMalformed, why: "admin_key"},
		{name: "add_member validator key identity (small order)", bad: govProposeBy(addE(func(m *pb.AddMember) { m.ValidatorKey = govIdentity })), code: CodeMalformed, why: "validator_key"},
		{name: "add_member validator key 33 bytes", bad: govProposeBy(addE(func(m *pb.AddMember) { m.ValidatorKey = append(m.ValidatorKey, 0) })), code: CodeMalformed, why: "validator_key"},
		{name: "add_member validator key off the curve", bad: func(c *govChain, _ map[string][]byte) []byte {
			m := e.addMember()
			m.ValidatorKey = govNotOnCurve(c.t)
			return c.propose(c.m[0], govAdd(m))
		}, code: CodeMalformed, why: "validator_key"},
		{name: "add_member power 0", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Power = 0 })), code: CodeMalformed, why: "power"},
		{name: "add_member power negative", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Power = -10 })), code: CodeMalformed, why: "power"},
		{name: "add_member power above maxPower", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Power = maxPower + 1 })), code: CodeMalformed, why: "power"},
		{name: "add_member power MaxInt64", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Power = math.MaxInt64 })), code: CodeMalformed, why: "power"},
		{name: "remove_member with empty id", bad: govProposeBy(govRemove("")), code: CodeMalformed, why: "remove_member.id"},
		{name: "remove_member with invalid id", bad: govProposeBy(govRemove("Member-D")), code: CodeMalformed, why: "remove_member.id"},
		{name: "change_power to 0", bad: govProposeBy(govPower("member-b", 0)), code: CodeMalformed, why: "power"},
		{name: "change_power negative", bad: govProposeBy(govPower("member-b", -1)), code: CodeMalformed, why: "power"},
		{name: "change_power above maxPower", bad: govProposeBy(govPower("member-b", maxPower+1)), code: CodeMalformed, why: "power"},
		{name: "change_power with invalid id", bad: govProposeBy(govPower("member b", 5)), code: CodeMalformed, why: "change_power.id"},
		{name: "set_issuer_status UNSPECIFIED", bad: govProposeBy(govIssuerStatus(alphaID, pb.IssuerStatus_ISSUER_STATUS_UNSPECIFIED)), code: CodeMalformed, why: "status"},
		{name: "set_issuer_status unknown enum value", bad: govProposeBy(govIssuerStatus(alphaID, pb.IssuerStatus(42))), code: CodeMalformed, why: "status"},
		{name: "set_issuer_status with invalid issuer id", bad: govProposeBy(govIssuerStatus("", pb.IssuerStatus_ISSUER_STATUS_SUSPENDED)), code: CodeMalformed, why: "set_issuer_status.issuer"},
		{name: "change_params changing nothing", bad: govProposeBy(&pb.Propose{Action: &pb.Propose_ChangeParams{ChangeParams: &pb.ChangeParams{}}}), code: CodeMalformed, why: "changes nothing"},
		{name: "change_params negative ttl", bad: govProposeBy(govSetTTL(-1)), code: CodeMalformed, why: "proposal_ttl_blocks"},
		{name: "change_params ttl above maxProposalTTL", bad: govProposeBy(govSetTTL(maxProposalTTL + 1)), code: CodeMalformed, why: "proposal_ttl_blocks"},
		{name: "change_params max_batch_hashes beyond a transaction", bad: govProposeBy(govSetMax(MaxTxBytes/32 + 1)), code: CodeMalformed, why: "max_batch_hashes"},
		{name: "description of 1001 bytes", bad: govProposeBy(&pb.Propose{Description: strings.Repeat("d", maxDescription+1), Action: govSetMax(30).Action}), code: CodeMalformed, why: "description"},
		{name: "propose with no action", bad: govProposeBy(&pb.Propose{Description: "nothing to do"}), code: CodeMalformed, why: "no action"},
		{name: "empty propose", bad: govProposeBy(&pb.Propose{}), code: CodeMalformed, why: "no action"},
		{name: "vote on proposal 0", bad: voteBy(3, 0, true), code: CodeMalformed, why: "proposal_id"},

		// Actions that make no sense in the state.
		{name: "add_member of an existing member", bad: govProposeBy(govAdd(govNewMember("member-b", 10).addMember())), code: CodeRejected, why: "already a member"},
		{name: "add_member of the proposer itself", bad: govProposeBy(addE(func(m *pb.AddMember) { m.Id = memberID })), code: CodeRejected, why: "already a member"},
		{name: "remove_member of a non-member", bad: govProposeBy(govRemove("nobody")), code: CodeRejected, why: "not a member"},
		{name: "remove_member of an issuer", bad: govProposeBy(govRemove(alphaID)), code: CodeRejected, why: "not a member"},
		{name: "change_power of a non-member", bad: govProposeBy(govPower("member-e", 5)), code: CodeRejected, why: "not a member"},
		// The target issuer is unknown: the code is the one of an unknown
		// issuer (CodeUnknownSigner), although the signer is known.
		{name: "set_issuer_status of an unknown issuer", bad: govProposeBy(govIssuerStatus("nobody", pb.IssuerStatus_ISSUER_STATUS_SUSPENDED)), code: CodeUnknownSigner, why: "not registered"},

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
				t.Errorf("validator updates %s", govUpdates(ups))
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
		{"description of exactly 1000 bytes", &pb.Propose{Description: strings.Repeat("d", maxDescription), Action: govSetMax(30).Action}},
		{"max_batch_hashes at the transaction limit", govSetMax(MaxTxBytes / 32)},
		{"ttl of one block", govSetTTL(1)},
		{"ttl of maxProposalTTL", govSetTTL(maxProposalTTL)},
		{"add_member power maxPower", govAdd(govNewMember("member-e", maxPower).addMember())},
		{"change_power to maxPower", govPower("member-b", maxPower)},
		{"ttl and max_batch_hashes together", &pb.Propose{Action: &pb.Propose_ChangeParams{ChangeParams: &pb.ChangeParams{MaxBatchHashes: 5, ProposalTtlBlocks: 7}}}},
		{"set_issuer_status to the status it has", govIssuerStatus(alphaID, pb.IssuerStatus_ISSUER_STATUS_ACTIVE)},
		{"add_member whose admin key is another member's", govAdd(&pb.AddMember{Id: "member-e", AdminKey: pubOf(memberAdminKey), ValidatorKey: pubOf(testKey("gov-validator-member-e")), Power: 1})},
		{"change_power to the power it has", govPower("member-b", 10)},
		{"remove_member of the proposer", govRemove(memberID)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startGov(t, 0, 10, 10, 10, 10)
			tx := c.propose(c.m[0], tc.p)
			if r := c.checkTx(tx); r.Code != CodeOK {
				t.Fatalf("CheckTx: code %d (%s)", r.Code, r.Log)
			}
			res, _ := c.runOK(tx)
			if evs := res.TxResults[0].Events; len(evs) != 1 || evs[0].Type != "proposal" || govAttr(evs[0], "id") != "1" || govAttr(evs[0], "status") != "PROPOSAL_STATUS_OPEN" {
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
					t.Fatalf("validator updates %s for a parameter change", govUpdates(ups))
				}
				evs := res.TxResults[0].Events
				if len(evs) != 1 || evs[0].Type != typ || govAttr(evs[0], "status") != want.String() {
					t.Errorf("height %d: events %v, want a %s event with status %s", c.height, evs, typ, want)
				}
			}
			decided := int64(0)
			res, ups := c.runOK(c.propose(c.m[tc.proposer], govSetMax(20)))
			check(res, ups, "proposal", tc.first)
			if tc.first != open {
				decided = c.height
			}
			c.wantStatus(1, tc.first, decided)
			for _, v := range tc.votes {
				res, ups := c.runOK(c.vote(c.m[v.voter], 1, v.yes))
				check(res, ups, "vote", v.want)
				if govAttr(res.TxResults[0].Events[0], "member") != c.m[v.voter].id || govAttr(res.TxResults[0].Events[0], "proposal") != "1" {
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
					govWantCodes(t, res, CodeRejected)
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
		e := govNewMember("member-e", 7)
		_, res, ups := c.pass(govAdd(e.addMember()), nil)
		govWantCodes(t, res, CodeOK)
		govWantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(e.val), 7))
		want := &pb.Member{Id: e.id, Name: "Member " + e.id, AdminKey: pubOf(e.admin), ValidatorKey: pubOf(e.val), Power: 7}
		if got := c.member(e.id); !proto.Equal(got, want) {
			t.Fatalf("member record %v, want %v", got, want)
		}
		// The new member proposes and votes with its admin key, and its
		// power counts: 7+10+10 = 27/47 is open, with member-c 37/47 passes
		// (30/47 without member-e would not).
		_, ups = c.runOK(c.propose(e, govSetMax(20)))
		if len(ups) != 0 {
			t.Fatalf("updates %s", govUpdates(ups))
		}
		c.runOK(c.vote(c.m[0], 2, true), c.vote(c.m[1], 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
		c.runOK(c.vote(c.m[2], 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height)
		if p := c.proposal(2); p.Proposer != e.id {
			t.Errorf("proposer %q", p.Proposer)
		}
		// Its validator key does not sign governance.
		bad := govSign(t, govProposeBody(e.id, c.next(memberAccount(e.id)), govSetMax(21)), e.val)
		if r := c.checkTx(bad); r.Code != CodeUnauthorized {
			t.Errorf("propose with the new member's validator key: code %d (%s)", r.Code, r.Log)
		}
	})

	t.Run("change_power", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		_, _, ups := c.pass(govPower(c.m[1].id, 25), nil)
		govWantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(c.m[1].val), 25))
		if m := c.member(c.m[1].id); m == nil || m.Power != 25 || !bytes.Equal(m.ValidatorKey, pubOf(c.m[1].val)) || !bytes.Equal(m.AdminKey, pubOf(c.m[1].admin)) {
			t.Fatalf("member record %v", m)
		}
		// The tally uses the new power: 10+25 = 35/55 is open, 45/55 passes.
		c.runOK(c.propose(c.m[0], govSetMax(20)))
		c.runOK(c.vote(c.m[1], 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
		c.runOK(c.vote(c.m[2], 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height)
	})

	t.Run("remove_member", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		d := c.m[3] // gamma's sponsor
		c.runOK(c.anchorN(govGammaID, govGamma1, 2))
		_, res, ups := c.pass(govRemove(d.id), func(v []byte) [][]byte {
			return [][]byte{
				c.anchorN(govGammaID, govGamma1, 2), // before: gamma is active
				v,                                   // passes: member-d leaves, gamma is suspended
				c.anchorN(govGammaID, govGamma1, 2), // after, in the same block
				govSign(t, govProposeBody(d.id, 1, govSetMax(9)), d.admin), // member-d is gone
			}
		})
		govWantCodes(t, res, CodeOK, CodeOK, CodeUnauthorized, CodeUnknownSigner)
		govWantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(d.val), 0))
		if m := c.member(d.id); m != nil {
			t.Fatalf("removed member still present: %v", m)
		}
		if s := c.issuerStatus(govGammaID); s != pb.IssuerStatus_ISSUER_STATUS_SUSPENDED {
			t.Errorf("gamma (sponsored by the removed member) is %s", s)
		}
		for _, id := range []string{alphaID, betaID} {
			if s := c.issuerStatus(id); s != pb.IssuerStatus_ISSUER_STATUS_ACTIVE {
				t.Errorf("%s (sponsored by another member) is %s", id, s)
			}
		}
		tx := c.anchorN(govGammaID, govGamma1, 2)
		if r := c.checkTx(tx); r.Code != CodeUnauthorized || !strings.Contains(r.Log, "SUSPENDED") {
			t.Errorf("CheckTx of a suspended issuer's batch: code %d (%s)", r.Code, r.Log)
		}
		res, _ = c.run(tx, c.vote(d, 1, true))
		govWantCodes(t, res, CodeUnauthorized, CodeUnknownSigner)

		// Three members of 10 remain: 20/30 is open, 30/30 passes; gamma
		// can be reinstated.
		c.runOK(c.propose(c.m[0], govIssuerStatus(govGammaID, pb.IssuerStatus_ISSUER_STATUS_ACTIVE)))
		c.runOK(c.vote(c.m[1], 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
		_, ups = c.runOK(c.vote(c.m[2], 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height)
		if len(ups) != 0 {
			t.Errorf("updates %s", govUpdates(ups))
		}
		c.runOK(c.anchorN(govGammaID, govGamma1, 2))
	})

	t.Run("set_issuer_status", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		_, res, ups := c.pass(govIssuerStatus(alphaID, pb.IssuerStatus_ISSUER_STATUS_SUSPENDED), func(v []byte) [][]byte {
			return [][]byte{c.anchorN(alphaID, alpha1, 1), v, c.anchorN(alphaID, alpha1, 1)}
		})
		govWantCodes(t, res, CodeOK, CodeOK, CodeUnauthorized)
		if len(ups) != 0 {
			t.Errorf("updates %s", govUpdates(ups))
		}
		if s := c.issuerStatus(alphaID); s != pb.IssuerStatus_ISSUER_STATUS_SUSPENDED {
			t.Fatalf("alpha is %s", s)
		}
		tx := c.anchorN(alphaID, alpha1, 3)
		if r := c.checkTx(tx); r.Code != CodeUnauthorized {
			t.Errorf("CheckTx of a suspended issuer's batch: code %d (%s)", r.Code, r.Log)
		}
		res, _ = c.run(tx, c.anchorN(betaID, beta1, 1))
		govWantCodes(t, res, CodeUnauthorized, CodeOK)

		c.pass(govIssuerStatus(alphaID, pb.IssuerStatus_ISSUER_STATUS_ACTIVE), nil)
		if s := c.issuerStatus(alphaID); s != pb.IssuerStatus_ISSUER_STATUS_ACTIVE {
			t.Fatalf("alpha is %s", s)
		}
		tx = c.anchorN(alphaID, alpha1, 3)
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
		if r := c.checkTx(c.anchorN(alphaID, alpha1, testMaxHashes+1)); r.Code != CodeTooLarge {
			t.Fatalf("batch over the genesis limit: code %d", r.Code)
		}
		// Raised to 20: a batch of 17 after the passing vote, in the same
		// block, is accepted.
		_, res, _ := c.pass(govSetMax(20), func(v []byte) [][]byte {
			return [][]byte{c.anchorN(alphaID, alpha1, testMaxHashes+1), v, c.anchorN(alphaID, alpha1, testMaxHashes+1)}
		})
		govWantCodes(t, res, CodeTooLarge, CodeOK, CodeOK)
		if p := c.params(); p.MaxBatchHashes != 20 || p.ProposalTtlBlocks != DefaultProposalTTLBlocks {
			t.Fatalf("params %v", p)
		}
		at, over := c.anchorN(alphaID, alpha1, 20), c.anchorN(alphaID, alpha1, 21)
		if r := c.checkTx(at); r.Code != CodeOK {
			t.Errorf("batch of 20: code %d (%s)", r.Code, r.Log)
		}
		if r := c.checkTx(over); r.Code != CodeTooLarge {
			t.Errorf("batch of 21: code %d (%s)", r.Code, r.Log)
		}
		res, _ = c.run(at, over)
		govWantCodes(t, res, CodeOK, CodeTooLarge)

		// Lowered to 8: a batch of 12 that CheckTx accepted (and cached)
		// under 20 is refused after the passing vote.
		twelve := c.anchorN(alphaID, alpha1, 12)
		if r := c.checkTx(twelve); r.Code != CodeOK {
			t.Fatalf("batch of 12: code %d (%s)", r.Code, r.Log)
		}
		_, res, _ = c.pass(govSetMax(8), func(v []byte) [][]byte { return [][]byte{v, twelve} })
		govWantCodes(t, res, CodeOK, CodeTooLarge)
		if r := c.checkTx(twelve); r.Code != CodeTooLarge {
			t.Errorf("CheckTx after the change: code %d (%s)", r.Code, r.Log)
		}
		// The limit is state: it survives a restart.
		c.reopen()
		if r := c.checkTx(c.anchorN(alphaID, alpha1, 9)); r.Code != CodeTooLarge {
			t.Errorf("after reopen, batch of 9: code %d (%s)", r.Code, r.Log)
		}
		c.runOK(c.anchorN(alphaID, alpha1, 8))
	})

	t.Run("change_params proposal_ttl_blocks", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		c.runOK(c.propose(c.m[3], govSetMax(30))) // #1, under the old ttl
		c.pass(govSetTTL(3), nil)                 // #2
		if p := c.params(); p.ProposalTtlBlocks != 3 || p.MaxBatchHashes != testMaxHashes {
			t.Fatalf("params %v", p)
		}
		c.runOK(c.propose(c.m[0], govSetMax(40))) // #3
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
		d, e := c.m[3], govNewMember("member-e", 5)
		sameKey := e.addMember()
		sameKey.ValidatorKey = pubOf(c.m[1].val)
		// #1 remove member-d, #2 re-power member-d, #3 add member-e with
		// member-b's validator key, #4 and #5 add member-e twice.
		c.runOK(c.propose(c.m[0], govRemove(d.id)), c.propose(c.m[0], govPower(d.id, 20)), c.propose(c.m[0], govAdd(sameKey)),
			c.propose(c.m[0], govAdd(e.addMember())), c.propose(c.m[0], govAdd(e.addMember())))
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
			if govAttr(res.TxResults[0].Events[0], "status") != step.status.String() {
				t.Errorf("#%d: vote event %v", step.id, res.TxResults[0].Events)
			}
			p := c.wantStatus(step.id, step.status, c.height)
			if !strings.Contains(p.Outcome, step.outcome) {
				t.Errorf("#%d: outcome %q, want %q", step.id, p.Outcome, step.outcome)
			}
			govWantUpdates(t, ups, step.ups...)
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
	res, _ := c.run(c.propose(c.m[0], govSetMax(20)), c.vote(c.m[1], 1, true), c.vote(c.m[1], 1, false), c.vote(c.m[2], 1, true), c.vote(c.m[3], 1, true))
	govWantCodes(t, res, CodeOK, CodeOK, CodeRejected, CodeOK, CodeRejected)
	p := c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 1)
	if fmt.Sprint(p.Yes) != fmt.Sprint([]string{memberID, "member-b", "member-c"}) || len(p.No) != 0 {
		t.Errorf("yes %v no %v", p.Yes, p.No)
	}
	if c.params().MaxBatchHashes != 20 {
		t.Error("params not changed")
	}
	// Proposal ids are consecutive across blocks and proposers.
	c.runOK(c.propose(c.m[2], govSetMax(21)), c.propose(c.m[1], govSetMax(22)))
	c.runOK(c.propose(c.m[0], govSetMax(23)))
	for id, who := range map[uint64]string{2: "member-c", 3: "member-b", 4: memberID} {
		if p := c.proposal(id); p == nil || p.Proposer != who || p.Id != id {
			t.Errorf("proposal %d: %v, want by %s", id, p, who)
		}
	}
	if got := govNextID(c.node); got != 5 {
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
	c.runOK(c.propose(a, govSetMax(20)), c.propose(b, govIssuerStatus(betaID, pb.IssuerStatus_ISSUER_STATUS_SUSPENDED))) // #1 and #2 at height 1
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
	govWantCodes(t, res, CodeRejected)
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
	govWantCodes(t, res, CodeRejected)
	c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_EXPIRED, 5)

	// Several proposals expiring at one height expire together, in id
	// order; one that passes in the block of its expiry height does not.
	h := c.height                                                                                   // 6
	c.runOK(c.propose(a, govSetMax(21)), c.propose(b, govSetMax(22)), c.propose(cc, govSetMax(23))) // #3 #4 #5, expire at h+1+ttl
	c.advanceTo(h + ttl)                                                                            // last committed: h+ttl
	c.runOK(c.vote(b, 5, true), c.vote(d, 5, true))                                                 // at h+1+ttl: #5 passes
	c.wantStatus(3, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)                                      // expires_height itself
	c.runOK()                                                                                       // h+2+ttl
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
		n := start(t)
		c := &govChain{node: n, m: []govMember{govMemberAt(0, 10)}, seq: map[string]uint64{},
			vals: cmttypes.NewValidatorSet([]*cmttypes.Validator{cmttypes.NewValidator(cmted25519.PubKey(pubOf(memberValKey)), 10)})}
		res, ups := c.run(c.propose(c.m[0], govIssuerStatus(betaID, pb.IssuerStatus_ISSUER_STATUS_SUSPENDED)), c.anchorN(betaID, beta1, 1))
		govWantCodes(t, res, CodeOK, CodeUnauthorized)
		if ev := res.TxResults[0].Events; len(ev) != 1 || govAttr(ev[0], "status") != "PROPOSAL_STATUS_PASSED" {
			t.Errorf("events %v", ev)
		}
		if len(ups) != 0 {
			t.Errorf("updates %s", govUpdates(ups))
		}
		p := c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 1)
		if p.SubmitHeight != 1 || p.ExpiresHeight != 1+DefaultProposalTTLBlocks {
			t.Errorf("proposal %v", p)
		}
	})

	t.Run("add a member, then two must agree", func(t *testing.T) {
		c := startGov(t, 0, 10)
		e := govNewMember("member-e", 5)
		_, ups := c.runOK(c.propose(c.m[0], govAdd(e.addMember())))
		c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 1)
		govWantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(e.val), 5))
		// uni holds 10/15, exactly 2/3: its proposal stays open until
		// member-e agrees.
		c.runOK(c.propose(c.m[0], govSetMax(20)))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
		c.runOK(c.vote(e, 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 3)
	})

	t.Run("the last member cannot be removed", func(t *testing.T) {
		c := startGov(t, 0, 10)
		_, ups := c.runOK(c.propose(c.m[0], govRemove(memberID)))
		p := c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_FAILED, 1)
		if !strings.Contains(p.Outcome, "last member") {
			t.Errorf("outcome %q", p.Outcome)
		}
		if len(ups) != 0 {
			t.Errorf("updates %s", govUpdates(ups))
		}
		if c.member(memberID) == nil || c.issuerStatus(alphaID) != pb.IssuerStatus_ISSUER_STATUS_ACTIVE {
			t.Error("the failed removal changed the state")
		}
		c.runOK(c.propose(c.m[0], govSetMax(20)))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 2)
	})
}

// TestGovProposalProofs: a proposal's record at any height is proved by
// Query against that height's app hash.
func TestGovProposalProofs(t *testing.T) {
	c := startGov(t, 0, 10, 10, 10, 10)
	c.runOK(c.propose(c.m[0], govSetMax(20)))
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

// govGen produces random governance and anchoring traffic for a chain of
// four members, reading what exists (members, proposal ids) from the last
// committed state of a reference node: blocks are a function of the seed
// and of that deterministic state.
type govGen struct {
	t       testing.TB
	r       *rand.Rand
	ref     *node
	known   []govMember // genesis members and every candidate ever proposed
	cands   int
	seq     map[string]uint64
	history [][]byte
}

func (g *govGen) next(account string) uint64 {
	if g.r.IntN(25) == 0 && g.seq[account] > 0 {
		return 1 + uint64(g.r.IntN(int(g.seq[account]))) // a used sequence
	}
	g.seq[account] += 1 + uint64(g.r.IntN(2))
	return g.seq[account]
}

func (g *govGen) current() []govMember {
	var out []govMember
	for _, m := range govStateMembers(g.ref) {
		for _, k := range g.known {
			if k.id == m.Id {
				out = append(out, k)
			}
		}
	}
	return out
}

// open lists the proposals open in the reference's committed state.
func (g *govGen) open() []uint64 {
	var out []uint64
	c := &govChain{node: g.ref}
	for id := uint64(1); id < govNextID(g.ref); id++ {
		if c.proposal(id).Status == pb.ProposalStatus_PROPOSAL_STATUS_OPEN {
			out = append(out, id)
		}
	}
	return out
}

func (g *govGen) pick(ms []govMember) govMember { return ms[g.r.IntN(len(ms))] }

func (g *govGen) signer() (govMember, ed25519.PrivateKey) {
	cur := g.current()
	m := g.pick(cur)
	switch p := g.r.IntN(100); {
	case p < 6:
		m = g.pick(g.known) // perhaps removed, perhaps never added
	case p < 9:
		m = govMember{id: "stranger", admin: strangerKey, val: strangerKey}
	}
	switch p := g.r.IntN(100); {
	case p < 4:
		return m, m.val
	case p < 7:
		return m, strangerKey
	}
	return m, m.admin
}

func (g *govGen) action() *pb.Propose {
	switch g.r.IntN(14) {
	case 0, 1, 2:
		g.cands++
		e := govNewMember(fmt.Sprintf("cand-%d", g.cands), 1+int64(g.r.IntN(12)))
		g.known = append(g.known, e)
		m := e.addMember()
		if g.r.IntN(8) == 0 {
			m.ValidatorKey = pubOf(g.pick(g.known).val)
		}
		return govAdd(m)
	case 3:
		return govAdd(g.pick(g.known).addMember())
	case 4:
		return govRemove(g.pick(g.known).id)
	case 5, 6:
		return govPower(g.pick(g.known).id, 1+int64(g.r.IntN(20)))
	case 7, 8:
		st := pb.IssuerStatus_ISSUER_STATUS_ACTIVE
		if g.r.IntN(2) == 0 {
			st = pb.IssuerStatus_ISSUER_STATUS_SUSPENDED
		}
		return govIssuerStatus([]string{alphaID, govGammaID, "nobody"}[g.r.IntN(3)], st)
	case 9, 10:
		return govSetMax(8 + uint64(g.r.IntN(25)))
	case 11:
		return govSetTTL(2 + int64(g.r.IntN(5)))
	case 12:
		return govPower(g.pick(g.known).id, 0) // malformed
	}
	return &pb.Propose{Description: "no action"} // malformed
}

func (g *govGen) tx() []byte {
	t := g.t
	var raw []byte
	switch p := g.r.IntN(100); {
	case p < 25:
		issuer, key := alphaID, alpha1
		if g.r.IntN(3) == 0 {
			issuer, key = govGammaID, govGamma1
		}
		seq := g.next(issuerAccount(issuer))
		raw = anchor(t, testChainID, issuer, seq, hashesN(fmt.Sprintf("det/%s/%d/%d", issuer, seq, g.r.Uint32()), 1+g.r.IntN(24)), key)
	case p < 45:
		m, key := g.signer()
		raw = govSign(t, govProposeBody(m.id, g.next(memberAccount(m.id)), g.action()), key)
	case p < 95:
		m, key := g.signer()
		next := govNextID(g.ref)
		lo := max(1, int(next)-6)
		id := uint64(lo + g.r.IntN(int(next)-lo+1))
		if open := g.open(); len(open) > 0 && g.r.IntN(5) != 0 {
			// Mostly a member that has not voted on an open proposal.
			id = open[g.r.IntN(len(open))]
			p := (&govChain{node: g.ref}).proposal(id)
			var fresh []govMember
			for _, c := range g.current() {
				if !slices.Contains(p.Yes, c.id) && !slices.Contains(p.No, c.id) {
					fresh = append(fresh, c)
				}
			}
			if len(fresh) > 0 && g.r.IntN(5) != 0 {
				m = g.pick(fresh)
				key = m.admin
			}
		}
		raw = govSign(t, govVoteBody(m.id, g.next(memberAccount(m.id)), id, g.r.IntN(3) != 0), key)
	default:
		if len(g.history) == 0 {
			return g.tx()
		}
		return g.history[g.r.IntN(len(g.history))]
	}
	g.history = append(g.history, raw)
	return raw
}

func (g *govGen) block() [][]byte {
	txs := make([][]byte, g.r.IntN(9))
	for i := range txs {
		txs[i] = g.tx()
	}
	return txs
}

// TestGovDeterminism runs the same random mix of anchors, proposals and
// votes on two fresh apps (one of them closed and reopened halfway) and
// requires identical CheckTx codes, results, app hashes and validator
// updates at every height.
func TestGovDeterminism(t *testing.T) {
	const (
		seed    = 5
		nBlocks = 40
		reopen  = 20
	)
	g, _ := govGenesis(4, 10, 10, 10, 10)
	genesis := mustJSON(t, g)
	nodes := []*node{newNode(t), newNode(t)}
	for _, n := range nodes {
		n.initChain(genesis)
	}
	_, ms := govGenesis(4, 10, 10, 10, 10)
	gen := &govGen{t: t, r: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d)), ref: nodes[0], known: ms, seq: map[string]uint64{}}

	codesSeen := map[uint32]int{}
	updateBlocks := 0
	for h := int64(1); h <= nBlocks; h++ {
		txs := gen.block()
		if h == reopen+1 {
			nodes[1].reopen()
		}
		var ref []string
		for i, n := range nodes {
			var check []uint32
			for _, tx := range txs {
				check = append(check, n.checkTx(tx).Code)
			}
			res := n.finalize(txs...)
			ups := slices.Clone(res.ValidatorUpdates)
			n.commit()
			var results []string
			for _, r := range res.TxResults {
				results = append(results, fmt.Sprintf("%d %q %v", r.Code, r.Log, r.Events))
			}
			got := []string{fmt.Sprintf("%x", res.AppHash), fmt.Sprint(check), fmt.Sprint(results), govUpdates(ups)}
			if i == 0 {
				ref = got
				for _, r := range res.TxResults {
					codesSeen[r.Code]++
				}
				if len(ups) > 0 {
					updateBlocks++
				}
				continue
			}
			for j, what := range []string{"app hash", "CheckTx codes", "results", "validator updates"} {
				if got[j] != ref[j] {
					t.Fatalf("height %d: %s differ:\n%s\n%s", h, what, got[j], ref[j])
				}
			}
		}
	}

	// The run exercises what it is meant to.
	statuses := map[pb.ProposalStatus]int{}
	c := &govChain{node: nodes[0]}
	for id := uint64(1); id < govNextID(nodes[0]); id++ {
		statuses[c.proposal(id).Status]++
	}
	t.Logf("%d blocks: result codes %v; proposals %v; %d blocks with validator updates", nBlocks, codesSeen, statuses, updateBlocks)
	for _, s := range []pb.ProposalStatus{pb.ProposalStatus_PROPOSAL_STATUS_PASSED, pb.ProposalStatus_PROPOSAL_STATUS_REJECTED, pb.ProposalStatus_PROPOSAL_STATUS_EXPIRED} {
		if statuses[s] == 0 {
			t.Errorf("no proposal ends %s", s)
		}
	}
	for _, code := range []uint32{CodeOK, CodeMalformed, CodeUnknownSigner, CodeUnauthorized, CodeReplay, CodeTooLarge, CodeRejected} {
		if codesSeen[code] == 0 {
			t.Errorf("no transaction with code %d", code)
		}
	}
	if codesSeen[CodeInternal] != 0 {
		t.Errorf("%d transactions failed with CodeInternal", codesSeen[CodeInternal])
	}
	if updateBlocks == 0 {
		t.Error("no block with validator updates")
	}
}

// TestGovOneValidatorUpdatePerKey (regression): actions that touch one
// validator several times in a block give one ValidatorUpdate, the last:
// CometBFT refuses two updates of a validator in a block ("duplicate
// entry", types.processChanges) and panics applying it, on every replay.
// PrepareProposal and ProcessProposal accept these blocks.
func TestGovOneValidatorUpdatePerKey(t *testing.T) {
	t.Run("single member re-powers itself twice in one block", func(t *testing.T) {
		c := startGov(t, 0, 10)
		txs := [][]byte{c.propose(c.m[0], govPower(memberID, 20)), c.propose(c.m[0], govPower(memberID, 30))}
		if got := c.prepare(txs...); !sameTxs(got, txs) {
			t.Fatalf("PrepareProposal keeps %d of 2", len(got))
		}
		if s := c.process(txs...); s != abci.ResponseProcessProposal_ACCEPT {
			t.Fatalf("ProcessProposal %v", s)
		}
		res, ups := c.run(txs...)
		govWantCodes(t, res, CodeOK, CodeOK)
		govWantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(memberValKey), 30))
	})
	t.Run("re-power and removal of one member pass in one block", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		d := c.m[3]
		c.runOK(c.propose(c.m[0], govPower(d.id, 5)), c.propose(c.m[0], govRemove(d.id)))
		c.runOK(c.vote(c.m[1], 1, true), c.vote(c.m[1], 2, true))
		// #1 passes (30/40), then #2 (30/35).
		res, ups := c.run(c.vote(c.m[2], 1, true), c.vote(c.m[2], 2, true))
		govWantCodes(t, res, CodeOK, CodeOK)
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height)
		govWantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(d.val), 0))
	})
	t.Run("removal and an addition reusing the validator key pass in one block", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		d := c.m[3]
		e := govNewMember("member-e", 15).addMember()
		e.ValidatorKey = pubOf(d.val) // the operator keeps its node, under a new member
		c.runOK(c.propose(c.m[0], govRemove(d.id)), c.propose(c.m[0], govAdd(e)))
		c.runOK(c.vote(c.m[1], 1, true), c.vote(c.m[1], 2, true))
		res, ups := c.run(c.vote(c.m[2], 1, true), c.vote(c.m[2], 2, true))
		govWantCodes(t, res, CodeOK, CodeOK)
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height)
		govWantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(d.val), 15))
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
	c.runOK(c.propose(a, govRemove(d.id)), c.propose(a, govRemove(d.id))) // #1, #2
	c.runOK(c.vote(b, 1, true), c.vote(b, 2, true))
	c.runOK(c.vote(cc, 1, true)) // #1 passes: member-d leaves
	c.wantStatus(1, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 3)
	c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)

	back := govNewMember(d.id, 10)
	back.val = testKey("gov-validator-member-d-new-node")
	c.runOK(c.propose(a, govAdd(back.addMember()))) // #3
	c.runOK(c.vote(b, 3, true))                     // 20/30: open

	txs := [][]byte{c.vote(cc, 3, true), c.vote(cc, 2, true)}
	if got := c.prepare(txs...); !sameTxs(got, txs) {
		t.Fatalf("PrepareProposal keeps %d of 2", len(got))
	}
	if s := c.process(txs...); s != abci.ResponseProcessProposal_ACCEPT {
		t.Fatalf("ProcessProposal %v", s)
	}
	res, ups, err := c.runRaw(txs...)
	govWantCodes(t, res, CodeOK, CodeOK)
	c.wantStatus(3, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height) // member-d is back (30/30)...
	c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, c.height) // ...and out again (30/40)
	if m := c.member(d.id); m != nil {
		t.Fatalf("member-d present: %v", m)
	}
	if err != nil {
		t.Errorf("FinalizeBlock returns validator updates %s for a key CometBFT's set does not hold: CometBFT refuses them: %v (the chain halts)", govUpdates(ups), err)
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
		{"add_member power maxPower+1", govAdd(govNewMember("member-e", maxPower+1).addMember())},
		{"add_member power MaxTotalVotingPower", govAdd(govNewMember("member-e", cmttypes.MaxTotalVotingPower).addMember())},
		{"add_member power MaxInt64", govAdd(govNewMember("member-e", math.MaxInt64).addMember())},
		{"change_power maxPower+1", govPower(memberID, maxPower+1)},
		{"change_power MaxInt64", govPower(memberID, math.MaxInt64)},
		{"ttl maxProposalTTL+1", govSetTTL(maxProposalTTL + 1)},
		{"ttl MaxInt64", govSetTTL(math.MaxInt64)},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			c := startGov(t, 0, 10)
			tx := c.propose(c.m[0], tc.p)
			if r := c.checkTx(tx); r.Code != CodeMalformed || r.Log == "" {
				t.Errorf("CheckTx: code %d (%s), want malformed", r.Code, r.Log)
			}
			res, _ := c.run(tx)
			govWantCodes(t, res, CodeMalformed)
		})
	}
	t.Run("genesis", func(t *testing.T) {
		for name, mod := range map[string]func(g *Genesis){
			"power maxPower+1": func(g *Genesis) { g.Members[1].Power = maxPower + 1 },
			"ttl MaxInt64":     func(g *Genesis) { g.Params.ProposalTTLBlocks = math.MaxInt64 },
		} {
			g, _ := govGenesis(0, 10, 10)
			mod(&g)
			n := newNode(t)
			if _, err := n.app.InitChain(ctx, &abci.RequestInitChain{ChainId: testChainID, InitialHeight: 1, AppStateBytes: mustJSON(t, g)}); err == nil {
				t.Errorf("%s: InitChain accepted", name)
			}
		}
	})
	t.Run("the largest power", func(t *testing.T) {
		c := startGov(t, 0, 10)
		e := govNewMember("member-e", maxPower)
		_, ups := c.runOK(c.propose(c.m[0], govAdd(e.addMember())))
		govWantUpdates(t, ups, abci.Ed25519ValidatorUpdate(pubOf(e.val), maxPower))
		// uni (10) is now a small minority: its proposal stays open.
		c.runOK(c.propose(c.m[0], govSetMax(20)))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
		c.runOK(c.vote(e, 2, true))
		c.wantStatus(2, pb.ProposalStatus_PROPOSAL_STATUS_PASSED, 3)
	})
	t.Run("the longest ttl", func(t *testing.T) {
		c := startGov(t, 0, 10, 10, 10, 10)
		c.pass(govSetTTL(maxProposalTTL), nil)
		c.runOK(c.propose(c.m[0], govSetMax(20)))
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
	first, _ := c.runOK(c.propose(c.m[0], govPower(memberID, 20)))
	govWantUpdates(t, first.ValidatorUpdates, abci.Ed25519ValidatorUpdate(pubOf(memberValKey), 20))
	c.runOK(c.propose(c.m[0], govPower(memberID, 30)))
	if len(first.ValidatorUpdates) != 1 || first.ValidatorUpdates[0].Power != 20 {
		t.Errorf("block 1's validator updates became %s after block 2", govUpdates(first.ValidatorUpdates))
	}
}
