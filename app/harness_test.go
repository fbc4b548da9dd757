package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmttypes "github.com/cometbft/cometbft/types"
	iavldb "github.com/cosmos/iavl/db"
	ics23 "github.com/cosmos/ics23/go"
	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// The test chain: one member ("uni"), two issuers.
//
//   - "alpha": key alpha1 valid [1, ∞), key alpha2 valid [10, ∞).
//   - "beta":  key beta1 valid [1, 5).
//
// Keys are derived from fixed seeds so that every app built from
// testGenesis is the same chain and its hashes can be compared.
const (
	testChainID   = "credence-test-1"
	testMaxHashes = 16
	memberID      = "uni"
	alphaID       = "alpha"
	betaID        = "beta"
	alpha2From    = 10
	betaTo        = 5
)

var (
	memberAdminKey = testKey("member-admin")
	memberValKey   = testKey("member-validator")
	alpha1         = testKey("alpha-1")
	alpha2         = testKey("alpha-2")
	beta1          = testKey("beta-1")
	strangerKey    = testKey("stranger")

	quiet = slog.New(slog.DiscardHandler)
	ctx   = context.Background()
)

func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("credence app test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// testGenesisDoc is the genesis app_state of the test chain, to be modified
// by genesis-error tests.
func testGenesisDoc() Genesis {
	return Genesis{
		Members: []GenesisMember{{
			ID:           memberID,
			Name:         "University",
			AdminKey:     proof.FormatBinary(pubOf(memberAdminKey)),
			ValidatorKey: proof.FormatBinary(pubOf(memberValKey)),
			Power:        10,
		}},
		Issuers: []GenesisIssuer{
			{
				ID: alphaID, Name: "Registrar Alpha", Sponsor: memberID,
				Keys: []GenesisKey{
					{PublicKey: proof.FormatBinary(pubOf(alpha1)), FromHeight: 1},
					{PublicKey: proof.FormatBinary(pubOf(alpha2)), FromHeight: alpha2From},
				},
			},
			{
				ID: betaID, Name: "Registrar Beta", Sponsor: memberID,
				Keys: []GenesisKey{
					{PublicKey: proof.FormatBinary(pubOf(beta1)), FromHeight: 1, ToHeight: betaTo},
				},
			},
		},
		Params: GenesisParams{MaxBatchHashes: testMaxHashes},
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// blockTime is the BFT time of the test chain's block h.
func blockTime(h int64) time.Time {
	return time.Unix(1_750_000_000+h*5, int64(h)*1000+7).UTC()
}

// hashesN returns n deterministic 32-byte hashes distinct per tag.
func hashesN(tag string, n int) []byte {
	out := make([]byte, 0, n*proof.HashSize)
	for i := range n {
		h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", tag, i))
		out = append(out, h[:]...)
	}
	return out
}

// anchor builds a valid AnchorBatch transaction (valid as to its encoding and
// signature: whether the state accepts it is up to the test).
func anchor(t testing.TB, chainID, signer string, seq uint64, hashes []byte, key ed25519.PrivateKey) []byte {
	t.Helper()
	tx, err := NewAnchorBatch(chainID, signer, seq, hashes, key)
	if err != nil {
		t.Fatalf("NewAnchorBatch: %v", err)
	}
	return tx
}

// rawTx hand-crafts a transaction from a body: sign(body) with signKey, and
// carry pub as the envelope's public key.
func rawTx(t testing.TB, body *pb.TxBody, pub []byte, signKey ed25519.PrivateKey) []byte {
	t.Helper()
	bz, err := proto.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return envelope(t, bz, pub, ed25519.Sign(signKey, SignBytes(bz)))
}

func envelope(t testing.TB, body, pub, sig []byte) []byte {
	t.Helper()
	raw, err := proto.Marshal(&pb.Tx{Body: body, PublicKey: pub, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// anchorBody is the body of a correct AnchorBatch, for tests to modify.
func anchorBody(signer string, seq uint64, hashes []byte) *pb.TxBody {
	root, err := proof.Root(hashes)
	if err != nil {
		panic(err)
	}
	return &pb.TxBody{
		ChainId: testChainID, Signer: signer, Sequence: seq,
		Msg: &pb.TxBody_AnchorBatch{AnchorBatch: &pb.AnchorBatch{Root: root[:], Hashes: hashes}},
	}
}

// chain is the app test chain: one App on its own badger directory (or on
// iavl's in-memory database), driven block by block as CometBFT drives it,
// with what tests keep beside it: the members whose keys they sign with,
// the last sequence each account used, and the validator set CometBFT would
// hold (every block's validator updates are applied to it as CometBFT
// applies them).
type chain struct {
	t      testing.TB
	dir    string // "" for an in-memory IAVL database (iavl/db.MemDB)
	bopts  []store.Option
	db     *badger.DB
	app    *App
	height int64
	// appHash[h] is the app hash FinalizeBlock returned for height h.
	appHash map[int64][]byte
	// hooked collects what the commit hook received.
	hooked []hookCall

	m    []member          // genesis members, in order, with their keys
	seq  map[string]uint64 // last sequence used, by account
	vals *cmttypes.ValidatorSet
}

type hookCall struct {
	height  int64
	batches []CommittedBatch
}

func newChain(t testing.TB, bopts ...store.Option) *chain {
	t.Helper()
	n := &chain{t: t, dir: t.TempDir(), bopts: bopts, appHash: map[int64][]byte{}, seq: map[string]uint64{}}
	n.open()
	t.Cleanup(n.close)
	return n
}

// newMemChain is a chain on iavl's in-memory database: the reference the
// badger-backed chains are compared with.
func newMemChain(t testing.TB) *chain {
	t.Helper()
	n := &chain{t: t, appHash: map[int64][]byte{}, seq: map[string]uint64{}}
	n.app = n.newApp(iavldb.NewMemDB())
	t.Cleanup(n.close)
	return n
}

func (c *chain) open() {
	c.t.Helper()
	if c.dir == "" {
		c.t.Fatal("an in-memory node cannot be reopened")
	}
	opts := append([]store.Option{store.WithLogger(quiet), store.WithMemory(store.Memory{MemTableSize: 8 << 20, NumMemTables: 2, BlockCacheSize: 8 << 20, IndexCacheSize: 4 << 20, Compactors: 2})}, c.bopts...)
	db, err := store.OpenBadger(c.dir, opts...)
	if err != nil {
		c.t.Fatalf("OpenBadger: %v", err)
	}
	c.db = db
	c.app = c.newApp(store.NewIAVLDB(db, []byte("s/")))
}

func (c *chain) newApp(db iavldb.DB) *App {
	c.t.Helper()
	a, err := New(db, testChainID, WithLogger(quiet), WithCommitHook(func(h int64, bs []CommittedBatch) {
		c.hooked = append(c.hooked, hookCall{height: h, batches: bs})
	}))
	if err != nil {
		c.t.Fatalf("New: %v", err)
	}
	return a
}

func (c *chain) close() {
	if c.app != nil {
		if err := c.app.Close(); err != nil {
			c.t.Errorf("App.Close: %v", err)
		}
		c.app = nil
	}
	if c.db != nil {
		if err := c.db.Close(); err != nil {
			c.t.Errorf("badger Close: %v", err)
		}
		c.db = nil
	}
}

// reopen closes the app and its database and opens both again from disk.
func (c *chain) reopen() {
	c.t.Helper()
	c.close()
	c.open()
}

func (c *chain) initChain(genesis []byte) *abci.ResponseInitChain {
	c.t.Helper()
	res, err := c.app.InitChain(ctx, &abci.RequestInitChain{ChainId: testChainID, InitialHeight: 1, AppStateBytes: genesis, Time: blockTime(0)})
	if err != nil {
		c.t.Fatalf("InitChain: %v", err)
	}
	if len(res.AppHash) == 0 {
		c.t.Fatal("InitChain returned no app hash")
	}
	var g Genesis
	if err := json.Unmarshal(genesis, &g); err != nil {
		c.t.Fatal(err)
	}
	vs := make([]*cmttypes.Validator, len(g.Members))
	for i, m := range g.Members {
		pub, err := proof.ParseBinary(m.ValidatorKey)
		if err != nil {
			c.t.Fatal(err)
		}
		vs[i] = cmttypes.NewValidator(cmted25519.PubKey(pub), m.Power)
	}
	c.vals = cmttypes.NewValidatorSet(vs)
	return res
}

// start is a chain with the test genesis.
func start(t testing.TB, bopts ...store.Option) *chain {
	t.Helper()
	c := newChain(t, bopts...)
	c.initChain(mustJSON(t, testGenesisDoc()))
	c.m = []member{memberAt(0, 10)}
	return c
}

// finalize runs FinalizeBlock for the next height and checks the response's
// shape; it does not commit.
func (c *chain) finalize(txs ...[]byte) *abci.ResponseFinalizeBlock {
	c.t.Helper()
	h := c.height + 1
	res, err := c.app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: h, Time: blockTime(h), Txs: txs, Hash: []byte("block")})
	if err != nil {
		c.t.Fatalf("FinalizeBlock(%d): %v", h, err)
	}
	if len(res.TxResults) != len(txs) {
		c.t.Fatalf("FinalizeBlock(%d): %d results for %d txs", h, len(res.TxResults), len(txs))
	}
	if len(res.AppHash) != sha256.Size {
		c.t.Fatalf("FinalizeBlock(%d): app hash %x", h, res.AppHash)
	}
	c.appHash[h] = res.AppHash
	return res
}

func (c *chain) commit() {
	c.t.Helper()
	if _, err := c.app.Commit(ctx, &abci.RequestCommit{}); err != nil {
		c.t.Fatalf("Commit(%d): %v", c.height+1, err)
	}
	c.height++
	if got := c.app.Height(); got != c.height {
		c.t.Fatalf("after Commit: Height() = %d, want %d", got, c.height)
	}
}

// block finalizes and commits the next block.
func (c *chain) block(txs ...[]byte) *abci.ResponseFinalizeBlock {
	c.t.Helper()
	res := c.finalize(txs...)
	c.commit()
	return res
}

// blockOK is block that requires every transaction to be accepted.
func (c *chain) blockOK(txs ...[]byte) *abci.ResponseFinalizeBlock {
	c.t.Helper()
	res := c.block(txs...)
	for i, r := range res.TxResults {
		if r.Code != CodeOK {
			c.t.Fatalf("block %d tx %d: code %d (%s), want OK", c.height, i, r.Code, r.Log)
		}
	}
	return res
}

// advanceTo commits empty blocks until the last committed height is h.
func (c *chain) advanceTo(h int64) {
	c.t.Helper()
	for c.height < h {
		c.block()
	}
}

func (c *chain) checkTx(tx []byte) *abci.ResponseCheckTx {
	c.t.Helper()
	return c.checkTxType(tx, abci.CheckTxType_New)
}

func (c *chain) checkTxType(tx []byte, typ abci.CheckTxType) *abci.ResponseCheckTx {
	c.t.Helper()
	res, err := c.app.CheckTx(ctx, &abci.RequestCheckTx{Tx: tx, Type: typ})
	if err != nil {
		c.t.Fatalf("CheckTx: %v", err)
	}
	return res
}

func (c *chain) prepare(txs ...[]byte) [][]byte {
	c.t.Helper()
	h := c.height + 1
	res, err := c.app.PrepareProposal(ctx, &abci.RequestPrepareProposal{MaxTxBytes: 64 << 20, Txs: txs, Height: h, Time: blockTime(h)})
	if err != nil {
		c.t.Fatalf("PrepareProposal: %v", err)
	}
	return res.Txs
}

func (c *chain) process(txs ...[]byte) abci.ResponseProcessProposal_ProposalStatus {
	c.t.Helper()
	h := c.height + 1
	res, err := c.app.ProcessProposal(ctx, &abci.RequestProcessProposal{Txs: txs, Height: h, Time: blockTime(h), Hash: []byte("block")})
	if err != nil {
		c.t.Fatalf("ProcessProposal: %v", err)
	}
	return res.Status
}

func (c *chain) info() *abci.ResponseInfo {
	c.t.Helper()
	res, err := c.app.Info(ctx, &abci.RequestInfo{})
	if err != nil {
		c.t.Fatalf("Info: %v", err)
	}
	return res
}

func (c *chain) query(path string, key []byte, height int64, prove bool) *abci.ResponseQuery {
	c.t.Helper()
	res, err := c.app.Query(ctx, &abci.RequestQuery{Path: path, Data: key, Height: height, Prove: prove})
	if err != nil {
		c.t.Fatalf("Query: %v", err)
	}
	return res
}

// batchRecord reads the committed record of (issuer, seq) through Query.
func (c *chain) batchRecord(issuer string, seq uint64) (*proof.BatchRecord, []byte) {
	c.t.Helper()
	res := c.query("/key", proof.BatchKey(issuer, seq), 0, false)
	if res.Code != CodeOK {
		c.t.Fatalf("query batch %s/%d: code %d %s", issuer, seq, res.Code, res.Log)
	}
	if res.Value == nil {
		return nil, nil
	}
	var rec proof.BatchRecord
	if err := proto.Unmarshal(res.Value, &rec); err != nil {
		c.t.Fatalf("batch record %s/%d: %v", issuer, seq, err)
	}
	return &rec, res.Value
}

func unmarshalProof(t testing.TB, bz []byte) *ics23.CommitmentProof {
	t.Helper()
	var p ics23.CommitmentProof
	if err := p.Unmarshal(bz); err != nil {
		t.Fatalf("unmarshal ics23 proof: %v", err)
	}
	return &p
}

func verifyMembership(t testing.TB, appHash, proofBytes, key, value []byte) {
	t.Helper()
	if !ics23.VerifyMembership(ics23.IavlSpec, appHash, unmarshalProof(t, proofBytes), key, value) {
		t.Fatalf("ics23 membership proof of %q does not verify against app hash %x", key, appHash)
	}
}

func codes(res *abci.ResponseFinalizeBlock) []uint32 {
	out := make([]uint32, len(res.TxResults))
	for i, r := range res.TxResults {
		out[i] = r.Code
	}
	return out
}

func sameTxs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// Accounts name a signer's sequence space in the tests' sequence counters.
func issuerAccount(id string) string { return string(proof.IssuerSequenceKey(id)) }
func memberAccount(id string) string { return string(proof.MemberSequenceKey(id)) }

// ---------------------------------------------------------------------------
// Governance

// The governance chains: the test genesis with its members replaced by
// members of the given powers, and a third issuer "gamma" sponsored by the
// last member (so that removing that member suspends it).
//
// Member 0 is the harness's "uni" (memberAdminKey, memberValKey); member i
// is "member-<letter>" with keys derived from its id.

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

// ---------------------------------------------------------------------------
// Issuers

// Issuer tests run on the governance chains (startGov), mostly with
// two members: "uni" (power 10, sponsor of alpha and beta) and "member-b"
// (power 1, sponsor of gamma). uni holds more than 2/3 of the power, so its
// proposals (an issuer's suspension) pass in the block that carries them.

const (
	statusActive    = pb.IssuerStatus_ISSUER_STATUS_ACTIVE
	statusSuspended = pb.IssuerStatus_ISSUER_STATUS_SUSPENDED
)

func issuerTestKey(name string) ed25519.PrivateKey { return testKey("reg-" + name) }

// bodyFn builds the body of a transaction for a signer and sequence.
type bodyFn func(signer string, seq uint64) *pb.TxBody

func registerIssuer(id, name string, keys ...[]byte) bodyFn {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_RegisterIssuer{RegisterIssuer: &pb.RegisterIssuer{Id: id, Name: name, Keys: keys}}}
	}
}

func rotateKey(issuer string, newKey []byte) bodyFn {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_RotateKey{RotateKey: &pb.RotateKey{Issuer: issuer, NewKey: newKey}}}
	}
}

