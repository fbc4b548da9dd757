package node

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cosmos/iavl"
	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// State-sync snapshots, the side that makes them: every snapshot_interval
// blocks a snapshot of the committed state and of this node's receipt
// index, kept under data/snapshots/<height>, listed to peers and served
// chunk by chunk (restore.go is the side that receives one; nodeapp.go
// hands both to CometBFT).
//
// The stream is one sequence of items: the state's nodes (IAVL export
// order), then every batch in the state with its leaves and proof, then the
// signed headers those proofs need, then the validator links from genesis.
// It is cut into chunks of about chunkBytes; an item never crosses a chunk.
//
// Invariants:
//   - a snapshot is written under <height>.tmp and renamed whole: a
//     directory named by a height holds a complete snapshot, and the
//     metadata (the chunks' hashes) is its last file;
//   - a kept chunk is a recipe, not the chunk's bytes (see recipeRaw): the
//     batches are named, read from the index when served, and a chunk is
//     served only if it still hashes as the metadata says;
//   - one snapshot is taken at a time, never blocking Commit; a height
//     whose snapshot is still being taken when the next is due is skipped;
//   - only the newest snapshot_keep_recent snapshots are kept, and the
//     retain height keeps the blocks from the newest one (servedFrom).

// snapshotFormat is the format of the snapshots this node takes and reads.
const snapshotFormat = 1

const (
	// defaultChunkBytes: a chunk also holds the rest of the item that
	// crosses it, at most one batch of 3.2 MB, which keeps chunks under
	// CometBFT's 16 MB chunk message.
	defaultChunkBytes = 8 << 20
	// defaultRestoreBatchBytes: the leaves of a restore's group of batches
	// are held in memory until the group is indexed.
	defaultRestoreBatchBytes = 32 << 20
)

type snapshots struct {
	dir      string
	interval int64
	keep     int
	app      *app.App
	db       *badger.DB
	idx      *indexer
	// receipts supplies the signed headers and links a snapshot carries.
	receipts *receipts
	trust    *proof.TrustRoot
	log      *slog.Logger

	// chunkBytes is where the snapshot stream is cut (0: defaultChunkBytes,
	// 8 MiB).
	chunkBytes int
	// restoreBatchBytes bounds the leaves a restore holds before it indexes
	// them (0: defaultRestoreBatchBytes, 32 MiB).
	restoreBatchBytes int

	stopc  chan struct{}
	wg     sync.WaitGroup
	taking atomic.Bool
	// newest is the height of the newest snapshot held, 0 for none.
	newest atomic.Int64
	// unconfirmed: the state is a restore consensus has not yet built on
	// (keyRestoring holds restoreDone).
	unconfirmed atomic.Bool

	restore *restoreState
}

// snapshotOptions are the snapshots' settings.
type snapshotOptions struct {
	// Dir holds the snapshots (data/snapshots).
	Dir string
	// Interval: a snapshot every Interval blocks (snapshot_interval; 0
	// takes none).
	Interval int64
	// Keep is how many snapshots are kept (snapshot_keep_recent).
	Keep int
	// ChunkBytes is where the stream is cut (0: defaultChunkBytes, 8 MiB).
	// This package's tests shrink it, so that a short chain's snapshot
	// spans many chunks.
	ChunkBytes int
	// RestoreBatchBytes bounds the leaves a restore holds before it indexes
	// them (0: defaultRestoreBatchBytes, 32 MiB). Tests shrink it, so that
	// a restore indexes in many groups.
	RestoreBatchBytes int
	// Log is the snapshots' logger; nil is slog.Default().
	Log *slog.Logger
}

