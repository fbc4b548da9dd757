package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/store"
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
	torn, err := newQueueLog(dir, 1<<20).replay(func(issuer string, q queued) {
		got = append(got, fmt.Sprintf("%s/%d@%d", issuer, q.qseq, q.seg))
	})
	return got, torn, err
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