func compromiseKey(issuer string, key []byte, from int64) bodyFn {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_CompromiseKey{CompromiseKey: &pb.CompromiseKey{Issuer: issuer, Key: key, FromHeight: from}}}
	}
}

func revoke(issuer string, reason uint32, hs ...*pb.RevokedHash) bodyFn {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_Revoke{Revoke: &pb.Revoke{Issuer: issuer, Reason: reason, Hashes: hs}}}
	}
}

// asMember is msg signed by member m with its admin key, at m's next
// (member account) sequence.
func (c *chain) asMember(m member, msg bodyFn) []byte {
	return sign(c.t, msg(m.id, c.next(memberAccount(m.id))), m.admin)
}

// asIssuer is msg signed by issuer with key, at its next (issuer
// account) sequence: the one its batches use.
func (c *chain) asIssuer(issuer string, key ed25519.PrivateKey, msg bodyFn) []byte {
	return sign(c.t, msg(issuer, c.next(issuerAccount(issuer))), key)
}

// as is msg signed as signer (sequence from account) with any key.
func (c *chain) as(signer, account string, key ed25519.PrivateKey, msg bodyFn) []byte {
	return sign(c.t, msg(signer, c.next(account)), key)
}

// batch is a batch of an issuer with its tree, to revoke its hashes.
type batch struct {
	issuer string
	seq    uint64
	hashes []byte
	tree   *proof.Tree
}

