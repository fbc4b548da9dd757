package queuelog

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/credence-ledger/credence/internal/vfs"
)

func testEntries(issuer string, first uint64, names ...string) []Entry {
	var out []Entry
	for i, n := range names {
		out = append(out, Entry{Issuer: issuer, Seq: first + uint64(i), Hash: sha256.Sum256([]byte(n))})
	}
	return out
}

// replayAll reads the log in dir back, with no mark, as
// "issuer/seq@seg" strings.
func replayAll(t *testing.T, dir string) ([]string, *TornTail, error) {
	t.Helper()
	var got []string
	found, err := New(dir, Options{}).Replay(nil, func(e Entry, seg uint64) {
		got = append(got, fmt.Sprintf("%s/%d@%d", e.Issuer, e.Seq, seg))
	})
	if err != nil {
		return got, nil, err
	}
	return got, found.Torn, nil
}

// closeAndReplay closes l and checks that its directory replays, whole and
// untorn, to want (issuer/seq@segment).
func closeAndReplay(t *testing.T, l *Log, dir string, want ...string) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, torn, err := replayAll(t, dir)
	if err != nil || torn != nil {
		t.Fatalf("replay: %v, torn %v", err, torn)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("replay %v, want %v", got, want)
	}
}

// TestRecordRuns: a record holds runs of one issuer's consecutive
// positions, whatever the mix, and reads back as written.
func TestRecordRuns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := New(dir, Options{})
	var e []Entry
	e = append(e, testEntries("uni-a", 0, "a", "b")...)
	e = append(e, testEntries("uni-b", 7, "c")...)
	e = append(e, testEntries("uni-a", 5, "d")...) // a gap: a run of its own
	if _, err := l.Append(e); err != nil {
		t.Fatal(err)
	}
	closeAndReplay(t, l, dir, "uni-a/0@1", "uni-a/1@1", "uni-b/7@1", "uni-a/5@1")
	// Three runs: 2+5+8+4 bytes of header each, and the hashes.
	b, err := os.ReadFile(l.Path(1))
	if err != nil {
		t.Fatal(err)
	}
	if want := recordHeader + 3*(2+5+8+4) + 4*32; len(b) != want {
		t.Fatalf("record of %d bytes, want %d", len(b), want)
	}
}

// TestCorruptEarlierSegment: only the last segment may end torn; a bad
// record at the end of an earlier one is corruption, reported by file
// and offset, and nothing after it is read as if it were fine.
func TestCorruptEarlierSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := New(dir, Options{SegmentSize: 100})
	for i := range 3 {
		if _, err := l.Append(testEntries("uni-a", uint64(i*2), fmt.Sprint("x", i), fmt.Sprint("y", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := l.Segments()
	if err != nil || len(segs) != 3 {
		t.Fatalf("segments %v (%v), want 3", segs, err)
	}
	// Cut segment 2 short, as a torn write would.
	path := l.Path(segs[1])
	if err := os.Truncate(path, 50); err != nil {
		t.Fatal(err)
	}
	_, _, err = replayAll(t, dir)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "offset 0") {
		t.Fatalf("replay: %v, want an error naming %s at offset 0", err, path)
	}
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "only the last segment") {
		t.Fatalf("replay: %v, want ErrDamaged for a segment not the last", err)
	}
}

// TestWriteFailure: a write that fails part way (a full disk) is cut
// back off: nothing of it is read back, and the next append lands right
// after the last good record.
func TestWriteFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fsys := vfs.NewFaulty(vfs.Default, nil)
	l := New(dir, Options{FS: fsys})
	if _, err := l.Append(testEntries("uni-a", 0, "a")); err != nil {
		t.Fatal(err)
	}
	torn := testEntries("uni-a", 1, "b", "c")
	fsys.SetFault(func(op vfs.Op, _ string) error {
		if op == vfs.OpWrite {
			return &vfs.ShortWrite{N: len(EncodeRecord(torn)) / 2, Err: syscall.ENOSPC}
		}
		return nil
	})
	if _, err := l.Append(torn); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append: %v, want ENOSPC", err)
	}
	fsys.SetFault(nil)
	if _, err := l.Append(testEntries("uni-a", 3, "d")); err != nil {
		t.Fatal(err)
	}
	closeAndReplay(t, l, dir, "uni-a/0@1", "uni-a/3@1")
}

