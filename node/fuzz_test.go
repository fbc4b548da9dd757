package node

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// apiMethods are the unary methods a client can call with any bytes.
var apiMethods = []string{
	"Submit", "GetReceipt", "GetBatch", "NodeInfo", "Broadcast", "GetProposal",
	"ListProposals", "GetStatus", "GetIssuer", "GetRegistryStatus", "ExportRegistry",
}

// FuzzAPIRequests sends arbitrary request bytes, with and without a valid
// token, to every unary method of a real node: the answer is a clear code,
// never Internal or Unknown (a server fault), and the node keeps serving.
func FuzzAPIRequests(f *testing.F) {
	h := newTestHome(f)
	n := h.start(f)
	f.Cleanup(func() { n.Stop() })
	conn := dialConn(f, n.GRPCAddr())
	for i := range apiMethods {
		f.Add(uint8(i), false, []byte{})
		f.Add(uint8(i), true, []byte{0x0a, 0x02, 0xff, 0xfe})
	}
	seed := func(i int, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), true, b)
	}
	seed(0, &pb.SubmitRequest{Hashes: hashOf("fuzz seed")})
	seed(1, &pb.GetReceiptRequest{Hash: hashOf("fuzz seed"), Issuer: "member-1-registrar"})
	seed(2, &pb.GetBatchRequest{Issuer: "member-1-registrar", Seq: 1, IncludeHashes: true})
	seed(4, &pb.BroadcastRequest{Tx: []byte{0x0a, 0x00}})
	seed(7, &pb.GetStatusRequest{Hash: hashOf("fuzz seed")})
	seed(9, &pb.GetRegistryStatusRequest{Issuer: "member-1-registrar", Id: "r1", Index: 1 << 40})
	seed(10, &pb.ExportRegistryRequest{Issuer: "member-1-registrar", Id: "r1"})

	f.Fuzz(func(t *testing.T, method uint8, authed bool, req []byte) {
		name := apiMethods[int(method)%len(apiMethods)]
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if authed {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+h.token)
		}
		var out []byte
		err := conn.Invoke(ctx, "/credence.v1.Credence/"+name, &req, &out, grpc.ForceCodecV2(rawCodec{}))
		switch status.Code(err) {
		case codes.Internal, codes.Unknown, codes.DeadlineExceeded:
			t.Fatalf("%s(%x): %v", name, req, err)
		}
	})
}

// FuzzLoadConfig reads arbitrary app.toml files: each is refused with an
// error or yields settings inside their documented bounds.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("batch_interval = \"1ns\"\n"))
	f.Add([]byte("batch_max_leaves = -1\n[[issuer]]\nid = \"x\"\n"))
	f.Add([]byte("max_connections = 0\nidle_timeout = \"-1s\"\n"))
	f.Add([]byte("grpc_address = \"0.0.0.0:9090\"\ntls_cert_file = \"a\"\n"))
	f.Fuzz(func(t *testing.T, file []byte) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "config"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(appConfigPath(dir), file, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := loadConfig(dir)
		if err != nil {
			return
		}
		switch {
		case c.BatchInterval.Duration < minBatchInterval, c.BatchInterval.Duration > maxBatchInterval,
			c.BatchMaxLeaves <= 0, c.ReceiptCacheMB <= 0, c.SnapshotInterval < 0, c.SnapshotKeepRecent < 1,
			c.ReceiptWaitMax.Duration < 0, c.MaxReceiptWaits < 1,
			c.checkLimits() != nil, (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
			t.Fatalf("accepted out-of-bounds settings: %+v", c)
		}
		for _, is := range c.Issuers {
			if is.ID == "" || is.KeyFile == "" || len(is.TokenSHA256) != 64 {
				t.Fatalf("accepted issuer %+v", is)
			}
		}
	})
}
