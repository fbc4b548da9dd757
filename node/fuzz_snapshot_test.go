package node

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// FuzzSnapshotChunk offers an empty node arbitrary snapshot streams, as a
// malicious peer could (it chooses the metadata, so every chunk matches its
// hash): the snapshot is refused, never a panic or a hang, and the node is
// left empty for the next offer.
func FuzzSnapshotChunk(f *testing.F) {
	g, err := os.ReadFile(filepath.Join("..", "proof", "testdata", "vectors", "one-validator", "genesis.json"))
	if err != nil {
		f.Fatal(err)
	}
	trust, err := proof.TrustRootFromGenesis(g)
	if err != nil {
		f.Fatal(err)
	}
	s := newRestorer(f, trust)

	item := func(it *pb.SnapshotItem) []byte {
		b, err := proto.Marshal(it)
		if err != nil {
			f.Fatal(err)
		}
		return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
	}
	node := item(&pb.SnapshotItem{Item: &pb.SnapshotItem_Node{Node: &pb.SnapshotNode{Key: []byte("p"), Value: []byte{8, 1}, Version: 5, Height: 0}}})
	f.Add([]byte{})
	f.Add(node)
	f.Add(append(append([]byte{}, node...), item(&pb.SnapshotItem{Item: &pb.SnapshotItem_Batch{Batch: &pb.SnapshotBatch{Record: []byte{10, 1, 'a'}, Hashes: make([]byte, 32)}}})...))
	f.Add(item(&pb.SnapshotItem{Item: &pb.SnapshotItem_Header{Header: &pb.SnapshotHeader{Height: 6, SignedHeader: []byte{1, 2}}}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})

	appHash := make([]byte, 32)
	f.Fuzz(func(t *testing.T, stream []byte) {
		sum := sha256sum(stream)
		meta, err := proto.Marshal(&pb.SnapshotMetadata{ChunkHashes: [][]byte{sum}})
		if err != nil {
			t.Fatal(err)
		}
		snap := &abci.Snapshot{Height: 5, Format: snapshotFormat, Chunks: 1, Hash: sha256sum(meta), Metadata: meta}
		offer, applied := restoreWith(s, snap, appHash, [][]byte{stream})
		if offer != abci.ResponseOfferSnapshot_ACCEPT {
			t.Fatalf("a well-formed offer: %v", offer)
		}
		if applied != abci.ResponseApplySnapshotChunk_REJECT_SNAPSHOT {
			t.Fatalf("an arbitrary stream: %v, want REJECT_SNAPSHOT", applied)
		}
		if h := s.app.Height(); h != 0 {
			t.Fatalf("a refused snapshot left the state at height %d", h)
		}
	})
}
