package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
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
	a, err := app.New(store.NewIAVLDB(db, appPrefix), trust.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	c := &consensusChain{App: a}
	ix, err := newIndexer(db, c, testLogger(t), defaultMemoryConfig().IndexRecentHashes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.leaves.close() })
	ix.pipe = newPipeline(db, t.TempDir(), c, trust.ChainID, nil, defaultConfig(), testLogger(t))
	return &snapshots{app: a, db: db, idx: ix, trust: trust, log: testLogger(t), stopc: make(chan struct{})}
}

func readChunks(t *testing.T, s *snapshots, snap *abci.Snapshot) [][]byte {
	t.Helper()
	var out [][]byte
	for i := uint32(0); i < snap.Chunks; i++ {
		b, err := os.ReadFile(s.chunkPath(int64(snap.Height), i))
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
func TestSnapshotRestore(t *testing.T) {
	h := newTestHome(t)
	c, err := loadConfig(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	c.SnapshotInterval = 4
	os.Remove(appConfigPath(h.dir))
	if err := writeConfig(h.dir, c); err != nil {
		t.Fatal(err)
	}
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var anchored [][]byte
	var snap *abci.Snapshot
	for round := 0; snap == nil; round++ {
		hs := randomHashes(t, 50)
		if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hs}); err != nil {
			t.Fatal(err)
		}
		waitReceipt(ctx, t, cl, hs[:32])
		for i := 0; i < len(hs); i += 32 {
			anchored = append(anchored, hs[i:i+32])
		}
		for _, s := range n.snaps.list() {
			if s.Height >= 8 {
				snap = s
			}
		}
		if ctx.Err() != nil {
			t.Fatal("no snapshot at height >= 8")
		}
	}
	height := int64(snap.Height)
	// The app hash of height H is in header H+1.
	next := height + 1
	for n.app.Height() < next {
		time.Sleep(20 * time.Millisecond)
	}
	commit, err := n.rpc.Commit(ctx, &next)
	if err != nil {
		t.Fatal(err)
	}
	appHash := []byte(commit.AppHash)
	chunks := readChunks(t, n.snaps, snap)
	t.Logf("snapshot at height %d: %d chunks, %d bytes", height, len(chunks), len(bytes.Join(chunks, nil)))

	s := newRestorer(t, h.trust)

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
		rs, err := newReceipts(s.db, s.idx.leaves, n.rpc, n.chainID, 64<<20, 16<<20)
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
	r := bytes.NewReader(stream)
	done := false
	for r.Len() > 0 {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, n)
		r.Read(b)
		var it pb.SnapshotItem
		if err := proto.Unmarshal(b, &it); err != nil {
			t.Fatal(err)
		}
		if bt := it.GetBatch(); bt != nil && !done {
			bt.Hashes[0] ^= 1
			done = true
			if b, err = proto.Marshal(&it); err != nil {
				t.Fatal(err)
			}
		}
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	if !done {
		t.Fatal("snapshot holds no batch")
	}
	return out
}
