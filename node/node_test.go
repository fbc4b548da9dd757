package node

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestAnchorRestartServe runs a real single-node chain: hashes submitted by
// unary and streaming calls are anchored, their receipts verify offline, and
// after a restart the same receipts are served and resubmission is idempotent.
func TestAnchorRestartServe(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	unary := randomHashes(t, 300)
	res, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: unary})
	if err != nil {
		t.Fatal(err)
	}
	if res.Queued != 300 || len(res.Known) != 0 {
		t.Fatalf("unary submit: queued %d known %d, want 300 and 0", res.Queued, len(res.Known))
	}
	stream, err := cl.SubmitStream(h.authed(ctx))
	if err != nil {
		t.Fatal(err)
	}
	streamed := randomHashes(t, 500)
	for i := 0; i < len(streamed); i += 100 * 32 {
		if err := stream.Send(&pb.SubmitRequest{Hashes: streamed[i : i+100*32]}); err != nil {
			t.Fatal(err)
		}
	}
	// A hash repeated within the stream is acknowledged once as new, once as known.
	if err := stream.Send(&pb.SubmitRequest{Hashes: streamed[:32]}); err != nil {
		t.Fatal(err)
	}
	sres, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if sres.Queued != 500 || len(sres.Known) != 1 || sres.Known[0].Index != 500 {
		t.Fatalf("stream submit: queued %d known %v, want 500 and one known at index 500", sres.Queued, sres.Known)
	}

	all := append(append([]byte(nil), unary...), streamed...)
	receipts := make(map[string][]byte)
	batches := make(map[uint64]bool)
	for i := 0; i < len(all); i += 32 {
		hash := all[i : i+32]
		r := waitReceipt(ctx, t, cl, hash)
		v, err := proof.Verify(r, h.trust)
		if err != nil {
			t.Fatalf("receipt %d does not verify: %v", i/32, err)
		}
		if !bytes.Equal(v.CredentialHash, hash) || v.Issuer != "member-1-registrar" {
			t.Fatalf("receipt %d proves %x by %s", i/32, v.CredentialHash, v.Issuer)
		}
		wire, err := protoMarshal(r)
		if err != nil {
			t.Fatal(err)
		}
		receipts[string(hash)] = wire
		batches[v.BatchSeq] = true
	}
	t.Logf("800 hashes anchored in %d batches", len(batches))

	// Anchored hashes resubmitted are acknowledged with their position.
	again, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: unary[:64]})
	if err != nil {
		t.Fatal(err)
	}
	if again.Queued != 0 || len(again.Known) != 2 {
		t.Fatalf("resubmit: queued %d known %d, want 0 and 2", again.Queued, len(again.Known))
	}
	for _, k := range again.Known {
		if k.State != pb.HashState_HASH_STATE_ANCHORED || k.Height == 0 || k.BatchSeq == 0 {
			t.Fatalf("resubmitted hash not reported anchored: %v", k)
		}
	}

	if err := n.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	n = h.start(t)
	defer n.Stop()
	cl = dialTest(t, n.GRPCAddr())
	for hash, want := range receipts {
		res, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: []byte(hash)})
		if err != nil {
			t.Fatalf("after restart: %v", err)
		}
		got, err := protoMarshal(res.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("after restart the receipt of %x changed", hash)
		}
	}
	// The restart rebuilt the filter in front of the index: a duplicate is
	// still found anchored, not queued again.
	again, err = cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: unary[:64]})
	if err != nil {
		t.Fatal(err)
	}
	if again.Queued != 0 || len(again.Known) != 2 || again.Known[0].State != pb.HashState_HASH_STATE_ANCHORED || again.Known[1].State != pb.HashState_HASH_STATE_ANCHORED {
		t.Fatalf("resubmit after restart: queued %d known %v, want 0 and 2 anchored", again.Queued, again.Known)
	}
	// The chain goes on after the restart.
	fresh := hashOf("after restart")
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: fresh}); err != nil {
		t.Fatal(err)
	}
	if _, err := proof.Verify(waitReceipt(ctx, t, cl, fresh), h.trust); err != nil {
		t.Fatal(err)
	}
	info, err := cl.NodeInfo(ctx, &pb.NodeInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.ChainId != "credence-test" || info.LatestHeight < 2 || len(info.Issuers) != 1 {
		t.Fatalf("node info: %v", info)
	}
}

