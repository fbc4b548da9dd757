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

// node is one application on its own badger directory, driven block by block.
type node struct {
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
}

type hookCall struct {
	height  int64
	batches []CommittedBatch
}

func newNode(t testing.TB, bopts ...store.Option) *node {
	t.Helper()
	n := &node{t: t, dir: t.TempDir(), bopts: bopts, appHash: map[int64][]byte{}}
	n.open()
	t.Cleanup(n.close)
	return n
}

// newMemNode is a node on iavl's in-memory database: the reference the
// badger-backed nodes are compared with.
func newMemNode(t testing.TB) *node {
	t.Helper()
	n := &node{t: t, appHash: map[int64][]byte{}}
	n.app = n.newApp(iavldb.NewMemDB())
	t.Cleanup(n.close)
	return n
}

func (n *node) open() {
	n.t.Helper()
	if n.dir == "" {
		n.t.Fatal("an in-memory node cannot be reopened")
	}
	opts := append([]store.Option{store.WithLogger(quiet), store.WithMemTableSize(8 << 20), store.WithBlockCacheSize(8 << 20)}, n.bopts...)
	db, err := store.OpenBadger(n.dir, opts...)
	if err != nil {
		n.t.Fatalf("OpenBadger: %v", err)
	}
	n.db = db
	n.app = n.newApp(store.NewIAVLDB(db, []byte("s/")))
}

func (n *node) newApp(db iavldb.DB) *App {
	n.t.Helper()
	a, err := New(db, testChainID, WithLogger(quiet), WithCommitHook(func(h int64, bs []CommittedBatch) {
		n.hooked = append(n.hooked, hookCall{height: h, batches: bs})
	}))
	if err != nil {
		n.t.Fatalf("New: %v", err)
	}
	return a
}

func (n *node) close() {
	if n.app != nil {
		if err := n.app.Close(); err != nil {
			n.t.Errorf("App.Close: %v", err)
		}
		n.app = nil
	}
	if n.db != nil {
		if err := n.db.Close(); err != nil {
			n.t.Errorf("badger Close: %v", err)
		}
		n.db = nil
	}
}

// reopen closes the app and its database and opens both again from disk.
func (n *node) reopen() {
	n.t.Helper()
	n.close()
	n.open()
}

func (n *node) initChain(genesis []byte) *abci.ResponseInitChain {
	n.t.Helper()
	res, err := n.app.InitChain(ctx, &abci.RequestInitChain{ChainId: testChainID, InitialHeight: 1, AppStateBytes: genesis, Time: blockTime(0)})
	if err != nil {
		n.t.Fatalf("InitChain: %v", err)
	}
	if len(res.AppHash) == 0 {
		n.t.Fatal("InitChain returned no app hash")
	}
	return res
}

// start is a node with the test genesis.
func start(t testing.TB, bopts ...store.Option) *node {
	t.Helper()
	n := newNode(t, bopts...)
	n.initChain(mustJSON(t, testGenesisDoc()))
	return n
}

// finalize runs FinalizeBlock for the next height and checks the response's
// shape; it does not commit.
func (n *node) finalize(txs ...[]byte) *abci.ResponseFinalizeBlock {
	n.t.Helper()
	h := n.height + 1
	res, err := n.app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: h, Time: blockTime(h), Txs: txs, Hash: []byte("block")})
	if err != nil {
		n.t.Fatalf("FinalizeBlock(%d): %v", h, err)
	}
	if len(res.TxResults) != len(txs) {
		n.t.Fatalf("FinalizeBlock(%d): %d results for %d txs", h, len(res.TxResults), len(txs))
	}
	if len(res.AppHash) != sha256.Size {
		n.t.Fatalf("FinalizeBlock(%d): app hash %x", h, res.AppHash)
	}
	n.appHash[h] = res.AppHash
	return res
}

func (n *node) commit() {
	n.t.Helper()
	if _, err := n.app.Commit(ctx, &abci.RequestCommit{}); err != nil {
		n.t.Fatalf("Commit(%d): %v", n.height+1, err)
	}
	n.height++
	if got := n.app.Height(); got != n.height {
		n.t.Fatalf("after Commit: Height() = %d, want %d", got, n.height)
	}
}

// block finalizes and commits the next block.
func (n *node) block(txs ...[]byte) *abci.ResponseFinalizeBlock {
	n.t.Helper()
	res := n.finalize(txs...)
	n.commit()
	return res
}

// blockOK is block that requires every transaction to be accepted.
func (n *node) blockOK(txs ...[]byte) *abci.ResponseFinalizeBlock {
	n.t.Helper()
	res := n.block(txs...)
	for i, r := range res.TxResults {
		if r.Code != CodeOK {
			n.t.Fatalf("block %d tx %d: code %d (%s), want OK", n.height, i, r.Code, r.Log)
		}
	}
	return res
}

// advanceTo commits empty blocks until the last committed height is h.
func (n *node) advanceTo(h int64) {
	n.t.Helper()
	for n.height < h {
		n.block()
	}
}

func (n *node) checkTx(tx []byte) *abci.ResponseCheckTx {
	n.t.Helper()
	return n.checkTxType(tx, abci.CheckTxType_New)
}

func (n *node) checkTxType(tx []byte, typ abci.CheckTxType) *abci.ResponseCheckTx {
	n.t.Helper()
	res, err := n.app.CheckTx(ctx, &abci.RequestCheckTx{Tx: tx, Type: typ})
	if err != nil {
		n.t.Fatalf("CheckTx: %v", err)
	}
	return res
}

func (n *node) prepare(txs ...[]byte) [][]byte {
	n.t.Helper()
	h := n.height + 1
	res, err := n.app.PrepareProposal(ctx, &abci.RequestPrepareProposal{MaxTxBytes: 64 << 20, Txs: txs, Height: h, Time: blockTime(h)})
	if err != nil {
		n.t.Fatalf("PrepareProposal: %v", err)
	}
	return res.Txs
}

func (n *node) process(txs ...[]byte) abci.ResponseProcessProposal_ProposalStatus {
	n.t.Helper()
	h := n.height + 1
	res, err := n.app.ProcessProposal(ctx, &abci.RequestProcessProposal{Txs: txs, Height: h, Time: blockTime(h), Hash: []byte("block")})
	if err != nil {
		n.t.Fatalf("ProcessProposal: %v", err)
	}
	return res.Status
}

func (n *node) info() *abci.ResponseInfo {
	n.t.Helper()
	res, err := n.app.Info(ctx, &abci.RequestInfo{})
	if err != nil {
		n.t.Fatalf("Info: %v", err)
	}
	return res
}

func (n *node) query(path string, key []byte, height int64, prove bool) *abci.ResponseQuery {
	n.t.Helper()
	res, err := n.app.Query(ctx, &abci.RequestQuery{Path: path, Data: key, Height: height, Prove: prove})
	if err != nil {
		n.t.Fatalf("Query: %v", err)
	}
	return res
}

// batchRecord reads the committed record of (issuer, seq) through Query.
func (n *node) batchRecord(issuer string, seq uint64) (*proof.BatchRecord, []byte) {
	n.t.Helper()
	res := n.query("/key", proof.BatchKey(issuer, seq), 0, false)
	if res.Code != CodeOK {
		n.t.Fatalf("query batch %s/%d: code %d %s", issuer, seq, res.Code, res.Log)
	}
	if res.Value == nil {
		return nil, nil
	}
	var rec proof.BatchRecord
	if err := proto.Unmarshal(res.Value, &rec); err != nil {
		n.t.Fatalf("batch record %s/%d: %v", issuer, seq, err)
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
