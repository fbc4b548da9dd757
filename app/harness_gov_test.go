package app

// The harness for governance: the governance chains, proposals and votes,
// validator updates applied as CometBFT would, and the reads that check
// them.
//
// The governance chains are the test genesis with its members replaced by
// members of the given powers, and a third issuer "gamma" sponsored by the
// last member (so that removing that member suspends it). Member 0 is the
// harness's "uni" (memberAdminKey, memberValKey); member i is
// "member-<letter>" with keys derived from its id.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmttypes "github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

const gammaID = "gamma"

var gamma1 = testKey("gamma-1")

type member struct {
	id         string
	admin, val ed25519.PrivateKey
	power      int64
}

func memberAt(i int, power int64) member {
	if i == 0 {
		return member{id: memberID, admin: memberAdminKey, val: memberValKey, power: power}
	}
	return newMember(fmt.Sprintf("member-%c", 'a'+i), power)
}

// newMember is a member not (yet) on the chain, with keys from its id.
func newMember(id string, power int64) member {
	return member{id: id, admin: testKey("gov-admin-" + id), val: testKey("gov-validator-" + id), power: power}
}

func (m member) addMember() *pb.AddMember {
	return &pb.AddMember{Id: m.id, Name: "Member " + m.id, AdminKey: pubOf(m.admin), ValidatorKey: pubOf(m.val), Power: m.power}
}

func govGenesis(ttl int64, powers ...int64) (Genesis, []member) {
	g := testGenesisDoc()
	ms := make([]member, len(powers))
	g.Members = nil
	for i, p := range powers {
		ms[i] = memberAt(i, p)
		g.Members = append(g.Members, GenesisMember{
			ID: ms[i].id, Name: "Member " + ms[i].id, Power: p,
			AdminKey: proof.FormatBinary(pubOf(ms[i].admin)), ValidatorKey: proof.FormatBinary(pubOf(ms[i].val)),
		})
	}
	g.Issuers = append(g.Issuers, GenesisIssuer{
		ID: gammaID, Name: "Registrar Gamma", Sponsor: ms[len(ms)-1].id,
		Keys: []GenesisKey{{PublicKey: proof.FormatBinary(pubOf(gamma1)), FromHeight: 1}},
	})
	g.Params.ProposalTTLBlocks = ttl
	return g, ms
}

// startGov starts a chain with members of the given powers; ttl 0 keeps the
// default proposal_ttl_blocks.
func startGov(t testing.TB, ttl int64, powers ...int64) *chain {
	t.Helper()
	g, ms := govGenesis(ttl, powers...)
	c := newChain(t)
	c.initChain(mustJSON(t, g))
	c.m = ms
	return c
}

func (c *chain) next(account string) uint64 {
	c.seq[account]++
	return c.seq[account]
}

