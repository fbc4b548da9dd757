package app

import (
	"bytes"
	"errors"
	"strconv"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
)

type wantBatch struct {
	issuer string
	seq    uint64
	hashes []byte
	key    []byte
}

// checkBatches checks the committed records of a block, as Query returns
// them and as the commit hook received them, against the block's app hash.
func checkBatches(t *testing.T, n *chain, height int64, call hookCall, want []wantBatch) {
	t.Helper()
	if call.height != height {
		t.Fatalf("commit hook height %d, want %d", call.height, height)
	}
	if len(call.batches) != len(want) {
		t.Fatalf("commit hook got %d batches, want %d", len(call.batches), len(want))
	}
	appHash := n.appHash[height]
	for i, w := range want {
		root, err := proof.Root(w.hashes)
		if err != nil {
			t.Fatal(err)
		}
		wantRec := &proof.BatchRecord{
			Issuer:       w.issuer,
			Seq:          w.seq,
			Root:         root[:],
			LeafCount:    uint64(len(w.hashes) / proof.HashSize),
			SignerKey:    w.key,
			Height:       height,
			TimeUnixNano: blockTime(height).UnixNano(),
		}
		stored, storedBytes := n.batchRecord(w.issuer, w.seq)
		if stored == nil {
			t.Fatalf("batch %s/%d: no record under proof.BatchKey", w.issuer, w.seq)
		}
		if !proto.Equal(stored, wantRec) {
			t.Errorf("batch %s/%d: stored record %v, want %v", w.issuer, w.seq, stored, wantRec)
		}

		b := call.batches[i]
		if !proto.Equal(b.Record, wantRec) {
			t.Errorf("hook batch %d: record %v, want %v", i, b.Record, wantRec)
		}
		if !bytes.Equal(b.RecordBytes, storedBytes) {
			t.Errorf("hook batch %d: record bytes differ from the stored value", i)
		}
		if !bytes.Equal(b.Hashes, w.hashes) {
			t.Errorf("hook batch %d: hashes differ from the transaction's", i)
		}
		verifyMembership(t, appHash, b.Proof, proof.BatchKey(w.issuer, w.seq), b.RecordBytes)

		// ProveBatch gives the same evidence, on demand.
		pbat, err := n.app.ProveBatch(w.issuer, w.seq)
		if err != nil {
			t.Fatalf("ProveBatch(%s, %d): %v", w.issuer, w.seq, err)
		}
		if !bytes.Equal(pbat.RecordBytes, storedBytes) {
			t.Errorf("ProveBatch(%s, %d): record bytes differ", w.issuer, w.seq)
		}
		verifyMembership(t, appHash, pbat.Proof, proof.BatchKey(w.issuer, w.seq), pbat.RecordBytes)
	}
}

