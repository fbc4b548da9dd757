package queuelog

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/credence-ledger/credence/internal/vfs"
)

// Options configure a Log; a zero field takes the default given beside it.
type Options struct {
	// FS holds the segments. Default: vfs.Default.
	FS vfs.FS
	// SegmentSize is the length in bytes past which an append starts a new
	// segment; a write larger than it fills a segment alone. Default:
	// 16 MiB, the node's queue_segment_mb.
	SegmentSize int64
	// MaxRecordHashes bounds a record's body to what so many hashes take
	// at worst, each a run of its own (see the package doc): Append splits
	// a larger group into several records, and Replay takes a longer
	// length for damage, not a torn write. Lowering it makes longer
	// records already written damage. Default: 500,000, the node's default
	// max_queued_hashes (the node passes the largest group it appends).
	MaxRecordHashes int
	// SaveMark keeps an encoded mark (DecodeMark reads it back for
	// Replay). durable: synced before it returns; otherwise the owner's
	// next sync makes it durable, and the owner calls Collect only after
	// that sync. Default nil: no mark is kept, and Replay has only the
	// records to judge by.
	SaveMark func(mark []byte, durable bool) error
}

// Defaults of Options, documented at its fields.
const (
	defaultSegmentSize     = 16 << 20
	defaultMaxRecordHashes = 500_000
)

// ErrDamaged is wrapped by Replay's refusals of a damaged log. Their text
// names the log, the file, the offset and the recovery, not ErrDamaged.
var ErrDamaged = errors.New("queue log damaged")

// Log is the queue log in one directory. Its methods may be called from
// several goroutines.
type Log struct {
	dir     string
	fs      vfs.FS
	maxSize int64
	// maxBody bounds a record's body: appends split larger groups, and
	// replay takes a longer length for damage, not a torn write.
	maxBody  int64
	saveMark func(m []byte, durable bool) error

	mu sync.Mutex
	// live counts, per segment on disk, its hashes still queued.
	live map[uint64]int
	// active is the segment appended to (0: none yet); exists tells
	// whether its file is on disk, f is it once opened, size its length.
	active uint64
	exists bool
	f      vfs.File
	size   int64
	// broken is set when a failed append could not be undone: the segment
	// may end in a partial record, so nothing more is appended after it
	// until the undo succeeds.
	broken error
	// ends is the synced length of each segment on disk but the active
	// one (size); listed is what the last mark listed, which collect
	// keeps; unmarked is set when that mark could not be written, and
	// holds collect back until one is.
	ends     map[uint64]int64
	listed   map[uint64]bool
	unmarked bool
}

// New is the log in dir; nothing is read or written until Replay or
// Append. An existing log is replayed before it is appended to.
func New(dir string, opts Options) *Log {
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = defaultSegmentSize
	}
	if opts.MaxRecordHashes <= 0 {
		opts.MaxRecordHashes = defaultMaxRecordHashes
	}
	return &Log{
		dir: dir, fs: opts.FS, maxSize: opts.SegmentSize,
		maxBody:  bodyLimit(opts.MaxRecordHashes),
		saveMark: opts.SaveMark,
		live:     make(map[uint64]int),
		ends:     make(map[uint64]int64),
	}
}

// Path is the file of segment seg.
func (l *Log) Path(seg uint64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%020d.log", seg))
}

// Segments lists the segment numbers on disk, in order.
func (l *Log) Segments() ([]uint64, error) {
	ents, err := l.fs.ReadDir(l.dir)
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

// Replayed is what Replay found to repair or give up.
type Replayed struct {
	// Torn is the end of the last segment that a crash tore, cut off; nil
	// when there was none.
	Torn *TornTail
	// Lost are the files of segments the operator gave up (<file>.lost).
	Lost []string
}

// TornTail is the end of the last segment that Replay cut off: Bytes
// bytes of File from Offset.
type TornTail struct {
	File   string
	Offset int64
	Bytes  int64
}

// Mark writes the mark of the log as it is now (Options.SaveMark, not
// durable): the owner's next sync makes it so.
func (l *Log) Mark() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.markLocked(false)
}

