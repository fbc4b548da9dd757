package node

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestBatchesInFlightAcrossRestart plants two batches "in flight" in a
// stopped node's queue, as a crash would leave them: one whose sequence was
// meanwhile taken by another batch (it can never be anchored) and one never
// sent. After the restart both sets of hashes are anchored exactly once.
func TestBatchesInFlightAcrossRestart(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := hashOf("first")
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: first}); err != nil {
		t.Fatal(err)
	}
	r := waitReceipt(ctx, t, cl, first)
	taken := r.Batch.Seq
	issuer := r.Batch.Issuer
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	_, key, err := readKeyFile(filepath.Join(h.dir, "config", "issuer-"+issuer+".key.json"))
	if err != nil {
		t.Fatal(err)
	}
	dead := append(hashOf("dead-1"), hashOf("dead-2")...)
	unsent := append(hashOf("unsent-1"), hashOf("unsent-2")...)
	db, err := store.OpenBadger(filepath.Join(h.dir, "data", "credence"))
	if err != nil {
		t.Fatal(err)
	}
	wb := db.NewWriteBatch()
	for _, b := range []struct {
		seq    uint64
		hashes []byte
	}{{taken, dead}, {taken + 5, unsent}} {
		tx, _, err := app.NewAnchorBatch("credence-test", issuer, b.seq, b.hashes, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := wb.Set(qfKey(issuer, b.seq), tx); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	n = h.start(t)
	defer n.Stop()
	cl = dialTest(t, n.GRPCAddr())
	all := append(append(append([]byte(nil), dead...), unsent...), first...)
	var hashes [][]byte
	for i := 0; i < len(all); i += 32 {
		hashes = append(hashes, all[i:i+32])
	}
	for _, hash := range hashes[:2] {
		r := waitReceipt(ctx, t, cl, hash)
		if r.Batch.Seq <= taken+5 {
			t.Fatalf("dead batch's hash anchored in batch %d; want a new batch after %d", r.Batch.Seq, taken+5)
		}
	}
	if r := waitReceipt(ctx, t, cl, hashes[2]); r.Batch.Seq != taken+5 {
		t.Fatalf("unsent batch anchored as %d, want its own sequence %d", r.Batch.Seq, taken+5)
	}
	checkAnchoredOnce(ctx, t, cl, h, hashes)
	if _, err := proof.Verify(waitReceipt(ctx, t, cl, hashes[0]), h.trust); err != nil {
		t.Fatal(err)
	}
}

// TestResubmitWhileAnchoring hammers the node with the same hashes while
// they move through queue, batch, block and index: every answer is "queued"
// exactly once per hash, and each hash is anchored exactly once.
func TestResubmitWhileAnchoring(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	set := randomHashes(t, 2000)
	var queued atomic.Uint64
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 40; round++ {
				res, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: set})
				if err != nil {
					t.Error(err)
					return
				}
				queued.Add(res.Queued)
				if res.Queued+uint64(len(res.Known)) != 2000 {
					t.Errorf("answer covers %d of 2000 hashes", res.Queued+uint64(len(res.Known)))
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if got := queued.Load(); got != 2000 {
		t.Fatalf("%d hashes reported newly queued, want 2000", got)
	}
	var hashes [][]byte
	for i := 0; i < len(set); i += 32 {
		hashes = append(hashes, set[i:i+32])
	}
	checkAnchoredOnce(ctx, t, cl, h, hashes)
}
