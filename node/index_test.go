package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/internal/positions"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestIndexTagCollision runs a node on which every hash gets the same index
// tag: receipts, Submit's "anchored" answers and GetReceipt's NotFound must
// still tell the hashes apart, within a batch and across batches.
func TestIndexTagCollision(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	h.ov.positionTag = func([]byte) positions.Tag { return 0 }
	nd := h.start(t)
	defer nd.Stop()
	cl := dialTest(t, nd.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leaf := func(hashes []byte, i int) []byte { return hashes[i*32 : (i+1)*32] }

	first := randomHashes(t, 3)
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: first}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		r := waitReceipt(ctx, t, cl, leaf(first, i))
		if !bytes.Equal(r.CredentialHash, leaf(first, i)) || r.LeafIndex != uint64(i) {
			t.Fatalf("receipt of hash %d: credential %x leaf %d", i, r.CredentialHash, r.LeafIndex)
		}
	}

	other := randomHashes(t, 1)
	if _, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: other}); status.Code(err) != codes.NotFound {
		t.Fatalf("receipt of a hash never submitted, sharing the others' tag: %v; want NotFound", err)
	}
	res, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: append(append([]byte(nil), other...), leaf(first, 1)...)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Queued != 1 || len(res.Known) != 1 {
		t.Fatalf("submit of a new hash and an anchored one: queued %d, known %v; want 1 and 1", res.Queued, res.Known)
	}
	if k := res.Known[0]; k.Index != 1 || k.State != pb.HashState_HASH_STATE_ANCHORED || k.LeafIndex != 1 {
		t.Fatalf("the anchored hash is answered %v; want index 1 anchored at leaf 1", k)
	}
	r := waitReceipt(ctx, t, cl, other)
	if !bytes.Equal(r.CredentialHash, other) || r.LeafIndex != 0 || r.Batch.Seq != 2 {
		t.Fatalf("receipt of the new hash: credential %x batch %d leaf %d; want batch 2 leaf 0", r.CredentialHash, r.Batch.Seq, r.LeafIndex)
	}
}

// TestSeparateAnchoredKeepsOrder: hashes the filter lets through and the
// index does not hold stay in the order submitted, among those it stopped,
// and a hash anchored is still answered anchored.
func TestSeparateAnchoredKeepsOrder(t *testing.T) {
	t.Parallel()
	db, err := store.OpenBadger(filepath.Join(t.TempDir(), "credence"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ix, err := indexOnly(db, testLogger(t), 1<<10, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.index.close()
	var hs [4]hash
	for i := range hs {
		hs[i] = hash(sha256.Sum256([]byte{byte(i)}))
	}
	// hs[3] is anchored; hs[0] passes the filter as a false positive would.
	if err := ix.writePositions([]app.CommittedBatch{{Record: &proof.BatchRecord{Issuer: "uni-a", Seq: 1, Height: 1}, Hashes: hs[3][:]}}); err != nil {
		t.Fatal(err)
	}
	ix.index.anchored.Add(ix.index.positions.Tag(hs[0][:]))
	p := newPipeline(db, nil, ix.index, defaultConfig(), pipelineOptions{QueueDir: t.TempDir()})
	p.waiting["uni-a"] = map[hash]struct{}{}
	var claimed []candidate
	for i, h := range hs {
		p.waiting["uni-a"][h] = struct{}{}
		claimed = append(claimed, candidate{issuer: "uni-a", idx: uint64(i), hash: h})
	}
	results := make([]submitResult, 1)
	fresh, err := p.separateAnchored(claimed, results)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 3 || fresh[0].idx != 0 || fresh[1].idx != 1 || fresh[2].idx != 2 {
		t.Fatalf("fresh hashes %v, want indexes 0, 1, 2 in order", fresh)
	}
	if k := results[0].known; len(k) != 1 || k[0].Index != 3 || k[0].State != pb.HashState_HASH_STATE_ANCHORED {
		t.Fatalf("known %v, want index 3 anchored", k)
	}
	if _, ok := p.waiting["uni-a"][hs[3]]; ok {
		t.Fatal("the anchored hash is still claimed")
	}
}
