package node

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/internal/leafstore"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// The API as a hostile client meets it: malformed requests, oversized
// input, odd headers, floods of calls, streams and connections.

// configure rewrites the home's app.toml before the node starts.
func (h *testHome) configure(t testing.TB, edit func(*config)) {
	t.Helper()
	c, err := loadConfig(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	edit(c)
	if err := os.Remove(appConfigPath(h.dir)); err != nil {
		t.Fatal(err)
	}
	if err := writeConfig(h.dir, c); err != nil {
		t.Fatal(err)
	}
}

// rawCodec sends request bytes as they are, so a test can send what no
// well-behaved client would.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}
func (rawCodec) Name() string { return "raw" }

func dialConn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func wantCode(t *testing.T, err error, code codes.Code, msgPart string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want %v", err, code)
	}
	if !strings.Contains(status.Convert(err).Message(), msgPart) {
		t.Fatalf("message %q does not say %q", status.Convert(err).Message(), msgPart)
	}
}

func TestHostileClients(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	h.configure(t, func(c *config) {
		c.MaxKnownListed = 10
		c.MaxOpenStreams = 2
		c.ConnectionRate = 20
		c.TokenRate = 5
	})
	n := h.start(t)
	defer n.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("malformed protobuf is InvalidArgument", func(t *testing.T) {
		conn := dialConn(t, n.GRPCAddr())
		for name, req := range map[string][]byte{
			"truncated field":     {0x0a, 0x20, 0x01},
			"invalid UTF-8 in id": {0x0a, 0x02, 0xff, 0xfe, 0x10, 0x01},
		} {
			var out []byte
			err := conn.Invoke(ctx, "/credence.v1.Credence/GetBatch", &req, &out, grpc.ForceCodecV2(rawCodec{}))
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: got %v, want InvalidArgument", name, err)
			}
		}
	})

	t.Run("long invalid ids are not echoed back", func(t *testing.T) {
		cl := pb.NewCredenceClient(dialConn(t, n.GRPCAddr()))
		long := strings.Repeat("X", 1<<20)
		_, err := cl.GetBatch(ctx, &pb.GetBatchRequest{Issuer: long, Seq: 1})
		wantCode(t, err, codes.InvalidArgument, "not a valid issuer id")
		if l := len(status.Convert(err).Message()); l > 300 {
			t.Fatalf("error message is %d bytes", l)
		}
	})

	t.Run("authorization header forms", func(t *testing.T) {
		cl := pb.NewCredenceClient(dialConn(t, n.GRPCAddr()))
		two := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+h.token, "authorization", "Bearer "+h.token)
		_, err := cl.Submit(two, &pb.SubmitRequest{Hashes: hashOf("two headers")})
		wantCode(t, err, codes.Unauthenticated, "2 authorization headers")
		lower := metadata.AppendToOutgoingContext(ctx, "authorization", "bearer "+h.token)
		if _, err := cl.Submit(lower, &pb.SubmitRequest{Hashes: hashOf("lower-case scheme")}); err != nil {
			t.Fatalf("a lower-case Bearer scheme is the same scheme: %v", err)
		}
		time.Sleep(time.Second) // let the token's bucket refill for later cases
	})

	t.Run("a stream of duplicates gets a bounded answer", func(t *testing.T) {
		cl := pb.NewCredenceClient(dialConn(t, n.GRPCAddr()))
		hashes := randomHashes(t, 25)
		if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hashes}); err != nil {
			t.Fatal(err)
		}
		st, err := cl.SubmitStream(h.authed(ctx))
		if err != nil {
			t.Fatal(err)
		}
		for range 4 {
			if err := st.Send(&pb.SubmitRequest{Hashes: hashes}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := st.CloseAndRecv()
		if err != nil {
			t.Fatal(err)
		}
		if res.Queued != 0 || len(res.Known) != 10 || res.KnownNotListed != 90 {
			t.Fatalf("queued %d, listed %d, not listed %d; want 0, 10, 90", res.Queued, len(res.Known), res.KnownNotListed)
		}
		time.Sleep(time.Second)
	})

	t.Run("open streams are bounded", func(t *testing.T) {
		watch := func(ctx context.Context) error {
			w, err := healthpb.NewHealthClient(dialConn(t, n.GRPCAddr())).Watch(ctx, &healthpb.HealthCheckRequest{})
			if err == nil {
				_, err = w.Recv()
			}
			return err
		}
		var closeFirst context.CancelFunc
		for i := range 2 {
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			if i == 0 {
				closeFirst = cancel
			}
			if err := watch(sctx); err != nil {
				t.Fatal(err)
			}
		}
		wantCode(t, watch(ctx), codes.ResourceExhausted, "max_open_streams")
		// A closed stream gives its slot back.
		closeFirst()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			err := watch(ctx)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a stream slot was not given back: %v", err)
			}
		}
	})

	t.Run("calls per connection are rate limited", func(t *testing.T) {
		cl := pb.NewCredenceClient(dialConn(t, n.GRPCAddr()))
		var limited int
		for range 100 {
			_, err := cl.GetBatch(ctx, &pb.GetBatchRequest{Issuer: "member-1-registrar", Seq: 1 << 40})
			if status.Code(err) == codes.ResourceExhausted {
				limited++
			} else if status.Code(err) != codes.NotFound {
				t.Fatal(err)
			}
		}
		if limited == 0 {
			t.Fatal("100 calls at once on one connection with connection_rate 20 were all served")
		}
		// Another connection has its own budget.
		other := pb.NewCredenceClient(dialConn(t, n.GRPCAddr()))
		if _, err := other.GetBatch(ctx, &pb.GetBatchRequest{Issuer: "member-1-registrar", Seq: 1 << 40}); status.Code(err) != codes.NotFound {
			t.Fatalf("a fresh connection: %v", err)
		}
	})

	t.Run("writes per token are rate limited", func(t *testing.T) {
		var limited int
		for i := range 30 {
			// A connection each, so only the token's budget is shared.
			cl := pb.NewCredenceClient(dialConn(t, n.GRPCAddr()))
			_, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hashOf("token rate " + string(rune('a'+i)))})
			if status.Code(err) == codes.ResourceExhausted {
				wantCode(t, err, codes.ResourceExhausted, "token_rate")
				limited++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if limited == 0 {
			t.Fatal("30 writes at once with token_rate 5 were all served")
		}
	})

	t.Run("a damaged index answers DataLoss, not a short batch", func(t *testing.T) {
		time.Sleep(time.Second)
		cl := pb.NewCredenceClient(dialConn(t, n.GRPCAddr()))
		hash := hashOf("damaged index")
		if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hash}); err != nil {
			t.Fatal(err)
		}
		r := waitReceipt(ctx, t, cl, hash)
		b := r.Batch
		if err := n.db.Update(func(txn *badger.Txn) error {
			return txn.Set(xbKey(b.Issuer, b.Seq), nil)
		}); err != nil {
			t.Fatal(err)
		}
		_, err := cl.GetBatch(ctx, &pb.GetBatchRequest{Issuer: b.Issuer, Seq: b.Seq, IncludeHashes: true})
		wantCode(t, err, codes.DataLoss, "damaged")
	})
}