func TestAcceptedBatches(t *testing.T) {
	n := start(t)
	h1a, h1b, h2a, h3a := hashesN("1a", 1), hashesN("1b", 7), hashesN("2a", testMaxHashes), hashesN("3a", 3)

	t.Run("one block, two issuers, several batches of one issuer", func(t *testing.T) {
		txs := [][]byte{
			anchor(t, testChainID, alphaID, 1, h1a, alpha1),
			anchor(t, testChainID, betaID, 1, h1b, beta1),
			anchor(t, testChainID, alphaID, 2, h2a, alpha1), // max_batch_hashes: at the limit
			anchor(t, testChainID, alphaID, 3, h3a, alpha1),
		}
		if got := n.prepare(txs...); !sameTxs(got, txs) {
			t.Fatalf("PrepareProposal kept %d of %d valid txs", len(got), len(txs))
		}
		if s := n.process(txs...); s != abci.ResponseProcessProposal_ACCEPT {
			t.Fatalf("ProcessProposal: %v", s)
		}
		res := n.blockOK(txs...)
		for i, r := range res.TxResults {
			if len(r.Events) != 1 || r.Events[0].Type != "anchor" {
				t.Errorf("tx %d: events %v, want one anchor event", i, r.Events)
			}
		}
		if len(n.hooked) != 1 {
			t.Fatalf("commit hook called %d times, want 1", len(n.hooked))
		}
		checkBatches(t, n, 1, n.hooked[0], []wantBatch{
			{alphaID, 1, h1a, pubOf(alpha1)},
			{betaID, 1, h1b, pubOf(beta1)},
			{alphaID, 2, h2a, pubOf(alpha1)},
			{alphaID, 3, h3a, pubOf(alpha1)},
		})
		if s, err := n.app.LastSequence(alphaID); err != nil || s != 3 {
			t.Errorf("LastSequence(alpha) = %d, %v; want 3", s, err)
		}
		if s, err := n.app.LastSequence(betaID); err != nil || s != 1 {
			t.Errorf("LastSequence(beta) = %d, %v; want 1", s, err)
		}
		if s, err := n.app.LastSequence("nobody"); err != nil || s != 0 {
			t.Errorf("LastSequence(nobody) = %d, %v; want 0", s, err)
		}
	})

	t.Run("sequence gaps are allowed", func(t *testing.T) {
		hs := hashesN("gap", 2)
		n.blockOK(anchor(t, testChainID, alphaID, 10, hs, alpha1))
		checkBatches(t, n, 2, n.hooked[len(n.hooked)-1], []wantBatch{{alphaID, 10, hs, pubOf(alpha1)}})
	})

	t.Run("proofs of earlier blocks still verify at their height", func(t *testing.T) {
		n.advanceTo(6)
		pbat, err := n.app.ProveBatch(alphaID, 1)
		if err != nil {
			t.Fatal(err)
		}
		verifyMembership(t, n.appHash[1], pbat.Proof, proof.BatchKey(alphaID, 1), pbat.RecordBytes)
		if _, err := n.app.ProveBatch(alphaID, 4); !errors.Is(err, ErrNotFound) {
			t.Errorf("ProveBatch of a missing batch: %v, want ErrNotFound", err)
		}
	})
}

// TestCommitHookOwnsItsData: the hook's hashes must not alias the block's
// transaction bytes, which CometBFT may reuse.
func TestCommitHookOwnsItsData(t *testing.T) {
	n := start(t)
	hs := hashesN("own", 4)
	tx := anchor(t, testChainID, alphaID, 1, hs, alpha1)
	buf := bytes.Clone(tx)
	n.finalize(buf)
	clear(buf)
	n.commit()
	if len(n.hooked) != 1 || len(n.hooked[0].batches) != 1 {
		t.Fatalf("hook: %+v", n.hooked)
	}
	if !bytes.Equal(n.hooked[0].batches[0].Hashes, hs) {
		t.Error("hook hashes changed with the transaction buffer")
	}
	// The next block's batches do not overwrite the ones already handed out.
	n.blockOK(anchor(t, testChainID, alphaID, 2, hashesN("own2", 4), alpha1))
	if !bytes.Equal(n.hooked[0].batches[0].Hashes, hs) || n.hooked[0].batches[0].Record.Seq != 1 {
		t.Error("first hook call's batches were overwritten by the next block")
	}
}

