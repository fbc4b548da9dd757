package leafstore

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

	"github.com/credence-ledger/credence/internal/vfs"
	"github.com/credence-ledger/credence/proof"
)

// ErrDamaged marks a store that does not hold what the node's values say
// it must: cut short, or located by a value of no known form.
var ErrDamaged = errors.New("store damaged")

// Options tune a Store; the zero value is the defaults.
type Options struct {
	// FS holds the segments. Default vfs.Default, the operating system.
	FS vfs.FS
	// SegmentBytes is the span of global offsets each segment covers, and
	// so the most one batch's leaves may take. Part of the format: open a
	// store with the size it was written with. Default 1 GiB.
	SegmentBytes uint64
}

const defaultSegmentBytes = 1 << 30

// Sizes of the location forms (doc.go).
const (
	locSize    = 12
	locCRCSize = 16
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Store is the leaf store in one directory. Its methods may be called
// from several goroutines; appends come from one writer at a time.
type Store struct {
	dir      string
	fs       vfs.FS
	segBytes uint64

	mu    sync.Mutex
	files map[uint64]vfs.File // open segments
	end   uint64
	dirty map[uint64]bool // segments appended to since the last sync
	newer bool            // a segment was created since the last sync
}

// Open opens the store in dir, creating dir if need be; appends continue
// after its last segment's last byte. end is where the leaves of the last
// batch the caller numbered end: a store short of it is ErrDamaged.
func Open(dir string, end uint64, opts Options) (*Store, error) {
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = defaultSegmentBytes
	}
	s := &Store{dir: dir, fs: opts.FS, segBytes: opts.SegmentBytes, files: make(map[uint64]vfs.File), dirty: make(map[uint64]bool)}
	if err := s.fs.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	names, err := s.fs.ReadDir(dir)
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
		s.end = max(s.end, seg*s.segBytes+uint64(fi.Size()))
	}
	if end > s.end {
		return nil, fmt.Errorf("%w: the leaves log ends at %d, before the last batch indexed, which ends at %d", ErrDamaged, s.end, end)
	}
	return s, nil
}

func segmentName(seg uint64) string { return fmt.Sprintf("%016x.leaves", seg) }

// SegmentPath is the file of segment seg of the store in dir.
func SegmentPath(dir string, seg uint64) string { return filepath.Join(dir, segmentName(seg)) }

// Locate is the segment file that holds global offset off, and off's
// offset in it.
func (s *Store) Locate(off uint64) (path string, at uint64) {
	return SegmentPath(s.dir, off/s.segBytes), off % s.segBytes
}

// Append writes hashes at the end of the store and returns the value that
// locates them, with their checksum. They are durable only after Sync.
func (s *Store) Append(hashes []byte) ([]byte, error) {
	n := uint64(len(hashes))
	if n > s.segBytes {
		return nil, fmt.Errorf("leaves of %d bytes exceed a log segment", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end%s.segBytes+n > s.segBytes {
		s.end = (s.end/s.segBytes + 1) * s.segBytes
	}
	seg := s.end / s.segBytes
	f, err := s.segment(seg, true)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteAt(hashes, int64(s.end%s.segBytes)); err != nil {
		return nil, err
	}
	loc := Location{Offset: s.end, Length: len(hashes), crc: crc32.Checksum(hashes, crcTable), HasCRC: true}
	s.end += n
	s.dirty[seg] = true
	return loc.encode(), nil
}

// Sync makes every append so far durable: the segments written and, when
// one was created, the directory.
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for seg := range s.dirty {
		if err := s.files[seg].Sync(); err != nil {
			return err
		}
		delete(s.dirty, seg)
	}
	if s.newer {
		if err := s.fs.SyncDir(s.dir); err != nil {
			return err
		}
		s.newer = false
	}
	return nil
}

// segment is segment seg's file, opened (or created) on first use. Call
// with mu held.
func (s *Store) segment(seg uint64, create bool) (vfs.File, error) {
	if f, ok := s.files[seg]; ok {
		return f, nil
	}
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE
	}
	f, err := s.fs.OpenFile(SegmentPath(s.dir, seg), flag, 0o600)
	if err != nil {
		return nil, err
	}
	s.files[seg] = f
	s.newer = s.newer || create
	return f, nil
}

// Read is the leaves value v locates, or, from an earlier version's value,
// the leaves it holds. The caller checks them (Location.Matches) before
// any use.
func (s *Store) Read(v []byte) ([]byte, error) {
	loc, inline, err := Decode(v)
	if err != nil || inline {
		return v, err
	}
	buf := make([]byte, loc.Length)
	return buf, s.readAt(buf, loc.Offset)
}

