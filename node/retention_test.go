package node

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestRetentionPrunesBlocks: a node that keeps only its newest blocks
// anchors batches over many heights; CometBFT prunes the blocks below the
// retain height, and every receipt, taken while its blocks were held and
// checked against the block store then, is served byte for byte the same
// and verifies after they are gone, and again after a restart.
func TestRetentionPrunesBlocks(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	h.setConfig(t, func(c *config) {
		c.RetainBlocks = 3
		c.SnapshotInterval = 0
	})
	n := h.start(t)
	defer func() { n.Stop() }()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	type taken struct {
		hash []byte
		wire []byte
	}
	var receipts []taken
	heights := make(map[int64]bool)
	for round := 0; round < 6; round++ {
		hs := randomHashes(t, 20)
		if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hs}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(hs); i += 32 * 5 {
			r := waitReceipt(ctx, t, cl, hs[i:i+32])
			if _, err := proof.Verify(r, h.trust); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			wire, err := protoMarshal(r)
			if err != nil {
				t.Fatal(err)
			}
			receipts = append(receipts, taken{hs[i : i+32], wire})
			heights[r.Batch.Height] = true
			if i > 0 {
				continue
			}
			// The kept header is the one the block store serves while it
			// holds the block: the receipt is what it was before pruning.
			e, err := n.chain.ReadSignedHeader(ctx, r.Batch.Height+1)
			if err != nil {
				t.Fatalf("round %d: header %d from the block store: %v", round, r.Batch.Height+1, err)
			}
			want := &proof.Receipt{SignedHeader: e.signedHeader, Validators: e.validators}
			got := &proof.Receipt{SignedHeader: r.SignedHeader, Validators: r.Validators}
			if !proto.Equal(got, want) {
				t.Fatalf("round %d: the receipt's header differs from the block store's", round)
			}
		}
	}
	var top int64
	for x := range heights {
		top = max(top, x)
	}
	t.Logf("%d receipts over %d batch heights, the last at %d", len(receipts), len(heights), top)

	// More batches move the chain on until the block store has let go of
	// every block the receipts above came from.
	pruneBeyond(ctx, t, h, n, cl, top)
	bs := n.cmt.BlockStore()
	for x := range heights {
		if bs.LoadBlock(x) != nil || bs.LoadBlock(x+1) != nil {
			t.Fatalf("block %d or %d still in the block store (base %d)", x, x+1, bs.Base())
		}
		if _, err := n.rpc.Block(ctx, &x); err == nil {
			t.Fatalf("RPC still serves block %d", x)
		}
	}

	check := func(when string) {
		t.Helper()
		for _, r := range receipts {
			res, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: r.hash})
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			got, err := protoMarshal(res.Receipt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, r.wire) {
				t.Fatalf("%s: the receipt of %x changed", when, r.hash)
			}
			if _, err := proof.Verify(res.Receipt, h.trust); err != nil {
				t.Fatalf("%s: %v", when, err)
			}
		}
	}
	// A new receipt cache: the headers come from the index, not memory.
	n.receipts.headers = newLRU(1 << 20)
	n.receipts.trees = newLRU(1 << 20)
	check("after pruning")

	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	n = h.start(t)
	cl = dialTest(t, n.GRPCAddr())
	check("after a restart")
	fresh := hashOf("after pruning and a restart")
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: fresh}); err != nil {
		t.Fatal(err)
	}
	if _, err := proof.Verify(waitReceipt(ctx, t, cl, fresh), h.trust); err != nil {
		t.Fatal(err)
	}
}

// TestRetainHeight: the retain height keeps retain_blocks, never passes
// the block before the last durably indexed, nor a snapshot's peers' needs.
func TestRetainHeight(t *testing.T) {
	t.Parallel()
	durable := int64(100)
	snaps := &snapshots{interval: 0}
	r := &retention{blocks: 10, durable: func() int64 { return durable }, snaps: snaps}
	cases := []struct {
		name     string
		height   int64
		durable  int64
		interval int64
		newest   int64
		want     int64
	}{
		{"keeps retain_blocks", 100, 100, 0, 0, 91},
		{"young chain", 8, 8, 0, 0, 0},
		{"index behind", 100, 50, 0, 0, 49},
		{"nothing indexed durably yet", 100, 0, 0, 0, 0},
		{"before the first snapshot", 100, 100, 40, 0, 80},
		{"first snapshot not due", 100, 100, 200, 0, 0},
		{"newest snapshot", 100, 100, 40, 60, 60},
		{"snapshot below the window", 100, 100, 40, 95, 91},
	}
	for _, c := range cases {
		durable = c.durable
		snaps.interval = c.interval
		snaps.newest.Store(c.newest)
		if got := r.height(c.height); got != c.want {
			t.Errorf("%s: retain height %d, want %d", c.name, got, c.want)
		}
	}
	var off *retention
	if off.height(1000) != 0 || (&retention{durable: func() int64 { return 1000 }}).height(1000) != 0 {
		t.Error("retain_blocks 0 prunes")
	}
}

// TestRetentionAfterUpgrade: an index written before headers were kept
// (no xs/, no xk) gets them at the first start, before any block is
// pruned, so its receipts survive the pruning retain_blocks then allows.
func TestRetentionAfterUpgrade(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	h.setConfig(t, func(c *config) { c.SnapshotInterval = 0 })
	n := h.start(t)
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var hashes [][]byte
	var wires [][]byte
	var top int64
	for round := 0; round < 3; round++ {
		hs := randomHashes(t, 4)
		if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hs}); err != nil {
			t.Fatal(err)
		}
		r := waitReceipt(ctx, t, cl, hs[:32])
		wire, err := protoMarshal(r)
		if err != nil {
			t.Fatal(err)
		}
		hashes, wires = append(hashes, hs[:32]), append(wires, wire)
		top = max(top, r.Batch.Height)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	db, err := store.OpenBadger(filepath.Join(h.dir, "data", "credence"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]byte{[]byte(prefixKeptHeader), []byte(prefixWantedHeader), []byte(keyHeadersKept)} {
		if err := db.DropPrefix(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	h.setConfig(t, func(c *config) { c.RetainBlocks = 1 })
	n = h.start(t)
	defer func() { n.Stop() }()
	cl = dialTest(t, n.GRPCAddr())
	pruneBeyond(ctx, t, h, n, cl, top)
	n.receipts.headers = newLRU(1 << 20)
	for i, hash := range hashes {
		res, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hash})
		if err != nil {
			t.Fatal(err)
		}
		got, err := protoMarshal(res.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, wires[i]) {
			t.Fatalf("the receipt of %x changed", hash)
		}
	}
}

// pruneBeyond anchors one hash at a time until n's block store no longer
// holds block top+2, the last a receipt of a batch at top reads.
func pruneBeyond(ctx context.Context, t *testing.T, h *testHome, n *Node, cl pb.CredenceClient, top int64) {
	t.Helper()
	bs := n.cmt.BlockStore()
	for bs.Base() <= top+2 {
		if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: randomHashes(t, 1)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if ctx.Err() != nil {
			t.Fatalf("block store base still %d at height %d, want above %d", bs.Base(), bs.Height(), top+2)
		}
	}
}