// newSnapshots takes and restores snapshots of the state of a and of the
// index (idx, read through receipts), restores checked against trust.
func newSnapshots(db *badger.DB, a *app.App, idx *indexer, r *receipts, trust *proof.TrustRoot, o snapshotOptions) *snapshots {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &snapshots{
		dir: o.Dir, interval: o.Interval, keep: o.Keep, app: a, db: db, idx: idx, receipts: r, trust: trust, log: o.Log,
		chunkBytes: o.ChunkBytes, restoreBatchBytes: o.RestoreBatchBytes, stopc: make(chan struct{}),
	}
	if hs := s.heights(); len(hs) > 0 {
		s.newest.Store(hs[0])
	}
	return s
}

const (
	restoreBegun byte = 1 // state and index partly written: wiped at start
	restoreDone  byte = 2 // wiped if consensus offers a snapshot again
)

func (s *snapshots) snapDir(h int64) string { return filepath.Join(s.dir, strconv.FormatInt(h, 10)) }

func (s *snapshots) chunkPath(h int64, i uint32) string {
	return filepath.Join(s.snapDir(h), fmt.Sprintf("chunk-%06d", i))
}

func (s *snapshots) maybeTake(h int64) {
	if s.interval <= 0 || h%s.interval != 0 {
		return
	}
	if !s.taking.CompareAndSwap(false, true) {
		s.log.Warn("previous snapshot still being taken; skipping", "height", h)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.taking.Store(false)
		start := time.Now()
		if err := s.take(h); err != nil {
			s.log.Error("snapshot failed", "height", h, "err", err)
			os.RemoveAll(s.snapDir(h) + ".tmp")
			return
		}
		s.log.Info("snapshot taken", "height", h, "took", time.Since(start).Round(time.Millisecond))
		s.newest.Store(h)
		s.prune()
	}()
}

func (s *snapshots) stop() {
	close(s.stopc)
	s.wg.Wait()
}

// A snapshot is kept on disk as one recipe per chunk, not as the chunk's
// bytes. The bulk of a snapshot is the batches' leaves, records and proofs,
// which the node's database already holds, immutable once indexed (xb/,
// xr/, xp/): copying them into each kept snapshot would cost 32 bytes per
// anchored hash per snapshot, more than the rest of the node's disk. A
// recipe holds the bytes of the other items (state nodes, headers, links)
// and names the batches; loadChunk rebuilds the chunk from it and serves it
// only if it still hashes as the metadata says.
const (
	recipeRaw   = 0 // uvarint length, then that many bytes of the stream
	recipeBatch = 1 // uvarint issuer length, issuer, 8-byte sequence
)

func recipePath(dir string, i uint32) string {
	return filepath.Join(dir, fmt.Sprintf("recipe-%06d", i))
}

// chunkWriter cuts the item stream into chunks, hashes them, and writes
// each chunk's recipe.
type chunkWriter struct {
	dir string
	// buf is the chunk's stream, hashed at flush; raw is where the bytes
	// not yet in the recipe start.
	buf    []byte
	raw    int
	recipe []byte
	n      uint32
	hashes [][]byte
	// size is the stream length at which a chunk is cut.
	size int
}

func (w *chunkWriter) item(it *pb.SnapshotItem) error { return w.add(it, "", 0) }

// batch adds a batch's item, recorded in the recipe by its name only.
func (w *chunkWriter) batch(issuer string, seq uint64, it *pb.SnapshotItem) error {
	return w.add(it, issuer, seq)
}

func (w *chunkWriter) add(it *pb.SnapshotItem, issuer string, seq uint64) error {
	b, err := proto.Marshal(it)
	if err != nil {
		return err
	}
	start := len(w.buf)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(b)))
	w.buf = append(w.buf, b...)
	if issuer != "" {
		w.cutRaw(start)
		w.recipe = append(w.recipe, recipeBatch)
		w.recipe = binary.AppendUvarint(w.recipe, uint64(len(issuer)))
		w.recipe = u64(append(w.recipe, issuer...), seq)
		w.raw = len(w.buf)
	}
	if len(w.buf) >= w.size {
		return w.flush()
	}
	return nil
}

