package node

import (
	"context"
	"sync"
	"testing"
	"time"

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
	n.receipts.trees = newLRU(64 << 20)
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
