package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	gproto "google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestBroadcastManyAtOnce: 32 governance transactions waiting for their
// blocks at once are all served (finding 8: over the in-process client,
// CometBFT's BroadcastTxCommit served 5 at once node-wide).
func TestBroadcastManyAtOnce(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	proposal, memberKey := h.issuerProposal(t, n.chainID)
	member := proposal.Signer
	body := func(seq uint64) *pb.TxBody {
		b := gproto.Clone(proposal).(*pb.TxBody)
		b.Sequence = seq
		b.GetPropose().Description = fmt.Sprint("proposal ", seq)
		return b
	}
	first := nextSequence(ctx, t, cl, body(0))
	const callers = 32
	txs := make([][]byte, callers)
	var err error
	for i := range txs {
		if txs[i], err = app.SignTx(body(first+uint64(i)), memberKey); err != nil {
			t.Fatal(err)
		}
	}
	// Each caller sends once the one before it has passed CheckTx (a
	// sequence must exceed the last accepted), and all then wait for their
	// blocks together: a block takes at least timeout_commit (250ms).
	memberSeq := proof.MemberSequenceKey(member)
	results := make([]error, callers)
	heights := make([]int64, callers)
	// A failed caller stops those waiting for their turn.
	failedc := make(chan struct{})
	var failOnce sync.Once
	fail := func(i int, err error) {
		results[i] = err
		failOnce.Do(func() { close(failedc) })
	}
	var wg sync.WaitGroup
	for i := range txs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next, err := n.app.NextSequence(memberSeq)
				if err != nil {
					fail(i, err)
					return
				}
				if next >= first+uint64(i) {
					break
				}
				select {
				case <-failedc:
					fail(i, errors.New("not sent: an earlier caller failed"))
					return
				case <-ctx.Done():
					fail(i, ctx.Err())
					return
				case <-time.After(time.Millisecond):
				}
			}
			res, err := cl.Broadcast(ctx, &pb.BroadcastRequest{Tx: txs[i]})
			switch {
			case err != nil:
				fail(i, err)
			case res.Code != 0:
				fail(i, fmt.Errorf("code %d: %s", res.Code, res.Log))
			default:
				heights[i] = res.Height
			}
		}()
	}
	wg.Wait()
	failed := 0
	for i, err := range results {
		if err != nil {
			failed++
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent broadcasts failed", failed, callers)
	}
	// Each answer's height is committed: what the caller reads next sees it.
	for i, height := range heights {
		if height < 1 || height > n.app.Height() {
			t.Errorf("caller %d: height %d, committed %d", i, height, n.app.Height())
		}
	}
	if next, _ := n.app.NextSequence(memberSeq); next != first+callers {
		t.Errorf("next sequence %d, want %d: not every transaction executed", next, first+callers)
	}
}

// TestBroadcastWaitsBounded: with max_broadcast_waits taken, a Broadcast is
// refused with ResourceExhausted, and served once one is given back.
func TestBroadcastWaitsBounded(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, memberKey := h.issuerProposal(t, n.chainID)
	b.Sequence = nextSequence(ctx, t, cl, b)
	tx, err := app.SignTx(b, memberKey)
	if err != nil {
		t.Fatal(err)
	}
	taken := 0
	for n.txWaits.reserve() == nil {
		taken++
	}
	if taken != cap(n.txWaits.slots) || taken != defaultConfig().MaxBroadcastWaits {
		t.Fatalf("%d slots taken, max_broadcast_waits %d", taken, defaultConfig().MaxBroadcastWaits)
	}
	if _, err := cl.Broadcast(ctx, &pb.BroadcastRequest{Tx: tx}); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max_broadcast_waits") {
		t.Fatalf("a broadcast past max_broadcast_waits: %v", err)
	}
	n.txWaits.release()
	res, err := cl.Broadcast(ctx, &pb.BroadcastRequest{Tx: tx})
	if err != nil || res.Code != 0 || res.Height < 1 {
		t.Fatalf("once a slot is free: %v %v", res, err)
	}
	for range taken - 1 {
		n.txWaits.release()
	}
}

// TestBroadcastExactReplay: the very bytes of a committed transaction sent
// again are answered AlreadyExists, naming the transaction's hash: a
// client retrying on Unavailable would retry forever (finding 11).
func TestBroadcastExactReplay(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, memberKey := h.issuerProposal(t, n.chainID)
	b.Sequence = nextSequence(ctx, t, cl, b)
	tx, err := app.SignTx(b, memberKey)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := cl.Broadcast(ctx, &pb.BroadcastRequest{Tx: tx}); err != nil || res.Code != 0 {
		t.Fatalf("first broadcast: %v %v", res, err)
	}
	_, err = cl.Broadcast(ctx, &pb.BroadcastRequest{Tx: tx})
	hash := sha256.Sum256(tx)
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(status.Convert(err).Message(), fmt.Sprintf("%X", hash)) {
		t.Errorf("an exact replay: %v, want AlreadyExists naming tx %X", err, hash)
	}
}
