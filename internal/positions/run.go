package positions

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"

	"github.com/credence-ledger/credence/internal/vfs"
)

// entry is a position: the tag in tag, the batch number in the high 40
// bits of at and the leaf index in the low 24. Comparing the two words
// compares the encoded bytes (both big-endian).
type entry struct{ tag, at uint64 }

const (
	entrySize = 16
	// leafIndexBits holds a batch's largest leaf index: a batch holds at
	// most 4 MiB / 32 = 131,072 leaves (app.MaxTxBytes).
	leafIndexBits   = 24
	maxLeafIndex    = 1<<leafIndexBits - 1
	maxBatchNum     = 1<<40 - 1
	runBlockEntries = 256 // 4 KiB: what one pread of a lookup reads
	runBlockBytes   = runBlockEntries * entrySize
	// The footer: magic (8), count (8), lo (8), hi (8), CRC32C (4) of the
	// entries and the footer's fields before it, zero (4).
	runFooterSize = 40
	runMagic      = "CRDXRUN1"
	// hashSize is a leaf's size: a SHA-256 hash.
	hashSize = 32
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func makeEntry(tag Tag, num, index uint64) entry {
	return entry{tag: uint64(tag), at: num<<leafIndexBits | index}
}

func (e entry) num() uint64   { return e.at >> leafIndexBits }
func (e entry) index() uint64 { return e.at & maxLeafIndex }

func cmpEntry(a, b entry) int {
	switch {
	case a.tag < b.tag:
		return -1
	case a.tag > b.tag:
		return 1
	case a.at < b.at:
		return -1
	case a.at > b.at:
		return 1
	}
	return 0
}

// run is one run file, open for reading.
type run struct {
	lo, hi uint64
	count  uint64
	f      vfs.File
	path   string
	// firsts is the tag of the first entry of each block.
	firsts []uint64
}

func runName(lo, hi uint64) string { return fmt.Sprintf("%016x-%016x.run", lo, hi) }

// RunBatches is the batches [lo, hi) a run file holds, by its name; ok is
// false for a name that is not a run's (a .tmp, anything else).
func RunBatches(name string) (lo, hi uint64, ok bool) {
	if len(name) != 16+1+16+4 || !strings.HasSuffix(name, ".run") || name[16] != '-' {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(name[:33], "%016x-%016x", &lo, &hi); err != nil || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

// runWriter writes a run file's entries and footer, 64 KiB at a time.
type runWriter struct {
	fs     vfs.FS
	f      vfs.File
	tmp    string
	buf    []byte
	crc    uint32
	count  uint64
	firsts []uint64
}

func newRunWriter(fsys vfs.FS, dir string, lo, hi uint64) (*runWriter, error) {
	tmp := filepath.Join(dir, runName(lo, hi)+".tmp")
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	return &runWriter{fs: fsys, f: f, tmp: tmp, buf: make([]byte, 0, 1<<16)}, nil
}

func (w *runWriter) add(e entry) error {
	if w.count%runBlockEntries == 0 {
		w.firsts = append(w.firsts, e.tag)
	}
	w.count++
	w.buf = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(w.buf, e.tag), e.at)
	if len(w.buf) == cap(w.buf) {
		return w.writeOut()
	}
	return nil
}

func (w *runWriter) writeOut() error {
	w.crc = crc32.Update(w.crc, crcTable, w.buf)
	_, err := w.f.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// finish writes the footer, syncs and installs the file under its name.
func (w *runWriter) finish(dir string, lo, hi uint64) (*run, error) {
	footer := make([]byte, runFooterSize)
	copy(footer, runMagic)
	binary.BigEndian.PutUint64(footer[8:], w.count)
	binary.BigEndian.PutUint64(footer[16:], lo)
	binary.BigEndian.PutUint64(footer[24:], hi)
	path := filepath.Join(dir, runName(lo, hi))
	err := w.writeOut()
	binary.BigEndian.PutUint32(footer[32:], crc32.Update(w.crc, crcTable, footer[:32]))
	if err == nil {
		_, err = w.f.Write(footer)
	}
	if err == nil {
		err = w.f.Sync()
	}
	if err == nil {
		err = w.fs.Rename(w.tmp, path)
	}
	if err == nil {
		err = w.fs.SyncDir(dir)
	}
	if err != nil {
		w.discard()
		return nil, err
	}
	return &run{lo: lo, hi: hi, count: w.count, f: w.f, path: path, firsts: w.firsts}, nil
}

func (w *runWriter) discard() {
	w.f.Close()
	w.fs.Remove(w.tmp)
}

// runReader reads a run's entries in order, 64 KiB at a time.
type runReader struct {
	f     vfs.File
	off   int64 // of the next chunk
	left  uint64
	chunk []byte
	pos   int
	// crc, when not nil, is updated with every byte read.
	crc *uint32
}

func (r *run) reader() *runReader {
	return &runReader{f: r.f, left: r.count}
}

func (rr *runReader) next() (entry, bool, error) {
	if rr.pos == len(rr.chunk) {
		if rr.left == 0 {
			return entry{}, false, nil
		}
		n := min(rr.left, 4096)
		if rr.chunk == nil {
			rr.chunk = make([]byte, 4096*entrySize)
		}
		rr.chunk = rr.chunk[:n*entrySize]
		if _, err := rr.f.ReadAt(rr.chunk, rr.off); err != nil {
			return entry{}, false, err
		}
		if rr.crc != nil {
			*rr.crc = crc32.Update(*rr.crc, crcTable, rr.chunk)
		}
		rr.off += int64(len(rr.chunk))
		rr.left -= n
		rr.pos = 0
	}
	b := rr.chunk[rr.pos : rr.pos+entrySize]
	rr.pos += entrySize
	return entry{tag: binary.BigEndian.Uint64(b[:8]), at: binary.BigEndian.Uint64(b[8:])}, true, nil
}

// openRun opens a run file and checks it whole: footer, size, CRC, order
// and batch numbers.
func openRun(fsys vfs.FS, path string, lo, hi uint64) (_ *run, err error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < runFooterSize {
		return nil, fmt.Errorf("%d bytes, shorter than a footer", st.Size())
	}
	footer := make([]byte, runFooterSize)
	if _, err := f.ReadAt(footer, st.Size()-runFooterSize); err != nil {
		return nil, err
	}
	if string(footer[:8]) != runMagic {
		return nil, errors.New("no run footer")
	}
	count := binary.BigEndian.Uint64(footer[8:])
	if count > uint64(st.Size())/entrySize || uint64(st.Size()) != count*entrySize+runFooterSize {
		return nil, fmt.Errorf("%d bytes for %d entries", st.Size(), count)
	}
	if binary.BigEndian.Uint64(footer[16:]) != lo || binary.BigEndian.Uint64(footer[24:]) != hi {
		return nil, fmt.Errorf("footer names batches [%d, %d), the file's name [%d, %d)",
			binary.BigEndian.Uint64(footer[16:]), binary.BigEndian.Uint64(footer[24:]), lo, hi)
	}
	r := &run{lo: lo, hi: hi, count: count, f: f, path: path}
	rr := r.reader()
	var crc uint32
	rr.crc = &crc
	var prev entry
	for i := uint64(0); i < count; i++ {
		e, _, err := rr.next()
		if err != nil {
			return nil, err
		}
		if i%runBlockEntries == 0 {
			r.firsts = append(r.firsts, e.tag)
		}
		if (i > 0 && cmpEntry(prev, e) > 0) || e.num() < lo || e.num() >= hi {
			return nil, fmt.Errorf("entry %d out of order or of a batch outside the run", i)
		}
		prev = e
	}
	if crc32.Update(crc, crcTable, footer[:32]) != binary.BigEndian.Uint32(footer[32:]) {
		return nil, errors.New("checksum mismatch")
	}
	return r, nil
}
