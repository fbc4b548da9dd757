package app

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

// A determinism scenario: random blocks from the generator, fed to several
// chains that must agree on everything.
type scenario struct {
	name   string
	seed   uint64 // fixed seed; -seed overrides it
	blocks int
	maxTxs int // per block
	// genesis is the chain's; members and issuers are what the generator
	// knows of it.
	genesis   Genesis
	members   []member
	issuers   func() []*genIssuer
	ops       []op
	maxHashes int
	// alone: every transaction of a block is judged as if alone (no
	// transaction depends on an earlier one of its block), so CheckTx
	// gives FinalizeBlock's code and PrepareProposal keeps exactly the
	// transactions FinalizeBlock accepts.
	alone bool
	// What a run must exercise, or the scenario tests less than it says.
	wantCodes     []uint32
	wantEvents    []string
	wantProposals []pb.ProposalStatus
	wantValUpdate bool
	// upgrade: the chains know app version 3 (testV3Handler), and the
	// fixed seed's run crosses the upgrade to it.
	upgrade bool
}

// detMaxHashes is max_batch_hashes of the anchoring scenario: batches draw
// 1..64 hashes, so about a quarter of them are too large.
const detMaxHashes = 48

func scenarios() []scenario {
	anchors := testGenesisDoc()
	anchors.Params.MaxBatchHashes = detMaxHashes
	consortium, members := govGenesis(4, 10, 10, 10, 10)
	genesisIssuers := func() []*genIssuer {
		return []*genIssuer{
			{id: alphaID, sponsor: memberID, keys: []ed25519.PrivateKey{alpha2, alpha1}},
			{id: betaID, sponsor: memberID, keys: []ed25519.PrivateKey{beta1}},
		}
	}
	return []scenario{
		{
			name: "anchors", seed: 20240611, blocks: 50, maxTxs: 6,
			genesis: anchors, members: []member{memberAt(0, 10)}, issuers: genesisIssuers,
			ops: []op{
				{"anchor", 55, opAnchor},
				{"replay", 10, opReplay},
				{"corrupt anchor", 35, opCorruptAnchor},
			},
			maxHashes: 64, alone: true,
			wantCodes: []uint32{CodeOK, CodeMalformed, CodeWrongChain, CodeBadSignature, CodeBadRoot, CodeUnknownSigner, CodeUnauthorized, CodeReplay, CodeTooLarge},
		},
		{
			name: "consortium", seed: 5, blocks: 120, maxTxs: 8,
			genesis: consortium, members: members,
			issuers: func() []*genIssuer {
				return append(genesisIssuers(), &genIssuer{id: gammaID, sponsor: members[len(members)-1].id, keys: []ed25519.PrivateKey{gamma1}})
			},
			ops: []op{
				{"anchor", 20, opAnchor},
				{"corrupt anchor", 4, opCorruptAnchor},
				{"replay", 6, opReplay},
				{"register issuer", 6, opRegisterIssuer},
				{"rotate key", 6, opRotateKey},
				{"compromise key", 2, opCompromiseKey},
				{"revoke", 10, opRevoke},
				{"propose", 12, opPropose},
				{"vote", 25, opVote},
				{"create status list", 3, opCreateStatusList},
				{"update status list", 5, opUpdateStatusList},
			},
			maxHashes: 20,
			wantCodes: []uint32{CodeOK, CodeMalformed, CodeUnknownSigner, CodeUnauthorized, CodeReplay, CodeTooLarge, CodeRejected},
			wantEvents: []string{"anchor/issuer", "issuer/registered", "issuer/rotated", "issuer/key_compromised", "revoke/issuer",
				"proposal/id", "vote/proposal", "registry/created", "registry/updated"},
			wantProposals: []pb.ProposalStatus{pb.ProposalStatus_PROPOSAL_STATUS_PASSED, pb.ProposalStatus_PROPOSAL_STATUS_REJECTED, pb.ProposalStatus_PROPOSAL_STATUS_EXPIRED},
			wantValUpdate: true,
		},
		{
			// A chain that crosses an upgrade: blocks before it run by
			// version 2's rules, the plan's block migrates, later ones run
			// by version 3's (a proposal needs a description).
			name: "upgrade", seed: 7, blocks: 80, maxTxs: 6,
			genesis: consortium, members: members, issuers: genesisIssuers,
			ops: []op{
				{"anchor", 20, opAnchor},
				{"propose", 8, opPropose},
				{"propose upgrade", 6, opProposeUpgrade},
				{"vote", 30, opVote},
			},
			maxHashes: 20, upgrade: true,
			wantCodes:     []uint32{CodeOK, CodeRejected},
			wantProposals: []pb.ProposalStatus{pb.ProposalStatus_PROPOSAL_STATUS_PASSED, pb.ProposalStatus_PROPOSAL_STATUS_EXPIRED},
		},
	}
}