func TestAPIConnectionLimits(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	h.configure(t, func(c *config) {
		c.MaxConnections = 2
		c.HandshakeTimeout = duration{300 * time.Millisecond}
	})
	n := h.start(t)
	defer n.Stop()

	// A connection that never speaks is closed once the handshake timeout
	// passes, so it cannot hold a slot.
	silent, err := net.Dial("tcp", n.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if err := silent.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(silent); err != nil {
		t.Fatalf("the silent connection was not closed by the server: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	call := func(conn *grpc.ClientConn, timeout time.Duration) error {
		c, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := pb.NewCredenceClient(conn).GetBatch(c, &pb.GetBatchRequest{Issuer: "member-1-registrar", Seq: 1 << 40}, grpc.WaitForReady(true))
		if status.Code(err) == codes.NotFound {
			return nil
		}
		return err
	}
	a, b, third := dialConn(t, n.GRPCAddr()), dialConn(t, n.GRPCAddr()), dialConn(t, n.GRPCAddr())
	for _, c := range []*grpc.ClientConn{a, b} {
		if err := call(c, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := call(third, time.Second); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a third connection over max_connections 2 was served: %v", err)
	}
	a.Close()
	if err := call(third, 20*time.Second); err != nil {
		t.Fatalf("once a connection closed, the waiting one must be served: %v", err)
	}
}

func TestStartRefusesChangedHome(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, want string
		break_     func(t *testing.T) (restore func())
	}{
		{"validator key readable by others", "chmod 600", func(t *testing.T) func() {
			return chmodFor(t, filepath.Join(h.dir, "config", "priv_validator_key.json"))
		}},
		{"node key readable by others", "chmod 600", func(t *testing.T) func() {
			return chmodFor(t, filepath.Join(h.dir, "config", "node_key.json"))
		}},
		{"genesis chain_id edited", "changed since this node first started", func(t *testing.T) func() {
			path := filepath.Join(h.dir, "config", "genesis.json")
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var g map[string]any
			if err := json.Unmarshal(orig, &g); err != nil {
				t.Fatal(err)
			}
			g["chain_id"] = "credence-edited"
			edited, err := json.Marshal(g)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, edited, 0o644); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := os.WriteFile(path, orig, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			restore := c.break_(t)
			n, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
			if err == nil {
				n.Stop()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
			restore()
		})
	}
	// With every change undone, the home starts again.
	n, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
}

func chmodFor(t *testing.T, path string) func() {
	t.Helper()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConfigBounds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		setting, want string
	}{
		{`batch_interval = "1ns"`, "batch_interval 1ns is outside"},
		{`batch_interval = "2h"`, "batch_interval 2h0m0s is outside"},
		{`rebroadcast_after = "1ms"`, "rebroadcast_after must be at least 1s"},
		{`queue_segment_mb = 0`, "queue_segment_mb must lie in [1, 1024]"},
		{`queue_segment_mb = 2048`, "queue_segment_mb must lie in [1, 1024]"},
		{`max_connections = 0`, "max_connections must be at least 1"},
		{`max_open_streams = -1`, "max_open_streams must be at least 1"},
		{`connection_rate = 0`, "connection_rate must be at least 1"},
		{`idle_timeout = "0s"`, "idle_timeout must be positive"},
		{`blockstore_gc_interval = "-1s"`, "blockstore_gc_interval must be >= 0"},
		{"[memory]\ndb_memtable_mb = 4", "[memory] db_*: store: bad badger memory settings: memtable size"},
		{"[memory]\ndb_index_cache_mb = 0", "[memory] db_*: store: bad badger memory settings: index cache"},
		{"[memory]\ndb_compactors = 1", "[memory] db_*: store: bad badger memory settings: compactors"},
		{"[memory]\nconsensus_db_compactors = 0", "[memory] consensus_db_*: store: bad badger memory settings: compactors"},
		{"[memory]\nconsensus_db_memtables = 0", "[memory] consensus_db_*: store: bad badger memory settings: number of memtables"},
		{"[memory]\nconsensus_db_block_cache_mb = 0", "[memory] consensus_db_*: store: bad badger memory settings: block cache"},
		{"[memory]\nconsensus_db_blockstore_memtable_kb = 26", "[memory] consensus_db_blockstore_memtable_kb must be at least 27"},
		{"[memory]\nheader_cache_mb = 0", "[memory] header_cache_mb must be positive"},
		{"[memory]\ntx_cache_mb = -1", "[memory] tx_cache_mb must be positive"},
		{"[memory]\ngo_memory_limit_mb = -1", "[memory] go_memory_limit_mb must be 0 (off) or positive"},
		{"[memory]\nmax_queued_hashes = 0", "[memory] max_queued_hashes must be at least 1"},
	} {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "config"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(appConfigPath(dir), []byte(c.setting+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadConfig(dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error saying %q", c.setting, err, c.want)
		}
	}
}

// TestStartRefusesDamagedIndex: an index that lost or changed writes the
// state and the block store still hold stops the node at start, naming the
// damaged store and the way to recover, instead of serving half answers.
func TestStartRefusesDamagedIndex(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := dialTest(t, n.GRPCAddr())
	hashes := randomHashes(t, 5)
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hashes}); err != nil {
		t.Fatal(err)
	}
	waitReceipt(ctx, t, cl, hashes[:32])
	waitReceipt(ctx, t, cl, hashes[4*32:])
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	// damage changes one key of the index and returns how to undo it.
	damage := func(t *testing.T, keyOf func(txn *badger.Txn, issuer string, seq uint64, leaves []byte) []byte, value []byte) (undo func()) {
		db, err := store.OpenBadger(filepath.Join(h.dir, "data", "credence"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var key, orig []byte
		if err := db.Update(func(txn *badger.Txn) error {
			last, err := getValue(txn, []byte(keyLastBatch))
			if err != nil {
				return err
			}
			issuer, seq := string(last[8:]), binary.BigEndian.Uint64(last[:8])
			leaves, err := getValue(txn, xbKey(issuer, seq))
			if err != nil {
				return err
			}
			key = keyOf(txn, issuer, seq, leaves)
			if orig, err = getValue(txn, key); err != nil {
				return err
			}
			if value == nil {
				return txn.Delete(key)
			}
			return txn.Set(key, value)
		}); err != nil {
			t.Fatal(err)
		}
		return func() {
			db, err := store.OpenBadger(filepath.Join(h.dir, "data", "credence"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Update(func(txn *badger.Txn) error { return txn.Set(key, orig) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name  string
		key   func(txn *badger.Txn, issuer string, seq uint64, leaves []byte) []byte
		value []byte
		want  string
	}{
		{"leaves truncated", func(_ *badger.Txn, is string, seq uint64, _ []byte) []byte { return xbKey(is, seq) }, make([]byte, 32), "do not make its root"},
		{"leaves lost", func(_ *badger.Txn, is string, seq uint64, _ []byte) []byte { return xbKey(is, seq) }, nil, "leaves of batch"},
		{"record changed", func(_ *badger.Txn, is string, seq uint64, _ []byte) []byte { return xrKey(is, seq) }, []byte{0x0a, 0x01, 'x'}, "differs from the state's"},
		// Positions are rebuilt from the batches' leaves and numbers: with
		// the last batch's number lost, its leaves have no position.
		{"a batch's number lost", func(txn *badger.Txn, _ string, _ uint64, _ []byte) []byte { return lastBatchNumKey(t, txn) }, nil, "position"},
	} {
		t.Run(c.name, func(t *testing.T) {
			undo := damage(t, c.key, c.value)
			n, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
			if err == nil {
				n.Stop()
				t.Fatal("started on a damaged index")
			}
			if !errors.Is(err, errStoreDamaged) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "state sync") {
				t.Fatalf("error %q: want the damaged store named (%q) and how to recover", err, c.want)
			}
			undo()
		})
	}
	// The leaves are in a store of their own (internal/leafstore); the last
	// batch's are its last bytes.
	segment := leafstore.SegmentPath(filepath.Join(h.dir, "data", "leaves"), 0)
	for _, c := range []struct {
		name   string
		damage func(leaves []byte) []byte
		want   string
	}{
		{"the leaves log cut short", func(b []byte) []byte { return b[:len(b)-proof.HashSize] }, "leaves log ends"},
		{"a leaf changed in the leaves log", func(b []byte) []byte {
			b = append([]byte(nil), b...)
			b[len(b)-1] ^= 1
			return b
		}, "do not make its root"},
	} {
		t.Run(c.name, func(t *testing.T) {
			orig, err := os.ReadFile(segment)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(segment, c.damage(orig), 0o600); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := os.WriteFile(segment, orig, 0o600); err != nil {
					t.Fatal(err)
				}
			}()
			n, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
			if err == nil {
				n.Stop()
				t.Fatal("started on a damaged leaves log")
			}
			if !errors.Is(err, errStoreDamaged) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "state sync") {
				t.Fatalf("error %q: want the damaged store named (%q) and how to recover", err, c.want)
			}
		})
	}
	n, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
	if err != nil {
		t.Fatalf("the repaired home does not start: %v", err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
}

// lastBatchNumKey is the key of the last batch's number (xn).
func lastBatchNumKey(t *testing.T, txn *badger.Txn) []byte {
	v, err := getValue(txn, []byte(keyNextBatch))
	if err != nil || len(v) != 8 || binary.BigEndian.Uint64(v) == 0 {
		t.Fatalf("no batch numbered: %x %v", v, err)
	}
	return xnKey(binary.BigEndian.Uint64(v) - 1)
}