// TestSyncFailure: an append whose sync fails is not acknowledged and is
// cut back off; when the cut cannot be made durable either, appends are
// refused until it can, so no later record follows the unacknowledged one.
func TestSyncFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fsys := vfs.NewFaulty(vfs.Default, nil)
	l := New(dir, Options{FS: fsys})
	if _, err := l.Append(testEntries("uni-a", 0, "a")); err != nil {
		t.Fatal(err)
	}
	failSync := func(op vfs.Op, _ string) error {
		if op == vfs.OpSync {
			return syscall.EIO
		}
		return nil
	}
	fsys.SetFault(failSync)
	if _, err := l.Append(testEntries("uni-a", 1, "b")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append: %v, want EIO", err)
	}
	// The undo's own sync failed too: the log stays broken while it fails.
	if _, err := l.Append(testEntries("uni-a", 2, "c")); err == nil || !strings.Contains(err.Error(), "not undone yet") || !errors.Is(err, syscall.EIO) {
		t.Fatalf("append while broken: %v, want the failed append named", err)
	}
	if err := l.Collect(); err != nil {
		t.Fatalf("collect while broken: %v, want it to wait", err)
	}
	fsys.SetFault(nil)
	if _, err := l.Append(testEntries("uni-a", 3, "d")); err != nil {
		t.Fatal(err)
	}
	closeAndReplay(t, l, dir, "uni-a/0@1", "uni-a/3@1")
}