// TestKeyWindows: the key in force is the one of the block's height.
func TestKeyWindows(t *testing.T) {
	n := start(t)
	type step struct {
		height int64
		issuer string
		seq    uint64
		key    []byte
		signer string
		code   uint32
	}
	steps := []step{
		{1, betaID, 1, nil, "beta1", CodeOK},
		{betaTo - 1, betaID, 2, nil, "beta1", CodeOK}, // last height of [1, 5)
		{betaTo, betaID, 3, nil, "beta1", CodeUnauthorized},
		{alpha2From - 1, alphaID, 1, nil, "alpha2", CodeUnauthorized},
		{alpha2From, alphaID, 2, nil, "alpha2", CodeOK},
		{alpha2From + 1, alphaID, 3, nil, "alpha1", CodeOK}, // the first key stays valid
		{alpha2From + 2, alphaID, 4, nil, "alpha2", CodeOK},
	}
	keys := map[string][]byte{"beta1": beta1, "alpha1": alpha1, "alpha2": alpha2}
	for _, s := range steps {
		t.Run(s.signer+" at height "+itoa(s.height), func(t *testing.T) {
			n.advanceTo(s.height - 1)
			hs := hashesN(s.signer+itoa(s.height), 2)
			tx := anchor(t, testChainID, s.issuer, s.seq, hs, keys[s.signer])
			if r := n.checkTx(tx); r.Code != s.code {
				t.Errorf("CheckTx: code %d (%s), want %d", r.Code, r.Log, s.code)
			}
			res := n.block(tx)
			if c := res.TxResults[0].Code; c != s.code {
				t.Fatalf("FinalizeBlock: code %d (%s), want %d", c, res.TxResults[0].Log, s.code)
			}
			if s.code != CodeOK {
				return
			}
			rec, _ := n.batchRecord(s.issuer, s.seq)
			if rec == nil || !bytes.Equal(rec.SignerKey, pubOf(keys[s.signer])) || rec.Height != s.height {
				t.Errorf("record %v: want signer key %s at height %d", rec, s.signer, s.height)
			}
		})
	}
}

func itoa(h int64) string { return strconv.FormatInt(h, 10) }

// TestSequencesInBlock: a block may carry several transactions of one
// signer, in increasing order only.
func TestSequencesInBlock(t *testing.T) {
	tx := func(seq uint64) []byte {
		return anchor(t, testChainID, alphaID, seq, hashesN("s"+itoa(int64(seq)), 1), alpha1)
	}
	for _, tc := range []struct {
		name  string
		seqs  []uint64
		codes []uint32
	}{
		{"increasing by one", []uint64{1, 2, 3, 4, 5}, []uint32{0, 0, 0, 0, 0}},
		{"increasing with gaps", []uint64{2, 7, 100}, []uint32{0, 0, 0}},
		{"out of order", []uint64{2, 1, 3}, []uint32{0, CodeReplay, 0}},
		{"duplicate in the middle", []uint64{1, 2, 2, 3}, []uint32{0, 0, CodeReplay, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := start(t)
			txs := make([][]byte, len(tc.seqs))
			accepted := 0
			for i, s := range tc.seqs {
				txs[i] = tx(s)
				if tc.codes[i] == CodeOK {
					accepted++
				}
			}
			wantStatus := abci.ResponseProcessProposal_ACCEPT
			if accepted != len(txs) {
				wantStatus = abci.ResponseProcessProposal_REJECT
			}
			if s := n.process(txs...); s != wantStatus {
				t.Errorf("ProcessProposal: %v, want %v", s, wantStatus)
			}
			if got := n.prepare(txs...); len(got) != accepted {
				t.Errorf("PrepareProposal kept %d txs, want %d", len(got), accepted)
			}
			for i, x := range txs {
				if r := n.checkTx(x); r.Code != tc.codes[i] {
					t.Errorf("CheckTx %d (seq %d): code %d, want %d", i, tc.seqs[i], r.Code, tc.codes[i])
				}
			}
			res := n.block(txs...)
			for i, r := range res.TxResults {
				if r.Code != tc.codes[i] {
					t.Errorf("FinalizeBlock tx %d (seq %d): code %d (%s), want %d", i, tc.seqs[i], r.Code, r.Log, tc.codes[i])
				}
			}
			if len(n.hooked) != 1 || len(n.hooked[0].batches) != accepted {
				t.Errorf("commit hook: %d calls, want 1 with %d batches", len(n.hooked), accepted)
			}
		})
	}
}