func newBatch(t testing.TB, issuer string, seq uint64, n int) *batch {
	t.Helper()
	hs := hashesN(fmt.Sprintf("reg/%s/%d", issuer, seq), n)
	tree, err := proof.NewTree(hs)
	if err != nil {
		t.Fatal(err)
	}
	return &batch{issuer: issuer, seq: seq, hashes: hs, tree: tree}
}

func (b *batch) hash(i int) []byte { return b.hashes[i*proof.HashSize : (i+1)*proof.HashSize] }

// revoked is the RevokedHash of leaf i: hash, batch_seq, leaf_index and
// the audit path from proof.Tree.
func (b *batch) revoked(i int) *pb.RevokedHash {
	path, err := b.tree.AuditPath(uint64(i))
	if err != nil {
		panic(err)
	}
	return &pb.RevokedHash{Hash: b.hash(i), BatchSeq: b.seq, LeafIndex: uint64(i), AuditPath: path}
}

// anchorBatch is issuer's next batch of n hashes, signed with key.
func (c *chain) anchorBatch(issuer string, key ed25519.PrivateKey, n int) (*batch, []byte) {
	c.t.Helper()
	b := newBatch(c.t, issuer, c.next(issuerAccount(issuer)), n)
	return b, anchor(c.t, testChainID, issuer, b.seq, b.hashes, key)
}

