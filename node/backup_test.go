package node

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// lockedBuffer collects a node's log for a test to read.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (h *testHome) setBatchInterval(t *testing.T, d time.Duration) {
	t.Helper()
	c, err := loadConfig(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	c.BatchInterval = duration{d}
	if err := os.Remove(appConfigPath(h.dir)); err != nil {
		t.Fatal(err)
	}
	if err := writeConfig(h.dir, c); err != nil {
		t.Fatal(err)
	}
}

// wipeData destroys data/ as a lost disk would, leaving the empty
// validator signing state an operator writes (docs/operations.md).
func (h *testHome) wipeData(t *testing.T) {
	t.Helper()
	data := filepath.Join(h.dir, "data")
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "priv_validator_state.json"), []byte(`{"height":"0","round":0,"step":0}`), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (h *testHome) issuer(t *testing.T) string {
	t.Helper()
	c, err := loadConfig(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	return c.Issuers[0].ID
}

// A node whose data/ was destroyed gives back, from a queue backup taken
// while it ran, every hash it had acknowledged and not anchored; the
// backup holds none of those already anchored, and restoring it again, or
// on the node that still has them, changes nothing.
func TestQueueBackupRestore(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	issuer := h.issuer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	n := h.start(t)
	cl := dialTest(t, n.GRPCAddr())
	anchored := randomHashes(t, 5)
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: anchored}); err != nil {
		t.Fatal(err)
	}
	for _, hs := range leaves(anchored) {
		waitReceipt(ctx, t, cl, hs[:])
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	// An hour between batches: what is submitted now stays acknowledged
	// and unanchored.
	h.setBatchInterval(t, time.Hour)
	n = h.start(t)
	cl = dialTest(t, n.GRPCAddr())
	waitingHashes := randomHashes(t, 40)
	if res, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: waitingHashes}); err != nil || res.Queued != 40 {
		t.Fatalf("submit: %v %v", res, err)
	}
	var backup bytes.Buffer
	count, err := BackupQueue(ctx, h.dir, &backup)
	if err != nil {
		t.Fatal(err)
	}
	chainID, queues, err := readQueueBackup(bytes.NewReader(backup.Bytes()), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if count != 40 || chainID != n.ChainID() || len(queues) != 1 || queues[0].issuer != issuer || !bytes.Equal(queues[0].hashes, waitingHashes) {
		t.Fatalf("backup holds %d hashes of %v on %q; want exactly the 40 waiting of %q, in order, on %q", count, len(queues), chainID, issuer, n.ChainID())
	}
	// On the node that still holds them, a restore queues nothing again.
	res, err := RestoreQueue(ctx, h.dir, bytes.NewReader(backup.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if res != (RestoreResult{Hashes: 40, Pending: 40}) {
		t.Fatalf("restore on the node holding them: %+v, want all 40 pending", res)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	h.wipeData(t)
	h.setBatchInterval(t, 100*time.Millisecond)
	n = h.start(t)
	defer n.Stop()
	cl = dialTest(t, n.GRPCAddr())
	res, err = RestoreQueue(ctx, h.dir, bytes.NewReader(backup.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if res != (RestoreResult{Hashes: 40, Queued: 40}) {
		t.Fatalf("restore on the recreated node: %+v, want all 40 queued", res)
	}
	for _, hs := range leaves(waitingHashes) {
		r := waitReceipt(ctx, t, cl, hs[:])
		if _, err := proof.Verify(r, h.trust); err != nil {
			t.Fatalf("receipt of a restored hash: %v", err)
		}
	}
	// A stale backup, restored again: every hash answered anchored.
	res, err = RestoreQueue(ctx, h.dir, bytes.NewReader(backup.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if res != (RestoreResult{Hashes: 40, Anchored: 40}) {
		t.Fatalf("restore of hashes already anchored: %+v, want all 40 anchored", res)
	}
}

// A backup file torn, edited or of another chain is refused whole, with
// the reason, and queues nothing.
func TestQueueRestoreRefusesBadFile(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	h.setBatchInterval(t, time.Hour)
	n := h.start(t)
	defer n.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var good bytes.Buffer
	hashes := randomHashes(t, 3)
	if _, err := writeQueueBackup(&good, n.ChainID(), []issuerHashes{{h.issuer(t), hashes}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(good.String(), "\n")
	other := new(bytes.Buffer)
	if _, err := writeQueueBackup(other, "credence-other", []issuerHashes{{h.issuer(t), hashes}}); err != nil {
		t.Fatal(err)
	}
	stranger := new(bytes.Buffer)
	if _, err := writeQueueBackup(stranger, n.ChainID(), []issuerHashes{{"stranger", hashes}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, file, want string }{
		{"cut short", strings.Join(lines[:3], ""), "cut short"},
		{"hash edited", strings.Replace(good.String(), lines[1][len(lines[1])-11:len(lines[1])-3], "ffffffff", 1), "checksum mismatch"},
		{"empty", "", "empty file"},
		{"not a backup", "hello\n", "header"},
		{"other chain", other.String(), `chain "credence-other"`},
		{"issuer not here", stranger.String(), "not configured on this node"},
		{"long line", good.String()[:len(lines[0])] + strings.Repeat("x", 2*maxBackupLine) + "\n", "too long"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := RestoreQueue(ctx, h.dir, strings.NewReader(c.file))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("restore of a bad file: %v, want an error saying %q", err, c.want)
			}
		})
	}
	if d := n.pipe.queueDepth(); d != 0 {
		t.Fatalf("refused files queued %d hashes", d)
	}
	if _, err := n.pipe.restoreQueue(ctx, n.ChainID(), strings.NewReader(strings.Join(lines[:3], ""))); !errors.Is(err, errBadBackup) {
		t.Fatalf("a torn file: %v, want errBadBackup", err)
	}
}

// With no node running on the home, backup says so and what to do.
func TestQueueBackupNeedsRunningNode(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	_, err := BackupQueue(context.Background(), h.dir, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "no node is running") {
		t.Fatalf("backup of a stopped home: %v", err)
	}
}

// A home that had started before and finds data/ new says at start that
// the hashes acknowledged and not anchored are lost unless restored, and
// how; a first start says nothing of the kind.
func TestStartSaysDataRecreated(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	const loss = "data/ was recreated"
	start := func() string {
		var logs lockedBuffer
		n, err := Start(context.Background(), h.dir, h.ov, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		return logs.String()
	}
	if first := start(); strings.Contains(first, loss) {
		t.Fatalf("a first start reported data loss:\n%s", first)
	}
	if again := start(); strings.Contains(again, loss) {
		t.Fatalf("a restart with its data reported data loss:\n%s", again)
	}
	h.wipeData(t)
	// A first start on the new data/ that fails (its API port taken)
	// does not take the report with it.
	taken, err := net.Listen("tcp", h.ov.GRPCAddress)
	if err != nil {
		t.Fatal(err)
	}
	var failed lockedBuffer
	if n, err := Start(context.Background(), h.dir, h.ov, slog.New(slog.NewTextHandler(&failed, nil))); err == nil {
		n.Stop()
		t.Fatal("start with its gRPC port taken succeeded")
	}
	taken.Close()
	if !strings.Contains(failed.String(), loss) {
		t.Fatalf("the failed start on a recreated data/ did not report the loss:\n%s", failed.String())
	}
	logs := start()
	for _, want := range []string{loss, "level=ERROR", "credenced restore queue --home " + h.dir, "queue mark"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("start on a recreated data/ did not log %q:\n%s", want, logs)
		}
	}
	if again := start(); strings.Contains(again, loss) {
		t.Fatalf("the loss is reported again at the next start:\n%s", again)
	}
}
