package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/internal/leafstore"
	"github.com/credence-ledger/credence/internal/positions"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// leafDamageLog is a log sink the node's goroutines write while the test reads.
type leafDamageLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *leafDamageLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *leafDamageLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// anchorBatches submits each set of hashes alone and waits for all of it
// to be anchored before the next, so each is a batch of its own; it
// returns each set's batch sequence.
func anchorBatches(ctx context.Context, t *testing.T, h *testHome, cl pb.CredenceClient, sets [][]byte) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, set := range sets {
		if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: set}); err != nil {
			t.Fatal(err)
		}
		var seq uint64
		for i := 0; i < len(set); i += proof.HashSize {
			r := waitReceipt(ctx, t, cl, set[i:i+proof.HashSize])
			if i > 0 && r.Batch.Seq != seq {
				t.Fatalf("one set anchored in batches %d and %d", seq, r.Batch.Seq)
			}
			seq = r.Batch.Seq
		}
		if len(seqs) > 0 && seq == seqs[len(seqs)-1] {
			t.Fatalf("two sets anchored in one batch %d", seq)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

// flipLeaf changes one byte of hash where the leaves log holds it.
func flipLeaf(t *testing.T, home string, hash []byte) {
	t.Helper()
	dir := filepath.Join(home, "data", "leaves")
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range names {
		path := filepath.Join(dir, d.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, hash); i >= 0 {
			b[i+5] ^= 0x40
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("hash %x not in the leaves log", hash)
}

func setRecentHashes(t *testing.T, h *testHome, n int) {
	t.Helper()
	c, err := loadConfig(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	c.Memory.IndexRecentHashes = n
	if err := os.Remove(appConfigPath(h.dir)); err != nil {
		t.Fatal(err)
	}
	if err := writeConfig(h.dir, c); err != nil {
		t.Fatal(err)
	}
}

// waitRunsCover waits until the index's run files hold batches [0, hi).
func waitRunsCover(ctx context.Context, t *testing.T, home string, hi uint64) {
	t.Helper()
	for {
		names, _ := os.ReadDir(filepath.Join(home, "data", "index"))
		for _, d := range names {
			if _, h, ok := positions.RunBatches(d.Name()); ok && h >= hi {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no run file covers batches [0, %d)", hi)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestLeavesDamage: a byte changed in an older batch's leaves is never
// read as the batch's. When the batch's positions are in a run file, the
// node starts and every read of the batch answers DataLoss, with an ERROR
// naming the leaves log's file: never "not anchored", never anchored twice,
// never "already anchored" for a hash that was not. When its positions are
// rebuilt from the leaves at start, they cannot be: the start is refused,
// naming the file, the batch and the recovery.
func TestLeavesDamage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		recent int // index_recent_hashes
		// inRun: the damaged batch's positions are in a run file, written
		// before the damage; otherwise they are rebuilt from the leaves at
		// start.
		inRun bool
	}{
		{"positions rebuilt at start", 1 << 20, false},
		{"positions in a run", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHome(t)
			setRecentHashes(t, h, tc.recent)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			n := h.start(t)
			cl := dialTest(t, n.GRPCAddr())
			sets := [][]byte{randomHashes(t, 4), randomHashes(t, 4), randomHashes(t, 4)}
			seqs := anchorBatches(ctx, t, h, cl, sets)
			if tc.inRun {
				waitRunsCover(ctx, t, h.dir, uint64(len(sets)))
			}
			if err := n.Stop(); err != nil {
				t.Fatal(err)
			}

			real := append([]byte(nil), sets[0][:proof.HashSize]...)
			altered := append([]byte(nil), real...)
			altered[5] ^= 0x40
			flipLeaf(t, h.dir, real)

			issuer := "member-1-registrar"
			segment := leafstore.SegmentPath(filepath.Join(h.dir, "data", "leaves"), 0)
			logs := &leafDamageLog{}
			errorLogged := func() {
				t.Helper()
				for _, line := range strings.Split(logs.String(), "\n") {
					if strings.Contains(line, "level=ERROR") && strings.Contains(line, segment) && strings.Contains(line, "seq="+strconv.FormatUint(seqs[0], 10)) {
						return
					}
				}
				t.Errorf("no ERROR naming the leaves log's segment %s and the batch", segment)
			}
			n, err := Start(context.Background(), h.dir, h.ov, slog.New(slog.NewTextHandler(logs, nil)))
			if !tc.inRun {
				if err == nil {
					n.Stop()
					t.Fatal("started with positions rebuilt from damaged leaves")
				}
				batch := fmt.Sprintf("batch %s/%d", issuer, seqs[0])
				if !errors.Is(err, errStoreDamaged) || !strings.Contains(err.Error(), segment) || !strings.Contains(err.Error(), batch) || !strings.Contains(err.Error(), "state sync") {
					t.Fatalf("start refused with %q: want the damage named (%s, %s) and how to recover", err, segment, batch)
				}
				errorLogged()
				return
			}
			if err != nil {
				t.Fatalf("start after damage to an older batch: %v", err)
			}
			defer n.Stop()
			cl = dialTest(t, n.GRPCAddr())
			wantDataLoss := func(what string, err error) {
				t.Helper()
				if status.Code(err) != codes.DataLoss {
					t.Errorf("%s: %v, want DataLoss", what, err)
				}
			}

			_, err = cl.GetBatch(ctx, &pb.GetBatchRequest{Issuer: issuer, Seq: seqs[0], IncludeHashes: true})
			wantDataLoss("GetBatch with hashes of the damaged batch", err)
			if res, err := cl.GetBatch(ctx, &pb.GetBatchRequest{Issuer: issuer, Seq: seqs[1], IncludeHashes: true}); err != nil || !bytes.Equal(res.Hashes, sets[1]) {
				t.Errorf("GetBatch of a sound batch: %v", err)
			}
			_, err = cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: real})
			wantDataLoss("GetReceipt of the damaged hash", err)
			_, err = cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: real, Issuer: issuer})
			wantDataLoss("GetReceipt of the damaged hash by issuer", err)
			_, err = cl.GetStatus(ctx, &pb.GetStatusRequest{Hash: real})
			wantDataLoss("GetStatus of the damaged hash", err)
			// Another hash of the damaged batch: its batch cannot be proven.
			_, err = cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: sets[0][proof.HashSize : 2*proof.HashSize]})
			wantDataLoss("GetReceipt of a sound hash of the damaged batch", err)
			if _, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: sets[2][:proof.HashSize]}); err != nil {
				t.Errorf("GetReceipt of a hash of a sound batch: %v", err)
			}

			// The real hash is refused, never queued to be anchored again.
			res, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: real})
			if c := status.Code(err); c != codes.DataLoss && c != codes.Unavailable {
				t.Errorf("Submit of the damaged hash: %v %v, want refused (DataLoss)", res, err)
			}
			info, err := cl.NodeInfo(ctx, &pb.NodeInfoRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if info.QueuedHashes != 0 {
				t.Errorf("%d hashes queued after the damaged hash was submitted, want 0", info.QueuedHashes)
			}
			// The altered hash was never anchored: never answered so.
			res, err = cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: altered})
			if err == nil {
				for _, k := range res.Known {
					if k.State == pb.HashState_HASH_STATE_ANCHORED {
						t.Errorf("Submit of a hash never anchored answered anchored: %v", k)
					}
				}
			} else if c := status.Code(err); c != codes.DataLoss && c != codes.Unavailable {
				t.Errorf("Submit of the altered hash: %v", err)
			}
			if _, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: altered}); status.Code(err) == codes.OK {
				t.Errorf("a receipt for a hash never anchored")
			}
			errorLogged()
		})
	}
}

