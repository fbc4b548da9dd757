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
//	length  uint32  big-endian, of the body, at most maxBody
//	crc     uint32  CRC-32C of the body
//	body    one or more runs: issuer length uint16, issuer,
//	        first queue position uint64, count uint32, count × 32-byte hash
//
// A segment is deleted once no hash in it is still queued (collect): each
// hash was cut into a synced batch in flight, or found in the index.
//
// A crash can leave one thing only: a torn tail, the end of the last
// segment after its last synced record, with no whole record after it
// (every record is synced before the next is written). replay cuts it off.
// Anything else is damage, and the node refuses to start, naming the file,
// the offset and the recovery: a bad record in an earlier segment, or with
// a whole record after it, or a length over the largest record the node
// writes (maxBody), or any damage the mark below rules out.
//
// Truncation and a lost segment cannot be told from a crash by the log
// alone, so the node's database keeps a mark (keyQueueMark, queueMark) of
// the segments that must be on disk and how many synced bytes each held.
// It is written where the database is synced anyway, so no group commit
// pays for it: at each cut (before the sync that precedes collect), at
// start (reconcile) and at a clean stop; only a new segment's mark is
// synced at once, before any record in it is acknowledged. At start a
// segment the mark lists that is missing, or shorter than its mark, or
// with a bad record inside its marked length, is damage; so is a missing
// number among the segments created since. What no mark vouches for is
// the residual window: the records appended since the last mark, which
// after a crash are those acknowledged since the last cut (normally under
// one batch_interval of them). Truncation or damage there that looks like
// a torn write is taken for one, and those hashes are lost unseen.
//
// A segment the mark lists goes only after a mark without it is durable
// (collect skips what the last mark listed), and the mark never lists a
// segment collect may delete, so a crash anywhere leaves a mark the disk
// satisfies.
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

	// maxBody bounds a record's body: appends split larger groups, and
	// replay takes a longer length for damage, not a torn write.
	maxBody int64
	// saveMark keeps an encoded queueMark in the node's database; durable:
	// synced before it returns. Nil: a log without a database, unmarked.
	saveMark func(m []byte, durable bool) error
	// ends is the synced length of each segment on disk but the active
	// one (size); listed is what the last mark listed, which collect
	// keeps; unmarked is set when that mark could not be written, and
	// holds collect back until one is.
	ends     map[uint64]int64
	listed   map[uint64]bool
	unmarked bool
}

// Record framing and limits.
const (
	queueRecordHeader = 8
	// queueRecordMax bounds a record's body, whose length the header holds
	// in 32 bits.
	queueRecordMax = 1 << 31
	// queueRunMax is the most a run adds to its hashes: issuer length, an
	// issuer id of up to 64 bytes (app.ValidID), position and count.
	queueRunMax = 2 + 64 + 8 + 4
)

// queueRecordHashes is the most hashes one record holds: a group commit
// never queues more than max_queued_hashes, a requeue no more than a batch,
// and no single request more than maxSubmitHashes. Appends split anything
// larger, so replay may take a longer length for damage. Lowering
// max_queued_hashes or batch_max_leaves lowers the bound for records
// already written: the refusal says so.
func queueRecordHashes(c *config) int {
	return max(c.Memory.MaxQueuedHashes, c.BatchMaxLeaves, maxSubmitHashes)
}

