package node

import (
	"bytes"
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestIndexTagCollision runs a node on which every hash gets the same index
// tag: receipts, Submit's "anchored" answers and GetReceipt's NotFound must
// still tell the hashes apart, within a batch and across batches.
func TestIndexTagCollision(t *testing.T) {
	orig := leafTag
	leafTag = func([]byte) [tagSize]byte { return [tagSize]byte{} }
	t.Cleanup(func() { leafTag = orig })

	h := newTestHome(t)
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
