package node

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pb "github.com/credence-ledger/credence/proto/credence/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// benchChain anchors n hashes on a fresh single-node chain and returns them.
func benchChain(b *testing.B, n int) (*testHome, *Node, pb.CredenceClient, [][]byte) {
	return benchChainAt(b, newTestHome(b), n)
}

// benchChainAt is benchChain on a home prepared by the caller.
func benchChainAt(b *testing.B, h *testHome, n int) (*testHome, *Node, pb.CredenceClient, [][]byte) {
	nd := h.start(b)
	b.Cleanup(func() { nd.Stop() })
	cl := dialTest(b, nd.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	all := randomHashes(b, n)
	for i := 0; i < len(all); i += 32 * 50000 {
		end := min(i+32*50000, len(all))
		if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: all[i:end]}); err != nil {
			b.Fatal(err)
		}
	}
	hashes := make([][]byte, 0, n)
	for i := 0; i < len(all); i += 32 {
		hashes = append(hashes, all[i:i+32])
	}
	waitReceipt(ctx, b, cl, hashes[len(hashes)-1])
	waitReceipt(ctx, b, cl, hashes[0])
	return h, nd, cl, hashes
}

// BenchmarkReceiptBuild measures building a receipt in the node (index
// lookup, cached tree, audit path, cached header), without gRPC.
func BenchmarkReceiptBuild(b *testing.B) {
	_, nd, _, hashes := benchChain(b, 65536)
	ctx := context.Background()
	// Warm the caches the way a served batch has them.
	if _, err := nd.receipts.build(ctx, hashes[0], ""); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := nd.receipts.build(ctx, hashes[i%len(hashes)], ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetReceiptGRPC measures receipts served over gRPC on loopback
// by parallel clients.
func BenchmarkGetReceiptGRPC(b *testing.B) {
	_, _, cl, hashes := benchChain(b, 65536)
	ctx := context.Background()
	if _, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hashes[0]}); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(8)
	b.RunParallel(func(pb_ *testing.PB) {
		for pb_.Next() {
			i := next.Add(1)
			if _, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hashes[int(i)%len(hashes)]}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSubmit measures the durable queue: hashes acknowledged per second
// with 8 clients sending 1,000 hashes per request.
func BenchmarkSubmit(b *testing.B) {
	h := newTestHome(b)
	nd := h.start(b)
	defer nd.Stop()
	cl := dialTest(b, nd.GRPCAddr())
	ctx := h.authed(context.Background())
	const per = 1000
	b.ResetTimer()
	b.SetParallelism(8)
	start := time.Now()
	var total atomic.Int64
	b.RunParallel(func(pb_ *testing.PB) {
		for pb_.Next() {
			if _, err := cl.Submit(ctx, &pb.SubmitRequest{Hashes: randomHashes(b, per)}); err != nil {
				b.Error(err)
				return
			}
			total.Add(per)
		}
	})
	b.ReportMetric(float64(total.Load())/time.Since(start).Seconds(), "hashes/s")
}

// BenchmarkDiskPerHash anchors b.N × 65,536 hashes on one node, stops it
// (so every store is flushed) and reports the bytes its data directory
// gained per anchored hash: CometBFT's blocks (which carry the leaves), the
// application state, the index and the emptied queue.
//
// CREDENCE_BENCH_RETAIN_BLOCKS=N runs the node with retain_blocks = N (and
// no snapshots, whose peers' needs would hold the blocks back), so that
// CometBFT prunes its blocks behind the index.
func BenchmarkDiskPerHash(b *testing.B) {
	h := newTestHome(b)
	if v := os.Getenv("CREDENCE_BENCH_RETAIN_BLOCKS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		c, err := loadConfig(h.dir)
		if err != nil {
			b.Fatal(err)
		}
		c.RetainBlocks, c.SnapshotInterval = n, 0
		if err := os.Remove(appConfigPath(h.dir)); err != nil {
			b.Fatal(err)
		}
		if err := writeConfig(h.dir, c); err != nil {
			b.Fatal(err)
		}
	}
	nd := h.start(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := nd.Stop(); err != nil {
		b.Fatal(err)
	}
	base := dirSize(b, filepath.Join(h.dir, "data"))
	nd = h.start(b)
	cl := dialTest(b, nd.GRPCAddr())
	const per = 65536
	var last []byte
	for i := 0; i < b.N; i++ {
		all := randomHashes(b, per)
		for j := 0; j < len(all); j += 32 * 16384 {
			// The queue acknowledges faster than one node anchors: past
			// max_queued_hashes, wait as a client would.
			for {
				_, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: all[j : j+32*16384]})
				if status.Code(err) == codes.ResourceExhausted {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if err != nil {
					b.Fatal(err)
				}
				break
			}
		}
		last = all[len(all)-32:]
	}
	waitReceipt(ctx, b, cl, last)
	bs := nd.cmt.BlockStore()
	held := fmt.Sprintf("blocks %d to %d", bs.Base(), bs.Height())
	if err := nd.Stop(); err != nil {
		b.Fatal(err)
	}
	grown := dirSize(b, filepath.Join(h.dir, "data")) - base
	b.ReportMetric(float64(grown)/float64(b.N*per), "disk-bytes/hash")
	if os.Getenv("CREDENCE_BENCH_DISK") != "" {
		// One line: the benchmark's log shows only its first lines.
		out := fmt.Sprintf("%d hashes; the block store holds %s; bytes/hash:", b.N*per, held)
		entries, _ := os.ReadDir(filepath.Join(h.dir, "data"))
		for _, e := range entries {
			out += fmt.Sprintf(" %s %.1f", e.Name(), float64(dirSize(b, filepath.Join(h.dir, "data", e.Name())))/float64(b.N*per))
		}
		b.Log(out)
	}
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		// Allocated blocks, not apparent size: badger preallocates its
		// memtable and value log files sparsely.
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
