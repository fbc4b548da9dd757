//go:build e2e

package testnet

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	cmtcfg "github.com/cometbft/cometbft/config"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

var update = flag.Bool("update", false, "write the receipts of TestReceiptVectors to proof/testdata/vectors")

const vectorDir = "../proof/testdata/vectors"

// sameReceipt fetches hash's receipt from every running node and requires
// identical bytes: every node builds it from the canonical commit.
func (n *network) sameReceipt(ctx context.Context, hash []byte) *proof.Receipt {
	n.t.Helper()
	var first []byte
	var r0 *proof.Receipt
	served := 0
	for _, nd := range n.nodes {
		if !nd.running() {
			continue
		}
		r, err := nd.receipt(ctx, hash)
		if err != nil {
			n.t.Fatal(err)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			n.t.Fatal(err)
		}
		if first == nil {
			first, r0 = b, r
		} else if !bytes.Equal(b, first) {
			n.t.Fatalf("node%d serves a receipt of %x different from node%d's", nd.i, hash, n.nodes[0].i)
		}
		if _, err := proof.Verify(r, n.trust); err != nil {
			n.t.Fatalf("receipt from node%d: %v", nd.i, err)
		}
		served++
	}
	n.t.Logf("%d nodes serve byte-identical receipts of %x (height %d, %d links)", served, hash[:4], r0.Batch.Height, len(r0.ValidatorLinks))
	return r0
}

// absentSignatures counts the absent votes of a signed header's commit.
func absentSignatures(t *testing.T, raw []byte) int {
	t.Helper()
	var sh cmtproto.SignedHeader
	if err := sh.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range sh.Commit.Signatures {
		if s.BlockIdFlag == cmtproto.BlockIDFlagAbsent {
			n++
		}
	}
	return n
}

// anchorOne anchors one fresh hash through nd and returns its receipt as
// every running node serves it.
func (n *network) anchorOne(ctx context.Context, nd *node) *proof.Receipt {
	n.t.Helper()
	h := randomHashes(1)
	if _, err := nd.client.Submit(nd.authed(ctx), &pb.SubmitRequest{Hashes: h}); err != nil {
		n.t.Fatal(err)
	}
	return n.sameReceipt(ctx, h)
}

type vectorFile struct {
	name string
	r    *proof.Receipt
}

func writeVectors(t *testing.T, chain, genesis string, files []vectorFile) {
	t.Helper()
	if !*update {
		return
	}
	dir := filepath.Join(vectorDir, chain)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(genesis)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "genesis.json"), g, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := proof.MarshalReceiptJSON(f.r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name+".receipt.json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d receipts to %s", len(files), dir)
}

// TestReceiptVectorsOneValidator: receipts of a single-validator chain, a
// one-hash batch and a large one. With -update they become test vectors.
func TestReceiptVectorsOneValidator(t *testing.T) {
	n := newNetwork(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := n.nodes[0]
	single := n.anchorOne(ctx, a)
	hs := randomHashes(5000)
	if _, err := a.client.Submit(a.authed(ctx), &pb.SubmitRequest{Hashes: hs}); err != nil {
		t.Fatal(err)
	}
	large := n.sameReceipt(ctx, hs[1234*32:1235*32])
	if large.Batch.LeafCount < 1000 || len(large.AuditPath) < 10 {
		t.Fatalf("large batch has %d leaves, the path %d entries", large.Batch.LeafCount, len(large.AuditPath))
	}
	writeVectors(t, "one-validator", filepath.Join(a.home, "config", "genesis.json"), []vectorFile{
		{"single-hash", single}, {"large-batch", large}})
}

// TestReceiptVectorsFourValidators: on a 4-validator chain every node
// serves byte-identical receipts, with a full commit, with one validator
// down (an absent signature), and after a fifth member is voted in (a
// validator link), again with one validator down. With -update they
// become test vectors.
func TestReceiptVectorsFourValidators(t *testing.T) {
	n := newNetwork(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	a := n.nodes[0]
	var files []vectorFile

	// A full commit: all four signed. A slow vote can be missing from the
	// canonical commit, so try a few hashes.
	for try := 0; ; try++ {
		r := n.anchorOne(ctx, a)
		if absentSignatures(t, r.SignedHeader) == 0 {
			files = append(files, vectorFile{"full-commit", r})
			break
		}
		if try == 10 {
			t.Fatal("no receipt with a full commit in 10 tries")
		}
	}
	hs := randomHashes(3000)
	if _, err := a.client.Submit(a.authed(ctx), &pb.SubmitRequest{Hashes: hs}); err != nil {
		t.Fatal(err)
	}
	large := n.sameReceipt(ctx, hs[1234*32:1235*32])
	if large.Batch.LeafCount < 1000 || len(large.AuditPath) < 10 {
		t.Fatalf("large batch has %d leaves, the path %d entries", large.Batch.LeafCount, len(large.AuditPath))
	}
	files = append(files, vectorFile{"large-batch", large})

	// One validator down: 30 of 40 still commits; its signature is absent.
	last := n.nodes[3]
	n.stop(last, syscall.SIGTERM)
	r := n.anchorOne(ctx, a)
	if got := absentSignatures(t, r.SignedHeader); got != 1 {
		t.Fatalf("with node3 down the commit has %d absent signatures, want 1", got)
	}
	files = append(files, vectorFile{"partial-commit", r})
	n.start(last)

	// A fifth member is voted in; its validator joins the set.
	joiner := n.addValidator(ctx)
	r = n.anchorOne(ctx, a)
	if len(r.ValidatorLinks) != 1 || len(r.Validators) != 5 {
		t.Fatalf("receipt after the change carries %d links and %d validators, want 1 and 5", len(r.ValidatorLinks), len(r.Validators))
	}
	files = append(files, vectorFile{"validator-link", r})
	n.stop(joiner, syscall.SIGTERM)
	r = n.anchorOne(ctx, a)
	if got := absentSignatures(t, r.SignedHeader); got != 1 || len(r.ValidatorLinks) != 1 {
		t.Fatalf("with node4 down: %d absent signatures and %d links, want 1 and 1", got, len(r.ValidatorLinks))
	}
	files = append(files, vectorFile{"validator-link-partial-commit", r})
	writeVectors(t, "four-validators", filepath.Join(a.home, "config", "genesis.json"), files)
}

// addValidator starts a fifth node on the chain's genesis and has members
// 0, 1 and 2 vote its member in with power 10; it returns once the node
// validates.
func (n *network) addValidator(ctx context.Context) *node {
	joiner := n.newMember(func(c *cmtcfg.Config) { c.Consensus.CreateEmptyBlocksInterval = time.Second })
	n.start(joiner)
	n.voteIn(ctx, joiner)
	return joiner
}