func (c *chain) anchorTx(issuer string, key ed25519.PrivateKey, n int) []byte {
	_, tx := c.anchorBatch(issuer, key, n)
	return tx
}

// issuer reads an issuer's record from the last committed state.
func (c *chain) issuer(id string) *pb.Issuer {
	c.t.Helper()
	var is pb.Issuer
	if !c.value(proof.IssuerKey(id), 0, &is) {
		c.t.Fatalf("issuer %q not registered", id)
	}
	return &is
}

// windows prints an issuer's key windows, keys by their first bytes.
func windows(is *pb.Issuer) string {
	var b strings.Builder
	for _, k := range is.Keys {
		fmt.Fprintf(&b, "[%x: from %d to %d compromised %d]", k.PublicKey[:4], k.FromHeight, k.ToHeight, k.CompromisedFrom)
	}
	return b.String()
}

func keyRec(k ed25519.PrivateKey, from, to, compromised int64) *pb.IssuerKey {
	return &pb.IssuerKey{PublicKey: pubOf(k), FromHeight: from, ToHeight: to, CompromisedFrom: compromised}
}

func (c *chain) wantKeys(id string, want ...*pb.IssuerKey) {
	c.t.Helper()
	got := c.issuer(id).Keys
	if len(got) != len(want) {
		c.t.Fatalf("issuer %q has %d keys %v, want %v", id, len(got), got, want)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			c.t.Fatalf("issuer %q key %d: {from %d to %d compromised %d}, want {from %d to %d compromised %d} (same key: %v)", id, i,
				got[i].FromHeight, got[i].ToHeight, got[i].CompromisedFrom, want[i].FromHeight, want[i].ToHeight, want[i].CompromisedFrom,
				bytes.Equal(got[i].PublicKey, want[i].PublicKey))
		}
	}
}