// TestDeterminism feeds each scenario's random blocks to several chains and
// requires, at every height, identical app hashes, CheckTx codes, results
// (code, log, events) and validator updates, which CometBFT's validator set
// accepts. The chains:
//
//   - badger: a badger database with the harness's 8 MiB memtables (so
//     badger flushes often and splits large writes);
//   - badger-64MiB-memtable: badger with the store's default memtables;
//   - badger-reopened: closed (app and database) and reopened from disk
//     halfway;
//   - memdb: iavl's in-memory database, the reference.
//
// The app hash and codes of every height are pinned in
// testdata/determinism/<scenario>.golden for the scenario's fixed seed
// (go test -run TestDeterminism -update rewrites them); any other -seed is
// checked for agreement only.
func TestDeterminism(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) { runScenario(t, sc) })
	}
}

func runScenario(t *testing.T, sc scenario) {
	seed := testSeed(t, sc.seed)
	if sc.upgrade {
		withHandler(t, 3, testV3Handler)
	}
	genesis := mustJSON(t, sc.genesis)
	type config struct {
		name string
		c    *chain
	}
	cfgs := []config{
		{"badger", newChain(t)},
		{"badger-64MiB-memtable", newChain(t, store.WithMemory(store.Memory{MemTableSize: 64 << 20, NumMemTables: 2, BlockCacheSize: 8 << 20, IndexCacheSize: 8 << 20, Compactors: 2}))},
		{"badger-reopened", newChain(t)},
		{"memdb", newMemChain(t)},
	}
	for _, cfg := range cfgs {
		cfg.c.initChain(genesis)
		cfg.c.m = sc.members
		if got, want := cfg.c.info().LastBlockAppHash, cfgs[0].c.info().LastBlockAppHash; !bytes.Equal(got, want) {
			t.Fatalf("%s: InitChain app hash %x, %s has %x", cfg.name, got, cfgs[0].name, want)
		}
	}
	ref := cfgs[0].c
	gen := newGen(t, seed, ref, sc.ops, sc.maxHashes, sc.issuers())
	reopen := int64(sc.blocks / 2)

	var golden strings.Builder
	codesSeen, events := map[uint32]int{}, map[string]int{}
	valUpdates := 0
	var upgradedAt int64
	v3Refused := 0 // transactions refused by version 3's rule
	for h := int64(1); h <= int64(sc.blocks); h++ {
		txs := gen.block(sc.maxTxs)
		var want []string
		for i, cfg := range cfgs {
			c := cfg.c
			if cfg.name == "badger-reopened" && h == reopen+1 {
				c.reopen()
				if info := c.info(); info.LastBlockHeight != reopen || !bytes.Equal(info.LastBlockAppHash, c.appHash[reopen]) {
					t.Fatalf("%s: Info after reopen: height %d hash %x; want %d %x", cfg.name, info.LastBlockHeight, info.LastBlockAppHash, reopen, c.appHash[reopen])
				}
			}
			checkCodes := make([]uint32, len(txs))
			for j, tx := range txs {
				checkCodes[j] = c.checkTx(tx).Code
			}
			var prepared [][]byte
			var status abci.ResponseProcessProposal_ProposalStatus
			if sc.alone {
				prepared = c.prepare(txs...)
				if s := c.process(prepared...); s != abci.ResponseProcessProposal_ACCEPT {
					t.Fatalf("%s height %d: ProcessProposal rejects PrepareProposal's own proposal", cfg.name, h)
				}
				status = c.process(txs...)
			}
			res, ups, err := c.runRaw(txs...)
			if err != nil {
				t.Fatalf("%s height %d: CometBFT refuses validator updates %s: %v (the chain would halt)", cfg.name, h, fmtUpdates(ups), err)
			}
			c.checkValidatorSet()
			if info := c.info(); !bytes.Equal(info.LastBlockAppHash, res.AppHash) {
				t.Fatalf("%s height %d: committed hash %x, FinalizeBlock returned %x", cfg.name, h, info.LastBlockAppHash, res.AppHash)
			}
			got := codes(res)
			if sc.alone {
				for j := range got {
					if got[j] != checkCodes[j] {
						t.Errorf("%s height %d tx %d: CheckTx code %d, FinalizeBlock code %d (%s)", cfg.name, h, j, checkCodes[j], got[j], res.TxResults[j].Log)
					}
				}
				accepted := 0
				for _, code := range got {
					if code == CodeOK {
						accepted++
					}
				}
				if (status == abci.ResponseProcessProposal_ACCEPT) != (accepted == len(got)) {
					t.Errorf("%s height %d: ProcessProposal %v, but FinalizeBlock codes %v", cfg.name, h, status, got)
				}
				if len(prepared) != accepted {
					t.Errorf("%s height %d: PrepareProposal kept %d txs, FinalizeBlock accepts %d", cfg.name, h, len(prepared), accepted)
				}
			}
			var results []string
			for _, r := range res.TxResults {
				results = append(results, fmt.Sprintf("%d %q %v", r.Code, r.Log, r.Events))
			}
			this := []string{fmt.Sprintf("%x", res.AppHash), fmt.Sprint(checkCodes), strings.Join(results, "\n"), fmtUpdates(ups), res.ConsensusParamUpdates.String()}
			if i == 0 {
				want = this
				fmt.Fprintf(&golden, "%d %x %v\n", h, res.AppHash, got)
				for _, r := range res.TxResults {
					codesSeen[r.Code]++
					if strings.Contains(r.Log, "a proposal needs a description") {
						v3Refused++
					}
					for _, ev := range r.Events {
						for _, a := range ev.Attributes {
							events[ev.Type+"/"+a.Key]++
						}
					}
				}
				if len(ups) > 0 {
					valUpdates++
				}
				if res.ConsensusParamUpdates != nil {
					upgradedAt = h
					fmt.Fprintf(&golden, "%d app version %d\n", h, res.ConsensusParamUpdates.GetVersion().GetApp())
				}
				continue
			}
			for j, what := range []string{"app hash", "CheckTx codes", "results", "validator updates", "consensus param updates"} {
				if this[j] != want[j] {
					t.Fatalf("%s height %d: %s differ from %s's:\n%s\n%s", cfg.name, h, what, cfgs[0].name, this[j], want[j])
				}
			}
		}
	}

	// The commit hooks saw the same batches with the same proofs, and every
	// proof verifies against its block's app hash.
	for _, cfg := range cfgs[1:] {
		if len(cfg.c.hooked) != len(ref.hooked) {
			t.Fatalf("%s: %d commit hook calls, %s had %d", cfg.name, len(cfg.c.hooked), cfgs[0].name, len(ref.hooked))
		}
		for i, call := range cfg.c.hooked {
			if call.height != ref.hooked[i].height || len(call.batches) != len(ref.hooked[i].batches) {
				t.Fatalf("%s: hook call %d: height %d with %d batches; want %d with %d", cfg.name, i, call.height, len(call.batches), ref.hooked[i].height, len(ref.hooked[i].batches))
			}
			for j, b := range call.batches {
				rb := ref.hooked[i].batches[j]
				if !bytes.Equal(b.RecordBytes, rb.RecordBytes) || !bytes.Equal(b.Proof, rb.Proof) || !bytes.Equal(b.Hashes, rb.Hashes) {
					t.Errorf("%s: height %d batch %d differs", cfg.name, call.height, j)
				}
			}
		}
	}
	batches := 0
	for _, call := range ref.hooked {
		for _, b := range call.batches {
			batches++
			verifyMembership(t, ref.appHash[call.height], b.Proof, proof.BatchKey(b.Record.Issuer, b.Record.Seq), b.RecordBytes)
			var rec proof.BatchRecord
			if err := proto.Unmarshal(b.RecordBytes, &rec); err != nil || rec.LeafCount == 0 || rec.LeafCount*proof.HashSize != uint64(len(b.Hashes)) {
				t.Errorf("record %v (%v) of a batch of %d bytes", &rec, err, len(b.Hashes))
			}
		}
	}

	if codesSeen[CodeInternal] != 0 {
		t.Errorf("%d transactions failed with CodeInternal", codesSeen[CodeInternal])
	}
	statuses := map[pb.ProposalStatus]int{}
	for id := uint64(1); id < ref.nextProposalID(); id++ {
		statuses[ref.proposal(id).Status]++
	}
	t.Logf("seed %d, %d blocks: %d batches; result codes %v; events %v; proposals %v; %d blocks with validator updates; upgraded at %d",
		seed, sc.blocks, batches, codesSeen, events, statuses, valUpdates, upgradedAt)
	if seed != sc.seed {
		return // another seed is checked for agreement, not coverage
	}
	checkGolden(t, filepath.Join("testdata", "determinism", sc.name+".golden"), golden.String())
	// The fixed seed's run exercises what the scenario is meant to.
	for _, code := range sc.wantCodes {
		if codesSeen[code] == 0 {
			t.Errorf("no transaction with code %d: the generator does not cover it", code)
		}
	}
	for _, e := range sc.wantEvents {
		if events[e] == 0 {
			t.Errorf("no %s event", e)
		}
	}
	for _, s := range sc.wantProposals {
		if statuses[s] == 0 {
			t.Errorf("no proposal ends %s", s)
		}
	}
	if sc.wantValUpdate && valUpdates == 0 {
		t.Error("no block with validator updates")
	}
	if sc.upgrade && (upgradedAt == 0 || v3Refused == 0) {
		t.Errorf("upgraded at %d, %d transactions refused by version 3's rule: the run does not cross an upgrade into new rules", upgradedAt, v3Refused)
	}
}

// checkGolden compares got with the golden file at path, or rewrites the
// file with -update.
func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it)", err, t.Name())
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("%s line %d:\n got  %s\n want %s\n(the app hash or codes of these blocks changed: the chain's behaviour changed)", path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s: %d lines, want %d", path, len(gl), len(wl))
	}
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
