package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// servingLog records what liveness tells health, in order.
type servingLog struct {
	mu  sync.Mutex
	got []bool
}

func (l *servingLog) note(serving bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, serving)
}

func (l *servingLog) last() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.got[len(l.got)-1]
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within a minute: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIndexRetriesFailedWrite (issue 17, finding 4): a block whose index
// write fails is written again, with backoff, by the running index writer;
// meanwhile Submit is refused (Unavailable) before anything is queued and
// health is NOT_SERVING, with the reason for NodeInfo. Once the write
// succeeds the block's hashes are anchored, later blocks are indexed, and
// the node takes submissions again. The scenario harness's real badger
// and fake chain; the chain's block reads fail, as a write would.
func TestIndexRetriesFailedWrite(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	defer s.close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s.ix.log, s.p.log = quiet, quiet
	s.ix.retryMin, s.ix.retryMax = time.Millisecond, 20*time.Millisecond
	var health servingLog
	s.p.live.watch(health.note)
	s.ix.start()
	defer func() {
		s.ix.stop() // closes the positions index
		s.ix = nil
	}()

	s.submit([]*submitReq{{issuer: "uni-a", hashes: s.hashList([]string{"a1", "a2"})}})
	s.p.tick()
	s.chain.failIndex.Store(true)
	h1, batches := s.chain.commit()
	s.ix.commits.push(h1, batches)

	eventually(t, "Submit refused while the index write fails", func() bool { return s.p.live.refuse("uni-a") != nil })
	err := s.p.live.refuse("uni-b")
	if !errors.Is(err, errIndexFailing) {
		t.Fatalf("Submit refused with %v, want errIndexFailing", err)
	}
	if st := status.Convert(submitError(err)); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "nothing of this request was queued") {
		t.Errorf("Submit answers %v %q, want Unavailable saying nothing was queued", st.Code(), st.Message())
	}
	if health.last() {
		t.Error("health SERVING while index writes fail")
	}
	if p := s.p.live.problems(); len(p) != 1 || !strings.Contains(p[0], fmt.Sprintf("block %d", h1)) || !strings.Contains(p[0], "injected") {
		t.Errorf("NodeInfo problems %q, want the failing block and its error", p)
	}
	if s.ix.indexedHeight() >= h1 {
		t.Fatal("indexed although every write fails")
	}

	s.chain.failIndex.Store(false)
	eventually(t, "the failed block indexed once writes succeed", func() bool { return s.ix.indexedHeight() == h1 })
	eventually(t, "health SERVING again", health.last)
	if err := s.p.live.refuse("uni-a"); err != nil || len(s.p.live.problems()) != 0 {
		t.Fatalf("after recovery Submit is refused (%v), problems %q", err, s.p.live.problems())
	}
	for _, name := range []string{"a1", "a2"} {
		h := s.hashOf(name)
		if err := s.db.View(func(txn *badger.Txn) error {
			_, err := anchoredAt(txn, s.ix.index, h[:], "uni-a")
			return err
		}); err != nil {
			t.Errorf("%s not anchored after the retried write: %v", name, err)
		}
		if s.p.isWaiting(h[:], "uni-a") {
			t.Errorf("%s still waiting", name)
		}
	}
	// The writer goes on with later blocks.
	s.submit([]*submitReq{{issuer: "uni-a", hashes: s.hashList([]string{"a3"})}})
	s.p.tick()
	h2, batches := s.chain.commit()
	s.ix.commits.push(h2, batches)
	eventually(t, "a later block indexed", func() bool { return s.ix.indexedHeight() == h2 })
}

