package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/positions"
	"github.com/credence-ledger/credence/internal/testport"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/consensus"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// testHome is an initialised home with its own loopback ports.
type testHome struct {
	dir   string
	token string
	ov    Overrides
	trust *proof.TrustRoot
}

func newTestHome(t testing.TB) *testHome {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "home")
	ov := Overrides{
		GRPCAddress: fmt.Sprintf("127.0.0.1:%d", testport.Free(t)),
		HTTPAddress: fmt.Sprintf("127.0.0.1:%d", testport.Free(t)),
		Ports: consensus.Ports{
			P2P:        fmt.Sprintf("tcp://127.0.0.1:%d", testport.Free(t)),
			RPC:        fmt.Sprintf("tcp://127.0.0.1:%d", testport.Free(t)),
			Prometheus: fmt.Sprintf("127.0.0.1:%d", testport.Free(t)),
		},
	}
	res, err := Init(dir, InitOptions{ChainID: "credence-test", Ports: ov.Ports, GRPCAddress: ov.GRPCAddress, HTTPAddress: ov.HTTPAddress})
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(filepath.Join(dir, "config", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	trust, err := proof.TrustRootFromGenesis(g)
	if err != nil {
		t.Fatal(err)
	}
	// Fast batches keep the tests short; the default is 250ms.
	c, err := loadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	c.BatchInterval = duration{100 * time.Millisecond}
	c.Memory.GoMemoryLimitMB = noProcessMemoryLimit
	if err := os.Remove(appConfigPath(dir)); err != nil {
		t.Fatal(err)
	}
	if err := writeConfig(dir, c); err != nil {
		t.Fatal(err)
	}
	return &testHome{dir: dir, token: res.Token, ov: ov, trust: trust}
}

// noProcessMemoryLimit is go_memory_limit_mb for test homes. The limit is
// the whole process's (debug.SetMemoryLimit, at every Start): sized for one
// node, it has the collector run without pause, and take a quarter of the
// CPU, once the tests running at the same time hold more.
const noProcessMemoryLimit = 0

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("CREDENCE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// indexOnly opens db's index, holding up to recent positions in memory
// with an anchored filter of filterMB MiB (0: none) and tag (nil:
// positions.SHA256Tag), and an indexer over it with no chain, pipeline or
// receipts: for the tests that write and read batches directly. The
// caller closes ix.index.
func indexOnly(db *badger.DB, log *slog.Logger, recent, filterMB int, tag func(hash []byte) positions.Tag) (*indexer, error) {
	idx, err := openIndex(db, indexOptions{RecentHashes: recent, CheckedBatches: defaultLeavesCheckedBatches, FilterMB: filterMB, Tag: tag, Log: log})
	if err != nil {
		return nil, err
	}
	ix, err := newIndexer(db, nil, newCommitQueue(), idx, nil, nil, indexerOptions{Log: log})
	if err != nil {
		return nil, errors.Join(err, idx.close())
	}
	return ix, nil
}

func (h *testHome) start(t testing.TB) *Node {
	t.Helper()
	n, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	return n
}

func dialTest(t testing.TB, addr string) pb.CredenceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewCredenceClient(conn)
}

func (h *testHome) authed(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+h.token)
}

func randomHashes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, 32*n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// waitReceipt polls until the node serves hash's receipt.
func waitReceipt(ctx context.Context, t testing.TB, cl pb.CredenceClient, hash []byte) *proof.Receipt {
	t.Helper()
	r, err := pollReceipt(ctx, cl, hash)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pollReceipt is waitReceipt for goroutines other than the test's.
func pollReceipt(ctx context.Context, cl pb.CredenceClient, hash []byte) (*proof.Receipt, error) {
	for {
		res, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hash})
		if err == nil {
			return res.Receipt, nil
		}
		if c := status.Code(err); c != codes.Unavailable && c != codes.ResourceExhausted {
			return nil, fmt.Errorf("receipt of %x: %w", hash, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("receipt of %x: not anchored before the deadline", hash)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// nextSequence asks the node for the sequence body's signer uses next.
func nextSequence(ctx context.Context, t testing.TB, cl pb.CredenceClient, body *pb.TxBody) uint64 {
	t.Helper()
	kind, err := app.SequenceAccount(body)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cl.GetSequence(ctx, &pb.GetSequenceRequest{Kind: kind, Id: body.Signer})
	if err != nil {
		t.Fatal(err)
	}
	return res.NextSequence
}

// broadcastTx signs body with its signer's next sequence and waits for a
// block to include it; it returns that block's height.
func broadcastTx(ctx context.Context, t *testing.T, cl pb.CredenceClient, body *pb.TxBody, key []byte) int64 {
	t.Helper()
	body.Sequence = nextSequence(ctx, t, cl, body)
	tx, err := app.SignTx(body, key)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cl.Broadcast(ctx, &pb.BroadcastRequest{Tx: tx})
	if err != nil || res.Code != 0 {
		t.Fatalf("broadcast: %v %v", err, res)
	}
	return res.Height
}

// issuerProposal is the home's member's proposal to set the home's issuer
// active, a governance transaction any test chain accepts, and the member's
// key to sign it; the Sequence is left to the caller.
func (h *testHome) issuerProposal(t testing.TB, chainID string) (*pb.TxBody, ed25519.PrivateKey) {
	t.Helper()
	member, memberKey, err := MemberKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	issuer, _, err := IssuerSigningKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	return &pb.TxBody{ChainId: chainID, Signer: member, Msg: &pb.TxBody_Propose{Propose: &pb.Propose{
		Action: &pb.Propose_SetIssuerStatus{SetIssuerStatus: &pb.SetIssuerStatus{Issuer: issuer, Status: pb.IssuerStatus_ISSUER_STATUS_ACTIVE}}}}}, memberKey
}
