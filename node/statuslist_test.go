package node

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	gproto "google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestStatusLists: an issuer's status lists on a real chain. The
// exported list decodes, with an independent implementation, to exactly the
// bits set; one entry's status is provable; a revocation list never
// clears; a suspension list does; a list under 131,072 entries is
// refused.
func TestStatusLists(t *testing.T) {
	// Not parallel: it starts child processes. A child holds a copy of
	// every descriptor open at its fork until it execs, badger's directory
	// lock among them, so a parallel test that closed and reopened its
	// database in that moment would find it locked. Serial tests finish
	// before parallel ones start.
	h := newTestHome(t)
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	issuer, key, err := IssuerSigningKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	send := func(body *pb.TxBody) (uint32, int64, string) {
		t.Helper()
		body.ChainId, body.Signer = n.chainID, issuer
		body.Sequence = nextSequence(ctx, t, cl, body)
		tx, err := app.SignTx(body, key)
		if err != nil {
			t.Fatal(err)
		}
		res, err := cl.Broadcast(ctx, &pb.BroadcastRequest{Tx: tx})
		if err != nil {
			t.Fatal(err)
		}
		return res.Code, res.Height, res.Log
	}
	mustSend := func(body *pb.TxBody) int64 {
		t.Helper()
		code, height, log := send(body)
		if code != 0 {
			t.Fatalf("refused: %d %s", code, log)
		}
		return height
	}
	create := func(id string, p pb.RegistryPurpose, size uint64) (uint32, string) {
		code, _, log := send(&pb.TxBody{Msg: &pb.TxBody_CreateRegistry{CreateRegistry: &pb.CreateRegistry{Id: id, Purpose: p, Size: size}}})
		return code, log
	}
	update := func(id string, set, clear []uint64) (uint32, int64, string) {
		return send(&pb.TxBody{Msg: &pb.TxBody_UpdateRegistry{UpdateRegistry: &pb.UpdateRegistry{Issuer: issuer, Id: id, Set: set, Clear: clear}}})
	}
	// export waits for a state at or after height and verifies it.
	export := func(id string, height int64) []byte {
		t.Helper()
		for {
			res, err := cl.ExportRegistry(ctx, &pb.ExportRegistryRequest{Issuer: issuer, Id: id})
			if err == nil && res.Export.Height >= height {
				bits, _, err := proof.VerifyRegistryExport(res.Export, h.trust, time.Minute, time.Now())
				if err != nil {
					t.Fatalf("export does not verify: %v", err)
				}
				if py := pythonDecode(t, res.Export.EncodedList); !bytes.Equal(py, bits) {
					t.Fatal("an independent decoder reads other bits than the proven ones")
				}
				tampered := protoClone(res.Export)
				tampered.EncodedList, _ = proof.EncodeStatusList(make([]byte, len(bits)))
				if bytes.Count(bits, []byte{0}) != len(bits) {
					if _, _, err := proof.VerifyRegistryExport(tampered, h.trust, time.Minute, time.Now()); err == nil {
						t.Fatal("an export whose list hides the set bits verified")
					}
				}
				return bits
			}
			select {
			case <-ctx.Done():
				t.Fatalf("no export of %s at height >= %d (%v)", id, height, err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}

	if code, log := create("small", pb.RegistryPurpose_REGISTRY_PURPOSE_REVOCATION, 131064); code != app.CodeMalformed || !strings.Contains(log, "131072") {
		t.Fatalf("a status list under 131,072 entries: code %d %q", code, log)
	}
	if code, log := create("rev", pb.RegistryPurpose_REGISTRY_PURPOSE_REVOCATION, 131072*2); code != 0 {
		t.Fatalf("create: %d %s", code, log)
	}
	set := []uint64{0, 9, 16383, 16384, 200000, 262143}
	at := mustSend(&pb.TxBody{Msg: &pb.TxBody_UpdateRegistry{UpdateRegistry: &pb.UpdateRegistry{Issuer: issuer, Id: "rev", Set: set}}})
	bits := export("rev", at)
	if len(bits)*8 != 262144 {
		t.Fatalf("%d entries exported", len(bits)*8)
	}
	want := map[uint64]bool{}
	for _, i := range set {
		want[i] = true
	}
	for i := uint64(0); i < 262144; i++ {
		if proof.BitSet(bits, i) != want[i] {
			t.Fatalf("entry %d: set=%v, want %v", i, proof.BitSet(bits, i), want[i])
		}
	}
	for _, idx := range []uint64{9, 10, 200000, 150000} {
		res, err := cl.GetRegistryStatus(ctx, &pb.GetRegistryStatusRequest{Issuer: issuer, Id: "rev", Index: idx})
		if err != nil {
			t.Fatal(err)
		}
		r, err := proof.VerifyRegistryStatus(res.Status, h.trust, time.Minute, time.Now())
		if err != nil {
			t.Fatalf("entry %d: %v", idx, err)
		}
		if r.Set != want[idx] || r.Purpose != "revocation" {
			t.Fatalf("entry %d: %+v", idx, r)
		}
	}
	if code, _, log := update("rev", nil, []uint64{9}); code != app.CodeRejected || !strings.Contains(log, "never cleared") {
		t.Fatalf("clearing a revocation entry: %d %q", code, log)
	}
	if code, _, _ := update("rev", []uint64{262144}, nil); code != app.CodeRejected {
		t.Fatalf("an index past the end: code %d", code)
	}

	if code, log := create("susp", pb.RegistryPurpose_REGISTRY_PURPOSE_SUSPENSION, 131072); code != 0 {
		t.Fatalf("create: %d %s", code, log)
	}
	mustSend(&pb.TxBody{Msg: &pb.TxBody_UpdateRegistry{UpdateRegistry: &pb.UpdateRegistry{Issuer: issuer, Id: "susp", Set: []uint64{5, 6}}}})
	at = mustSend(&pb.TxBody{Msg: &pb.TxBody_UpdateRegistry{UpdateRegistry: &pb.UpdateRegistry{Issuer: issuer, Id: "susp", Clear: []uint64{5}}}})
	bits = export("susp", at)
	if proof.BitSet(bits, 5) || !proof.BitSet(bits, 6) {
		t.Fatalf("suspension list after set 5,6 and clear 5: first byte %#x", bits[0])
	}
	t.Logf("status lists: revocation list of 262,144 entries with %d set, suspension list cleared and set, all proven", len(set))
}

func protoClone(ex *proof.RegistryExport) *proof.RegistryExport {
	return gproto.Clone(ex).(*proof.RegistryExport)
}

func pythonDecode(t *testing.T, encoded string) []byte {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("this test needs python3 as the independent decoder: %v", err)
	}
	cmd := exec.Command(py, "-c", `import sys,base64,gzip
s=sys.stdin.read().strip()[1:]
sys.stdout.buffer.write(gzip.decompress(base64.urlsafe_b64decode(s+'='*(-len(s)%4))))`)
	cmd.Stdin = strings.NewReader(encoded)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 decode: %v", err)
	}
	return out
}
