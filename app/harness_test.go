package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
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
	tx, _, err := NewAnchorBatch(chainID, signer, seq, hashes, key)
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