// queueBodyLimit is the largest body of a record of up to n hashes, each
// its own run at worst.
func queueBodyLimit(n int) int64 {
	return min(int64(n)*(proof.HashSize+queueRunMax), queueRecordMax)
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

func newQueueLog(dir string, maxSize int64) *queueLog {
	return &queueLog{
		dir: dir, maxSize: maxSize,
		sync:    datasync,
		write:   func(f *os.File, b []byte) (int, error) { return f.Write(b) },
		live:    make(map[uint64]int),
		maxBody: queueBodyLimit(queueRecordHashes(defaultConfig())),
		ends:    make(map[uint64]int64),
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

// replayed is what replay found to repair or give up.
type replayed struct {
	torn *tornTail
	// lost are segments the operator gave up (setAside).
	lost []string
}

// queueMark is the durable mark of the log (queueLog): the segments that
// must be on disk with at least so many synced bytes, and the highest
// segment number created, above which a segment is newer than the mark.
type queueMark struct {
	top  uint64
	segs []segMark
}

type segMark struct {
	seg  uint64
	size int64
}

const queueMarkVersion = 1

func (m *queueMark) encode() []byte {
	b := []byte{queueMarkVersion}
	b = binary.BigEndian.AppendUint64(b, m.top)
	for _, s := range m.segs {
		b = binary.BigEndian.AppendUint64(b, s.seg)
		b = binary.BigEndian.AppendUint64(b, uint64(s.size))
	}
	return b
}

func decodeQueueMark(b []byte) (*queueMark, error) {
	if len(b) < 9 || b[0] != queueMarkVersion || (len(b)-9)%16 != 0 {
		return nil, fmt.Errorf("queue log mark of %d bytes", len(b))
	}
	m := &queueMark{top: binary.BigEndian.Uint64(b[1:])}
	for r := b[9:]; len(r) > 0; r = r[16:] {
		s := segMark{seg: binary.BigEndian.Uint64(r), size: int64(binary.BigEndian.Uint64(r[8:]))}
		if s.seg == 0 || s.seg > m.top || s.size < 0 {
			return nil, fmt.Errorf("queue log mark lists segment %d (%d bytes) of %d", s.seg, s.size, m.top)
		}
		m.segs = append(m.segs, s)
	}
	return m, nil
}

// mark writes the mark of the log as it is now; durable when the caller
// syncs the database after it.
func (l *queueLog) mark() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.markLocked(false)
}

// markLocked lists the segments that still hold queued hashes, and the
// one appended to while it is empty (collect leaves both). A segment none
// of whose hashes is queued is left out, so collect may delete it.
func (l *queueLog) markLocked(durable bool) error {
	if l.saveMark == nil {
		return nil
	}
	m := queueMark{top: l.active}
	listed := make(map[uint64]bool)
	for seg, n := range l.live {
		empty := seg == l.active && l.exists && l.size == 0
		if n <= 0 && !empty {
			continue
		}
		size := l.ends[seg]
		if seg == l.active {
			size = l.size
		}
		m.segs = append(m.segs, segMark{seg, size})
		listed[seg] = true
	}
	sort.Slice(m.segs, func(i, j int) bool { return m.segs[i].seg < m.segs[j].seg })
	if err := l.saveMark(m.encode(), durable); err != nil {
		// It may still reach the disk: keep what either mark lists.
		for seg := range l.listed {
			listed[seg] = true
		}
		l.listed, l.unmarked = listed, true
		return fmt.Errorf("queue log mark: %w", err)
	}
	l.listed, l.unmarked = listed, false
	return nil
}

// damaged is the refusal for damage found in segment seg at off: the
// segment held acknowledged hashes that nothing else holds.
func (l *queueLog) damaged(seg uint64, off int64, what string) error {
	path := l.path(seg)
	return fmt.Errorf("%w: queue log %s: offset %d: %s; the queue held acknowledged hashes not yet anchored there: "+
		"restore the file from a backup of data/queue, or, to give up its hashes (their issuers submit them again), "+
		"move it aside as %s.lost (for a missing file, create an empty one of that name)",
		errStoreDamaged, path, off, what, path)
}

// setAside reports whether the operator gave seg up: <n>.log.lost exists.
func (l *queueLog) setAside(seg uint64) bool {
	_, err := os.Stat(l.path(seg) + ".lost")
	return err == nil
}

// replay checks the log against its mark m (nil: none yet) and reads
// every record of every segment in order, calling fn for each hash with
// the segment that holds it. It registers each segment with no hash held
// (scan holds those it keeps), and makes the last one the segment
// appended to. A torn tail of the last segment is truncated and returned;
// any other damage is an error wrapping errStoreDamaged, and nothing is
// changed on disk.
func (l *queueLog) replay(m *queueMark, fn func(issuer string, q queued)) (*replayed, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	segs, err := l.segments()
	if err != nil {
		return nil, err
	}
	out := &replayed{}
	synced := make(map[uint64]int64)
	if m != nil {
		onDisk := make(map[uint64]bool, len(segs))
		for _, seg := range segs {
			onDisk[seg] = true
		}
		for _, s := range m.segs {
			if onDisk[s.seg] {
				synced[s.seg] = s.size
				continue
			}
			if l.setAside(s.seg) {
				out.lost = append(out.lost, l.path(s.seg))
				continue
			}
			return nil, l.damaged(s.seg, 0, fmt.Sprintf("the segment is missing, though it held %d synced bytes of queued hashes", s.size))
		}
		// Segments created since the mark were created in order, and
		// none was deleted without a mark.
		next := m.top + 1
		for _, seg := range segs {
			if seg <= m.top {
				continue
			}
			for ; next < seg; next++ {
				if !l.setAside(next) {
					return nil, l.damaged(next, 0, fmt.Sprintf("the segment is missing, though segment %d after it is on disk", seg))
				}
				out.lost = append(out.lost, l.path(next))
			}
			next = seg + 1
		}
	}
	// Read everything before changing anything, so a refusal leaves the
	// log as it found it.
	type tail struct {
		seg  uint64
		end  int64
		size int64
	}
	var torn *tail
	for i, seg := range segs {
		lastSeg := i == len(segs)-1
		b, err := os.ReadFile(l.path(seg))
		if err != nil {
			return nil, err
		}
		size, marked := synced[seg]
		if marked && int64(len(b)) < size {
			return nil, l.damaged(seg, int64(len(b)), fmt.Sprintf("the segment ends here, short of the %d bytes it held synced", size))
		}
		end, err := readRecords(b, seg, l.maxBody, fn)
		if err != nil {
			why := "only the last segment can end in a record a crash tore"
			if lastSeg {
				why = l.notTorn(b, end, size, err)
			}
			if why != "" {
				return nil, l.damaged(seg, end, fmt.Sprintf("%v, and %s", err, why))
			}
			torn = &tail{seg, end, int64(len(b))}
		}
		l.live[seg] = 0
		l.ends[seg] = end
		if lastSeg {
			l.active, l.exists, l.size = seg, true, end
		}
	}
	if torn != nil {
		if err := l.truncate(torn.seg, torn.end); err != nil {
			return nil, err
		}
		out.torn = &tornTail{file: l.path(torn.seg), offset: torn.end, bytes: torn.size - torn.end}
	}
	if m != nil && m.top > l.active {
		// The segments up to top are gone: numbers are never used twice.
		l.active, l.exists, l.size = m.top, false, 0
	}
	delete(l.ends, l.active)
	return out, nil
}

// readRecords calls fn for each hash of the records of b, and returns the
// offset after the last good record, with an error when a bad one follows.
func readRecords(b []byte, seg uint64, maxBody int64, fn func(issuer string, q queued)) (int64, error) {
	off := 0
	for off < len(b) {
		if len(b)-off < queueRecordHeader {
			return int64(off), errors.New("truncated record header")
		}
		n := binary.BigEndian.Uint32(b[off:])
		sum := binary.BigEndian.Uint32(b[off+4:])
		if n == 0 {
			return int64(off), errors.New("record length 0")
		}
		if int64(n) > maxBody {
			return int64(off), fmt.Errorf("%w (%d bytes): %d (if max_queued_hashes or batch_max_leaves was lowered "+
				"since it was written, raise it back for a start)", errRecordLength, maxBody, n)
		}
		if int64(n) > int64(len(b)-off-queueRecordHeader) {
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

// errRecordLength is a record length over maxBody, which no append
// writes: a torn write leaves the length its append wrote, or zeros.
var errRecordLength = errors.New("record length over the largest record this node writes")

// notTorn says why the bad record at off of the last segment, found bad
// for err, cannot be the one a crash interrupted ("" when it can): it lies
// within the bytes the mark says were synced (synced), its length is one
// no append writes, a whole record follows it, or data follows its end.
func (l *queueLog) notTorn(b []byte, off, synced int64, err error) string {
	if off < synced {
		return fmt.Sprintf("it lies within the %d bytes the segment held synced, so no crash tore it", synced)
	}
	if errors.Is(err, errRecordLength) {
		return "a torn write leaves the length its append wrote"
	}
	if at := findRecord(b, off+1, l.maxBody); at >= 0 {
		return fmt.Sprintf("a whole record follows at offset %d", at)
	}
	if !isTornTail(b, off) {
		return "data follows its end"
	}
	return ""
}

// findRecord returns the offset of the first whole, well-formed record
// starting at or after from, or -1. It looks at every byte offset: after
// a bad length, record boundaries are unknown. The body's structure is
// checked before its checksum, which rules out nearly every offset of
// random bytes at once; the bytes checksummed are bounded all the same,
// a few times the file, so no tail makes the scan quadratic.
func findRecord(b []byte, from, maxBody int64) int64 {
	budget := 4*int64(len(b)) + 1<<20
	for at := from; at+queueRecordHeader < int64(len(b)) && budget > 0; at++ {
		n := int64(binary.BigEndian.Uint32(b[at:]))
		if n == 0 || n > maxBody || n > int64(len(b))-at-queueRecordHeader {
			continue
		}
		body := b[at+queueRecordHeader : at+queueRecordHeader+n]
		if decodeRecord(body, 0, func(string, queued) {}) != nil {
			continue
		}
		budget -= n
		if crc32.Checksum(body, crc32c) == binary.BigEndian.Uint32(b[at+4:]) {
			return at
		}
	}
	return -1
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

// encodeRecords frames entries as records of at most maxBody bytes each,
// written and synced together: a group larger than any record (only a
// migrated queue could be) takes more than one. Reading back, a crash
// that tore them keeps the whole ones, never acknowledged: a retry finds
// those hashes pending.
func encodeRecords(entries []queueEntry, maxBody int64) []byte {
	var out []byte
	for len(entries) > 0 {
		// At worst each hash is a run of its own.
		n, body := 0, int64(0)
		for n < len(entries) {
			cost := int64(proof.HashSize + 2 + len(entries[n].issuer) + 12)
			if n > 0 && body+cost > maxBody {
				break
			}
			body += cost
			n++
		}
		out = append(out, encodeRecord(entries[:n])...)
		entries = entries[n:]
	}
	return out
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
	rec := encodeRecords(entries, l.maxBody)
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
	// The new file, and a mark that lists it, must survive a crash before
	// any record in it is acknowledged: then a lost segment is never
	// taken for one not yet written.
	if err := syncDir(l.dir); err != nil {
		f.Close()
		os.Remove(l.path(next))
		return err
	}
	prev, prevExists, prevSize := l.active, l.exists, l.size
	if prevExists {
		l.ends[prev] = prevSize
	}
	l.active, l.exists, l.f, l.size = next, true, f, 0
	l.live[next] = 0
	if err := l.markLocked(true); err != nil {
		f.Close()
		os.Remove(l.path(next))
		delete(l.live, next)
		delete(l.ends, prev)
		l.active, l.exists, l.f, l.size = prev, prevExists, nil, prevSize
		return err
	}
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
	if l.unmarked {
		return errors.New("queue log: segments kept until a mark without them is written")
	}
	var gone []uint64
	for seg, n := range l.live {
		// What the last mark listed stays until a later mark leaves it out.
		if n == 0 && !l.listed[seg] {
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
		delete(l.ends, seg)
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

// writeFileSynced replaces path with data durably: a synced temporary file
// renamed over it, then the directory synced, so a crash leaves the old
// file or the new one, never a part.
func writeFileSynced(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
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
