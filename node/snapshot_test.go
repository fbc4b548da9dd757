package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/internal/leafstore"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// restorer is an empty node's state, index and snapshot side.
func newRestorer(t testing.TB, trust *proof.TrustRoot) *snapshots {
	t.Helper()
	db, err := store.OpenBadger(filepath.Join(t.TempDir(), "credence"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	a, err := app.New(store.NewIAVLDB(db, []byte(prefixApp)), trust.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	c := newConsensusChain(a)
	idx, err := openIndex(db, indexOptions{RecentHashes: defaultMemoryConfig().IndexRecentHashes, CheckedBatches: defaultLeavesCheckedBatches, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.close() })
	p := newPipeline(db, c, idx, defaultConfig(), pipelineOptions{QueueDir: t.TempDir(), ChainID: trust.ChainID, Log: testLogger(t)})
	r, err := newReceipts(db, idx, c, trust.ChainID, 64<<20, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := newIndexer(db, c, newCommitQueue(), idx, p, r, indexerOptions{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return newSnapshots(db, a, ix, r, trust, snapshotOptions{Dir: t.TempDir(), Log: testLogger(t)})
}

// snapshottingHome is a test home whose node snapshots every interval blocks.
func snapshottingHome(t testing.TB, interval int64) *testHome {
	t.Helper()
	h := newTestHome(t)
	c, err := loadConfig(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	c.SnapshotInterval = interval
	os.Remove(appConfigPath(h.dir))
	if err := writeConfig(h.dir, c); err != nil {
		t.Fatal(err)
	}
	return h
}

func readChunks(t *testing.T, s *snapshots, snap *abci.Snapshot) [][]byte {
	t.Helper()
	var out [][]byte
	for i := uint32(0); i < snap.Chunks; i++ {
		b, err := s.loadChunk(int64(snap.Height), i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// rechunk rebuilds a self-consistent snapshot (metadata, hash) around
// modified chunks, as a forger would.
func rechunk(t *testing.T, snap *abci.Snapshot, chunks [][]byte) *abci.Snapshot {
	t.Helper()
	var m pb.SnapshotMetadata
	for _, c := range chunks {
		h := sha256sum(c)
		m.ChunkHashes = append(m.ChunkHashes, h)
	}
	meta, err := proto.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	return &abci.Snapshot{Height: snap.Height, Format: snap.Format, Chunks: uint32(len(chunks)), Hash: sha256sum(meta), Metadata: meta}
}

func restoreWith(s *snapshots, snap *abci.Snapshot, appHash []byte, chunks [][]byte) (abci.ResponseOfferSnapshot_Result, abci.ResponseApplySnapshotChunk_Result) {
	if r := s.offer(snap, appHash); r != abci.ResponseOfferSnapshot_ACCEPT {
		return r, abci.ResponseApplySnapshotChunk_UNKNOWN
	}
	var last abci.ResponseApplySnapshotChunk_Result
	for i, c := range chunks {
		res := s.apply(&abci.RequestApplySnapshotChunk{Index: uint32(i), Chunk: c, Sender: "peer"})
		last = res.Result
		if last != abci.ResponseApplySnapshotChunk_ACCEPT {
			return abci.ResponseOfferSnapshot_ACCEPT, last
		}
	}
	return abci.ResponseOfferSnapshot_ACCEPT, last
}

// TestSnapshotRestore takes a real snapshot from a running node and restores
// it into an empty one: a corrupt chunk is refetched, a forged index or a
// state other than the trusted one is rejected (leaving the node empty),
// and the genuine snapshot restores a node that serves verifying receipts
// for batches anchored before it.
//
// Chunks and restore groups are made small, so that the stream spans many
// chunks and the restore indexes it in many groups.
func TestSnapshotRestore(t *testing.T) {
	t.Parallel()
	const chunkBytes, restoreBatchBytes = 1 << 10, 2 << 10
	h := snapshottingHome(t, 4)
	h.ov.snapshotChunkBytes, h.ov.restoreBatchBytes = chunkBytes, restoreBatchBytes
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	snap, appHash, chunks, anchored := testSnapshot(ctx, t, h, n, cl)
	height := int64(snap.Height)
	t.Logf("snapshot at height %d: %d chunks, %d bytes", height, len(chunks), len(bytes.Join(chunks, nil)))
	if len(chunks) < 3 {
		t.Fatalf("%d chunks: the test needs a stream cut into several", len(chunks))
	}

	t.Run("kept without the leaves", func(t *testing.T) {
		// Every chunk was rebuilt above and matched its hash; on disk the
		// snapshot holds no copy of the batches the database already has.
		var stored int64
		entries, err := os.ReadDir(n.snaps.snapDir(height))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			stored += fi.Size()
		}
		var leaves int
		for _, c := range chunks {
			leaves += len(c) - len(withoutBatches(t, c))
		}
		if stored >= int64(len(bytes.Join(chunks, nil))-leaves/2) {
			t.Fatalf("snapshot stores %d bytes for a stream of %d whose batches are %d bytes", stored, len(bytes.Join(chunks, nil)), leaves)
		}
		t.Logf("stored %d bytes for a %d-byte stream (%d of it batches)", stored, len(bytes.Join(chunks, nil)), leaves)
	})

	t.Run("a changed index is not served", func(t *testing.T) {
		var issuer string
		var seq uint64
		if err := n.app.BatchRecords(height, func(_, raw []byte) error {
			var rec proof.BatchRecord
			if err := proto.Unmarshal(raw, &rec); err != nil {
				return err
			}
			issuer, seq = rec.Issuer, rec.Seq
			return errStopped
		}); err != errStopped {
			t.Fatal(err)
		}
		// One byte of its leaves, in the leaf store.
		var loc []byte
		if err := n.db.View(func(txn *badger.Txn) error {
			var err error
			loc, err = getValue(txn, xbKey(issuer, seq))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		at, inline, err := leafstore.Decode(loc)
		if err != nil || inline {
			t.Fatalf("leaves entry %x: %v", loc, err)
		}
		path, off := n.idx.index.leafStore.Locate(at.Offset)
		seg, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer seg.Close()
		flip := func() {
			b := make([]byte, 1)
			if _, err := seg.ReadAt(b, int64(off)); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 1
			if _, err := seg.WriteAt(b, int64(off)); err != nil {
				t.Fatal(err)
			}
		}
		flip()
		defer flip()
		var refused int
		for i := range chunks {
			if _, err := n.snaps.loadChunk(height, uint32(i)); err != nil {
				refused++
			}
		}
		if refused != 1 {
			t.Fatalf("%d chunks refused after one batch's leaves changed, want 1", refused)
		}
	})

	s := newRestorer(t, h.trust)
	s.restoreBatchBytes = restoreBatchBytes

	t.Run("corrupt chunk is refetched", func(t *testing.T) {
		bad := append([]byte(nil), chunks[0]...)
		bad[len(bad)/2] ^= 1
		if r := s.offer(snap, appHash); r != abci.ResponseOfferSnapshot_ACCEPT {
			t.Fatalf("offer: %v", r)
		}
		res := s.apply(&abci.RequestApplySnapshotChunk{Index: 0, Chunk: bad, Sender: "liar"})
		if res.Result != abci.ResponseApplySnapshotChunk_RETRY || len(res.RefetchChunks) != 1 || res.RejectSenders[0] != "liar" {
			t.Fatalf("corrupt chunk: %v", res)
		}
		s.restore = nil
	})

	t.Run("metadata not matching the hash is refused", func(t *testing.T) {
		forged := *snap
		forged.Hash = sha256sum([]byte("other"))
		if r := s.offer(&forged, appHash); r != abci.ResponseOfferSnapshot_REJECT {
			t.Fatalf("offer: %v", r)
		}
	})

	t.Run("untrusted state is rejected", func(t *testing.T) {
		_, r := restoreWith(s, snap, sha256sum([]byte("not the trusted app hash")), chunks)
		if r != abci.ResponseApplySnapshotChunk_REJECT_SNAPSHOT {
			t.Fatalf("apply: %v", r)
		}
		if s.app.Height() != 0 {
			t.Fatal("a rejected snapshot left state behind")
		}
	})

	t.Run("forged index is rejected", func(t *testing.T) {
		stream := bytes.Join(chunks, nil)
		forged := forgeFirstBatch(t, stream)
		_, r := restoreWith(s, rechunk(t, snap, [][]byte{forged}), appHash, [][]byte{forged})
		if r != abci.ResponseApplySnapshotChunk_REJECT_SNAPSHOT {
			t.Fatalf("apply: %v", r)
		}
		if s.app.Height() != 0 {
			t.Fatal("a rejected snapshot left state behind")
		}
	})

	t.Run("genuine snapshot restores", func(t *testing.T) {
		_, r := restoreWith(s, snap, appHash, chunks)
		if r != abci.ResponseApplySnapshotChunk_ACCEPT {
			t.Fatalf("apply: %v", r)
		}
		if s.app.Height() != height {
			t.Fatalf("restored height %d, want %d", s.app.Height(), height)
		}
		rs, err := newReceipts(s.db, s.idx.index, n.chain, n.chainID, 64<<20, 16<<20)
		if err != nil {
			t.Fatal(err)
		}
		var checked int
		for _, hash := range anchored {
			r, err := rs.build(ctx, hash, "")
			if err != nil {
				continue // anchored after the snapshot
			}
			if _, err := proof.Verify(r, h.trust); err != nil {
				t.Fatalf("receipt from the restored index: %v", err)
			}
			checked++
		}
		if checked == 0 {
			t.Fatal("the restored index serves no receipt")
		}
		t.Logf("restored node serves %d verifying receipts for batches before height %d", checked, height)
	})
}

// forgeFirstBatch changes one leaf of the stream's first batch.
func forgeFirstBatch(t *testing.T, stream []byte) []byte {
	t.Helper()
	var out []byte
	done := false
	eachItem(t, stream, func(it *pb.SnapshotItem, b []byte) {
		if bt := it.GetBatch(); bt != nil && !done {
			bt.Hashes[0] ^= 1
			done = true
			var err error
			if b, err = proto.Marshal(it); err != nil {
				t.Fatal(err)
			}
		}
		out = append(binary.AppendUvarint(out, uint64(len(b))), b...)
	})
	if !done {
		t.Fatal("snapshot holds no batch")
	}
	return out
}

// withoutBatches is a chunk with its batch items left out.
func withoutBatches(t *testing.T, chunk []byte) []byte {
	t.Helper()
	var out []byte
	eachItem(t, chunk, func(it *pb.SnapshotItem, b []byte) {
		if it.GetBatch() == nil {
			out = append(binary.AppendUvarint(out, uint64(len(b))), b...)
		}
	})
	return out
}

// eachItem calls fn with each item of a snapshot stream and its bytes.
func eachItem(t *testing.T, stream []byte, fn func(it *pb.SnapshotItem, b []byte)) {
	t.Helper()
	r := bytes.NewReader(stream)
	for r.Len() > 0 {
		n, err := binary.ReadUvarint(r)
		if err != nil || n > uint64(r.Len()) {
			t.Fatalf("snapshot stream: bad item length")
		}
		b := make([]byte, n)
		r.Read(b)
		var it pb.SnapshotItem
		if err := proto.Unmarshal(b, &it); err != nil {
			t.Fatal(err)
		}
		fn(&it, b)
	}
}

var restoreHashes = flag.Int("restore.hashes", 200_000, "BenchmarkSnapshotRestore: hashes in the snapshot")

// BenchmarkSnapshotRestore restores, in process, a snapshot of a chain
// holding -restore.hashes anchored hashes: the joiner's side of state sync
// without the network (chunks checked, spooled, state imported, every
// batch checked and indexed).
func BenchmarkSnapshotRestore(b *testing.B) {
	h := snapshottingHome(b, 5)
	_, n, cl, _ := benchChainAt(b, h, *restoreHashes)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	filled := n.app.Height()
	var snap *abci.Snapshot
	for snap == nil {
		for _, s := range n.snaps.list() {
			if int64(s.Height) >= filled {
				snap = s
			}
		}
		// An idle chain rests: one more hash brings the blocks the
		// snapshot waits for.
		if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: randomHashes(b, 1)}); err != nil {
			b.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		if ctx.Err() != nil {
			b.Fatal("no snapshot above the filled height")
		}
	}
	next := int64(snap.Height) + 1
	for n.app.Height() < next {
		time.Sleep(20 * time.Millisecond)
	}
	commit, err := n.rpc.Commit(ctx, &next)
	if err != nil {
		b.Fatal(err)
	}
	chunks := make([][]byte, snap.Chunks)
	for i := range chunks {
		if chunks[i], err = n.snaps.loadChunk(int64(snap.Height), uint32(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		s := newRestorer(b, h.trust)
		if _, r := restoreWith(s, snap, commit.AppHash, chunks); r != abci.ResponseApplySnapshotChunk_ACCEPT {
			b.Fatalf("restore: %v", r)
		}
	}
	b.ReportMetric(float64(*restoreHashes), "hashes")
	b.ReportMetric(float64(len(chunks)), "chunks")
}
