package app

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
)

// detMaxHashes is max_batch_hashes of the determinism chain: random batches
// have 1..64 hashes, so about a quarter of them are too large.
const detMaxHashes = 48

// txGen produces a random mix of valid and invalid transactions for the
// test chain, from a seeded generator: the same seed gives the same blocks.
type txGen struct {
	t       testing.TB
	r       *rand.Rand
	next    map[string]uint64 // next sequence each issuer intends to use
	history [][]byte
}

func newTxGen(t testing.TB, seed uint64) *txGen {
	return &txGen{t: t, r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), next: map[string]uint64{alphaID: 1, betaID: 1}}
}

func (g *txGen) hashes() []byte {
	n := 1 + g.r.IntN(64)
	b := make([]byte, n*proof.HashSize)
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return b
}

// intended returns a signer, its next sequence and one of its keys, which
// the chain accepts or rejects depending on the height (beta's key expires
// at betaTo, alpha2 is valid from alpha2From).
func (g *txGen) intended() (string, uint64, ed25519.PrivateKey) {
	if g.r.IntN(5) == 0 {
		return betaID, g.next[betaID], beta1 // valid below height betaTo only
	}
	key := alpha1
	if g.r.IntN(3) == 0 {
		key = alpha2 // valid from alpha2From only
	}
	return alphaID, g.next[alphaID], key
}

func (g *txGen) tx() []byte {
	t := g.t
	signer, seq, key := g.intended()
	p := g.r.IntN(100)
	switch {
	case p < 55: // meant to be valid
		g.next[signer] += 1 + uint64(g.r.IntN(2)) // sometimes leave a gap
		raw := anchor(t, testChainID, signer, seq, g.hashes(), key)
		g.history = append(g.history, raw)
		return raw
	case p < 65 && len(g.history) > 0: // exact replay of an earlier transaction
		return g.history[g.r.IntN(len(g.history))]
	case p < 70 && seq > 1: // a fresh batch below the last sequence
		return anchor(t, testChainID, signer, 1+uint64(g.r.IntN(int(seq-1))), g.hashes(), key)
	}
	// A corrupted form of a transaction that would otherwise be valid; the
	// sequence is not consumed, so a later valid one reuses it.
	hs := g.hashes()
	body := anchorBody(signer, seq, hs)
	switch g.r.IntN(10) {
	case 0:
		body.ChainId = "credence-other-1"
	case 1:
		body.GetAnchorBatch().Root[g.r.IntN(proof.HashSize)] ^= 1 << g.r.IntN(8)
	case 2:
		body.GetAnchorBatch().Hashes = hs[:len(hs)-1-g.r.IntN(31)]
	case 3:
		body.Signer = "nobody"
	case 4:
		body.Sequence = 0
	case 5:
		return rawTx(t, body, pubOf(key), strangerKey) // signature by another key
	case 6:
		return rawTx(t, body, pubOf(strangerKey), strangerKey) // unregistered key
	case 7:
		raw := rawTx(t, body, pubOf(key), key)
		return raw[:g.r.IntN(len(raw))]
	case 8:
		b := make([]byte, g.r.IntN(200))
		for i := range b {
			b[i] = byte(g.r.Uint32())
		}
		return b
	case 9:
		body.Msg = nil
	}
	return rawTx(t, body, pubOf(key), key)
}

func (g *txGen) block() [][]byte {
	txs := make([][]byte, g.r.IntN(7))
	for i := range txs {
		txs[i] = g.tx()
	}
	return txs
}