// cutRaw moves the stream bytes before end not yet in the recipe into it.
func (w *chunkWriter) cutRaw(end int) {
	if end > w.raw {
		w.recipe = append(w.recipe, recipeRaw)
		w.recipe = binary.AppendUvarint(w.recipe, uint64(end-w.raw))
		w.recipe = append(w.recipe, w.buf[w.raw:end]...)
	}
	w.raw = end
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.cutRaw(len(w.buf))
	sum := sha256.Sum256(w.buf)
	w.hashes = append(w.hashes, sum[:])
	if err := os.WriteFile(recipePath(w.dir, w.n), w.recipe, 0o600); err != nil {
		return err
	}
	w.n++
	w.buf, w.recipe, w.raw = w.buf[:0], w.recipe[:0], 0
	return nil
}

// loadChunk is chunk i of the snapshot of height h, rebuilt from its
// recipe and checked against the snapshot's metadata.
func (s *snapshots) loadChunk(h int64, i uint32) ([]byte, error) {
	meta, err := os.ReadFile(filepath.Join(s.snapDir(h), "metadata"))
	if err != nil {
		return nil, err
	}
	var m pb.SnapshotMetadata
	if err := proto.Unmarshal(meta, &m); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if int(i) >= len(m.ChunkHashes) {
		return nil, fmt.Errorf("chunk %d of %d", i, len(m.ChunkHashes))
	}
	recipe, err := os.ReadFile(recipePath(s.snapDir(h), i))
	var chunk []byte
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Stored whole, as an earlier version of the node did.
		chunk, err = os.ReadFile(s.chunkPath(h, i))
	case err == nil:
		chunk, err = s.cook(recipe)
	}
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(chunk); !bytes.Equal(sum[:], m.ChunkHashes[i]) {
		return nil, fmt.Errorf("chunk %d rebuilt does not match its hash: the index changed under the snapshot", i)
	}
	return chunk, nil
}

// cook follows a recipe.
func (s *snapshots) cook(recipe []byte) ([]byte, error) {
	var chunk []byte
	r := bytes.NewReader(recipe)
	for r.Len() > 0 {
		kind, _ := r.ReadByte()
		n, err := binary.ReadUvarint(r)
		if err != nil || n > uint64(r.Len()) {
			return nil, errors.New("corrupt snapshot recipe")
		}
		part := recipe[len(recipe)-r.Len():][:n]
		r.Seek(int64(n), io.SeekCurrent)
		switch kind {
		case recipeRaw:
			chunk = append(chunk, part...)
		case recipeBatch:
			var seq [8]byte
			if _, err := io.ReadFull(r, seq[:]); err != nil {
				return nil, errors.New("corrupt snapshot recipe")
			}
			b, err := s.batchItem(string(part), binary.BigEndian.Uint64(seq[:]))
			if err != nil {
				return nil, err
			}
			chunk = append(binary.AppendUvarint(chunk, uint64(len(b))), b...)
		default:
			return nil, fmt.Errorf("corrupt snapshot recipe: part kind %d", kind)
		}
	}
	return chunk, nil
}

// batchItem is the snapshot item of an indexed batch, as take wrote it.
func (s *snapshots) batchItem(issuer string, seq uint64) ([]byte, error) {
	hashes, rec, prf, err := s.idx.index.readBatch(issuer, seq)
	if err != nil {
		return nil, fmt.Errorf("batch %s/%d: %w", issuer, seq, err)
	}
	return proto.Marshal(&pb.SnapshotItem{Item: &pb.SnapshotItem_Batch{Batch: &pb.SnapshotBatch{Record: rec, Proof: prf, Hashes: hashes}}})
}