// sign signs body with key and wraps it in a canonical envelope.
func sign(t testing.TB, body *pb.TxBody, key ed25519.PrivateKey) []byte {
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

func proposeBody(signer string, seq uint64, p *pb.Propose) *pb.TxBody {
	return &pb.TxBody{ChainId: testChainID, Signer: signer, Sequence: seq, Msg: &pb.TxBody_Propose{Propose: p}}
}

func voteBody(signer string, seq uint64, id uint64, yes bool) *pb.TxBody {
	return &pb.TxBody{ChainId: testChainID, Signer: signer, Sequence: seq, Msg: &pb.TxBody_Vote{Vote: &pb.Vote{ProposalId: id, Yes: yes}}}
}

// propose is m's next Propose, signed with its admin key.
func (c *chain) propose(m member, p *pb.Propose) []byte {
	return sign(c.t, proposeBody(m.id, c.next(memberAccount(m.id)), p), m.admin)
}

// vote is m's next Vote, signed with its admin key.
func (c *chain) vote(m member, id uint64, yes bool) []byte {
	return sign(c.t, voteBody(m.id, c.next(memberAccount(m.id)), id, yes), m.admin)
}

// Proposals used throughout.
func setMaxHashes(n uint64) *pb.Propose {
	return &pb.Propose{Description: fmt.Sprintf("max_batch_hashes %d", n), Action: &pb.Propose_ChangeParams{ChangeParams: &pb.ChangeParams{MaxBatchHashes: n}}}
}

func setTTL(n int64) *pb.Propose {
	return &pb.Propose{Action: &pb.Propose_ChangeParams{ChangeParams: &pb.ChangeParams{ProposalTtlBlocks: n}}}
}

func setIssuerStatus(id string, s pb.IssuerStatus) *pb.Propose {
	return &pb.Propose{Action: &pb.Propose_SetIssuerStatus{SetIssuerStatus: &pb.SetIssuerStatus{Issuer: id, Status: s}}}
}

func addMember(m *pb.AddMember) *pb.Propose {
	return &pb.Propose{Description: "admit " + m.Id, Action: &pb.Propose_AddMember{AddMember: m}}
}

func removeMember(id string) *pb.Propose {
	return &pb.Propose{Action: &pb.Propose_RemoveMember{RemoveMember: &pb.RemoveMember{Id: id}}}
}

func changePower(id string, power int64) *pb.Propose {
	return &pb.Propose{Action: &pb.Propose_ChangePower{ChangePower: &pb.ChangePower{Id: id, Power: power}}}
}

// applyVals applies validator updates to the set as CometBFT's
// state.updateState does; an error is a halted chain.
func (c *chain) applyVals(ups []abci.ValidatorUpdate) error {
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
func (c *chain) runRaw(txs ...[]byte) (*abci.ResponseFinalizeBlock, []abci.ValidatorUpdate, error) {
	c.t.Helper()
	res := c.block(txs...)
	ups := slices.Clone(res.ValidatorUpdates)
	return res, ups, c.applyVals(ups)
}

// run is runRaw that requires CometBFT to accept the validator updates and
// the resulting validator set to be the members of the committed state.
func (c *chain) run(txs ...[]byte) (*abci.ResponseFinalizeBlock, []abci.ValidatorUpdate) {
	c.t.Helper()
	res, ups, err := c.runRaw(txs...)
	if err != nil {
		c.t.Fatalf("height %d: CometBFT refuses validator updates %s: %v (the chain would halt)", c.height, fmtUpdates(ups), err)
	}
	c.checkValidatorSet()
	return res, ups
}

func (c *chain) runOK(txs ...[]byte) (*abci.ResponseFinalizeBlock, []abci.ValidatorUpdate) {
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
func (c *chain) checkValidatorSet() {
	c.t.Helper()
	ms := c.committedMembers()
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

// committedMembers lists the members of the last committed state.
func (c *chain) committedMembers() []*pb.Member {
	c.t.Helper()
	var out []*pb.Member
	if c.height == 0 { // nothing saved yet: genesis
		for _, k := range slices.Sorted(maps.Keys(c.app.genesis)) {
			if strings.HasPrefix(k, proof.PrefixMember) {
				var m pb.Member
				if err := proto.Unmarshal(c.app.genesis[k], &m); err != nil {
					c.t.Fatal(err)
				}
				out = append(out, &m)
			}
		}
		return out
	}
	it, err := c.app.tree.GetImmutable(c.height)
	if err != nil {
		c.t.Fatal(err)
	}
	err = scan(it, proof.PrefixMember, func(_, v []byte) error {
		var m pb.Member
		if err := proto.Unmarshal(v, &m); err != nil {
			return err
		}
		out = append(out, &m)
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// nextProposalID is the id the next proposal will get.
func (c *chain) nextProposalID() uint64 {
	c.t.Helper()
	v := c.query("/key", []byte(proof.KeyNextProposal), 0, false).Value
	if len(v) != 8 {
		return 1
	}
	return binary.BigEndian.Uint64(v)
}

// value decodes into m the value of a committed key, read through Query
// (height 0: latest); false when the key is absent.
func (c *chain) value(key []byte, height int64, m proto.Message) bool {
	c.t.Helper()
	res := c.query("/key", key, height, false)
	if res.Code != CodeOK {
		c.t.Fatalf("query %q at %d: code %d %s", key, height, res.Code, res.Log)
	}
	if res.Value == nil {
		return false
	}
	if err := proto.Unmarshal(res.Value, m); err != nil {
		c.t.Fatalf("decode %q: %v", key, err)
	}
	return true
}

func (c *chain) proposalAt(id uint64, height int64) *pb.Proposal {
	var p pb.Proposal
	if !c.value(ProposalKey(id), height, &p) {
		return nil
	}
	return &p
}

func (c *chain) proposal(id uint64) *pb.Proposal { return c.proposalAt(id, 0) }

func (c *chain) member(id string) *pb.Member {
	var m pb.Member
	if !c.value(proof.MemberKey(id), 0, &m) {
		return nil
	}
	return &m
}

func (c *chain) issuerStatus(id string) pb.IssuerStatus {
	var is pb.Issuer
	if !c.value(proof.IssuerKey(id), 0, &is) {
		c.t.Fatalf("issuer %q not found", id)
	}
	return is.Status
}

func (c *chain) params() *pb.Params {
	var p pb.Params
	if !c.value([]byte(proof.KeyParams), 0, &p) {
		c.t.Fatal("no params")
	}
	return &p
}

// wantStatus requires proposal id to have status want (decided at height
// decided, when it is not open) in the last committed state.
func (c *chain) wantStatus(id uint64, want pb.ProposalStatus, decided int64) *pb.Proposal {
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
func (c *chain) pass(p *pb.Propose, final func(vote []byte) [][]byte) (uint64, *abci.ResponseFinalizeBlock, []abci.ValidatorUpdate) {
	c.t.Helper()
	id := c.nextProposalID()
	if _, ups := c.runOK(c.propose(c.m[0], p)); len(ups) != 0 {
		c.t.Fatalf("validator updates %s on an open proposal", fmtUpdates(ups))
	}
	c.wantStatus(id, pb.ProposalStatus_PROPOSAL_STATUS_OPEN, 0)
	if _, ups := c.runOK(c.vote(c.m[1], id, true)); len(ups) != 0 {
		c.t.Fatalf("validator updates %s on an open proposal", fmtUpdates(ups))
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

// fmtUpdates prints validator updates by key and power.
func fmtUpdates(ups []abci.ValidatorUpdate) string {
	var b strings.Builder
	for _, u := range ups {
		fmt.Fprintf(&b, "[%x:%d]", u.PubKey.GetEd25519(), u.Power)
	}
	return b.String()
}

func wantUpdates(t testing.TB, got []abci.ValidatorUpdate, want ...abci.ValidatorUpdate) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("validator updates %s, want %s", fmtUpdates(got), fmtUpdates(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].PubKey.GetEd25519(), want[i].PubKey.GetEd25519()) || got[i].Power != want[i].Power {
			t.Fatalf("validator update %d: %s, want %s", i, fmtUpdates(got[i:i+1]), fmtUpdates(want[i:i+1]))
		}
	}
}

func wantCodes(t testing.TB, res *abci.ResponseFinalizeBlock, want ...uint32) {
	t.Helper()
	if got := codes(res); fmt.Sprint(got) != fmt.Sprint(want) {
		logs := make([]string, len(res.TxResults))
		for i, r := range res.TxResults {
			logs[i] = r.Log
		}
		t.Fatalf("codes %v, want %v (logs %q)", got, want, logs)
	}
}

func attr(ev abci.Event, key string) string {
	for _, a := range ev.Attributes {
		if a.Key == key {
			return a.Value
		}
	}
	return ""
}

// notOnCurve is 32 bytes that are no ed25519 point.
func notOnCurve(t testing.TB) []byte {
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
	identityPoint = append([]byte{1}, make([]byte, 31)...)
	// (0, -1), another small-order point.
	minusOnePoint = []byte{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
)