// TestSplitsLargeGroups: a group larger than the largest record is
// written as several records in one write, each within the bound replay
// holds records to, and reads back whole.
func TestSplitsLargeGroups(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := New(dir, Options{MaxRecordHashes: 3})
	var names []string
	for i := range 10 {
		names = append(names, fmt.Sprint("h", i))
	}
	if _, err := l.Append(testEntries("uni-a", 0, names...)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	found, err := New(dir, Options{}).Replay(nil, func(e Entry, _ uint64) { got = append(got, e.Seq) })
	if err != nil || found.Torn != nil || len(got) != 10 || got[9] != 9 {
		t.Fatalf("replay: %v, torn %v, positions %v; want 0 to 9", err, found, got)
	}
	b, err := os.ReadFile(l.Path(1))
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for off := 0; off < len(b); records++ {
		n := int64(binary.BigEndian.Uint32(b[off:]))
		if n > l.maxBody {
			t.Fatalf("record at %d of %d bytes, over %d", off, n, l.maxBody)
		}
		off += recordHeader + int(n)
	}
	if records < 2 {
		t.Fatalf("%d record, want the group split", records)
	}
}

// markStore keeps the last mark a log saved, as the node's database does;
// a crash keeps it too (the database's close flushes it).
type markStore struct {
	mu sync.Mutex
	b  []byte
}

func (s *markStore) save(m []byte, _ bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = slices.Clone(m)
	return nil
}

func (s *markStore) load(t *testing.T) *Mark {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b == nil {
		return nil
	}
	m, err := DecodeMark(s.b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// openQueue replays the log in dir against the mark in marks, holding
// every hash it reads, and marks and collects as the node's start does.
func openQueue(t *testing.T, dir string, segBytes int64, marks *markStore) (*Log, []Entry, *Replayed, error) {
	t.Helper()
	l := New(dir, Options{SegmentSize: segBytes, SaveMark: marks.save})
	var got []Entry
	held := make(map[uint64]int)
	found, err := l.Replay(marks.load(t), func(e Entry, seg uint64) {
		got = append(got, e)
		held[seg]++
	})
	if err != nil {
		return nil, nil, nil, err
	}
	for seg, n := range held {
		l.Hold(seg, n)
	}
	if err := l.Mark(); err != nil {
		t.Fatal(err)
	}
	if err := l.Collect(); err != nil {
		t.Fatal(err)
	}
	return l, got, found, nil
}

// threeRecords queues three acknowledged records of two hashes each (91
// bytes a record) in segments of segBytes, and stops the log as a clean
// stop does (a mark, then close), or as a crash leaves it. It returns the
// directory and the mark kept.
func threeRecords(t *testing.T, segBytes int64, crash bool) (string, *markStore) {
	t.Helper()
	dir, marks := t.TempDir(), &markStore{}
	l, _, _, err := openQueue(t, dir, segBytes, marks)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := l.Append(testEntries("uni-a", uint64(2*i), fmt.Sprint("x", i), fmt.Sprint("y", i))); err != nil {
			t.Fatal(err)
		}
	}
	if !crash {
		if err := l.Mark(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, marks
}

// patch overwrites bytes of a file at off.
func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestDamageRefused: damage to the queue log, wherever it is, is never
// taken for the record a crash tore: replay refuses with ErrDamaged,
// naming the file, the offset and the recovery, and no acknowledged hash
// is dropped. Each case is one an earlier release took for a torn write
// (or did not see at all) and dropped hashes.
func TestDamageRefused(t *testing.T) {
	t.Parallel()
	const rec = 91 // bytes of one record of two hashes of uni-a
	seg := func(dir string, n uint64) string { return New(dir, Options{}).Path(n) }
	for _, c := range []struct {
		name     string
		segBytes int64
		crash    bool
		damage   func(t *testing.T, dir string)
		seg      uint64
		offset   int64
		want     string
	}{
		{
			name: "corrupt length in record 2 of 3", segBytes: 1 << 20, seg: 1, offset: rec,
			damage: func(t *testing.T, dir string) {
				// Long enough to run past the end of the file.
				patch(t, seg(dir, 1), rec, []byte{0, 0, 1, 0})
			},
		},
		{
			name: "truncated inside an older record", segBytes: 1 << 20, seg: 1, offset: rec + 40,
			want: "short of",
			damage: func(t *testing.T, dir string) {
				if err := os.Truncate(seg(dir, 1), rec+40); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "bad checksum in the last record", segBytes: 1 << 20, seg: 1, offset: 2 * rec,
			damage: func(t *testing.T, dir string) {
				patch(t, seg(dir, 1), 2*rec+4, []byte{0xde, 0xad, 0xbe, 0xef})
			},
		},
		{
			name: "last segment deleted", segBytes: 100, seg: 3, offset: 0, want: "missing",
			damage: func(t *testing.T, dir string) {
				if err := os.Remove(seg(dir, 3)); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			// Each segment was marked, synced, as it was created.
			name: "last segment deleted after a crash", segBytes: 100, crash: true, seg: 3, offset: 0, want: "missing",
			damage: func(t *testing.T, dir string) {
				if err := os.Remove(seg(dir, 3)); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "a gap in the numbering", segBytes: 100, seg: 2, offset: 0, want: "missing",
			damage: func(t *testing.T, dir string) {
				if err := os.Remove(seg(dir, 2)); err != nil {
					t.Fatal(err)
				}
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir, marks := threeRecords(t, c.segBytes, c.crash)
			c.damage(t, dir)
			_, _, _, err := openQueue(t, dir, c.segBytes, marks)
			path := seg(dir, c.seg)
			if !errors.Is(err, ErrDamaged) || !strings.HasPrefix(err.Error(), "queue log "+path+": ") ||
				!strings.Contains(err.Error(), fmt.Sprintf("offset %d:", c.offset)) ||
				!strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "backup") ||
				!strings.Contains(err.Error(), path+".lost") {
				t.Fatalf("replay: %v\nwant damage, naming %s at offset %d (%q) and the recovery", err, path, c.offset, c.want)
			}
			t.Logf("refused: %v", err)
			// The refusal changed nothing: the same refusal at the next start.
			_, _, _, err2 := openQueue(t, dir, c.segBytes, marks)
			if err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("second replay: %v, want %v", err2, err)
			}
			// The operator gives the segment up, as the refusal says: the
			// queue starts with the other segments' hashes, and says so.
			if err := os.Rename(path, path+".lost"); errors.Is(err, os.ErrNotExist) {
				if err := os.WriteFile(path+".lost", nil, 0o600); err != nil {
					t.Fatal(err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			l, got, found, err := openQueue(t, dir, c.segBytes, marks)
			if err != nil {
				t.Fatalf("replay with %s.lost: %v", path, err)
			}
			defer l.Close()
			want := 0
			if c.segBytes == 100 {
				want = 4 // two segments of the three
			}
			if len(got) != want || !slices.Contains(found.Lost, path) {
				t.Fatalf("%d hashes read, given up %v; want %d and %s given up", len(got), found.Lost, want, path)
			}
		})
	}
}

// TestTornTailAfterMark: a record torn by a crash after the last clean
// stop is still cut off and reported, and every record before it is
// kept.
func TestTornTailAfterMark(t *testing.T) {
	t.Parallel()
	dir, marks := threeRecords(t, 1<<20, false)
	l, _, _, err := openQueue(t, dir, 1<<20, marks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(testEntries("uni-a", 6, "x3", "y3")); err != nil {
		t.Fatal(err)
	}
	// A crash: no mark; the fourth record's write is torn.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := l.Path(1)
	if err := os.Truncate(path, 3*91+50); err != nil {
		t.Fatal(err)
	}
	l, got, found, err := openQueue(t, dir, 1<<20, marks)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if len(got) != 6 {
		t.Fatalf("%d hashes read after the torn tail, want the 6 before it", len(got))
	}
	if want := (TornTail{File: path, Offset: 273, Bytes: 50}); found.Torn == nil || *found.Torn != want {
		t.Fatalf("torn tail %+v, want %+v", found.Torn, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 273 {
		t.Fatalf("segment after replay: %v, %v; want 273 bytes", fi, err)
	}
}

// TestDamageNoMark: without any mark of what was synced (a log an
// earlier version left), a bad record is still damage when a whole record
// follows it or its length is over the largest record the node writes;
// only a record that runs to the end of the file is a torn tail.
func TestDamageNoMark(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T) (string, string) {
		dir := t.TempDir()
		l := New(dir, Options{})
		for i := range 3 {
			if _, err := l.Append(testEntries("uni-a", uint64(2*i), fmt.Sprint("x", i), fmt.Sprint("y", i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return dir, l.Path(1)
	}
	t.Run("a whole record after a bad length", func(t *testing.T) {
		t.Parallel()
		dir, path := write(t)
		patch(t, path, 91, []byte{0, 0, 1, 0})
		_, _, err := replayAll(t, dir)
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "offset 91:") || !strings.Contains(err.Error(), "offset 182") {
			t.Fatalf("replay: %v, want damage at offset 91 naming the record at 182", err)
		}
	})
	t.Run("a length over any record", func(t *testing.T) {
		t.Parallel()
		dir, path := write(t)
		patch(t, path, 182, []byte{0x40, 0, 0, 0})
		_, _, err := replayAll(t, dir)
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "offset 182:") || !strings.Contains(err.Error(), "largest record") {
			t.Fatalf("replay: %v, want damage at offset 182 for the length", err)
		}
	})
	t.Run("a torn tail", func(t *testing.T) {
		t.Parallel()
		dir, path := write(t)
		if err := os.Truncate(path, 182+30); err != nil {
			t.Fatal(err)
		}
		got, torn, err := replayAll(t, dir)
		if err != nil || torn == nil || torn.Offset != 182 || len(got) != 4 {
			t.Fatalf("replay: %v, torn %+v, %d hashes; want the tail at 182 cut and 4 hashes", err, torn, len(got))
		}
	})
	t.Run("zeros where a record was to be", func(t *testing.T) {
		t.Parallel()
		dir, path := write(t)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(make([]byte, 91)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		got, torn, err := replayAll(t, dir)
		if err != nil || torn == nil || torn.Offset != 273 || torn.Bytes != 91 || len(got) != 6 {
			t.Fatalf("replay: %v, torn %+v, %d hashes; want the zeros at 273 cut and 6 hashes", err, torn, len(got))
		}
	})
}

// TestMarkDecode: a mark reads back as written; one of another shape, or
// listing a segment outside 1 to its top, is refused.
func TestMarkDecode(t *testing.T) {
	t.Parallel()
	m := Mark{top: 7, segs: []segMark{{3, 91}, {7, 0}}}
	b := m.encode()
	if len(b) != 9+2*16 || b[0] != 1 || binary.BigEndian.Uint64(b[1:]) != 7 || binary.BigEndian.Uint64(b[9:]) != 3 || binary.BigEndian.Uint64(b[17:]) != 91 {
		t.Fatalf("mark encoded as %x", b)
	}
	got, err := DecodeMark(b)
	if err != nil || got.top != m.top || !slices.Equal(got.segs, m.segs) {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, m)
	}
	for _, bad := range [][]byte{
		nil,
		b[:8],
		b[:len(b)-1],
		append([]byte{2}, b[1:]...),
		(&Mark{top: 2, segs: []segMark{{3, 0}}}).encode(),
		(&Mark{top: 2, segs: []segMark{{0, 0}}}).encode(),
		(&Mark{top: 2, segs: []segMark{{1, -1}}}).encode(),
	} {
		if _, err := DecodeMark(bad); err == nil || !strings.HasPrefix(err.Error(), "queue log mark") {
			t.Errorf("mark %x decoded: %v", bad, err)
		}
	}
}
