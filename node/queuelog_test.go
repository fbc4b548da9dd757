package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/store"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

func testEntries(issuer string, first uint64, names ...string) []queueEntry {
	var out []queueEntry
	for i, n := range names {
		out = append(out, queueEntry{issuer: issuer, queued: queued{qseq: first + uint64(i), hash: sha256.Sum256([]byte(n))}})
	}
	return out
}

// replayAll reads the log back as "issuer/qseq@seg" strings.
func replayAll(t *testing.T, dir string) ([]string, *tornTail, error) {
	t.Helper()
	var got []string
	found, err := newQueueLog(dir, 1<<20).replay(nil, func(issuer string, q queued) {
		got = append(got, fmt.Sprintf("%s/%d@%d", issuer, q.qseq, q.seg))
	})
	if err != nil {
		return got, nil, err
	}
	return got, found.torn, nil
}

// TestQueueLogRecordRuns: a record holds runs of one issuer's consecutive
// positions, whatever the mix, and reads back as written.
func TestQueueLogRecordRuns(t *testing.T) {
	dir := t.TempDir()
	l := newQueueLog(dir, 1<<20)
	var e []queueEntry
	e = append(e, testEntries("uni-a", 0, "a", "b")...)
	e = append(e, testEntries("uni-b", 7, "c")...)
	e = append(e, testEntries("uni-a", 5, "d")...) // a gap: a run of its own
	if _, err := l.append(e); err != nil {
		t.Fatal(err)
	}
	closeAndReplay(t, l, dir, "uni-a/0@1", "uni-a/1@1", "uni-b/7@1", "uni-a/5@1")
}