// take writes the snapshot of height h: the state, then every batch in it
// with its leaves and proof, then the signed headers those proofs need.
func (s *snapshots) take(h int64) error {
	// Height h+2 too: a change of validators right after h is a link the
	// snapshot must carry, and its link needs header h+1's set, which is
	// served with header h+1's canonical commit, carried by block h+2.
	for s.idx.indexedHeight() < h+2 {
		select {
		case <-s.stopc:
			return errStopped
		case <-time.After(50 * time.Millisecond):
		}
	}
	tmp := s.snapDir(h) + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	w := &chunkWriter{dir: tmp, size: cmp.Or(s.chunkBytes, defaultChunkBytes)}
	if err := s.app.ExportState(h, func(n *iavl.ExportNode) error {
		return w.item(&pb.SnapshotItem{Item: &pb.SnapshotItem_Node{Node: &pb.SnapshotNode{
			Key: n.Key, Value: n.Value, Version: n.Version, Height: int32(n.Height)}}})
	}); err != nil {
		return err
	}
	heights := make(map[int64]bool)
	if err := s.app.BatchRecords(h, func(_, raw []byte) error {
		var rec proof.BatchRecord
		if err := proto.Unmarshal(raw, &rec); err != nil {
			return err
		}
		hashes, _, prf, err := s.idx.index.readBatch(rec.Issuer, rec.Seq)
		if err != nil {
			return fmt.Errorf("batch %s/%d: %w", rec.Issuer, rec.Seq, err)
		}
		if rec.Height < h {
			heights[rec.Height+1] = true
		}
		return w.batch(rec.Issuer, rec.Seq, &pb.SnapshotItem{Item: &pb.SnapshotItem_Batch{Batch: &pb.SnapshotBatch{Record: raw, Proof: prf, Hashes: hashes}}})
	}); err != nil {
		return err
	}
	hs := make([]int64, 0, len(heights))
	for x := range heights {
		hs = append(hs, x)
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i] < hs[j] })
	for _, x := range hs {
		e, err := s.receipts.header(context.Background(), x)
		if err != nil {
			return fmt.Errorf("signed header %d: %w", x, err)
		}
		if err := w.item(&pb.SnapshotItem{Item: &pb.SnapshotItem_Header{Header: &pb.SnapshotHeader{
			Height: x, SignedHeader: e.signedHeader, Validators: e.validators}}}); err != nil {
			return err
		}
	}
	lhs, links, err := s.receipts.links(context.Background(), h+1)
	if err != nil {
		return err
	}
	for i, l := range links {
		if err := w.item(&pb.SnapshotItem{Item: &pb.SnapshotItem_Link{Link: &pb.SnapshotLink{Height: lhs[i], Link: l}}}); err != nil {
			return err
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	meta, err := proto.Marshal(&pb.SnapshotMetadata{ChunkHashes: w.hashes})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "metadata"), meta, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.snapDir(h))
}

func (s *snapshots) heights() []int64 {
	entries, _ := os.ReadDir(s.dir)
	var hs []int64
	for _, e := range entries {
		if h, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && e.IsDir() {
			hs = append(hs, h)
		}
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i] > hs[j] })
	return hs
}

// servedFrom is the lowest height a peer restoring this node's snapshots
// needs blocks from, as of height h: the newest snapshot's, or before the
// first, the height the next one is due.
func (s *snapshots) servedFrom(h int64) int64 {
	if n := s.newest.Load(); n > 0 {
		return n
	}
	return h - h%s.interval
}

func (s *snapshots) prune() {
	for i, h := range s.heights() {
		if i >= s.keep {
			os.RemoveAll(s.snapDir(h))
		}
	}
}

func (s *snapshots) list() []*abci.Snapshot {
	var out []*abci.Snapshot
	for _, h := range s.heights() {
		meta, err := os.ReadFile(filepath.Join(s.snapDir(h), "metadata"))
		if err != nil {
			continue
		}
		var m pb.SnapshotMetadata
		if proto.Unmarshal(meta, &m) != nil {
			continue
		}
		sum := sha256.Sum256(meta)
		out = append(out, &abci.Snapshot{Height: uint64(h), Format: snapshotFormat,
			Chunks: uint32(len(m.ChunkHashes)), Hash: sum[:], Metadata: meta})
	}
	return out
}
