package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/vfs"
	"github.com/credence-ledger/credence/proof"
)

// leafLog holds the leaves of every indexed batch, appended in the order
// the batches are numbered to segment files data/leaves/<n>.leaves; the
// batch's xb/ key holds only where they are (leafLoc). Kept as badger
// values, every batch's leaves (32 bytes a hash, hundreds of KB a batch)
// were carried through the memtable, the level-0 table and each compaction
// after it: the largest share of a validator's CPU left, and table
// builders of tens of MB each.
//
// The log is append-only and nothing in it is ever cut at open: leaves
// appended for batches whose numbers a crash took back (before the next
// batch number was stored) stay as unreferenced bytes, and the batches
// numbered again are appended after them. Cutting the log to where the
// index says it ends would turn one damaged index entry into the loss of
// every batch after it. Appends are synced before the badger write that
// points at them; at open, the log must reach as far as the last batch
// numbered says.
//
// A location is a global offset: segment n covers [n, n+1) ×
// leafSegmentBytes, and a batch never spans two segments. With it, xb/
// holds the CRC-32C of the leaves as appended: nothing else guards the
// bytes of a plain file, and a leaf changed on disk would otherwise be
// answered as the batch's (leafcheck.go checks every read).
type leafLog struct {
	dir string

	mu    sync.Mutex
	files map[uint64]*os.File // open segments
	end   uint64
	dirty map[uint64]bool // segments appended to since the last sync
	newer bool            // a segment was created since the last sync
}

// leafSegmentBytes is the size of a segment; a variable for tests.
var leafSegmentBytes uint64 = 1 << 30

// leafLocSize is the size of an xb/ value that locates leaves in the log:
// offset (8), length (4), and since the leaves' checksum was added,
// CRC-32C (4): leafLocCRCSize. Values of the earlier size are still read
// (checked against the batch's root instead). Leaves kept in badger
// itself, as an earlier version did, are a nonzero multiple of 32 bytes,
// never 12 or 16.
const (
	leafLocSize    = 12
	leafLocCRCSize = 16
)

// encodeLeafLoc is a location without a checksum, as an earlier version
// wrote it.
func encodeLeafLoc(off uint64, n int) []byte {
	return binary.BigEndian.AppendUint32(u64(make([]byte, 0, leafLocCRCSize), off), uint32(n))
}

// encodeLeafLocCRC is the location of hashes appended at off.
func encodeLeafLocCRC(off uint64, hashes []byte) []byte {
	return binary.BigEndian.AppendUint32(encodeLeafLoc(off, len(hashes)), crc32.Checksum(hashes, crcTable))
}

// leafLocCRC is the checksum an xb/ value holds; false when it holds none.
func leafLocCRC(v []byte) (uint32, bool) {
	if len(v) != leafLocCRCSize {
		return 0, false
	}
	return binary.BigEndian.Uint32(v[leafLocSize:]), true
}

func segmentName(seg uint64) string { return fmt.Sprintf("%016x.leaves", seg) }

// segmentPath is the file that holds the byte at global offset off.
func (l *leafLog) segmentPath(off uint64) string {
	return filepath.Join(l.dir, segmentName(off/leafSegmentBytes))
}

// openLeafLog opens the log in dir, whose appends continue after its last
// segment's last byte, and checks that it holds the leaves of the last
// of the batches [0, next) in db.
func openLeafLog(dir string, db *badger.DB, next uint64) (*leafLog, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	l := &leafLog{dir: dir, files: make(map[uint64]*os.File), dirty: make(map[uint64]bool)}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, d := range names {
		var seg uint64
		if _, err := fmt.Sscanf(d.Name(), "%016x.leaves", &seg); err != nil || d.Name() != segmentName(seg) {
			continue
		}
		fi, err := d.Info()
		if err != nil {
			return nil, err
		}
		l.end = max(l.end, seg*leafSegmentBytes+uint64(fi.Size()))
	}
	want, err := leafLogEnd(db, next)
	if err != nil {
		return nil, err
	}
	if want > l.end {
		return nil, fmt.Errorf("%w: the leaves log ends at %d, before the last batch indexed, which ends at %d; %s", errStoreDamaged, l.end, want, recoverHint)
	}
	return l, nil
}

