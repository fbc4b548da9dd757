package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/credence-ledger/credence/proof"
)

// queueLog is the queue on disk: an append-only log of segments
// <dir>/<n>.log, n counting up from 1. Each group commit appends one
// record and syncs the file before any of its hashes is acknowledged, so a
// hash costs 32 bytes of sequential write instead of a badger key set and
// later deleted. A record is
//
//	length  uint32  big-endian, of the body
//	crc     uint32  CRC-32C of the body
//	body    one or more runs: issuer length uint16, issuer,
//	        first queue position uint64, count uint32, count × 32-byte hash
//
// A segment is deleted once no hash in it is still queued (collect): each
// hash was cut into a synced batch in flight, or found in the index. Only
// the last segment can end in a torn record (a crash during its write,
// which was never acknowledged as its sync did not return); replay cuts it
// off. A bad record anywhere else is corruption, reported by file and
// offset and never skipped.
type queueLog struct {
	dir     string
	maxSize int64
	// sync makes a segment's writes durable (fdatasync); the scenario
	// tests watch and fail it. write is the segment's append.
	sync  func(*os.File) error
	write func(*os.File, []byte) (int, error)

	mu sync.Mutex
	// live counts, per segment on disk, its hashes still queued.
	live map[uint64]int
	// active is the segment appended to (0: none yet); exists tells
	// whether its file is on disk, f is it once opened, size its length.
	active uint64
	exists bool
	f      *os.File
	size   int64
	// broken is set when a failed append could not be undone: the segment
	// may end in a partial record, so nothing more is appended after it
	// until the undo succeeds.
	broken error
}

// Record framing and limits.
const (
	queueRecordHeader = 8
	// queueRecordMax bounds a record's body, whose length the header holds
	// in 32 bits.
	queueRecordMax = 1 << 31
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

func newQueueLog(dir string, maxSize int64) *queueLog {
	return &queueLog{
		dir: dir, maxSize: maxSize,
		sync:  datasync,
		write: func(f *os.File, b []byte) (int, error) { return f.Write(b) },
		live:  make(map[uint64]int),
	}
}

func (l *queueLog) path(seg uint64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%020d.log", seg))
}

// segments lists the segment numbers on disk, in order.
func (l *queueLog) segments() ([]uint64, error) {
	ents, err := os.ReadDir(l.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var segs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil || n == 0 {
			continue
		}
		segs = append(segs, n)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i] < segs[j] })
	return segs, nil
}

// tornTail is the end of the last segment that replay cut off.
type tornTail struct {
	file   string
	offset int64
	bytes  int64
}

// replay reads every record of every segment in order and calls fn for
// each hash, with the segment that holds it. It registers each segment
// with no hash held (scan holds those it keeps), and makes the last one
// the segment appended to. A torn tail of the last segment is truncated
// and returned.
func (l *queueLog) replay(fn func(issuer string, q queued)) (*tornTail, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	segs, err := l.segments()
	if err != nil {
		return nil, err
	}
	var torn *tornTail
	for i, seg := range segs {
		lastSeg := i == len(segs)-1
		b, err := os.ReadFile(l.path(seg))
		if err != nil {
			return nil, err
		}
		end, err := readRecords(b, seg, fn)
		if err != nil {
			if !lastSeg || !isTornTail(b, end) {
				return nil, fmt.Errorf("queue log %s: offset %d: %w", l.path(seg), end, err)
			}
			torn = &tornTail{file: l.path(seg), offset: end, bytes: int64(len(b)) - end}
			if err := l.truncate(seg, end); err != nil {
				return nil, err
			}
		}
		l.live[seg] = 0
		if lastSeg {
			l.active, l.exists, l.size = seg, true, end
		}
	}
	return torn, nil
}

// readRecords calls fn for each hash of the records of b, and returns the
// offset after the last good record, with an error when a bad one follows.
func readRecords(b []byte, seg uint64, fn func(issuer string, q queued)) (int64, error) {
	off := 0
	for off < len(b) {
		if len(b)-off < queueRecordHeader {
			return int64(off), errors.New("truncated record header")
		}
		n := binary.BigEndian.Uint32(b[off:])
		sum := binary.BigEndian.Uint32(b[off+4:])
		if n == 0 || n > queueRecordMax || int64(n) > int64(len(b)-off-queueRecordHeader) {
			return int64(off), fmt.Errorf("record length %d past the end of the file", n)
		}
		body := b[off+queueRecordHeader : off+queueRecordHeader+int(n)]
		if crc32.Checksum(body, crc32c) != sum {
			return int64(off), errors.New("record checksum mismatch")
		}
		if err := decodeRecord(body, seg, fn); err != nil {
			return int64(off), err
		}
		off += queueRecordHeader + int(n)
	}
	return int64(off), nil
}

// isTornTail reports whether the bad record at off can be the one a crash
// interrupted: it runs to the end of the file (cut short, or with pages
// not written), or the rest of the file is zeros (the file grew before its
// data reached the disk). A bad record with data after its end is not:
// every record is synced before the next is written.
func isTornTail(b []byte, off int64) bool {
	rest := b[off:]
	if len(rest) < queueRecordHeader {
		return true
	}
	if n := int64(binary.BigEndian.Uint32(rest)); n >= int64(len(rest)-queueRecordHeader) {
		return true
	}
	for _, c := range rest {
		if c != 0 {
			return false
		}
	}
	return true
}

