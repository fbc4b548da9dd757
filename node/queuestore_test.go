package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/queuelog"
	"github.com/credence-ledger/credence/internal/store"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

func testEntries(issuer string, first uint64, names ...string) []queuelog.Entry {
	var out []queuelog.Entry
	for i, n := range names {
		out = append(out, queuelog.Entry{Issuer: issuer, Seq: first + uint64(i), Hash: sha256.Sum256([]byte(n))})
	}
	return out
}

// TestQueueMigrate: a queue an earlier version left under qp/ in badger is
// moved into the log at load, in order, and the keys are gone.
func TestQueueMigrate(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	db, err := store.OpenBadger(filepath.Join(home, "credence"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := testEntries("uni-a", 3, "a", "b", "c")
	if err := db.Update(func(txn *badger.Txn) error {
		for _, e := range old {
			if err := txn.Set(issuerSeqKey("qp/", e.Issuer, e.Seq), e.Hash[:]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	open := func() *pipeline {
		p := newPipeline(db, &consensusChain{}, nil, cfg, pipelineOptions{QueueDir: filepath.Join(home, "queue"), ChainID: "test", Log: testLogger(t)})
		if err := p.load(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := open()
	var want []queued
	for _, e := range old {
		want = append(want, queued{qseq: e.Seq, hash: e.Hash, seg: 1})
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
	t.Parallel()
	h := newTestHome(t)
	if err := h.start(t).Stop(); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	issuer := cfg.Issuers[0].ID
	l := queuelog.New(filepath.Join(h.dir, "data", "queue"), queuelog.Options{})
	first, second := testEntries(issuer, 0, "p", "q"), testEntries(issuer, 2, "r")
	for _, e := range [][]queuelog.Entry{first, second} {
		if _, err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A byte of the first record's body: past its 8-byte header.
	const at = 8 + 3
	flip := func() {
		f, err := os.OpenFile(l.Path(1), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, at); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 1
		if _, err := f.WriteAt(b, at); err != nil {
			t.Fatal(err)
		}
	}

	flip()
	n, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
	if err == nil {
		n.Stop()
		t.Fatal("the node started on a corrupt queue log")
	}
	if !strings.Contains(err.Error(), l.Path(1)) || !strings.Contains(err.Error(), "offset 0") {
		t.Fatalf("start: %v, want an error naming %s at offset 0", err, l.Path(1))
	}

	flip()
	n = h.start(t)
	defer n.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := dialTest(t, n.GRPCAddr())
	for _, e := range append(first, second...) {
		waitReceipt(ctx, t, cl, e.Hash[:])
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
	cfg := defaultConfig()
	p := newPipeline(db, &consensusChain{}, nil, cfg, pipelineOptions{QueueDir: filepath.Join(home, "queue"), ChainID: "test", Log: log, QueueSegmentBytes: segBytes})
	if err := p.load(); err != nil {
		p.queue.close()
		db.Close()
		return nil, nil, err
	}
	return p, db, nil
}

// threeRecords queues three acknowledged records of two hashes each (91
// bytes a record) in segments of segBytes, and stops the queue as a clean
// stop does. It returns the home.
func threeRecords(t *testing.T, segBytes int64) string {
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
	p.stop()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return home
}

func segPath(home string, seg uint64) string {
	return queuelog.New(filepath.Join(home, "queue"), queuelog.Options{}).Path(seg)
}

// TestQueueLoadRefusesDamage: the queue log's damage stops the load as
// the store-damaged error, naming the file, the offset and the recovery,
// and changes nothing; with the segment given up as the refusal says, the
// queue loads the other segments' hashes and logs the segment given up.
// The log's own damage cases are internal/queuelog's TestDamageRefused.
func TestQueueLoadRefusesDamage(t *testing.T) {
	t.Parallel()
	const segBytes = 100 // a record of 91 bytes a segment
	home := threeRecords(t, segBytes)
	path := segPath(home, 2)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, _, err := openTestQueue(t, home, segBytes, testLogger(t))
	if !errors.Is(err, errStoreDamaged) || !strings.HasPrefix(err.Error(), "store damaged: queue log "+path+": offset 0:") ||
		!strings.Contains(err.Error(), "missing") || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("load: %v\nwant store damaged, naming %s at offset 0 and the recovery", err, path)
	}
	_, _, err2 := openTestQueue(t, home, segBytes, testLogger(t))
	if err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("second load: %v, want %v", err2, err)
	}
	if err := os.WriteFile(path+".lost", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	p, db, err := openTestQueue(t, home, segBytes, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatalf("load with %s.lost: %v", path, err)
	}
	defer db.Close()
	defer p.queue.close()
	if got := len(p.pending["uni-a"]); got != 4 || !strings.Contains(logged.String(), "given up by the operator") ||
		!strings.Contains(logged.String(), path) {
		t.Fatalf("%d hashes queued, log %q; want 4 and %s given up", got, logged.String(), path)
	}
}

// TestStartRefusesDamagedQueueLog: a node whose queue log lost a segment
// that held acknowledged hashes refuses to start, naming the file and the
// recovery; with the segment restored it starts and anchors every hash.
func TestStartRefusesDamagedQueueLog(t *testing.T) {
	t.Parallel()
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
	l := queuelog.New(filepath.Join(h.dir, "data", "queue"), queuelog.Options{})
	segs, err := l.Segments()
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v (%v), want one", segs, err)
	}
	path := l.Path(segs[0])
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
