package node

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestReceiptTreeBuiltOnce: callers asking at once for receipts of a batch
// whose tree is not cached share one build, as every client polling for a
// batch's receipts does the moment it becomes final.
func TestReceiptTreeBuiltOnce(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	t.Cleanup(func() { n.Stop() })
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hashes := randomHashes(t, 65536)
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hashes}); err != nil {
		t.Fatal(err)
	}
	r := waitReceipt(ctx, t, cl, hashes[:32])
	issuer, seq := r.Batch.Issuer, r.Batch.Seq

	n.receipts.mu.Lock()
	n.receipts.newTreeCaches(128 << 20)
	n.receipts.mu.Unlock()
	const callers = 16
	got := make([]*batchData, callers)
	errs := make([]error, callers)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range callers {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			got[i], errs[i] = n.receipts.batch(issuer, seq)
		}()
	}
	start.Done()
	done.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if got[i] != got[0] {
			t.Fatalf("caller %d got a tree of its own: %d builds for one batch, want 1", i, callers)
		}
	}
	if got[0].tree.Size() != got[0].record.LeafCount || got[0].tree.Size() < 2 {
		t.Fatalf("tree of %d leaves for a batch of %d", got[0].tree.Size(), got[0].record.LeafCount)
	}
	n.receipts.mu.Lock()
	pending := len(n.receipts.building)
	n.receipts.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d builds still registered after they finished", pending)
	}
}

// TestReceiptsFromTrimmedTrees: batches whose trees left the cache of
// whole trees are proven from their trimmed trees and their leaves'
// groups, with the same receipt bytes, and leaves changed on disk after
// the trim are found (DataLoss), never proven.
func TestReceiptsFromTrimmedTrees(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := h.start(t)
	t.Cleanup(func() { n.Stop() })
	cl := dialTest(t, n.GRPCAddr())
	// 40 leaves: groups of 16, 16 and a last of 8, and promoted nodes.
	sets := [][]byte{randomHashes(t, 40), randomHashes(t, 40), randomHashes(t, 3)}
	anchorBatches(ctx, t, h, cl, sets)
	want := map[string][]byte{}
	for _, set := range sets {
		for i := 0; i < len(set); i += proof.HashSize {
			r := waitReceipt(ctx, t, cl, set[i:i+proof.HashSize])
			b, err := proto.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			want[string(set[i:i+proof.HashSize])] = b
		}
	}

	// A cache of whole trees with room for none: each batch built is
	// trimmed as soon as the next is, the last one asked stays whole.
	n.receipts.mu.Lock()
	n.receipts.newTreeCaches(64 << 20)
	n.receipts.trees.max = 1
	n.receipts.mu.Unlock()
	for round := range 2 {
		for _, set := range sets {
			for i := 0; i < len(set); i += proof.HashSize {
				hash := set[i : i+proof.HashSize]
				res, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hash})
				if err != nil {
					t.Fatalf("round %d, leaf %d: %v", round, i/proof.HashSize, err)
				}
				if _, err := proof.Verify(res.Receipt, h.trust); err != nil {
					t.Fatalf("round %d, leaf %d: %v", round, i/proof.HashSize, err)
				}
				got, _ := proto.Marshal(res.Receipt)
				if !bytes.Equal(got, want[string(hash)]) {
					t.Fatalf("round %d, leaf %d: receipt differs from the one built from the whole tree", round, i/proof.HashSize)
				}
			}
		}
	}
	n.receipts.mu.Lock()
	trimmed := n.receipts.trimmed.ll.Len()
	n.receipts.mu.Unlock()
	if trimmed < 2 {
		t.Fatalf("%d batches in the trimmed cache, want the 2 older ones", trimmed)
	}

	// A leaf changed on disk after its batch's tree was trimmed: the
	// group no longer makes the tree's node.
	flipLeaf(t, h.dir, sets[0][3*proof.HashSize:4*proof.HashSize])
	if _, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: sets[0][3*proof.HashSize : 4*proof.HashSize]}); status.Code(err) != codes.DataLoss {
		t.Fatalf("receipt of a leaf changed on disk: %v, want DataLoss", err)
	}
	if _, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: sets[0][5*proof.HashSize : 6*proof.HashSize]}); status.Code(err) != codes.DataLoss {
		t.Fatalf("receipt of a leaf whose group holds a changed leaf: %v, want DataLoss", err)
	}
	if _, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: sets[0][20*proof.HashSize : 21*proof.HashSize]}); err != nil {
		t.Fatalf("receipt of a leaf of another group of that batch: %v", err)
	}
}