// TestMempoolSequences: CheckTx accepts a signer's next transactions while
// earlier ones are pending, and Commit clears the pending set so that a
// recheck sees the committed state.
func TestMempoolSequences(t *testing.T) {
	tx := func(seq uint64) []byte {
		return anchor(t, testChainID, alphaID, seq, hashesN("m"+itoa(int64(seq)), 2), alpha1)
	}
	t1, t2, t3, t4, t5 := tx(1), tx(2), tx(3), tx(4), tx(5)

	t.Run("pending then committed", func(t *testing.T) {
		n := start(t)
		steps := []struct {
			name string
			tx   []byte
			typ  abci.CheckTxType
			code uint32
		}{
			{"seq 1", t1, abci.CheckTxType_New, CodeOK},
			{"seq 2 while 1 pending", t2, abci.CheckTxType_New, CodeOK},
			{"seq 2 again", t2, abci.CheckTxType_New, CodeReplay},
			{"seq 1 again", t1, abci.CheckTxType_New, CodeReplay},
			{"seq 4 skipping 3", t4, abci.CheckTxType_New, CodeOK},
			{"seq 3 below pending 4", t3, abci.CheckTxType_New, CodeReplay},
		}
		for _, s := range steps {
			if r := n.checkTxType(s.tx, s.typ); r.Code != s.code {
				t.Errorf("%s: code %d (%s), want %d", s.name, r.Code, r.Log, s.code)
			}
		}
		// CheckTx wrote nothing: the state is the same as a node's that saw none.
		ref := start(t)
		n.blockOK(t1)
		ref.blockOK(t1)
		if !bytes.Equal(n.appHash[1], ref.appHash[1]) {
			t.Fatal("CheckTx changed the state")
		}
		// CometBFT rechecks what is left in the mempool after Commit.
		for _, s := range []struct {
			name string
			tx   []byte
			code uint32
		}{
			{"recheck seq 1 (committed)", t1, CodeReplay},
			{"recheck seq 2", t2, CodeOK},
			{"recheck seq 4", t4, CodeOK},
			{"new seq 5", t5, CodeOK},
			{"new seq 3 below pending", t3, CodeReplay},
		} {
			if r := n.checkTxType(s.tx, abci.CheckTxType_Recheck); r.Code != s.code {
				t.Errorf("%s: code %d (%s), want %d", s.name, r.Code, r.Log, s.code)
			}
		}
		n.blockOK(t2, t4, t5)
		if r := n.checkTxType(t2, abci.CheckTxType_Recheck); r.Code != CodeReplay {
			t.Errorf("recheck seq 2 after its block: code %d, want replay", r.Code)
		}
	})

	t.Run("commit of a block without them clears the pending set", func(t *testing.T) {
		n := start(t)
		for _, x := range [][]byte{t1, t2, t3} {
			if r := n.checkTx(x); r.Code != CodeOK {
				t.Fatalf("CheckTx: code %d (%s)", r.Code, r.Log)
			}
		}
		n.block()
		for i, x := range [][]byte{t1, t2, t3} {
			if r := n.checkTxType(x, abci.CheckTxType_Recheck); r.Code != CodeOK {
				t.Errorf("recheck seq %d after an empty block: code %d (%s), want OK", i+1, r.Code, r.Log)
			}
		}
	})

	t.Run("a rejected CheckTx does not advance the pending sequence", func(t *testing.T) {
		n := start(t)
		bad := anchor(t, testChainID, alphaID, 9, hashesN("bad", 2), beta1) // wrong key
		if r := n.checkTx(bad); r.Code != CodeUnauthorized {
			t.Fatalf("CheckTx: code %d, want unauthorized", r.Code)
		}
		if r := n.checkTx(t1); r.Code != CodeOK {
			t.Errorf("seq 1 after a rejected seq 9: code %d (%s)", r.Code, r.Log)
		}
	})

	t.Run("proposals ignore the mempool's pending set", func(t *testing.T) {
		n := start(t)
		if r := n.checkTx(t1); r.Code != CodeOK {
			t.Fatal(r.Log)
		}
		if s := n.process(t1, t2); s != abci.ResponseProcessProposal_ACCEPT {
			t.Errorf("ProcessProposal with seq 1 pending in the mempool: %v", s)
		}
		if got := n.prepare(t1, t2); !sameTxs(got, [][]byte{t1, t2}) {
			t.Errorf("PrepareProposal kept %d txs, want 2", len(got))
		}
	})
}

