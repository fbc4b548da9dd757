package node

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
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

// State-sync restore, the side that receives a snapshot: OfferSnapshot
// checks the metadata, ApplySnapshotChunk keeps each chunk on disk as it
// comes (data/snapshots/restoring), and the last chunk starts restoreAll,
// which imports the state, checks it is the state consensus trusts, checks
// every batch against that state or against headers signed by the trusted
// validators, and writes the index.
//
// Crash rules. CometBFT saves its own state only after the restore
// returns, so the node marks its progress in its own database, the key xq
// (keyRestoring, under "x" so that a wipe clears it):
//   - absent: no restore, or one whose state a block was committed on;
//   - restoreBegun, set before anything of the state or index is written:
//     a start that finds it wipes the state and the index, and consensus,
//     which never saw the restore, offers a snapshot again;
//   - restoreDone, set once the index is written: the restore is whole
//     but consensus may not have taken it up. An offer that finds it means
//     consensus did not, and wipes before restoring anew; the first block
//     committed on it clears the marker (confirmRestore).
// A restore that fails a check is wiped at once and the snapshot rejected,
// so the node is left empty for the next offer. The spooled chunks are
// never synced: a crash abandons them with the rest.

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
	groupLimit := cmp.Or(s.restoreBatchBytes, defaultRestoreBatchBytes)
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
		if groupBytes += len(b.Hashes); groupBytes >= groupLimit {
			if err := s.idx.indexBatches(height, group); err != nil {
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
	if err := s.idx.indexBatches(height, group); err != nil {
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
	if err := s.idx.index.reset(s.idx.nextBatch); err != nil {
		return err
	}
	s.idx.indexed.Store(0)
	if err := s.receipts.forget(); err != nil {
		return err
	}
	return s.app.Reset()
}