// markLocked lists the segments that still hold queued hashes, and the
// one appended to while it is empty (collect leaves both). A segment none
// of whose hashes is queued is left out, so collect may delete it.
func (l *Log) markLocked(durable bool) error {
	if l.saveMark == nil {
		return nil
	}
	m := Mark{top: l.active}
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

// damage is a refusal of Replay: segment file's damage at offset, which
// held acknowledged hashes that nothing else holds.
type damage struct {
	file   string
	offset int64
	what   string
}

func (d *damage) Error() string {
	return fmt.Sprintf("queue log %s: offset %d: %s; the queue held acknowledged hashes not yet anchored there: "+
		"restore the file from a backup of data/queue, or, to give up its hashes (their issuers submit them again), "+
		"move it aside as %s.lost (for a missing file, create an empty one of that name)",
		d.file, d.offset, d.what, d.file)
}

func (d *damage) Unwrap() error { return ErrDamaged }

func (l *Log) damaged(seg uint64, off int64, what string) error {
	return &damage{file: l.Path(seg), offset: off, what: what}
}

// setAside reports whether the operator gave seg up: <file>.lost exists.
func (l *Log) setAside(seg uint64) bool {
	_, err := l.fs.Stat(l.Path(seg) + ".lost")
	return err == nil
}

// Replay checks the log against its mark m (nil: none yet) and reads
// every record of every segment in order, calling fn for each hash with
// the segment that holds it. Each segment read counts no hash as queued:
// the caller holds (Hold) those it keeps. The last segment becomes the
// one appended to. A torn tail of the last segment is cut off and
// returned; any other damage is an error wrapping ErrDamaged, and nothing
// is changed on disk.
func (l *Log) Replay(m *Mark, fn func(e Entry, seg uint64)) (*Replayed, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	segs, err := l.Segments()
	if err != nil {
		return nil, err
	}
	out := &Replayed{}
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
				out.Lost = append(out.Lost, l.Path(s.seg))
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
				out.Lost = append(out.Lost, l.Path(next))
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
		b, err := vfs.ReadFile(l.fs, l.Path(seg))
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
		out.Torn = &TornTail{File: l.Path(torn.seg), Offset: torn.end, Bytes: torn.size - torn.end}
	}
	if m != nil && m.top > l.active {
		// The segments up to top are gone: numbers are never used twice.
		l.active, l.exists, l.size = m.top, false, 0
	}
	delete(l.ends, l.active)
	return out, nil
}

// notTorn says why the bad record at off of the last segment, found bad
// for err, cannot be the one a crash interrupted ("" when it can): it lies
// within the bytes the mark says were synced (synced), its length is one
// no append writes, a whole record follows it, or data follows its end.
func (l *Log) notTorn(b []byte, off, synced int64, err error) string {
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

// Append writes entries as one write of as few records as the largest
// body allows, and syncs it; it returns the segment that holds them,
// which counts them as queued. On any failure the segment is cut back to
// where it ended, so the log never keeps a record that was not
// acknowledged in front of one that was.
func (l *Log) Append(entries []Entry) (uint64, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	for _, e := range entries {
		if len(e.Issuer) == 0 || len(e.Issuer) > 0xffff {
			return 0, fmt.Errorf("queue log: issuer id of %d bytes", len(e.Issuer))
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
		f, err := l.fs.OpenFile(l.Path(l.active), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return 0, err
		}
		l.f = f
	}
	if _, err := l.f.Write(rec); err != nil {
		l.fail(err)
		return 0, err
	}
	if err := l.f.Sync(); err != nil {
		l.fail(err)
		return 0, err
	}
	l.size += int64(len(rec))
	l.live[l.active] += len(entries)
	return l.active, nil
}

// rotate closes the segment appended to and starts the next one.
func (l *Log) rotate() error {
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			return err
		}
		l.f = nil
	}
	if err := l.fs.MkdirAll(l.dir, 0o700); err != nil {
		return err
	}
	next := l.active + 1
	f, err := l.fs.OpenFile(l.Path(next), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// The new file, and a mark that lists it, must survive a crash before
	// any record in it is acknowledged: then a lost segment is never
	// taken for one not yet written.
	if err := l.fs.SyncDir(l.dir); err != nil {
		f.Close()
		l.fs.Remove(l.Path(next))
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
		l.fs.Remove(l.Path(next))
		delete(l.live, next)
		delete(l.ends, prev)
		l.active, l.exists, l.f, l.size = prev, prevExists, nil, prevSize
		return err
	}
	return nil
}

// fail undoes a failed append; if it cannot, the log refuses appends
// until it can.
func (l *Log) fail(err error) {
	if l.undo() != nil {
		l.broken = err
	}
}

// undo cuts the segment appended to back to its last synced record.
func (l *Log) undo() error {
	if err := l.f.Truncate(l.size); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		return err
	}
	l.broken = nil
	return nil
}

func (l *Log) truncate(seg uint64, size int64) error {
	f, err := l.fs.OpenFile(l.Path(seg), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// Hold counts n more hashes of seg as queued.
func (l *Log) Hold(seg uint64, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live[seg] += n
}

// Release counts n fewer hashes of seg as queued: they were cut into a
// batch, or found anchored.
func (l *Log) Release(seg uint64, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live[seg] -= n
}

// Counts is, per segment on disk, how many of its hashes are counted as
// queued: a copy, for checks.
func (l *Log) Counts() map[uint64]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.live)
}

// Collect deletes every segment none of whose hashes is queued, and that
// the last mark did not list. The one appended to goes too: the next
// append starts a new segment. Call it only after a sync that made a mark
// without those segments durable.
func (l *Log) Collect() error {
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
		if err := l.fs.Remove(l.Path(seg)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		delete(l.live, seg)
		delete(l.ends, seg)
	}
	return l.fs.SyncDir(l.dir)
}

// Close closes the segment appended to; a later append opens it again.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