// wantCheck requires CheckTx to answer code (with a log when refused).
func wantCheck(t testing.TB, n *chain, tx []byte, code uint32) {
	t.Helper()
	r := n.checkTx(tx)
	if r.Code != code {
		t.Fatalf("CheckTx: code %d (%s), want %d", r.Code, r.Log, code)
	}
	if code != CodeOK && r.Log == "" {
		t.Fatal("CheckTx refuses without a log")
	}
}

// proved queries key at height (0: latest) with a proof and verifies it
// against that height's app hash: membership when the key is present,
// non-membership otherwise. It returns the value.
func proved(t testing.TB, n *chain, key []byte, height int64) []byte {
	t.Helper()
	res := n.query("/key", key, height, true)
	if res.Code != CodeOK || res.ProofOps == nil || len(res.ProofOps.Ops) != 1 || res.ProofOps.Ops[0].Type != "ics23:iavl" {
		t.Fatalf("query %q at %d: code %d (%s) proof %v", key, height, res.Code, res.Log, res.ProofOps)
	}
	root := n.appHash[res.Height]
	if root == nil {
		t.Fatalf("no app hash recorded for height %d", res.Height)
	}
	p := unmarshalProof(t, res.ProofOps.Ops[0].Data)
	if res.Value != nil {
		verifyMembership(t, root, res.ProofOps.Ops[0].Data, key, res.Value)
		if ics23.VerifyNonMembership(ics23.IavlSpec, root, p, key) {
			t.Fatalf("membership proof of %q also proves its absence", key)
		}
		return res.Value
	}
	if !ics23.VerifyNonMembership(ics23.IavlSpec, root, p, key) {
		t.Fatalf("non-membership proof of %q does not verify against app hash %x", key, root)
	}
	return nil
}

func revocation(t testing.TB, n *chain, issuer string, hash []byte, height int64) *pb.Revocation {
	t.Helper()
	v := proved(t, n, proof.RevocationKey(issuer, hash), height)
	if v == nil {
		return nil
	}
	var r pb.Revocation
	if err := proto.Unmarshal(v, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// Status lists

func createStatusList(id string, p pb.RegistryPurpose, size uint64) bodyFn {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_CreateRegistry{CreateRegistry: &pb.CreateRegistry{Id: id, Purpose: p, Size: size}}}
	}
}

func updateStatusList(issuer, id string, set, clear []uint64) bodyFn {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_UpdateRegistry{UpdateRegistry: &pb.UpdateRegistry{Issuer: issuer, Id: id, Set: set, Clear: clear}}}
	}
}