// TestDeterminism feeds the same random blocks to several configurations of
// the app and requires identical app hashes, result codes and batch proofs
// at every height:
//
//   - badger: a badger database with the harness's 8 MiB memtables (so
//     badger flushes often and splits large writes);
//   - badger-64MiB-memtable: badger with the store's default memtables;
//   - badger-reopened: closed (app and database) and reopened from disk
//     halfway;
//   - memdb: iavl's in-memory database, the reference.
//
// It also checks, on every node and block, that CheckTx of the block's
// transactions in order gives the codes FinalizeBlock gives, and that
// ProcessProposal accepts exactly the blocks whose transactions all pass.
func TestDeterminism(t *testing.T) {
	const (
		seed    = 20240611
		nBlocks = 50
		reopen  = 25
	)
	gen := newTxGen(t, seed)
	blocks := make([][][]byte, nBlocks+1)
	for h := int64(1); h <= nBlocks; h++ {
		blocks[h] = gen.block()
	}

	g := testGenesisDoc()
	g.Params.MaxBatchHashes = detMaxHashes
	genesis := mustJSON(t, g)

	type config struct {
		name string
		n    *chain
	}
	cfgs := []config{
		{"badger", newChain(t)},
		{"badger-64MiB-memtable", newChain(t, store.WithMemTableSize(64<<20))},
		{"badger-reopened", newChain(t)},
		{"memdb", newMemChain(t)},
	}
	var initHash []byte
	for i, c := range cfgs {
		res := c.n.initChain(genesis)
		if i == 0 {
			initHash = res.AppHash
		} else if !bytes.Equal(res.AppHash, initHash) {
			t.Fatalf("%s: InitChain app hash %x, want %x", c.name, res.AppHash, initHash)
		}
	}

	seen := map[uint32]int{}
	for h := int64(1); h <= nBlocks; h++ {
		txs := blocks[h]
		var refHash []byte
		var refCodes []uint32
		for i, c := range cfgs {
			n := c.n
			if c.name == "badger-reopened" && h == reopen+1 {
				n.reopen()
				info := n.info()
				if info.LastBlockHeight != reopen || !bytes.Equal(info.LastBlockAppHash, n.appHash[reopen]) {
					t.Fatalf("%s: Info after reopen: height %d hash %x; want %d %x", c.name, info.LastBlockHeight, info.LastBlockAppHash, reopen, n.appHash[reopen])
				}
			}

			checkCodes := make([]uint32, len(txs))
			for j, tx := range txs {
				checkCodes[j] = n.checkTx(tx).Code
			}
			prepared := n.prepare(txs...)
			if s := n.process(prepared...); s != abci.ResponseProcessProposal_ACCEPT {
				t.Fatalf("%s height %d: ProcessProposal rejects PrepareProposal's own proposal", c.name, h)
			}
			status := n.process(txs...)

			res := n.finalize(txs...)
			got := codes(res)
			allOK := true
			for j := range got {
				if got[j] != checkCodes[j] {
					t.Errorf("%s height %d tx %d: CheckTx code %d, FinalizeBlock code %d (%s)", c.name, h, j, checkCodes[j], got[j], res.TxResults[j].Log)
				}
				allOK = allOK && got[j] == CodeOK
			}
			if (status == abci.ResponseProcessProposal_ACCEPT) != allOK {
				t.Errorf("%s height %d: ProcessProposal %v, but FinalizeBlock codes %v", c.name, h, status, got)
			}
			if wantKept := countOK(got); len(prepared) != wantKept {
				t.Errorf("%s height %d: PrepareProposal kept %d txs, FinalizeBlock accepts %d", c.name, h, len(prepared), wantKept)
			}
			n.commit()
			if info := n.info(); !bytes.Equal(info.LastBlockAppHash, res.AppHash) {
				t.Fatalf("%s height %d: committed hash %x, FinalizeBlock returned %x", c.name, h, info.LastBlockAppHash, res.AppHash)
			}

			if i == 0 {
				refHash, refCodes = res.AppHash, got
				for _, code := range got {
					seen[code]++
				}
				continue
			}
			if !bytes.Equal(res.AppHash, refHash) {
				t.Fatalf("%s height %d: app hash %x, %s has %x", c.name, h, res.AppHash, cfgs[0].name, refHash)
			}
			if fmt.Sprint(got) != fmt.Sprint(refCodes) {
				t.Fatalf("%s height %d: codes %v, %s has %v", c.name, h, got, cfgs[0].name, refCodes)
			}
		}
	}

	// The commit hooks saw the same batches with the same proofs.
	ref := cfgs[0].n.hooked
	for _, c := range cfgs[1:] {
		if len(c.n.hooked) != len(ref) {
			t.Fatalf("%s: %d commit hook calls, %s had %d", c.name, len(c.n.hooked), cfgs[0].name, len(ref))
		}
		for i, call := range c.n.hooked {
			if call.height != ref[i].height || len(call.batches) != len(ref[i].batches) {
				t.Fatalf("%s: hook call %d: height %d with %d batches; want %d with %d", c.name, i, call.height, len(call.batches), ref[i].height, len(ref[i].batches))
			}
			for j, b := range call.batches {
				rb := ref[i].batches[j]
				if !bytes.Equal(b.RecordBytes, rb.RecordBytes) || !bytes.Equal(b.Proof, rb.Proof) || !bytes.Equal(b.Hashes, rb.Hashes) {
					t.Errorf("%s: height %d batch %d differs", c.name, call.height, j)
				}
			}
		}
	}
	// Every accepted batch's proof verifies against its block's app hash.
	n := cfgs[0].n
	batches := 0
	for _, call := range ref {
		for _, b := range call.batches {
			batches++
			verifyMembership(t, n.appHash[call.height], b.Proof, proof.BatchKey(b.Record.Issuer, b.Record.Seq), b.RecordBytes)
			var rec proof.BatchRecord
			if err := proto.Unmarshal(b.RecordBytes, &rec); err != nil || rec.LeafCount == 0 || rec.LeafCount > detMaxHashes {
				t.Errorf("record %v (%v)", &rec, err)
			}
		}
	}

	// The random blocks exercise what they are meant to.
	t.Logf("%d blocks, %d batches anchored, result codes %v", nBlocks, batches, seen)
	for _, c := range []uint32{CodeOK, CodeMalformed, CodeWrongChain, CodeBadSignature, CodeBadRoot, CodeUnknownSigner, CodeUnauthorized, CodeReplay, CodeTooLarge} {
		if seen[c] == 0 {
			t.Errorf("no transaction with code %d: the generator does not cover it", c)
		}
	}
	if seen[CodeInternal] != 0 {
		t.Errorf("%d transactions failed with CodeInternal", seen[CodeInternal])
	}
}

func countOK(cs []uint32) int {
	k := 0
	for _, c := range cs {
		if c == CodeOK {
			k++
		}
	}
	return k
}

// TestDeterminismIgnoresIrrelevantRequestFields: the app hash depends on the
// block's height, time and transactions, not on the fields of the request
// that vary between nodes (proposer, misbehaviour, block hash).
func TestDeterminismIgnoresIrrelevantRequestFields(t *testing.T) {
	tx := anchor(t, testChainID, alphaID, 1, hashesN("irr", 3), alpha1)
	a, b := start(t), start(t)
	ra, err := a.app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: 1, Time: blockTime(1), Txs: [][]byte{tx}, Hash: []byte("one"), ProposerAddress: []byte("p1")})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: 1, Time: blockTime(1), Txs: [][]byte{tx}, Hash: []byte("two"), ProposerAddress: []byte("p2"), NextValidatorsHash: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ra.AppHash, rb.AppHash) {
		t.Error("app hash depends on the proposer or block hash")
	}
	// But it does depend on the time, which is in the batch record.
	c := start(t)
	rc, err := c.app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: 1, Time: blockTime(2), Txs: [][]byte{tx}})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ra.AppHash, rc.AppHash) {
		t.Error("app hash does not depend on the block time")
	}
}