// TestPrepareProposalRespectsMaxTxBytes: the proposal never exceeds the
// byte budget CometBFT gives.
func TestPrepareProposalRespectsMaxTxBytes(t *testing.T) {
	n := start(t)
	t1 := anchor(t, testChainID, alphaID, 1, hashesN("p1", 4), alpha1)
	t2 := anchor(t, testChainID, alphaID, 2, hashesN("p2", 4), alpha1)
	for _, tc := range []struct {
		name string
		max  int64
		want [][]byte
	}{
		{"both fit", int64(len(t1) + len(t2)), [][]byte{t1, t2}},
		{"one fits", int64(len(t1) + len(t2) - 1), [][]byte{t1}},
		{"none fits", int64(len(t1) - 1), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := n.app.PrepareProposal(ctx, &abci.RequestPrepareProposal{MaxTxBytes: tc.max, Txs: [][]byte{t1, t2}, Height: 1, Time: blockTime(1)})
			if err != nil {
				t.Fatal(err)
			}
			if !sameTxs(res.Txs, tc.want) {
				t.Errorf("kept %d txs, want %d", len(res.Txs), len(tc.want))
			}
		})
	}
}

// TestInitialHeight: with genesis initial_height > 1 the first block's
// version is that height.
func TestInitialHeight(t *testing.T) {
	n := newChain(t)
	if _, err := n.app.InitChain(ctx, &abci.RequestInitChain{ChainId: testChainID, InitialHeight: 100, AppStateBytes: mustJSON(t, testGenesisDoc())}); err != nil {
		t.Fatal(err)
	}
	n.height = 99
	n.blockOK(anchor(t, testChainID, alphaID, 1, hashesN("ih", 2), alpha1))
	if info := n.info(); info.LastBlockHeight != 100 || !bytes.Equal(info.LastBlockAppHash, n.appHash[100]) {
		t.Fatalf("Info: height %d hash %x; want 100, %x", info.LastBlockHeight, info.LastBlockAppHash, n.appHash[100])
	}
	res := n.query("/key", proof.BatchKey(alphaID, 1), 100, true)
	if res.Value == nil {
		t.Fatal("batch record missing at height 100")
	}
	verifyMembership(t, n.appHash[100], res.ProofOps.Ops[0].Data, proof.BatchKey(alphaID, 1), res.Value)
}

// TestCheckTxHeightBeforeFirstBlockWithInitialHeight (regression): CheckTx
// before the first commit checks key windows at the chain's initial height,
// not at 1. With initial_height 100, beta's key (valid [1, 5)) is expired
// for the first block, so CheckTx must refuse what FinalizeBlock refuses.
func TestCheckTxHeightBeforeFirstBlockWithInitialHeight(t *testing.T) {
	n := newChain(t)
	if _, err := n.app.InitChain(ctx, &abci.RequestInitChain{ChainId: testChainID, InitialHeight: 100, AppStateBytes: mustJSON(t, testGenesisDoc())}); err != nil {
		t.Fatal(err)
	}
	n.height = 99
	tx := anchor(t, testChainID, betaID, 1, hashesN("ih", 2), beta1)
	check := n.checkTx(tx)
	if s := n.process(tx); s != abci.ResponseProcessProposal_REJECT {
		t.Errorf("ProcessProposal at height 100: %v, want REJECT", s)
	}
	res := n.finalize(tx)
	if c := res.TxResults[0].Code; c != CodeUnauthorized {
		t.Fatalf("FinalizeBlock at height 100: code %d, want unauthorized", c)
	}
	if check.Code != CodeUnauthorized {
		t.Errorf("CheckTx before the first block (next height 100): code %d, want %d (unauthorized, as FinalizeBlock)", check.Code, CodeUnauthorized)
	}
}