// leafLogEnd is where the leaves of the last batch numbered below next
// end in the log: 0 when none is there (none indexed, or all kept in
// badger by an earlier version).
func leafLogEnd(db *badger.DB, next uint64) (uint64, error) {
	var end uint64
	err := db.View(func(txn *badger.Txn) error {
		// Numbers below next may hold no batch: wiped by a rejected
		// restore, or skipped by a write cut short.
		for num := next; num > 0; num-- {
			ref, err := batchNumbered(txn, num-1)
			if errors.Is(err, errNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			loc, err := getValue(txn, xbKey(ref.issuer, ref.seq))
			if errors.Is(err, errNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if len(loc) == leafLocSize || len(loc) == leafLocCRCSize {
				end = binary.BigEndian.Uint64(loc) + uint64(binary.BigEndian.Uint32(loc[8:]))
			}
			return nil
		}
		return nil
	})
	return end, err
}

// append writes hashes at the end of the log and returns their xb/ value.
func (l *leafLog) append(hashes []byte) ([]byte, error) {
	n := uint64(len(hashes))
	if n > leafSegmentBytes {
		return nil, fmt.Errorf("leaves of %d bytes exceed a log segment", n)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.end%leafSegmentBytes+n > leafSegmentBytes {
		l.end = (l.end/leafSegmentBytes + 1) * leafSegmentBytes
	}
	seg := l.end / leafSegmentBytes
	f, err := l.segment(seg, true)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteAt(hashes, int64(l.end%leafSegmentBytes)); err != nil {
		return nil, err
	}
	off := l.end
	l.end += n
	l.dirty[seg] = true
	return encodeLeafLocCRC(off, hashes), nil
}

// sync makes every append so far durable.
func (l *leafLog) sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for seg := range l.dirty {
		if err := l.files[seg].Sync(); err != nil {
			return err
		}
		delete(l.dirty, seg)
	}
	if l.newer {
		if err := vfs.Default.SyncDir(l.dir); err != nil {
			return err
		}
		l.newer = false
	}
	return nil
}

// segment is segment seg's file, opened (or created) on first use. Call
// with mu held.
func (l *leafLog) segment(seg uint64, create bool) (*os.File, error) {
	if f, ok := l.files[seg]; ok {
		return f, nil
	}
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE
	}
	f, err := os.OpenFile(filepath.Join(l.dir, segmentName(seg)), flag, 0o600)
	if err != nil {
		return nil, err
	}
	l.files[seg] = f
	l.newer = l.newer || create
	return f, nil
}

// read reads the leaves an xb/ value locates, or, from an earlier
// version's value, the leaves it holds.
func (l *leafLog) read(v []byte) ([]byte, error) {
	off, n, inline, err := decodeLeafLoc(v)
	if err != nil || inline {
		return v, err
	}
	buf := make([]byte, n)
	return buf, l.readAt(buf, off)
}

// leaf reads leaf index of the batch whose xb/ value is v into dst; false
// when the batch has no such leaf.
func (l *leafLog) leaf(v []byte, index uint64, dst *[proof.HashSize]byte) (bool, error) {
	off, n, inline, err := decodeLeafLoc(v)
	if err != nil {
		return false, err
	}
	if index >= uint64(n)/proof.HashSize {
		return false, nil
	}
	at := index * proof.HashSize
	if inline {
		copy(dst[:], v[at:])
		return true, nil
	}
	return true, l.readAt(dst[:], off+at)
}

func (l *leafLog) readAt(buf []byte, off uint64) error {
	l.mu.Lock()
	f, err := l.segment(off/leafSegmentBytes, false)
	l.mu.Unlock()
	if err == nil {
		_, err = f.ReadAt(buf, int64(off%leafSegmentBytes))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %d bytes of leaves at %d are past the leaves log's end", errStoreDamaged, len(buf), off)
	}
	return err
}

// decodeLeafLoc reads an xb/ value: a location in the log, or leaves held
// inline by an earlier version.
func decodeLeafLoc(v []byte) (off uint64, n int, inline bool, err error) {
	switch {
	case len(v) == leafLocSize || len(v) == leafLocCRCSize:
		n = int(binary.BigEndian.Uint32(v[8:]))
		if n == 0 || n%proof.HashSize != 0 {
			return 0, 0, false, fmt.Errorf("%w: a batch's leaves located as %d bytes", errStoreDamaged, n)
		}
		return binary.BigEndian.Uint64(v), n, false, nil
	case len(v) > 0 && len(v)%proof.HashSize == 0:
		return 0, len(v), true, nil
	}
	return 0, 0, false, fmt.Errorf("%w: a batch's leaves entry of %d bytes", errStoreDamaged, len(v))
}

// reset empties the log, after its batches were wiped from badger.
func (l *leafLog) reset() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for seg, f := range l.files {
		errs = append(errs, f.Close())
		delete(l.files, seg)
	}
	clear(l.dirty)
	names, err := os.ReadDir(l.dir)
	if err != nil {
		return err
	}
	for _, d := range names {
		if strings.HasSuffix(d.Name(), ".leaves") {
			errs = append(errs, os.Remove(filepath.Join(l.dir, d.Name())))
		}
	}
	l.end = 0
	errs = append(errs, vfs.Default.SyncDir(l.dir))
	return errors.Join(errs...)
}

func (l *leafLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for seg, f := range l.files {
		if l.dirty[seg] {
			errs = append(errs, f.Sync())
		}
		errs = append(errs, f.Close())
	}
	l.files = map[uint64]*os.File{}
	return errors.Join(errs...)
}
