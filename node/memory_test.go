package node

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

func (h *testHome) setConfig(t *testing.T, change func(*config)) {
	t.Helper()
	c, err := loadConfig(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	change(c)
	if err := os.Remove(appConfigPath(h.dir)); err != nil {
		t.Fatal(err)
	}
	if err := writeConfig(h.dir, c); err != nil {
		t.Fatal(err)
	}
}

// TestQueueFullRefusesBeforeAcknowledging: a node holding
// max_queued_hashes answers Submit and SubmitStream with ResourceExhausted
// and queues nothing of the refused request; every hash it acknowledged is
// anchored, across a restart, and the refused ones are taken once the
// queue drains.
func TestQueueFullRefusesBeforeAcknowledging(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	// No batch is cut while the queue fills: the test controls when the
	// waiting set drains.
	h.setConfig(t, func(c *config) {
		c.Memory.MaxQueuedHashes = 10
		c.BatchInterval = duration{maxBatchInterval}
		c.BatchMaxLeaves = 1000
	})
	n := h.start(t)
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	acked := randomHashes(t, 8)
	if res, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: acked}); err != nil || res.Queued != 8 {
		t.Fatalf("submit 8 of 10: %v, %v; want 8 queued", res, err)
	}
	refused := randomHashes(t, 3)
	_, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: refused})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max_queued_hashes") {
		t.Fatalf("submit past the bound: %v; want ResourceExhausted naming max_queued_hashes", err)
	}

	// A stream is taken up to the message that would pass the bound.
	streamed := randomHashes(t, 2)
	stream, err := cl.SubmitStream(h.authed(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.SubmitRequest{Hashes: streamed}); err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&pb.SubmitRequest{Hashes: refused[:32]}) // the error comes with the answer
	_, err = stream.CloseAndRecv()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "message at hash index 2") {
		t.Fatalf("stream past the bound: %v; want ResourceExhausted at hash index 2", err)
	}
	acked = append(acked, streamed...)

	for i := 0; i < len(refused); i += 32 {
		_, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: refused[i : i+32]})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("refused hash %d: %v; want NotFound (nothing of a refused request is queued)", i/32, err)
		}
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	h.setConfig(t, func(c *config) { c.BatchInterval = duration{100 * time.Millisecond} })
	n = h.start(t)
	defer n.Stop()
	cl = dialTest(t, n.GRPCAddr())
	for i := 0; i < len(acked); i += 32 {
		waitReceipt(ctx, t, cl, acked[i:i+32])
	}
	res, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: refused})
	if err != nil || res.Queued != 3 {
		t.Fatalf("refused hashes once the queue drained: %v, %v; want 3 queued", res, err)
	}
	for i := 0; i < len(refused); i += 32 {
		waitReceipt(ctx, t, cl, refused[i:i+32])
	}
}
