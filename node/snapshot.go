package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
// chunks under CometBFT's 16 MB chunk message.
const chunkSize = 8 << 20

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
	b, err := os.ReadFile(a.snaps.chunkPath(int64(req.Height), req.Chunk))
	if err != nil {
		a.snaps.log.Info("snapshot chunk not available", "height", req.Height, "chunk", req.Chunk, "err", err)
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

	restore *restoreState
}

type restoreState struct {
	snap    *abci.Snapshot
	appHash []byte
	hashes  [][]byte
	chunks  [][]byte
	got     int
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

// chunkWriter cuts the item stream into chunk files and hashes them.
type chunkWriter struct {
	dir    string
	buf    []byte
	n      uint32
	hashes [][]byte
}

func (w *chunkWriter) item(it *pb.SnapshotItem) error {
	b, err := proto.Marshal(it)
	if err != nil {
		return err
	}
	w.buf = binary.AppendUvarint(w.buf, uint64(len(b)))
	w.buf = append(w.buf, b...)
	if len(w.buf) >= chunkSize {
		return w.flush()
	}
	return nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	sum := sha256.Sum256(w.buf)
	w.hashes = append(w.hashes, sum[:])
	if err := os.WriteFile(filepath.Join(w.dir, fmt.Sprintf("chunk-%06d", w.n)), w.buf, 0o600); err != nil {
		return err
	}
	w.n++
	w.buf = w.buf[:0]
	return nil
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
		var hashes, prf []byte
		if err := s.db.View(func(txn *badger.Txn) error {
			var err error
			if hashes, err = getValue(txn, xbKey(rec.Issuer, rec.Seq)); err != nil {
				return err
			}
			prf, err = getValue(txn, xpKey(rec.Issuer, rec.Seq))
			return err
		}); err != nil {
			return fmt.Errorf("batch %s/%d: %w", rec.Issuer, rec.Seq, err)
		}
		if rec.Height < h {
			heights[rec.Height+1] = true
		}
		return w.item(&pb.SnapshotItem{Item: &pb.SnapshotItem_Batch{Batch: &pb.SnapshotBatch{Record: raw, Proof: prf, Hashes: hashes}}})
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
	if s.app.Height() != 0 {
		s.log.Error("snapshot offered to a node that has state")
		return abci.ResponseOfferSnapshot_ABORT
	}
	s.restore = &restoreState{snap: snap, appHash: appHash, hashes: m.ChunkHashes, chunks: make([][]byte, snap.Chunks)}
	s.log.Info("restoring snapshot", "height", snap.Height, "chunks", snap.Chunks)
	return abci.ResponseOfferSnapshot_ACCEPT
}

func (s *snapshots) apply(req *abci.RequestApplySnapshotChunk) *abci.ResponseApplySnapshotChunk {
	r := s.restore
	if r == nil || int(req.Index) >= len(r.chunks) {
		return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_ABORT}
	}
	sum := sha256.Sum256(req.Chunk)
	if !bytes.Equal(sum[:], r.hashes[req.Index]) {
		s.log.Warn("snapshot chunk does not match its hash; refetching", "chunk", req.Index, "sender", req.Sender)
		return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_RETRY,
			RefetchChunks: []uint32{req.Index}, RejectSenders: []string{req.Sender}}
	}
	if r.chunks[req.Index] == nil {
		r.got++
	}
	r.chunks[req.Index] = req.Chunk
	if r.got < len(r.chunks) {
		return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_ACCEPT}
	}
	s.restore = nil
	if err := s.restoreAll(r); err != nil {
		s.log.Error("snapshot rejected", "height", r.snap.Height, "err", err)
		if werr := s.wipe(); werr != nil {
			s.log.Error("could not clear a rejected snapshot's state", "err", werr)
			return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_ABORT}
		}
		return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_REJECT_SNAPSHOT}
	}
	s.log.Info("snapshot restored", "height", r.snap.Height)
	return &abci.ResponseApplySnapshotChunk{Result: abci.ResponseApplySnapshotChunk_ACCEPT}
}

// itemReader reads the item stream with one item of lookahead.
type itemReader struct {
	r    *bytes.Reader
	peek *pb.SnapshotItem
}