// Leaves reads the len(dst)/HashSize leaves from leaf first of the batch
// whose value is v into dst; false when the batch has not that many.
// Unchecked: one pread, for a caller that checks them itself (against the
// batch checked whole before, or its tree).
func (s *Store) Leaves(v []byte, first uint64, dst []byte) (bool, error) {
	loc, inline, err := Decode(v)
	if err != nil {
		return false, err
	}
	n := uint64(len(dst)) / proof.HashSize
	if uint64(len(dst))%proof.HashSize != 0 || first >= uint64(loc.Length)/proof.HashSize || n > uint64(loc.Length)/proof.HashSize-first {
		return false, nil
	}
	at := first * proof.HashSize
	if inline {
		copy(dst, v[at:])
		return true, nil
	}
	return true, s.readAt(dst, loc.Offset+at)
}

func (s *Store) readAt(buf []byte, off uint64) error {
	s.mu.Lock()
	f, err := s.segment(off/s.segBytes, false)
	s.mu.Unlock()
	if err == nil {
		_, err = f.ReadAt(buf, int64(off%s.segBytes))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %d bytes of leaves at %d are past the leaves log's end", ErrDamaged, len(buf), off)
	}
	return err
}

// Reset empties the store, after the batches its values located were
// wiped.
func (s *Store) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for seg, f := range s.files {
		errs = append(errs, f.Close())
		delete(s.files, seg)
	}
	clear(s.dirty)
	names, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, d := range names {
		if strings.HasSuffix(d.Name(), ".leaves") {
			errs = append(errs, s.fs.Remove(filepath.Join(s.dir, d.Name())))
		}
	}
	s.end = 0
	errs = append(errs, s.fs.SyncDir(s.dir))
	return errors.Join(errs...)
}

// Close syncs what was appended since the last Sync and closes the
// segments.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for seg, f := range s.files {
		if s.dirty[seg] {
			errs = append(errs, f.Sync())
		}
		errs = append(errs, f.Close())
	}
	s.files = map[uint64]vfs.File{}
	return errors.Join(errs...)
}

// Location is where a batch's leaves are in the store (doc.go).
type Location struct {
	Offset uint64 // global: segment Offset/SegmentBytes
	Length int    // bytes: a nonzero multiple of proof.HashSize
	// HasCRC says the value holds the CRC-32C of the leaves as appended;
	// one written before the checksum was added holds none.
	HasCRC bool
	crc    uint32
}

func (l Location) encode() []byte {
	b := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(make([]byte, 0, locCRCSize), l.Offset), uint32(l.Length))
	if l.HasCRC {
		b = binary.BigEndian.AppendUint32(b, l.crc)
	}
	return b
}

// Matches reports whether hashes are the leaves l's checksum was taken
// of; false when l holds no checksum.
func (l Location) Matches(hashes []byte) bool {
	return l.HasCRC && crc32.Checksum(hashes, crcTable) == l.crc
}

// Decode reads a value: the location of leaves in the store, or (inline)
// leaves an earlier version kept in the value itself, whose Length alone
// is set.
func Decode(v []byte) (loc Location, inline bool, err error) {
	switch {
	case len(v) == locSize || len(v) == locCRCSize:
		n := int(binary.BigEndian.Uint32(v[8:]))
		if n == 0 || n%proof.HashSize != 0 {
			return Location{}, false, fmt.Errorf("%w: a batch's leaves located as %d bytes", ErrDamaged, n)
		}
		loc = Location{Offset: binary.BigEndian.Uint64(v), Length: n}
		if len(v) == locCRCSize {
			loc.crc, loc.HasCRC = binary.BigEndian.Uint32(v[locSize:]), true
		}
		return loc, false, nil
	case len(v) > 0 && len(v)%proof.HashSize == 0:
		return Location{Length: len(v)}, true, nil
	}
	return Location{}, false, fmt.Errorf("%w: a batch's leaves entry of %d bytes", ErrDamaged, len(v))
}

// End is where the leaves value v locates end in the store, as its length
// says, checked or not: what Open's end is computed from. 0 for leaves
// held inline and a value of no known form.
func End(v []byte) uint64 {
	if len(v) != locSize && len(v) != locCRCSize {
		return 0
	}
	return binary.BigEndian.Uint64(v) + uint64(binary.BigEndian.Uint32(v[8:]))
}