// TestQueueLogCorruptEarlierSegment: only the last segment may end torn; a
// bad record at the end of an earlier one is corruption, reported by file
// and offset, and nothing after it is read as if it were fine.
func TestQueueLogCorruptEarlierSegment(t *testing.T) {
	dir := t.TempDir()
	l := newQueueLog(dir, 100)
	for i := range 3 {
		if _, err := l.append(testEntries("uni-a", uint64(i*2), fmt.Sprint("x", i), fmt.Sprint("y", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	segs, err := l.segments()
	if err != nil || len(segs) != 3 {
		t.Fatalf("segments %v (%v), want 3", segs, err)
	}
	// Cut segment 2 short, as a torn write would.
	path := l.path(segs[1])
	if err := os.Truncate(path, 50); err != nil {
		t.Fatal(err)
	}
	_, _, err = replayAll(t, dir)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "offset 0") {
		t.Fatalf("replay: %v, want an error naming %s at offset 0", err, path)
	}
}

// TestQueueLogWriteFailure: a write that fails part way (a full disk) is
// cut back off: nothing of it is read back, and the next append lands
// right after the last good record.
func TestQueueLogWriteFailure(t *testing.T) {
	dir := t.TempDir()
	l := newQueueLog(dir, 1<<20)
	if _, err := l.append(testEntries("uni-a", 0, "a")); err != nil {
		t.Fatal(err)
	}
	l.write = func(f *os.File, b []byte) (int, error) {
		n, err := f.Write(b[:len(b)/2])
		if err != nil {
			return n, err
		}
		return n, syscall.ENOSPC
	}
	if _, err := l.append(testEntries("uni-a", 1, "b", "c")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append: %v, want ENOSPC", err)
	}
	l.write = func(f *os.File, b []byte) (int, error) { return f.Write(b) }
	if _, err := l.append(testEntries("uni-a", 3, "d")); err != nil {
		t.Fatal(err)
	}
	closeAndReplay(t, l, dir, "uni-a/0@1", "uni-a/3@1")
}

// TestQueueMigrate: a queue an earlier version left under qp/ in badger is
// moved into the log at load, in order, and the keys are gone.
func TestQueueMigrate(t *testing.T) {
	home := t.TempDir()
	db, err := store.OpenBadger(filepath.Join(home, "credence"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := testEntries("uni-a", 3, "a", "b", "c")
	if err := db.Update(func(txn *badger.Txn) error {
		for _, e := range old {
			if err := txn.Set(issuerSeqKey("qp/", e.issuer, e.qseq), e.hash[:]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	open := func() *pipeline {
		p := newPipeline(db, filepath.Join(home, "queue"), &consensusChain{}, "test", nil, cfg, testLogger(t))
		if err := p.load(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := open()
	var want []queued
	for _, e := range old {
		want = append(want, queued{qseq: e.qseq, hash: e.hash, seg: 1})
	}
	if got := p.pending["uni-a"]; !slices.Equal(got, want) {
		t.Fatalf("queue after migration %v, want %v", got, want)
	}
	if err := p.queue.close(); err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("qp/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			return fmt.Errorf("key %q left", it.Item().Key())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A second start reads the same queue from the log alone.
	p = open()
	defer p.queue.close()
	if got := p.pending["uni-a"]; !slices.Equal(got, want) {
		t.Fatalf("queue at the next start %v, want %v", got, want)
	}
}

// TestStartReplaysQueueLog: a node finds at start the hashes its queue log
// holds and anchors them; a log with a bad record before good ones stops
// the start with an error naming the file and the offset.
func TestStartReplaysQueueLog(t *testing.T) {
	h := newTestHome(t)
	if err := h.start(t).Stop(); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	issuer := cfg.Issuers[0].ID
	l := newQueueLog(filepath.Join(h.dir, "data", "queue"), 1<<20)
	first, second := testEntries(issuer, 0, "p", "q"), testEntries(issuer, 2, "r")
	for _, e := range [][]queueEntry{first, second} {
		if _, err := l.append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	flip := func() {
		f, err := os.OpenFile(l.path(1), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, queueRecordHeader+3); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 1
		if _, err := f.WriteAt(b, queueRecordHeader+3); err != nil {
			t.Fatal(err)
		}
	}

	flip()
	n, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
	if err == nil {
		n.Stop()
		t.Fatal("the node started on a corrupt queue log")
	}
	if !strings.Contains(err.Error(), l.path(1)) || !strings.Contains(err.Error(), "offset 0") {
		t.Fatalf("start: %v, want an error naming %s at offset 0", err, l.path(1))
	}

	flip()
	n = h.start(t)
	defer n.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := dialTest(t, n.GRPCAddr())
	for _, e := range append(first, second...) {
		waitReceipt(ctx, t, cl, e.hash[:])
	}
}

// closeAndReplay closes l and checks that its directory replays, whole and
// untorn, to want (issuer/qseq@segment).
func closeAndReplay(t *testing.T, l *queueLog, dir string, want ...string) {
	t.Helper()
	if err := l.close(); err != nil {
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

// openTestQueue opens the queue of home (badger in home/credence, the log
// in home/queue, segments of segBytes) and loads it as Start does.
func openTestQueue(t *testing.T, home string, segBytes int64, log *slog.Logger) (*pipeline, *badger.DB, error) {
	t.Helper()
	db, err := store.OpenBadger(filepath.Join(home, "credence"))
	if err != nil {
		t.Fatal(err)
	}
	p := newPipeline(db, filepath.Join(home, "queue"), &consensusChain{}, "test", nil, defaultConfig(), log)
	p.queue.log.maxSize = segBytes
	if err := p.load(); err != nil {
		p.queue.close()
		db.Close()
		return nil, nil, err
	}
	return p, db, nil
}

// threeRecords queues three acknowledged records of two hashes each (91
// bytes a record) in segments of segBytes, and stops the queue as a clean
// stop does, or as a crash leaves it. It returns the home.
func threeRecords(t *testing.T, segBytes int64, crash bool) string {
	t.Helper()
	home := t.TempDir()
	p, db, err := openTestQueue(t, home, segBytes, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := p.queue.add(testEntries("uni-a", uint64(2*i), fmt.Sprint("x", i), fmt.Sprint("y", i))); err != nil {
			t.Fatal(err)
		}
	}
	if crash {
		err = p.queue.close()
	} else {
		p.stop()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return home
}

func segPath(home string, seg uint64) string {
	return newQueueLog(filepath.Join(home, "queue"), 0).path(seg)
}

// TestQueueLogDamageRefused: damage to the queue log, wherever it is, is
// never taken for the record a crash tore: the start is refused with the
// store-damaged error, naming the file, the offset and the recovery, and
// no acknowledged hash is dropped. Each case is one the release binary
// took for a torn write (or did not see at all) and dropped hashes.
func TestQueueLogDamageRefused(t *testing.T) {
	const rec = 91 // bytes of one record of two hashes of uni-a
	for _, c := range []struct {
		name     string
		segBytes int64
		crash    bool
		damage   func(t *testing.T, home string)
		seg      uint64
		offset   int64
		want     string
	}{
		{
			name: "corrupt length in record 2 of 3", segBytes: 1 << 20, seg: 1, offset: rec,
			damage: func(t *testing.T, home string) {
				// Long enough to run past the end of the file.
				queuePatch(t, segPath(home, 1), rec, []byte{0, 0, 1, 0})
			},
		},
		{
			name: "truncated inside an older record", segBytes: 1 << 20, seg: 1, offset: rec + 40,
			want: "short of",
			damage: func(t *testing.T, home string) {
				if err := os.Truncate(segPath(home, 1), rec+40); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "bad checksum in the last record", segBytes: 1 << 20, seg: 1, offset: 2 * rec,
			damage: func(t *testing.T, home string) {
				queuePatch(t, segPath(home, 1), 2*rec+4, []byte{0xde, 0xad, 0xbe, 0xef})
			},
		},
		{
			name: "last segment deleted", segBytes: 100, seg: 3, offset: 0, want: "missing",
			damage: func(t *testing.T, home string) {
				if err := os.Remove(segPath(home, 3)); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			// Each segment was marked, synced, as it was created.
			name: "last segment deleted after a crash", segBytes: 100, crash: true, seg: 3, offset: 0, want: "missing",
			damage: func(t *testing.T, home string) {
				if err := os.Remove(segPath(home, 3)); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "a gap in the numbering", segBytes: 100, seg: 2, offset: 0, want: "missing",
			damage: func(t *testing.T, home string) {
				if err := os.Remove(segPath(home, 2)); err != nil {
					t.Fatal(err)
				}
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			home := threeRecords(t, c.segBytes, c.crash)
			c.damage(t, home)
			_, _, err := openTestQueue(t, home, c.segBytes, testLogger(t))
			path := segPath(home, c.seg)
			if !errors.Is(err, errStoreDamaged) || !strings.Contains(err.Error(), path) ||
				!strings.Contains(err.Error(), fmt.Sprintf("offset %d:", c.offset)) ||
				!strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "backup") {
				t.Fatalf("load: %v\nwant store damaged, naming %s at offset %d (%q) and the recovery", err, path, c.offset, c.want)
			}
			t.Logf("refused: %v", err)
			// The refusal changed nothing: the same refusal at the next start.
			_, _, err2 := openTestQueue(t, home, c.segBytes, testLogger(t))
			if err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("second load: %v, want %v", err2, err)
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
			var logged strings.Builder
			p, db, err := openTestQueue(t, home, c.segBytes, slog.New(slog.NewTextHandler(&logged, nil)))
			if err != nil {
				t.Fatalf("load with %s.lost: %v", path, err)
			}
			defer db.Close()
			defer p.queue.close()
			want := 0
			if c.segBytes == 100 {
				want = 4 // two segments of the three
			}
			if got := len(p.pending["uni-a"]); got != want || !strings.Contains(logged.String(), "given up by the operator") {
				t.Fatalf("%d hashes queued, log %q; want %d and the segment given up", got, logged.String(), want)
			}
		})
	}
}

// TestQueueLogSplitsLargeGroups: a group larger than the largest record
// is written as several records in one write, each within the bound
// replay holds records to, and reads back whole.
func TestQueueLogSplitsLargeGroups(t *testing.T) {
	dir := t.TempDir()
	l := newQueueLog(dir, 1<<20)
	l.maxBody = queueBodyLimit(3)
	var names []string
	for i := range 10 {
		names = append(names, fmt.Sprint("h", i))
	}
	if _, err := l.append(testEntries("uni-a", 0, names...)); err != nil {
		t.Fatal(err)
	}
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	found, err := newQueueLog(dir, 1<<20).replay(nil, func(_ string, q queued) { got = append(got, q.qseq) })
	if err != nil || found.torn != nil || len(got) != 10 || got[9] != 9 {
		t.Fatalf("replay: %v, torn %v, positions %v; want 0 to 9", err, found, got)
	}
	b, err := os.ReadFile(l.path(1))
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(b); {
		n := int64(binary.BigEndian.Uint32(b[off:]))
		if n > l.maxBody {
			t.Fatalf("record at %d of %d bytes, over %d", off, n, l.maxBody)
		}
		off += queueRecordHeader + int(n)
	}
}

// TestQueueLogTornTailAfterMark: a record torn by a crash after the last
// clean stop is still cut off with its warning, and every record before
// it is kept.
func TestQueueLogTornTailAfterMark(t *testing.T) {
	home := threeRecords(t, 1<<20, false)
	p, db, err := openTestQueue(t, home, 1<<20, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.queue.add(testEntries("uni-a", 6, "x3", "y3")); err != nil {
		t.Fatal(err)
	}
	// A crash: no stop; the fourth record's write is torn.
	if err := p.queue.close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(segPath(home, 1), 3*91+50); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	p, db, err = openTestQueue(t, home, 1<<20, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	defer p.queue.close()
	if got := len(p.pending["uni-a"]); got != 6 {
		t.Fatalf("%d hashes queued after the torn tail, want the 6 before it", got)
	}
	if !strings.Contains(logged.String(), "cut short by a crash") || !strings.Contains(logged.String(), "offset=273") {
		t.Fatalf("log %q, want the torn tail's warning at offset 273", logged.String())
	}
}

// TestQueueLogDamageNoMark: without any mark of what was synced (a log an
// earlier version left), a bad record is still damage when a whole record
// follows it or its length is over the largest record the node writes;
// only a record that runs to the end of the file is a torn tail.
func TestQueueLogDamageNoMark(t *testing.T) {
	write := func(t *testing.T) (string, string) {
		dir := t.TempDir()
		l := newQueueLog(dir, 1<<20)
		for i := range 3 {
			if _, err := l.append(testEntries("uni-a", uint64(2*i), fmt.Sprint("x", i), fmt.Sprint("y", i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.close(); err != nil {
			t.Fatal(err)
		}
		return dir, l.path(1)
	}
	t.Run("a whole record after a bad length", func(t *testing.T) {
		dir, path := write(t)
		queuePatch(t, path, 91, []byte{0, 0, 1, 0})
		_, _, err := replayAll(t, dir)
		if !errors.Is(err, errStoreDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "offset 91:") || !strings.Contains(err.Error(), "offset 182") {
			t.Fatalf("replay: %v, want damage at offset 91 naming the record at 182", err)
		}
	})
	t.Run("a length over any record", func(t *testing.T) {
		dir, path := write(t)
		queuePatch(t, path, 182, []byte{0x40, 0, 0, 0})
		_, _, err := replayAll(t, dir)
		if !errors.Is(err, errStoreDamaged) || !strings.Contains(err.Error(), "offset 182:") || !strings.Contains(err.Error(), "largest record") {
			t.Fatalf("replay: %v, want damage at offset 182 for the length", err)
		}
	})
	t.Run("a torn tail", func(t *testing.T) {
		dir, path := write(t)
		if err := os.Truncate(path, 182+30); err != nil {
			t.Fatal(err)
		}
		got, torn, err := replayAll(t, dir)
		if err != nil || torn == nil || torn.offset != 182 || len(got) != 4 {
			t.Fatalf("replay: %v, torn %+v, %d hashes; want the tail at 182 cut and 4 hashes", err, torn, len(got))
		}
	})
}

// queuePatch overwrites bytes of a file at off.
func queuePatch(t *testing.T, path string, off int64, b []byte) {
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

// TestStartRefusesDamagedQueueLog: a node whose queue log lost a segment
// that held acknowledged hashes refuses to start, naming the file and the
// recovery; with the segment restored it starts and anchors every hash.
func TestStartRefusesDamagedQueueLog(t *testing.T) {
	h := newTestHome(t)
	// No batch is cut: the hashes stay queued in the log across the stop.
	h.setConfig(t, func(c *config) { c.BatchInterval = duration{time.Hour} })
	n := h.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hashes := randomHashes(t, 5)
	cl := dialTest(t, n.GRPCAddr())
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hashes}); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	l := newQueueLog(filepath.Join(h.dir, "data", "queue"), 0)
	segs, err := l.segments()
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v (%v), want one", segs, err)
	}
	path := l.path(segs[0])
	kept, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	n, err = Start(context.Background(), h.dir, h.ov, testLogger(t))
	if err == nil {
		n.Stop()
		t.Fatal("the node started without the queue segment that held 5 acknowledged hashes")
	}
	if !errors.Is(err, errStoreDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("start: %v, want store damaged naming %s and the recovery", err, path)
	}

	if err := os.WriteFile(path, kept, 0o600); err != nil {
		t.Fatal(err)
	}
	h.setConfig(t, func(c *config) { c.BatchInterval = duration{100 * time.Millisecond} })
	n = h.start(t)
	defer n.Stop()
	cl = dialTest(t, n.GRPCAddr())
	for i := 0; i < len(hashes); i += 32 {
		waitReceipt(ctx, t, cl, hashes[i:i+32])
	}
}