func (ir *itemReader) next() (*pb.SnapshotItem, error) {
	if ir.peek != nil {
		it := ir.peek
		ir.peek = nil
		return it, nil
	}
	n, err := binary.ReadUvarint(ir.r)
	if err == io.EOF {
		return nil, nil
	}
	if err != nil || n > uint64(ir.r.Len()) {
		return nil, fmt.Errorf("snapshot stream: bad item length")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(ir.r, b); err != nil {
		return nil, err
	}
	var it pb.SnapshotItem
	if err := proto.Unmarshal(b, &it); err != nil {
		return nil, fmt.Errorf("snapshot stream: %w", err)
	}
	return &it, nil
}

// restoreAll imports the state, checks it is the state consensus trusts,
// checks every batch of the index against that state or against headers
// signed by the trusted validators, and writes the index.
func (s *snapshots) restoreAll(r *restoreState) error {
	height := int64(r.snap.Height)
	ir := &itemReader{r: bytes.NewReader(bytes.Join(r.chunks, nil))}
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
	batches := make(map[string]*pb.SnapshotBatch)
	headers := make(map[int64]*pb.SnapshotHeader)
	var links []*proof.ValidatorSetLink
	var linkHeights []int64
	for {
		it, err := ir.next()
		if err != nil {
			return err
		}
		if it == nil {
			break
		}
		switch x := it.Item.(type) {
		case *pb.SnapshotItem_Batch:
			var rec proof.BatchRecord
			if err := proto.Unmarshal(x.Batch.Record, &rec); err != nil {
				return fmt.Errorf("batch record: %w", err)
			}
			k := string(proof.BatchKey(rec.Issuer, rec.Seq))
			if batches[k] != nil {
				return fmt.Errorf("batch %s/%d twice", rec.Issuer, rec.Seq)
			}
			batches[k] = x.Batch
		case *pb.SnapshotItem_Header:
			headers[x.Header.Height] = x.Header
		case *pb.SnapshotItem_Link:
			if n := len(links); n > 0 && x.Link.Height <= linkHeights[n-1] {
				return errors.New("snapshot stream: validator links out of order")
			}
			links = append(links, x.Link.Link)
			linkHeights = append(linkHeights, x.Link.Height)
		default:
			return errors.New("snapshot stream: state node after the state")
		}
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
	var out []app.CommittedBatch
	if err := s.app.BatchRecords(height, func(key, raw []byte) error {
		b := batches[string(key)]
		if b == nil {
			return fmt.Errorf("state holds batch %q that the snapshot's index lacks", key)
		}
		delete(batches, string(key))
		if !bytes.Equal(b.Record, raw) {
			return fmt.Errorf("batch %q: record differs from state", key)
		}
		var rec proof.BatchRecord
		if err := proto.Unmarshal(raw, &rec); err != nil {
			return err
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
		} else {
			hdr := headers[rec.Height+1]
			if hdr == nil {
				return fmt.Errorf("batch %s/%d: no signed header for height %d", rec.Issuer, rec.Seq, rec.Height+1)
			}
			if err := proof.VerifyBatch(&rec, b.Proof, hdr.SignedHeader, hdr.Validators, linksBelow(rec.Height+1), s.trust); err != nil {
				return fmt.Errorf("batch %s/%d: %w", rec.Issuer, rec.Seq, err)
			}
		}
		out = append(out, app.CommittedBatch{Record: &rec, RecordBytes: raw, Proof: b.Proof, Hashes: b.Hashes})
		return nil
	}); err != nil {
		return err
	}
	if len(batches) > 0 {
		return fmt.Errorf("snapshot's index holds %d batches the state does not", len(batches))
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for h, hdr := range headers {
		v, err := proto.Marshal(hdr)
		if err != nil {
			return err
		}
		if err := wb.Set(xsKey(h), v); err != nil {
			return err
		}
	}
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
	for _, b := range out {
		if b.Record.Height == height {
			// Header height+1 is kept when block height+2 is indexed.
			if err := wb.Set(xwKey(height+1), []byte{}); err != nil {
				return err
			}
			break
		}
	}
	// Every other header the index needs came with the snapshot.
	if err := wb.Set(keyHeadersKept, []byte{}); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	return s.idx.index(height, out)
}

// wipe empties the state and the index after a rejected restore.
func (s *snapshots) wipe() error {
	if err := s.db.DropPrefix(appPrefix, []byte("x")); err != nil {
		return err
	}
	if err := s.idx.leaves.reset(s.idx.nextBatch); err != nil {
		return err
	}
	return s.app.Reset()
}
