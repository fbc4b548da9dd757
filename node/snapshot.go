package node

import (
	"bufio"
	"bytes"
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
	ics23 "github.com/cosmos/ics23/go"
	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// snapshotFormat is the format of the snapshots this node takes and reads.
const snapshotFormat = 1

// chunkSize is where the snapshot stream is cut; a chunk also holds the
// rest of the item that crosses it, at most one batch of 3.2 MB, which keeps
// chunks under CometBFT's 16 MB chunk message. Tests make it small to cut
// streams into many chunks.
var chunkSize = 8 << 20

// nodeApp is the application CometBFT talks to: the state machine, plus
// state-sync snapshots of the state and of this node's receipt index.
type nodeApp struct {
	*app.App
	snaps  *snapshots
	retain *retention
}

// Commit adds the node's retain height to the state machine's answer:
// which blocks the node still needs is its own business, not consensus's.
func (a nodeApp) Commit(ctx context.Context, req *abci.RequestCommit) (*abci.ResponseCommit, error) {
	res, err := a.App.Commit(ctx, req)
	if err == nil {
		a.snaps.confirmRestore()
		h := a.App.Height()
		a.snaps.maybeTake(h)
		res.RetainHeight = a.retain.height(h)
		metricRetainHeight.Set(float64(res.RetainHeight))
	}
	return res, err
}

func (a nodeApp) ListSnapshots(context.Context, *abci.RequestListSnapshots) (*abci.ResponseListSnapshots, error) {
	return &abci.ResponseListSnapshots{Snapshots: a.snaps.list()}, nil
}

func (a nodeApp) LoadSnapshotChunk(_ context.Context, req *abci.RequestLoadSnapshotChunk) (*abci.ResponseLoadSnapshotChunk, error) {
	if req.Format != snapshotFormat {
		return &abci.ResponseLoadSnapshotChunk{}, nil
	}
	b, err := a.snaps.loadChunk(int64(req.Height), req.Chunk)
	if errors.Is(err, fs.ErrNotExist) {
		a.snaps.log.Info("snapshot chunk not available", "height", req.Height, "chunk", req.Chunk, "err", err)
		return &abci.ResponseLoadSnapshotChunk{}, nil
	}
	if err != nil {
		a.snaps.log.Error("snapshot chunk cannot be served", "height", req.Height, "chunk", req.Chunk, "err", err)
		return &abci.ResponseLoadSnapshotChunk{}, nil
	}
	return &abci.ResponseLoadSnapshotChunk{Chunk: b}, nil
}

func (a nodeApp) OfferSnapshot(_ context.Context, req *abci.RequestOfferSnapshot) (*abci.ResponseOfferSnapshot, error) {
	return &abci.ResponseOfferSnapshot{Result: a.snaps.offer(req.Snapshot, req.AppHash)}, nil
}

func (a nodeApp) ApplySnapshotChunk(_ context.Context, req *abci.RequestApplySnapshotChunk) (*abci.ResponseApplySnapshotChunk, error) {
	return a.snaps.apply(req), nil
}

type snapshots struct {
	dir      string
	interval int64
	keep     int
	app      *app.App
	db       *badger.DB
	idx      *indexer
	trust    *proof.TrustRoot
	log      *slog.Logger
	// receipts supplies signed headers; set once consensus is assembled.
	receipts *receipts
	indexed  func() int64
	stopc    chan struct{}
	wg       sync.WaitGroup
	taking   atomic.Bool
	// newest is the height of the newest snapshot held, 0 for none.
	newest atomic.Int64
	// unconfirmed: the state is a restore consensus has not yet built on
	// (keyRestoring holds restoreDone).
	unconfirmed atomic.Bool

	restore *restoreState
}

const (
	restoreBegun byte = 1 // state and index partly written: wiped at start
	restoreDone  byte = 2 // wiped if consensus offers a snapshot again
)

func (s *snapshots) restoreMark() (byte, error) {
	var mark byte
	err := s.db.View(func(txn *badger.Txn) error {
		v, err := getValue(txn, []byte(keyRestoring))
		if errors.Is(err, errNotFound) {
			return nil
		}
		if err == nil && len(v) == 1 {
			mark = v[0]
		} else if err == nil {
			err = fmt.Errorf("restore marker of %d bytes", len(v))
		}
		return err
	})
	return mark, err
}

func (s *snapshots) setRestoreMark(mark byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyRestoring), []byte{mark}) })
}