// TestBadRequests: malformed input to every method is InvalidArgument (or
// Unauthenticated for a bad token), never a panic or an internal error.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	actx := h.authed(ctx)

	cases := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"submit no token", func() error {
			_, err := cl.Submit(ctx, &pb.SubmitRequest{Hashes: hashOf("x")})
			return err
		}, codes.Unauthenticated},
		{"submit wrong token", func() error {
			_, err := cl.Submit(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer nope"), &pb.SubmitRequest{Hashes: hashOf("x")})
			return err
		}, codes.Unauthenticated},
		{"submit not bearer", func() error {
			_, err := cl.Submit(metadata.AppendToOutgoingContext(ctx, "authorization", h.token), &pb.SubmitRequest{Hashes: hashOf("x")})
			return err
		}, codes.Unauthenticated},
		{"submit empty", func() error {
			_, err := cl.Submit(actx, &pb.SubmitRequest{})
			return err
		}, codes.InvalidArgument},
		{"submit 31 bytes", func() error {
			_, err := cl.Submit(actx, &pb.SubmitRequest{Hashes: make([]byte, 31)})
			return err
		}, codes.InvalidArgument},
		{"submit 33 bytes", func() error {
			_, err := cl.Submit(actx, &pb.SubmitRequest{Hashes: make([]byte, 33)})
			return err
		}, codes.InvalidArgument},
		{"submit too many", func() error {
			_, err := cl.Submit(actx, &pb.SubmitRequest{Hashes: make([]byte, 32*(maxSubmitHashes+1))})
			return err
		}, codes.InvalidArgument},
		{"stream bad message", func() error {
			s, err := cl.SubmitStream(actx)
			if err != nil {
				return err
			}
			if err := s.Send(&pb.SubmitRequest{Hashes: make([]byte, 40)}); err != nil {
				return err
			}
			_, err = s.CloseAndRecv()
			return err
		}, codes.InvalidArgument},
		{"stream no token", func() error {
			s, err := cl.SubmitStream(ctx)
			if err != nil {
				return err
			}
			_, err = s.CloseAndRecv()
			return err
		}, codes.Unauthenticated},
		{"receipt empty hash", func() error {
			_, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{})
			return err
		}, codes.InvalidArgument},
		{"receipt short hash", func() error {
			_, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: make([]byte, 20)})
			return err
		}, codes.InvalidArgument},
		{"receipt bad issuer", func() error {
			_, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hashOf("x"), Issuer: "a/b"})
			return err
		}, codes.InvalidArgument},
		{"receipt unknown hash", func() error {
			_, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hashOf("never anchored")})
			return err
		}, codes.NotFound},
		{"batch no issuer", func() error {
			_, err := cl.GetBatch(ctx, &pb.GetBatchRequest{Seq: 1})
			return err
		}, codes.InvalidArgument},
		{"batch bad issuer", func() error {
			_, err := cl.GetBatch(ctx, &pb.GetBatchRequest{Issuer: "UPPER", Seq: 1})
			return err
		}, codes.InvalidArgument},
		{"batch seq zero", func() error {
			_, err := cl.GetBatch(ctx, &pb.GetBatchRequest{Issuer: "member-1-registrar"})
			return err
		}, codes.InvalidArgument},
		{"batch unknown", func() error {
			_, err := cl.GetBatch(ctx, &pb.GetBatchRequest{Issuer: "member-1-registrar", Seq: 999})
			return err
		}, codes.NotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if got := status.Code(err); got != c.want {
				t.Fatalf("code %v (%v), want %v", got, err, c.want)
			}
			if msg := status.Convert(err).Message(); msg == "" {
				t.Fatal("error without a message")
			}
		})
	}
	// The node still works after all that.
	if _, err := cl.Submit(actx, &pb.SubmitRequest{Hashes: hashOf("still fine")}); err != nil {
		t.Fatal(err)
	}
	if _, err := proof.Verify(waitReceipt(ctx, t, cl, hashOf("still fine")), h.trust); err != nil {
		t.Fatal(err)
	}
}

func TestStartRefusesPublicAPIWithoutOptIn(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	h.ov.GRPCAddress = "0.0.0.0:0"
	_, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
	if err == nil || !bytesContains(err.Error(), "tls_cert_file") {
		t.Fatalf("want a refusal naming tls_cert_file, got %v", err)
	}
	// The refused start released its stores: a normal start works.
	h.ov.GRPCAddress = ""
	n, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	n.Stop()
}

func bytesContains(s, sub string) bool { return bytes.Contains([]byte(s), []byte(sub)) }

var _ = errors.Is