// TestAnchoredRepeatedInOneRequest: every copy of an anchored hash in one
// request is answered anchored, with its position.
func TestAnchoredRepeatedInOneRequest(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	set := randomHashes(t, 2)
	anchorBatches(ctx, t, h, cl, [][]byte{set})
	a := set[:proof.HashSize]
	fresh := randomHashes(t, 1)
	req := bytes.Join([][]byte{a, fresh, a, fresh, a}, nil)
	res, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: req})
	if err != nil {
		t.Fatal(err)
	}
	if res.Queued != 1 || len(res.Known) != 4 {
		t.Fatalf("queued %d known %v, want 1 queued and 4 known", res.Queued, res.Known)
	}
	var first *pb.Known
	for _, k := range res.Known {
		switch k.Index {
		case 0, 2, 4:
			if k.State != pb.HashState_HASH_STATE_ANCHORED || k.BatchSeq == 0 || k.Height == 0 {
				t.Errorf("copy at %d of an anchored hash: %v", k.Index, k)
			}
			if first == nil {
				first = k
			} else if k.BatchSeq != first.BatchSeq || k.LeafIndex != first.LeafIndex || k.Height != first.Height || k.Issuer != first.Issuer {
				t.Errorf("copies answered at two positions: %v and %v", first, k)
			}
		case 3:
			if k.State != pb.HashState_HASH_STATE_PENDING {
				t.Errorf("second copy of a new hash: %v", k)
			}
		default:
			t.Errorf("answer for index %d: %v", k.Index, k)
		}
	}
}