// TestConcurrentReaders: the node's readers (receipts, queries, the batcher's
// sequence lookups) run beside block execution. Run with -race.
func TestConcurrentReaders(t *testing.T) {
	n := start(t)
	n.blockOK(anchor(t, testChainID, alphaID, 1, hashesN("c", 2), alpha1))
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 3 {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				if _, err := n.app.ProveBatch(alphaID, 1); err != nil {
					errs <- err
					return
				}
				if _, err := n.app.LastSequence(alphaID); err != nil {
					errs <- err
					return
				}
				if _, err := n.app.Query(ctx, &abci.RequestQuery{Path: "/key", Data: proof.IssuerKey(alphaID), Prove: true}); err != nil {
					errs <- err
					return
				}
				if _, err := n.app.CheckTx(ctx, &abci.RequestCheckTx{Tx: anchor(t, testChainID, alphaID, 1, hashesN("c", 2), alpha1)}); err != nil {
					errs <- err
					return
				}
				_ = n.app.Height()
			}
		}()
	}
	for seq := uint64(2); seq < 30; seq++ {
		n.blockOK(anchor(t, testChainID, alphaID, seq, hashesN("c"+itoa(int64(seq)), 3), alpha1))
	}
	close(stop)
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestCommittedReadsBeforeFirstCommit (regression): the committed state is
// never the working tree of a block in progress, also before the first
// Commit: between FinalizeBlock and Commit the node's readers (LastSequence,
// ProveBatch: the batcher calls both) see only committed state, and CheckTx
// is checked against genesis.
func TestCommittedReadsBeforeFirstCommit(t *testing.T) {
	n := start(t)
	n.finalize(anchor(t, testChainID, alphaID, 1, hashesN("wip", 2), alpha1))
	if s, err := n.app.LastSequence(alphaID); err != nil || s != 0 {
		t.Errorf("LastSequence between FinalizeBlock(1) and Commit = %d, %v; want 0 (nothing committed)", s, err)
	}
	if _, err := n.app.ProveBatch(alphaID, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("ProveBatch between FinalizeBlock(1) and Commit: %v; want ErrNotFound", err)
	}
	if r := n.checkTx(anchor(t, testChainID, alphaID, 1, hashesN("other", 1), alpha1)); r.Code != CodeOK {
		t.Errorf("CheckTx of seq 1 between FinalizeBlock(1) and Commit: code %d (%s); want OK against genesis", r.Code, r.Log)
	}
	// From the second block on, the same reads see only committed state.
	n.commit()
	n.finalize(anchor(t, testChainID, alphaID, 2, hashesN("wip2", 2), alpha1))
	if s, err := n.app.LastSequence(alphaID); err != nil || s != 1 {
		t.Errorf("LastSequence between FinalizeBlock(2) and Commit = %d, %v; want 1", s, err)
	}
	if _, err := n.app.ProveBatch(alphaID, 2); !errors.Is(err, ErrNotFound) {
		t.Errorf("ProveBatch(2) between FinalizeBlock(2) and Commit: %v; want ErrNotFound", err)
	}
}

// TestProofBlocksPaced: after a block that changes the state, the next
// block changes the app hash once more, so that CometBFT makes the block
// after it at once (a receipt needs the canonical commit it carries), and
// the one after that changes nothing, so an idle chain rests.
func TestProofBlocksPaced(t *testing.T) {
	n := start(t)
	n.advanceTo(3)
	idle := func() []byte { return n.blockOK().AppHash }
	before := idle()
	if again := idle(); !bytes.Equal(before, again) {
		t.Fatal("an idle chain's app hash moves")
	}
	changed := n.blockOK(anchor(t, testChainID, alphaID, 1, hashesN("paced", 3), alpha1)).AppHash
	proofBlock := idle()
	rest := idle()
	if bytes.Equal(changed, proofBlock) {
		t.Fatal("the block after a change leaves the app hash as it was: CometBFT would wait for an empty block to prove the change")
	}
	if !bytes.Equal(proofBlock, rest) {
		t.Fatal("the second block after a change moves the app hash: the chain would never rest")
	}
	if again := idle(); !bytes.Equal(rest, again) {
		t.Fatal("an idle chain's app hash moves after a change")
	}
}
