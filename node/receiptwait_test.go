package node

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestGetReceiptWaits: a GetReceipt asked to wait for hashes just
// submitted answers with their receipts, once each, where without
// wait_ms it answers Unavailable until they are final; a hash the node
// does not know is answered NotFound at once, not after the wait.
func TestGetReceiptWaits(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	t.Cleanup(func() { n.Stop() })
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	hashes := randomHashes(t, 10)
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hashes}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hashes[:32]}); status.Code(err) != codes.Unavailable {
		t.Fatalf("receipt of a hash just submitted, without waiting: %v, want Unavailable", err)
	}
	for i := 0; i < len(hashes); i += proof.HashSize {
		res, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hashes[i : i+proof.HashSize], WaitMs: 100000})
		if err != nil {
			t.Fatalf("waiting for the receipt of hash %d: %v", i/proof.HashSize, err)
		}
		if _, err := proof.Verify(res.Receipt, h.trust); err != nil {
			t.Fatalf("hash %d: %v", i/proof.HashSize, err)
		}
	}

	// Were this waited for, the call would outlive its deadline.
	short, cancelShort := context.WithTimeout(ctx, 20*time.Second)
	defer cancelShort()
	if _, err := cl.GetReceipt(short, &pb.GetReceiptRequest{Hash: randomHashes(t, 1), WaitMs: 100000}); status.Code(err) != codes.NotFound {
		t.Fatalf("waiting for a hash the node does not know: %v, want NotFound at once", err)
	}
}

// TestReceiptWaitsSlotsAndWakes: a waiting call asks again after each
// block indexed and stops once its answer is no longer pending; with
// every slot taken, a call answers at once.
func TestReceiptWaitsSlotsAndWakes(t *testing.T) {
	t.Parallel()
	w := newReceiptWaits(1, time.Hour)
	var asked atomic.Int32
	final := make(chan struct{})
	find := func() receiptAnswer {
		asked.Add(1)
		select {
		case <-final:
			return receiptAnswer{receipt: &proof.Receipt{}}
		default:
			return receiptAnswer{err: errNotFinal}
		}
	}
	done := make(chan receiptAnswer)
	go func() { done <- w.wait(context.Background(), time.Hour, noHeight, find) }()
	for asked.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// The one slot is taken: another call is answered at once.
	var other atomic.Int32
	if a := w.wait(context.Background(), time.Hour, noHeight, func() receiptAnswer { other.Add(1); return receiptAnswer{err: errNotFinal} }); !a.pending() || other.Load() != 1 {
		t.Fatalf("with every slot taken: asked %d times, answer %+v; want once, pending", other.Load(), a)
	}
	w.blockIndexed() // still not final: asked again, waits on
	for asked.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	close(final)
	w.blockIndexed()
	if a := <-done; a.receipt == nil || a.err != nil {
		t.Fatalf("after the block that makes it final: %+v", a)
	}
	// Not pending from the start (an unknown hash): asked once.
	var once atomic.Int32
	w.wait(context.Background(), time.Hour, noHeight, func() receiptAnswer { once.Add(1); return receiptAnswer{err: errNotFound} })
	if once.Load() != 1 {
		t.Fatalf("an answer not pending was asked %d times", once.Load())
	}
}

func noHeight() int64 { return 0 }

// TestReceiptWaitsForTheBlockNamed: an answer naming the block it waits
// for is not asked again for blocks indexed before it.
func TestReceiptWaitsForTheBlockNamed(t *testing.T) {
	t.Parallel()
	w := newReceiptWaits(1, time.Hour)
	var height, asked atomic.Int64
	done := make(chan receiptAnswer)
	go func() {
		done <- w.wait(context.Background(), time.Hour, height.Load, func() receiptAnswer {
			asked.Add(1)
			if height.Load() >= 7 {
				return receiptAnswer{receipt: &proof.Receipt{}}
			}
			return receiptAnswer{err: notFinalUntil{err: errNotFinal, indexed: 7}}
		})
	}()
	for asked.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for h := int64(1); h < 7; h++ {
		height.Store(h)
		w.blockIndexed()
	}
	height.Store(7)
	w.blockIndexed()
	if a := <-done; a.receipt == nil {
		t.Fatalf("after block 7: %+v", a)
	}
	if n := asked.Load(); n != 2 {
		t.Fatalf("asked %d times, want 2: once at first, once when block 7 was indexed", n)
	}
}
