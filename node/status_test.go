package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestStatus: a node's status answers verify offline and follow the
// ledger: not revoked, then revoked; issuer suspended; signing key marked
// compromised; a tampered or stale answer is refused.
func TestStatus(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b := hashOf("credential a"), hashOf("credential b")
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: append(append([]byte(nil), a...), b...)}); err != nil {
		t.Fatal(err)
	}
	ra := waitReceipt(ctx, t, cl, a)
	waitReceipt(ctx, t, cl, b)

	// status waits until the node answers about a state at or after height.
	status := func(hash []byte, atLeast int64) (*proof.Status, *proof.StatusResult) {
		t.Helper()
		for {
			res, err := cl.GetStatus(ctx, &pb.GetStatusRequest{Hash: hash})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status.Height >= atLeast {
				v, err := proof.VerifyStatus(res.Status, h.trust, time.Minute, time.Now())
				if err != nil {
					t.Fatalf("status does not verify: %v", err)
				}
				return res.Status, v
			}
			select {
			case <-ctx.Done():
				t.Fatalf("no status at height >= %d", atLeast)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	broadcast := func(signer string, key []byte, body *pb.TxBody) int64 {
		t.Helper()
		body.ChainId, body.Signer = n.chainID, signer
		return broadcastTx(ctx, t, cl, body, key)
	}

	st, v := status(a, 0)
	if v.Revoked || !v.IssuerActive || v.Valid() != nil || v.Issuer != "member-1-registrar" {
		t.Fatalf("fresh credential: %+v", v)
	}

	issuer, issuerKey, err := IssuerSigningKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	revokedAt := broadcast(issuer, issuerKey, &pb.TxBody{Msg: &pb.TxBody_Revoke{Revoke: &pb.Revoke{
		Issuer: issuer, Reason: 4,
		Hashes: []*pb.RevokedHash{{Hash: a, BatchSeq: ra.Batch.Seq, LeafIndex: ra.LeafIndex, AuditPath: ra.AuditPath}},
	}}})
	_, v = status(a, revokedAt)
	if !v.Revoked || v.RevokedAt != revokedAt || v.RevocationReason != 4 || v.Valid() == nil {
		t.Fatalf("after revocation: %+v", v)
	}
	_, vb := status(b, revokedAt)
	if vb.Revoked || vb.Valid() != nil {
		t.Fatalf("the other credential of the batch: %+v", vb)
	}

	t.Run("an old answer tampered to hide the revocation is refused", func(t *testing.T) {
		revSt, _ := status(a, revokedAt)
		forged := proto.Clone(revSt).(*proof.Status)
		forged.Revocation = nil
		_, err := proof.VerifyStatus(forged, h.trust, time.Minute, time.Now())
		var ve *proof.VerifyError
		if !errors.As(err, &ve) || ve.Step != proof.StepStatus {
			t.Fatalf("want a status-proof failure, got %v", err)
		}
		forged = proto.Clone(revSt).(*proof.Status)
		forged.IssuerRecord[len(forged.IssuerRecord)-1] ^= 1
		if _, err := proof.VerifyStatus(forged, h.trust, time.Minute, time.Now()); err == nil {
			t.Fatal("a changed issuer record verified")
		}
	})
	t.Run("a stale answer is refused", func(t *testing.T) {
		_, err := proof.VerifyStatus(st, h.trust, time.Minute, time.Now().Add(time.Hour))
		var ve *proof.VerifyError
		if !errors.As(err, &ve) || ve.Step != proof.StepFreshness {
			t.Fatalf("want a freshness failure, got %v", err)
		}
	})

	member, memberKey, err := MemberKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	// The sponsor marks the batch's key compromised from height 1.
	at := broadcast(member, memberKey, &pb.TxBody{Msg: &pb.TxBody_CompromiseKey{CompromiseKey: &pb.CompromiseKey{
		Issuer: issuer, Key: ra.Batch.SignerKey, FromHeight: 1}}})
	_, vb = status(b, at)
	if vb.KeyCompromisedFrom != 1 || vb.Valid() == nil || !strings.Contains(vb.Valid().Error(), "compromised") {
		t.Fatalf("after compromise: %+v (%v)", vb, vb.Valid())
	}
	// The only member suspends the issuer: its proposal passes at once.
	at = broadcast(member, memberKey, &pb.TxBody{Msg: &pb.TxBody_Propose{Propose: &pb.Propose{
		Action: &pb.Propose_SetIssuerStatus{SetIssuerStatus: &pb.SetIssuerStatus{Issuer: issuer, Status: pb.IssuerStatus_ISSUER_STATUS_SUSPENDED}}}}})
	_, vb = status(b, at)
	if vb.IssuerActive {
		t.Fatalf("after suspension the issuer is still active: %+v", vb)
	}
	t.Logf("status answers verified: fresh, revoked at %d, key compromised, issuer suspended", revokedAt)
}