// clearInterrupted runs at start, before anything reads the index: the
// chunks of a restore cut short go, and so does whatever it wrote of the
// state and the index; consensus, which never saw the restore, offers a
// snapshot again.
func (s *snapshots) clearInterrupted() error {
	if err := os.RemoveAll(filepath.Join(s.dir, "restoring")); err != nil {
		return fmt.Errorf("snapshot restore: clear its chunks: %w", err)
	}
	mark, err := s.restoreMark()
	if err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	switch mark {
	case restoreBegun:
		s.log.Warn("a snapshot restore was cut short: its state and index are cleared, and state sync restores anew")
		if err := s.wipe(); err != nil {
			return fmt.Errorf("snapshot restore: clear a restore cut short: %w", err)
		}
	case restoreDone:
		s.unconfirmed.Store(true)
	}
	return nil
}

// confirmRestore forgets the restore once a block is committed on it.
func (s *snapshots) confirmRestore() {
	if !s.unconfirmed.Load() {
		return
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(keyRestoring)) }); err != nil {
		s.log.Warn("cannot clear the restore marker; retrying at the next block", "err", err)
		return
	}
	s.unconfirmed.Store(false)
}

type restoreState struct {
	snap    *abci.Snapshot
	appHash []byte
	hashes  [][]byte
	// spool holds the chunks received, have which.
	spool string
	have  []bool
	got   int
}

func (s *snapshots) snapDir(h int64) string { return filepath.Join(s.dir, strconv.FormatInt(h, 10)) }

func (s *snapshots) chunkPath(h int64, i uint32) string {
	return filepath.Join(s.snapDir(h), fmt.Sprintf("chunk-%06d", i))
}

func (s *snapshots) maybeTake(h int64) {
	if s.interval <= 0 || h%s.interval != 0 || s.receipts == nil {
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
	if len(w.buf) >= chunkSize {
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
	hashes, rec, prf, err := s.idx.leaves.readBatch(issuer, seq)
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
	for s.indexed() < h+2 {
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
	w := &chunkWriter{dir: tmp}
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
		hashes, _, prf, err := s.idx.leaves.readBatch(rec.Issuer, rec.Seq)
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

func (s *snapshots) offer(snap *abci.Snapshot, appHash []byte) abci.ResponseOfferSnapshot_Result {
	if snap == nil {
		return abci.ResponseOfferSnapshot_REJECT
	}
	if snap.Format != snapshotFormat {
		return abci.ResponseOfferSnapshot_REJECT_FORMAT
	}
	var m pb.SnapshotMetadata
	sum := sha256.Sum256(snap.Metadata)
	if proto.Unmarshal(snap.Metadata, &m) != nil || !bytes.Equal(sum[:], snap.Hash) ||
		len(m.ChunkHashes) != int(snap.Chunks) || snap.Chunks == 0 {
		s.log.Warn("snapshot offer with inconsistent metadata rejected", "height", snap.Height)
		return abci.ResponseOfferSnapshot_REJECT
	}
	for _, h := range m.ChunkHashes {
		if len(h) != sha256.Size {
			return abci.ResponseOfferSnapshot_REJECT
		}
	}
	mark, err := s.restoreMark()
	if err != nil {
		s.log.Error("cannot read the restore marker", "err", err)
		return abci.ResponseOfferSnapshot_ABORT
	}
	if mark != 0 {
		// An offer means consensus holds no state: it never took up the
		// earlier restore.
		s.log.Warn("clearing a restored state consensus never took up; restoring anew", "height", s.app.Height())
		if err := s.wipe(); err != nil {
			s.log.Error("cannot clear an earlier restore", "err", err)
			return abci.ResponseOfferSnapshot_ABORT
		}
		s.unconfirmed.Store(false)
	}
	if h := s.app.Height(); h != 0 {
		s.log.Error("state sync refused: this node's state (height "+strconv.FormatInt(h, 10)+
			") has no consensus state beside it and came from no restore of this node's; stop the node and "+recoverHint, "height", h)
		return abci.ResponseOfferSnapshot_ABORT
	}
	spool := filepath.Join(s.dir, "restoring")
	if err := os.RemoveAll(spool); err != nil {
		s.log.Error("cannot clear the chunks of an earlier restore", "err", err)
		return abci.ResponseOfferSnapshot_ABORT
	}
	if err := os.MkdirAll(spool, 0o700); err != nil {
		s.log.Error("cannot keep snapshot chunks", "err", err)
		return abci.ResponseOfferSnapshot_ABORT
	}
	s.restore = &restoreState{snap: snap, appHash: appHash, hashes: m.ChunkHashes, spool: spool, have: make([]bool, snap.Chunks)}
	s.log.Info("restoring snapshot", "height", snap.Height, "chunks", snap.Chunks)
	return abci.ResponseOfferSnapshot_ACCEPT
}

// apply keeps each chunk on disk as it arrives, so a snapshot of any size
// restores in bounded memory; the last chunk starts the restore.
func (s *snapshots) apply(req *abci.RequestApplySnapshotChunk) *abci.ResponseApplySnapshotChunk {
	r := s.restore
	if r == nil || int(req.Index) >= len(r.have) {
		return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_ABORT}
	}
	sum := sha256.Sum256(req.Chunk)
	if !bytes.Equal(sum[:], r.hashes[req.Index]) {
		s.log.Warn("snapshot chunk does not match its hash; refetching", "chunk", req.Index, "sender", req.Sender)
		return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_RETRY,
			RefetchChunks: []uint32{req.Index}, RejectSenders: []string{req.Sender}}
	}
	if !r.have[req.Index] {
		// Not synced: a crash abandons the restore, and the next start
		// clears the spool with the rest.
		if err := os.WriteFile(r.chunkPath(req.Index), req.Chunk, 0o600); err != nil {
			s.log.Error("cannot keep a snapshot chunk", "chunk", req.Index, "err", err)
			return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_ABORT}
		}
		r.have[req.Index] = true
		r.got++
	}
	if r.got < len(r.have) {
		return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_ACCEPT}
	}
	s.restore = nil
	start := time.Now()
	err := s.restoreAll(r)
	os.RemoveAll(r.spool)
	if err != nil {
		s.log.Error("snapshot rejected", "height", r.snap.Height, "err", err)
		if werr := s.wipe(); werr != nil {
			s.log.Error("could not clear a rejected snapshot's state", "err", werr)
			return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_ABORT}
		}
		return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_REJECT_SNAPSHOT}
	}
	s.log.Info("snapshot restored", "height", r.snap.Height, "took", time.Since(start).Round(time.Millisecond))
	return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_ACCEPT}
}