func decodeRecord(body []byte, seg uint64, fn func(issuer string, q queued)) error {
	// Check the whole record before handing out any hash, so a bad record
	// adds nothing.
	type run struct {
		issuer string
		first  uint64
		hashes []byte
	}
	var runs []run
	for len(body) > 0 {
		if len(body) < 2 {
			return errors.New("bad record: short run")
		}
		il := int(binary.BigEndian.Uint16(body))
		if il == 0 || len(body) < 2+il+12 {
			return errors.New("bad record: short run")
		}
		issuer := string(body[2 : 2+il])
		body = body[2+il:]
		first := binary.BigEndian.Uint64(body)
		count := uint64(binary.BigEndian.Uint32(body[8:]))
		body = body[12:]
		if count == 0 || count*proof.HashSize > uint64(len(body)) {
			return errors.New("bad record: run count past its end")
		}
		runs = append(runs, run{issuer, first, body[:count*proof.HashSize]})
		body = body[count*proof.HashSize:]
	}
	for _, r := range runs {
		for j, h := range leaves(r.hashes) {
			fn(r.issuer, queued{qseq: r.first + j, hash: h, seg: seg})
		}
	}
	return nil
}

// encodeRecord frames entries as one record: a run per stretch of one
// issuer's consecutive queue positions.
func encodeRecord(entries []queueEntry) []byte {
	b := make([]byte, queueRecordHeader, queueRecordHeader+len(entries)*proof.HashSize+64)
	for i := 0; i < len(entries); {
		j := i + 1
		for j < len(entries) && entries[j].issuer == entries[i].issuer && entries[j].qseq == entries[j-1].qseq+1 {
			j++
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(entries[i].issuer)))
		b = append(b, entries[i].issuer...)
		b = binary.BigEndian.AppendUint64(b, entries[i].qseq)
		b = binary.BigEndian.AppendUint32(b, uint32(j-i))
		for _, e := range entries[i:j] {
			b = append(b, e.hash[:]...)
		}
		i = j
	}
	body := b[queueRecordHeader:]
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(body, crc32c))
	return b
}

// append writes entries as one record and syncs it. On any failure the
// segment is cut back to where it ended, so the log never keeps a record
// that was not acknowledged in front of one that was.
func (l *queueLog) append(entries []queueEntry) (uint64, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	for _, e := range entries {
		if len(e.issuer) == 0 || len(e.issuer) > 0xffff {
			return 0, fmt.Errorf("queue log: issuer id of %d bytes", len(e.issuer))
		}
	}
	rec := encodeRecord(entries)
	if len(rec)-queueRecordHeader > queueRecordMax {
		// Only a group far past any max_queued_hashes could reach it.
		return 0, fmt.Errorf("queue log: %d hashes in one record", len(entries))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		if err := l.undo(); err != nil {
			return 0, fmt.Errorf("queue log: a failed append is not undone yet: %w", l.broken)
		}
	}
	if !l.exists || l.size > 0 && l.size+int64(len(rec)) > l.maxSize {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	} else if l.f == nil {
		f, err := os.OpenFile(l.path(l.active), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return 0, err
		}
		l.f = f
	}
	if _, err := l.write(l.f, rec); err != nil {
		l.fail(err)
		return 0, err
	}
	if err := l.sync(l.f); err != nil {
		l.fail(err)
		return 0, err
	}
	l.size += int64(len(rec))
	l.live[l.active] += len(entries)
	return l.active, nil
}

// rotate closes the segment appended to and starts the next one.
func (l *queueLog) rotate() error {
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			return err
		}
		l.f = nil
	}
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return err
	}
	next := l.active + 1
	f, err := os.OpenFile(l.path(next), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// The new file must survive a crash before any record in it is
	// acknowledged.
	if err := syncDir(l.dir); err != nil {
		f.Close()
		os.Remove(l.path(next))
		return err
	}
	l.active, l.exists, l.f, l.size = next, true, f, 0
	l.live[next] = 0
	return nil
}

// fail undoes a failed append; if it cannot, the log refuses appends
// until it can.
func (l *queueLog) fail(err error) {
	if l.undo() != nil {
		l.broken = err
	}
}

// undo cuts the segment appended to back to its last synced record.
func (l *queueLog) undo() error {
	if err := l.f.Truncate(l.size); err != nil {
		return err
	}
	if err := l.sync(l.f); err != nil {
		return err
	}
	l.broken = nil
	return nil
}

func (l *queueLog) truncate(seg uint64, size int64) error {
	f, err := os.OpenFile(l.path(seg), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return l.sync(f)
}

// hold counts n more hashes of seg as queued; release n fewer.
func (l *queueLog) hold(seg uint64, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live[seg] += n
}

func (l *queueLog) release(seg uint64, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live[seg] -= n
}

// collect deletes every segment none of whose hashes is queued. The one
// appended to goes too: the next append starts a new segment.
func (l *queueLog) collect() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return nil
	}
	var gone []uint64
	for seg, n := range l.live {
		if n == 0 {
			gone = append(gone, seg)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i] < gone[j] })
	for _, seg := range gone {
		if seg == l.active {
			if l.f != nil {
				if err := l.f.Close(); err != nil {
					return err
				}
				l.f = nil
			}
			l.exists, l.size = false, 0
		}
		if err := os.Remove(l.path(seg)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		delete(l.live, seg)
	}
	return syncDir(l.dir)
}

func (l *queueLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
