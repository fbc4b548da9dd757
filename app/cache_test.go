package app

import (
	"runtime"
	"testing"
)

// heapAfterGC is the live heap once garbage is collected.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestDecodedCacheIsBounded: the decoded-transaction cache (App.decoded)
// must not keep batches alive once they are executed or refused. It once
// held up to 1024 entries of up to 3.2 MB each, whether committed long ago
// or rejected by CheckTx (anyone reaching a mempool could fill it); now
// entries leave at FinalizeBlock or on refusal, and the total is bounded by
// bytes.
//
// The test anchors (or submits) 12 full-size batches, one per block, and
// requires the live heap to grow by less than 4 batches' worth.
func TestDecodedCacheIsBounded(t *testing.T) {
	const (
		batches = 12
		allowed = 4 // batches' worth of heap growth tolerated
	)
	batchBytes := uint64(DefaultMaxBatchHashes * 32)

	newBigNode := func(t *testing.T) *chain {
		g := testGenesisDoc()
		g.Params.MaxBatchHashes = 0 // the default, 100,000
		n := newChain(t)
		n.initChain(mustJSON(t, g))
		n.block()
		return n
	}

	t.Run("committed batches", func(t *testing.T) {
		n := newBigNode(t)
		base := heapAfterGC()
		for i := uint64(1); i <= batches; i++ {
			tx := anchor(t, testChainID, alphaID, i, hashesN("mem"+itoa(int64(i)), DefaultMaxBatchHashes), alpha1)
			if r := n.checkTx(tx); r.Code != CodeOK {
				t.Fatalf("CheckTx: %d %s", r.Code, r.Log)
			}
			n.blockOK(tx)
			n.hooked = nil // the harness's own copy of the hook's batches
		}
		grown := int64(heapAfterGC()) - int64(base)
		t.Logf("live heap grew by %.1f MB after %d committed batches of %.1f MB", float64(grown)/1e6, batches, float64(batchBytes)/1e6)
		if grown > int64(allowed*batchBytes) {
			t.Errorf("the app retains %.1f MB after %d committed blocks (%.1f batches' worth); want < %d batches' worth",
				float64(grown)/1e6, batches, float64(grown)/float64(batchBytes), allowed)
		}
	})

	t.Run("batches rejected by CheckTx", func(t *testing.T) {
		n := newBigNode(t)
		base := heapAfterGC()
		for i := range batches {
			key := testKey("throwaway" + itoa(int64(i)))
			tx := anchor(t, testChainID, "nobody", 1, hashesN("junk"+itoa(int64(i)), DefaultMaxBatchHashes), key)
			if r := n.checkTx(tx); r.Code != CodeUnknownSigner {
				t.Fatalf("CheckTx: code %d, want unknown signer", r.Code)
			}
		}
		grown := int64(heapAfterGC()) - int64(base)
		t.Logf("live heap grew by %.1f MB after %d rejected batches of %.1f MB", float64(grown)/1e6, batches, float64(batchBytes)/1e6)
		if grown > int64(allowed*batchBytes) {
			t.Errorf("the app retains %.1f MB after CheckTx rejected %d batches (%.1f batches' worth); want < %d batches' worth",
				float64(grown)/1e6, batches, float64(grown)/float64(batchBytes), allowed)
		}
	})
}
