package app

import (
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
)

const benchHashes = 65_536

// benchNode is a node whose genesis allows DefaultMaxBatchHashes per batch.
func benchNode(b *testing.B) *chain {
	b.Helper()
	g := testGenesisDoc()
	g.Params.MaxBatchHashes = 0 // the default
	n := newChain(b)
	n.initChain(mustJSON(b, g))
	n.block()
	return n
}

func reportPerHash(b *testing.B, d time.Duration, iters int) {
	b.ReportMetric(float64(d.Nanoseconds())/float64(iters*benchHashes), "ns/hash")
}

// BenchmarkCheckTxBatch: CheckTx of one AnchorBatch of 65,536 hashes.
//
//   - fresh: bytes the app has not seen (decode, public key check,
//     signature, RFC 6962 root, issuer and sequence lookups);
//   - cached: the same bytes again, served by the app's decoded-transaction
//     cache (SHA-256 of the bytes, then the stateful checks).
func BenchmarkCheckTxBatch(b *testing.B) {
	hs := hashesN("bench", benchHashes)
	b.Run("fresh", func(b *testing.B) {
		n := benchNode(b)
		b.ReportAllocs()
		var d time.Duration
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			tx := anchor(b, testChainID, alphaID, uint64(i+1), hs, alpha1)
			req := &abci.RequestCheckTx{Tx: tx, Type: abci.CheckTxType_New}
			b.SetBytes(int64(len(tx)))
			b.StartTimer()
			t0 := time.Now()
			res, err := n.app.CheckTx(ctx, req)
			d += time.Since(t0)
			if err != nil || res.Code != CodeOK {
				b.Fatalf("CheckTx: %v %d %s", err, res.Code, res.Log)
			}
		}
		reportPerHash(b, d, b.N)
	})
	b.Run("cached", func(b *testing.B) {
		n := benchNode(b)
		tx := anchor(b, testChainID, alphaID, 1, hs, alpha1)
		req := &abci.RequestCheckTx{Tx: tx, Type: abci.CheckTxType_New}
		b.SetBytes(int64(len(tx)))
		b.ReportAllocs()
		var d time.Duration
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			n.block() // Commit clears the pending sequence: every CheckTx is accepted
			b.StartTimer()
			t0 := time.Now()
			res, err := n.app.CheckTx(ctx, req)
			d += time.Since(t0)
			if err != nil || res.Code != CodeOK {
				b.Fatalf("CheckTx: %v %d %s", err, res.Code, res.Log)
			}
		}
		reportPerHash(b, d, b.N)
	})
}

// BenchmarkFinalizeBlock: FinalizeBlock and Commit of a block with one
// AnchorBatch of 65,536 hashes. Building the transaction is not timed.
//
//   - cold: the block's transaction was never seen (a node that receives
//     the block without the transaction in its mempool);
//   - after-checktx: CheckTx saw it first (untimed), as on the proposer.
func BenchmarkFinalizeBlock(b *testing.B) {
	hs := hashesN("bench", benchHashes)
	for _, checked := range []bool{false, true} {
		name := "cold"
		if checked {
			name = "after-checktx"
		}
		b.Run(name, func(b *testing.B) {
			n := benchNode(b)
			b.ReportAllocs()
			var finalize, commit time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				tx := anchor(b, testChainID, alphaID, uint64(i+1), hs, alpha1)
				if checked {
					if r := n.checkTx(tx); r.Code != CodeOK {
						b.Fatalf("CheckTx: %d %s", r.Code, r.Log)
					}
				}
				h := n.height + 1
				req := &abci.RequestFinalizeBlock{Height: h, Time: blockTime(h), Txs: [][]byte{tx}}
				b.StartTimer()

				t0 := time.Now()
				res, err := n.app.FinalizeBlock(ctx, req)
				if err != nil || res.TxResults[0].Code != CodeOK {
					b.Fatalf("FinalizeBlock: %v %+v", err, res)
				}
				t1 := time.Now()
				if _, err := n.app.Commit(ctx, &abci.RequestCommit{}); err != nil {
					b.Fatal(err)
				}
				commit += time.Since(t1)
				finalize += t1.Sub(t0)
				n.height++
				n.hooked = nil
			}
			reportPerHash(b, finalize+commit, b.N)
			b.ReportMetric(float64(finalize.Nanoseconds())/float64(b.N), "finalize-ns/op")
			b.ReportMetric(float64(commit.Nanoseconds())/float64(b.N), "commit-ns/op")
		})
	}
}