func (r *restoreState) chunkPath(i uint32) string {
	return filepath.Join(r.spool, fmt.Sprintf("chunk-%06d", i))
}

// spoolReader reads the kept chunks in order as one stream.
type spoolReader struct {
	r    *restoreState
	next uint32
	f    *os.File
}

func (sr *spoolReader) Read(p []byte) (int, error) {
	for {
		if sr.f == nil {
			if int(sr.next) == len(sr.r.have) {
				return 0, io.EOF
			}
			f, err := os.Open(sr.r.chunkPath(sr.next))
			if err != nil {
				return 0, err
			}
			sr.f = f
			sr.next++
		}
		n, err := sr.f.Read(p)
		if err == io.EOF {
			sr.f.Close()
			sr.f = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (sr *spoolReader) Close() {
	if sr.f != nil {
		sr.f.Close()
	}
}

// maxItemBytes bounds one item of a snapshot stream: an item never crosses
// a chunk, and CometBFT carries chunks of at most 16 MB.
const maxItemBytes = 16 << 20

// itemReader reads the item stream with one item of lookahead.
type itemReader struct {
	r    *bufio.Reader
	buf  []byte
	peek *pb.SnapshotItem
}

func newItemReader(r io.Reader) *itemReader {
	return &itemReader{r: bufio.NewReaderSize(r, 1<<20)}
}

// nextRaw is the next item's bytes, valid until the next read, or nil at
// the end of the stream.
func (ir *itemReader) nextRaw() ([]byte, error) {
	n, err := binary.ReadUvarint(ir.r)
	if err == io.EOF {
		return nil, nil
	}
	if err != nil || n == 0 || n > maxItemBytes {
		return nil, fmt.Errorf("snapshot stream: bad item length")
	}
	if uint64(cap(ir.buf)) < n {
		ir.buf = make([]byte, n)
	}
	ir.buf = ir.buf[:n]
	if _, err := io.ReadFull(ir.r, ir.buf); err != nil {
		return nil, fmt.Errorf("snapshot stream: %w", err)
	}
	return ir.buf, nil
}

func (ir *itemReader) next() (*pb.SnapshotItem, error) {
	if ir.peek != nil {
		it := ir.peek
		ir.peek = nil
		return it, nil
	}
	b, err := ir.nextRaw()
	if err != nil || b == nil {
		return nil, err
	}
	var it pb.SnapshotItem
	if err := proto.Unmarshal(b, &it); err != nil {
		return nil, fmt.Errorf("snapshot stream: %w", err)
	}
	return &it, nil
}

// The field tag that starts an item's bytes says its kind (proto/credence/v1/snapshot.proto).
const (
	tagNodeItem  = 1<<3 | 2
	tagBatchItem = 2<<3 | 2
)

// restoreBatchBytes bounds the leaves restoreAll holds before it indexes
// them. Tests make it small to index a snapshot in many groups.
var restoreBatchBytes = 32 << 20

// restoreAll imports the state, checks it is the state consensus trusts,
// checks every batch of the index against that state or against headers
// signed by the trusted validators, and writes the index. It reads the
// stream twice, so that only one group of batches is in memory at once:
// first for the headers and links, which come after the batches (the
// headers go to the database, where receipts need them anyway), then for
// the state and the batches, in the order the state holds them.
func (s *snapshots) restoreAll(r *restoreState) error {
	height := int64(r.snap.Height)
	if err := s.setRestoreMark(restoreBegun); err != nil {
		return err
	}
	links, linkHeights, err := s.restoreHeaders(r)
	if err != nil {
		return err
	}
	if err := proof.VerifyValidatorLinks(links, height+1, s.trust); err != nil {
		return fmt.Errorf("validator links: %w", err)
	}
	linksBelow := func(h int64) []*proof.ValidatorSetLink {
		n := 0
		for n < len(linkHeights) && linkHeights[n] < h {
			n++
		}
		return links[:n]
	}

	sr := &spoolReader{r: r}
	defer sr.Close()
	ir := newItemReader(sr)
	hash, err := s.app.ImportState(height, func() (*iavl.ExportNode, error) {
		it, err := ir.next()
		if err != nil || it == nil {
			return nil, err
		}
		n := it.GetNode()
		if n == nil {
			ir.peek = it
			return nil, nil
		}
		return &iavl.ExportNode{Key: n.Key, Value: n.Value, Version: n.Version, Height: int8(n.Height)}, nil
	})
	if err != nil {
		return fmt.Errorf("import state: %w", err)
	}
	if !bytes.Equal(hash, r.appHash) {
		return fmt.Errorf("restored state hash %X, consensus trusts %X", hash, r.appHash)
	}
	var group []app.CommittedBatch
	var groupBytes, indexed int
	atHeight := false
	var hdr pb.SnapshotHeader
	if err := s.app.BatchRecords(height, func(key, raw []byte) error {
		it, err := ir.next()
		if err != nil {
			return err
		}
		b := it.GetBatch()
		if b == nil {
			return fmt.Errorf("state holds batch %q that the snapshot's index lacks", key)
		}
		var rec proof.BatchRecord
		if err := proto.Unmarshal(b.Record, &rec); err != nil {
			return fmt.Errorf("batch record: %w", err)
		}
		if got := proof.BatchKey(rec.Issuer, rec.Seq); !bytes.Equal(got, key) {
			return fmt.Errorf("snapshot's index has batch %q where the state has %q", got, key)
		}
		if !bytes.Equal(b.Record, raw) {
			return fmt.Errorf("batch %q: record differs from state", key)
		}
		root, err := proof.Root(b.Hashes)
		if err != nil || !bytes.Equal(root[:], rec.Root) || uint64(len(b.Hashes)/proof.HashSize) != rec.LeafCount {
			return fmt.Errorf("batch %s/%d: leaves do not make its root", rec.Issuer, rec.Seq)
		}
		if rec.Height == height {
			var cp ics23.CommitmentProof
			if cp.Unmarshal(b.Proof) != nil || !ics23.VerifyMembership(ics23.IavlSpec, r.appHash, &cp, key, raw) {
				return fmt.Errorf("batch %s/%d: proof does not verify against the trusted state", rec.Issuer, rec.Seq)
			}
			atHeight = true
		} else {
			if hdr.Height != rec.Height+1 {
				var v []byte
				if err := s.db.View(func(txn *badger.Txn) error {
					var err error
					v, err = getValue(txn, xsKey(rec.Height+1))
					return err
				}); err != nil {
					return fmt.Errorf("batch %s/%d: no signed header for height %d: %w", rec.Issuer, rec.Seq, rec.Height+1, err)
				}
				if err := proto.Unmarshal(v, &hdr); err != nil {
					return fmt.Errorf("signed header %d: %w", rec.Height+1, err)
				}
			}
			if err := proof.VerifyBatch(&rec, b.Proof, hdr.SignedHeader, hdr.Validators, linksBelow(rec.Height+1), s.trust); err != nil {
				return fmt.Errorf("batch %s/%d: %w", rec.Issuer, rec.Seq, err)
			}
		}
		group = append(group, app.CommittedBatch{Record: &rec, RecordBytes: b.Record, Proof: b.Proof, Hashes: b.Hashes})
		if groupBytes += len(b.Hashes); groupBytes >= restoreBatchBytes {
			if err := s.idx.index(height, group); err != nil {
				return err
			}
			indexed += len(group)
			s.log.Info("restoring snapshot: batches indexed", "height", height, "batches", indexed)
			group, groupBytes = nil, 0
		}
		return nil
	}); err != nil {
		return err
	}
	if it, err := ir.next(); err != nil {
		return err
	} else if it.GetBatch() != nil {
		return errors.New("snapshot's index holds batches the state does not")
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i, l := range links {
		v, err := proto.Marshal(l)
		if err != nil {
			return err
		}
		if err := wb.Set(xvKey(linkHeights[i]), v); err != nil {
			return err
		}
	}
	defer func() {
		for _, h := range linkHeights {
			s.receipts.addLink(h)
		}
	}()
	if atHeight {
		// Header height+1 is kept when block height+2 is indexed.
		if err := wb.Set(xwKey(height+1), []byte{}); err != nil {
			return err
		}
	}
	// Every other header the index needs came with the snapshot.
	if err := wb.Set([]byte(keyHeadersKept), []byte{}); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	if err := s.idx.index(height, group); err != nil {
		return err
	}
	// The start-up check of the last batch indexed (checkLastBatch) proves
	// it in the state at its height, which a restored state does not hold:
	// the restore checked every batch itself, and the check takes up again
	// with the first batch this node indexes from a block.
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete([]byte(keyLastBatch)); err != nil {
			return err
		}
		return txn.Set([]byte(keyRestoring), []byte{restoreDone})
	}); err != nil {
		return err
	}
	s.unconfirmed.Store(true)
	return nil
}

// restoreHeaders reads the stream for its signed headers, which it writes
// to the database, and its validator links, which it returns in order. It
// checks the stream's shape: state nodes first, then batches, then headers
// and links.
func (s *snapshots) restoreHeaders(r *restoreState) ([]*proof.ValidatorSetLink, []int64, error) {
	sr := &spoolReader{r: r}
	defer sr.Close()
	ir := newItemReader(sr)
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var links []*proof.ValidatorSetLink
	var linkHeights []int64
	stage := tagNodeItem
	for {
		b, err := ir.nextRaw()
		if err != nil {
			return nil, nil, err
		}
		if b == nil {
			break
		}
		switch b[0] {
		case tagNodeItem, tagBatchItem:
			if int(b[0]) < stage {
				return nil, nil, errors.New("snapshot stream: items out of order")
			}
			stage = int(b[0])
			continue
		}
		stage = tagBatchItem + 1
		var it pb.SnapshotItem
		if err := proto.Unmarshal(b, &it); err != nil {
			return nil, nil, fmt.Errorf("snapshot stream: %w", err)
		}
		switch x := it.Item.(type) {
		case *pb.SnapshotItem_Header:
			v, err := proto.Marshal(x.Header)
			if err != nil {
				return nil, nil, err
			}
			if err := wb.Set(xsKey(x.Header.Height), v); err != nil {
				return nil, nil, err
			}
		case *pb.SnapshotItem_Link:
			if n := len(links); n > 0 && x.Link.Height <= linkHeights[n-1] {
				return nil, nil, errors.New("snapshot stream: validator links out of order")
			}
			links = append(links, x.Link.Link)
			linkHeights = append(linkHeights, x.Link.Height)
		default:
			return nil, nil, errors.New("snapshot stream: items out of order")
		}
	}
	return links, linkHeights, wb.Flush()
}

// wipe empties the state and the index after a rejected restore.
func (s *snapshots) wipe() error {
	if err := s.db.DropPrefix([]byte(prefixApp), []byte(prefixWiped)); err != nil {
		return err
	}
	if err := s.idx.leaves.reset(s.idx.nextBatch); err != nil {
		return err
	}
	s.idx.indexed.Store(0)
	return s.app.Reset()
}