// TestRotatedKeyRefusesSubmit (issue 17, finding 10), on a real single
// node: once the issuer's key is rotated on chain, Submit is refused with
// FailedPrecondition naming the issuer and what to do, NodeInfo says why
// and health is NOT_SERVING; configured with the new key and restarted,
// the node anchors every hash it acknowledged, those whose batches were
// signed with the old key included, with no further submission, and takes
// submissions again.
func TestRotatedKeyRefusesSubmit(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	cfg, err := loadConfig(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	issuer, keyPath := cfg.Issuers[0].ID, inConfigDir(h.dir, cfg.Issuers[0].KeyFile)
	n := h.start(t)
	stopped := false
	defer func() {
		if !stopped {
			n.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := dialTest(t, n.GRPCAddr())
	actx := h.authed(ctx)
	if _, err := cl.Submit(actx, &pb.SubmitRequest{Hashes: hashOf("before the rotation")}); err != nil {
		t.Fatal(err)
	}
	waitReceipt(ctx, t, cl, hashOf("before the rotation"))

	// Hashes keep coming while the key is rotated: those acknowledged
	// before the node notices may be in batches signed with the old key.
	var acked [][]byte
	var refused atomic.Pointer[status.Status]
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			hh := hashOf(fmt.Sprintf("around the rotation %d", i))
			_, err := cl.Submit(actx, &pb.SubmitRequest{Hashes: hh})
			if err != nil {
				st := status.Convert(err)
				refused.Store(st)
				return
			}
			acked = append(acked, hh)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	_, newKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// By the sponsor (the recovery of docs/governance.md): the issuer's
	// own rotation would take a sequence the batcher uses, and settle
	// already requeues a batch whose sequence went to another.
	sponsor, adminKey, err := MemberKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	broadcastTx(ctx, t, cl, &pb.TxBody{ChainId: n.chainID, Signer: sponsor, AsSponsor: true,
		Msg: &pb.TxBody_RotateKey{RotateKey: &pb.RotateKey{Issuer: issuer, NewKey: newKey.Public().(ed25519.PublicKey)}}}, adminKey)
	<-done
	st := refused.Load()
	if st == nil {
		t.Fatal("Submit never refused after the key was rotated")
	}
	if st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), issuer) || !strings.Contains(st.Message(), "app.toml") {
		t.Fatalf("Submit refused with %v %q, want FailedPrecondition naming %s and app.toml", st.Code(), st.Message(), issuer)
	}
	info, err := cl.NodeInfo(ctx, &pb.NodeInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Problems) != 1 || !strings.Contains(info.Problems[0], issuer) {
		t.Errorf("NodeInfo problems %q, want one naming %s", info.Problems, issuer)
	}
	hc := healthpb.NewHealthClient(dialConn(t, n.GRPCAddr()))
	for _, svc := range []string{"", pb.Credence_ServiceDesc.ServiceName} {
		res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || res.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health of %q: %v %v, want NOT_SERVING", svc, res, err)
		}
	}

	stream, err := cl.SubmitStream(actx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.SubmitRequest{Hashes: hashOf("streamed while refused")}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), issuer) {
		t.Errorf("SubmitStream while the key cannot sign: %v, want FailedPrecondition naming %s", err, issuer)
	}

	// A batch signed with the old key in flight at the restart, as one cut
	// just before the node noticed leaves it (or a node that went on
	// cutting): queued past the API's check and cut here.
	var oldBatch []byte
	for i := range 3 {
		oldBatch = append(oldBatch, hashOf(fmt.Sprintf("in flight with the old key %d", i))...)
	}
	if _, err := n.pipe.submit(ctx, issuer, oldBatch, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := n.pipe.cut(issuer); err != nil {
		t.Fatal(err)
	}
	if d := n.pipe.queueDepth(); d < 3 {
		t.Fatalf("%d hashes queued or in flight, want the 3 just cut", d)
	}

	// The operator configures the new key and restarts.
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if err := writeKeyFile(keyPath, issuer, newKey); err != nil {
		t.Fatal(err)
	}
	n = h.start(t)
	stopped = false
	cl = dialTest(t, n.GRPCAddr())
	t.Logf("%d hashes acknowledged around the rotation", len(acked))
	for _, hh := range acked {
		waitReceipt(ctx, t, cl, hh)
	}
	newPub := newKey.Public().(ed25519.PublicKey)
	for hh := range slices.Chunk(oldBatch, 32) {
		if r := waitReceipt(ctx, t, cl, hh); !newPub.Equal(ed25519.PublicKey(r.Batch.SignerKey)) {
			t.Errorf("hash in flight with the old key anchored in a batch signed by %x, want the new key", r.Batch.SignerKey)
		}
	}
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hashOf("after the restart")}); err != nil {
		t.Fatalf("Submit with the new key: %v", err)
	}
	waitReceipt(ctx, t, cl, hashOf("after the restart"))
	info, err = cl.NodeInfo(ctx, &pb.NodeInfoRequest{})
	if err != nil || len(info.Problems) != 0 {
		t.Errorf("NodeInfo after the restart: problems %q (%v)", info.GetProblems(), err)
	}
	hc = healthpb.NewHealthClient(dialConn(t, n.GRPCAddr()))
	if res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: pb.Credence_ServiceDesc.ServiceName}); err != nil || res.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health after the restart: %v %v, want SERVING", res, err)
	}
}

// TestIndexRetryBounds: the retry bounds are checked at load, with the
// defaults documented in docs/operations.md.
func TestIndexRetryBounds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ setting, want string }{
		{`index_retry_min = "0s"`, "index_retry_min must be positive"},
		{"index_retry_min = \"2s\"\nindex_retry_max = \"1s\"", "index_retry_max at least index_retry_min"},
		{"", ""},
	} {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "config"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(appConfigPath(dir), []byte(c.setting+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(dir)
		if c.want == "" {
			if err != nil {
				t.Fatal(err)
			}
			if cfg.IndexRetryMin.Duration != 100*time.Millisecond || cfg.IndexRetryMax.Duration != 10*time.Second {
				t.Errorf("defaults: %v, %v, want 100ms and 10s", cfg.IndexRetryMin, cfg.IndexRetryMax)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error saying %q", c.setting, err, c.want)
		}
	}
}
