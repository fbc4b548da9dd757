//go:build e2e

// Package testnet holds the multi-node end-to-end tests: real credenced
// processes on loopback. Run with `make e2e`.
package testnet

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cmtcfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/p2p"

	"github.com/credence-ledger/credence/consensus"
	"github.com/credence-ledger/credence/internal/testport"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

var binary struct {
	once sync.Once
	path string
	err  error
}

func credenced(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "credenced-e2e")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "credenced")
		out, err := exec.Command("go", "build", "-tags", "badgerdb", "-o", binary.path, "../cmd/credenced").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

type node struct {
	i      int
	home   string
	grpc   string
	rpc    string
	token  string
	log    string
	cmd    *exec.Cmd
	exited chan struct{}
	client pb.CredenceClient
}

type network struct {
	dir   string
	base  int
	t     testing.TB
	bin   string
	nodes []*node
	trust *proof.TrustRoot
}

// newNetwork generates n validator homes and starts them all.
func newNetwork(t testing.TB, n int) *network {
	t.Helper()
	return newNetworkWith(t, n, nil)
}

// newNetworkWith lets configure edit each home before the nodes start.
func newNetworkWith(t testing.TB, n int, configure func(home string)) *network {
	t.Helper()
	bin := credenced(t)
	dir := t.TempDir()
	base := testport.Range(t, 10*n)
	out, err := exec.Command(bin, "testnet", "--validators", fmt.Sprint(n), "--output", dir,
		"--chain-id", "e2e", "--base-port", fmt.Sprint(base)).CombinedOutput()
	if err != nil {
		t.Fatalf("testnet: %v\n%s", err, out)
	}
	g, err := os.ReadFile(filepath.Join(dir, "node0", "config", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	trust, err := proof.TrustRootFromGenesis(g)
	if err != nil {
		t.Fatal(err)
	}
	net := &network{t: t, bin: bin, trust: trust, dir: dir, base: base}
	for i := 0; i < n; i++ {
		home := filepath.Join(dir, fmt.Sprintf("node%d", i))
		tok, err := os.ReadFile(filepath.Join(home, "config", fmt.Sprintf("api-token-member-%d-registrar", i)))
		if err != nil {
			t.Fatal(err)
		}
		nd := &node{
			i: i, home: home, token: strings.TrimSpace(string(tok)),
			grpc: fmt.Sprintf("127.0.0.1:%d", base+10*i+2),
			rpc:  fmt.Sprintf("127.0.0.1:%d", base+10*i+1),
			log:  filepath.Join(dir, fmt.Sprintf("node%d.log", i)),
		}
		nd.client = dialNode(t, nd.grpc)
		net.nodes = append(net.nodes, nd)
	}
	t.Cleanup(func() {
		for _, nd := range net.nodes {
			if nd.running() {
				nd.cmd.Process.Signal(syscall.SIGCONT)
				nd.cmd.Process.Kill()
				<-nd.exited
			}
		}
		if t.Failed() {
			for _, nd := range net.nodes {
				b, _ := os.ReadFile(nd.log)
				lines := strings.Split(string(b), "\n")
				if len(lines) > 30 {
					lines = lines[len(lines)-30:]
				}
				t.Logf("node%d log tail:\n%s", nd.i, strings.Join(lines, "\n"))
			}
		}
	})
	for _, nd := range net.nodes {
		if configure != nil {
			configure(nd.home)
		}
		net.start(nd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, nd := range net.nodes {
		net.waitHeight(ctx, nd, 1)
	}
	t.Logf("%d validators up (base port %d)", n, base)
	return net
}

func (nd *node) running() bool {
	if nd.exited == nil {
		return false
	}
	select {
	case <-nd.exited:
		return false
	default:
		return true
	}
}

func (n *network) start(nd *node) {
	n.t.Helper()
	logf, err := os.OpenFile(nd.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		n.t.Fatal(err)
	}
	nd.cmd = exec.Command(n.bin, "start", "--home", nd.home)
	nd.cmd.Stdout, nd.cmd.Stderr = logf, logf
	if err := nd.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	nd.exited = make(chan struct{})
	cmd, exited := nd.cmd, nd.exited
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
}

func (n *network) signal(nd *node, sig syscall.Signal) {
	n.t.Helper()
	if err := nd.cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("signal node%d: %v", nd.i, err)
	}
}

// stop ends a node with SIGTERM (clean) or SIGKILL and waits for it.
func (n *network) stop(nd *node, sig syscall.Signal) {
	n.t.Helper()
	n.signal(nd, sig)
	select {
	case <-nd.exited:
	case <-time.After(30 * time.Second):
		n.t.Fatalf("node%d did not exit after %v", nd.i, sig)
	}
}

// status is a node's view of the chain, from its gRPC API.
func (nd *node) status(ctx context.Context) (*pb.NodeInfoResponse, error) {
	c, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return nd.client.NodeInfo(c, &pb.NodeInfoRequest{})
}

// waitHeight waits until nd has committed height h.
func (n *network) waitHeight(ctx context.Context, nd *node, h int64) int64 {
	n.t.Helper()
	for {
		if st, err := nd.status(ctx); err == nil && st.LatestHeight >= h {
			return st.LatestHeight
		}
		select {
		case <-ctx.Done():
			n.t.Fatalf("node%d did not reach height %d", nd.i, h)
		case <-nd.exited:
			n.t.Fatalf("node%d exited while waiting for height %d", nd.i, h)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *network) height(ctx context.Context, nd *node) int64 {
	n.t.Helper()
	st, err := nd.status(ctx)
	if err != nil {
		n.t.Fatalf("node%d status: %v", nd.i, err)
	}
	return st.LatestHeight
}

// appHash reads the app hash in header h from a node's CometBFT RPC.
func (nd *node) appHash(ctx context.Context, h int64) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/block?height=%d", nd.rpc, h), nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var b struct {
		Result struct {
			Block struct {
				Header struct {
					AppHash string `json:"app_hash"`
				} `json:"header"`
			} `json:"block"`
		} `json:"result"`
	}
	if err := json.NewDecoder(res.Body).Decode(&b); err != nil {
		return "", err
	}
	if b.Result.Block.Header.AppHash == "" {
		return "", fmt.Errorf("no block %d", h)
	}
	return b.Result.Block.Header.AppHash, nil
}

// checkNoFork: every node has the same app hash at every height up to h.
func (n *network) checkNoFork(ctx context.Context, upTo int64) {
	n.t.Helper()
	for h := int64(1); h <= upTo; h++ {
		var want string
		for _, nd := range n.nodes {
			got, err := nd.appHash(ctx, h)
			if err != nil {
				n.t.Fatalf("node%d block %d: %v", nd.i, h, err)
			}
			if want == "" {
				want = got
			} else if got != want {
				n.t.Fatalf("fork: node%d has app hash %s at height %d, node0 %s", nd.i, got, h, want)
			}
		}
	}
	n.t.Logf("no fork: %d nodes agree on the app hash at heights 1..%d", len(n.nodes), upTo)
}

func (nd *node) authed(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+nd.token)
}

func randomHashes(n int) []byte {
	b := make([]byte, 32*n)
	rand.Read(b)
	return b
}

// receipt waits for hash's receipt from nd.
func (nd *node) receipt(ctx context.Context, hash []byte) (*proof.Receipt, error) {
	for {
		res, err := nd.client.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hash})
		if err == nil {
			return res.Receipt, nil
		}
		// Another node's batch becomes receiptable here once indexed.
		if c := status.Code(err); c != codes.Unavailable && c != codes.NotFound && c != codes.ResourceExhausted {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("node%d: no receipt for %x: %v", nd.i, hash, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// load submits small random requests to nd until stopped, recording every
// acknowledged hash.
type load struct {
	mu    sync.Mutex
	acked [][]byte
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startLoad(ctx context.Context, nd *node, clients int) *load {
	l := &load{stop: make(chan struct{})}
	for c := 0; c < clients; c++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				hs := randomHashes(100)
				c, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := nd.client.Submit(nd.authed(c), &pb.SubmitRequest{Hashes: hs})
				cancel()
				if err != nil {
					continue
				}
				l.mu.Lock()
				for i := 0; i < len(hs); i += 32 {
					l.acked = append(l.acked, hs[i:i+32])
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) finish() [][]byte {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

// checkAnchoredOnce: every hash has a receipt from `from` that verifies,
// and each appears exactly once across the issuer's batches.
func (n *network) checkAnchoredOnce(ctx context.Context, from *node, issuer string, hashes [][]byte) {
	n.t.Helper()
	var maxSeq uint64
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan []byte)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range work {
				r, err := from.receipt(ctx, h)
				if err != nil {
					n.t.Error(err)
					continue
				}
				if _, err := proof.Verify(r, n.trust); err != nil {
					n.t.Errorf("receipt of %x from node%d: %v", h, from.i, err)
					continue
				}
				mu.Lock()
				maxSeq = max(maxSeq, r.Batch.Seq)
				mu.Unlock()
			}
		}()
	}
	for _, h := range hashes {
		work <- h
	}
	close(work)
	wg.Wait()
	if n.t.Failed() {
		n.t.FailNow()
	}
	count := make(map[string]int)
	for seq := uint64(1); seq <= maxSeq; seq++ {
		res, err := from.client.GetBatch(ctx, &pb.GetBatchRequest{Issuer: issuer, Seq: seq, IncludeHashes: true})
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			n.t.Fatal(err)
		}
		for i := 0; i < len(res.Hashes); i += 32 {
			count[string(res.Hashes[i:i+32])]++
		}
	}
	for _, h := range hashes {
		if c := count[string(h)]; c != 1 {
			n.t.Fatalf("acknowledged hash %x anchored %d times", h, c)
		}
	}
	n.t.Logf("%d acknowledged hashes: receipts from node%d verify; each anchored exactly once", len(hashes), from.i)
}

// rpcJSON GETs a CometBFT RPC path from nd and decodes its result.
func (nd *node) rpcJSON(ctx context.Context, path string, out any) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+nd.rpc+path, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var env struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
		return err
	}
	if len(env.Result) == 0 {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Result, out)
}

func dialNode(t testing.TB, addr string) pb.CredenceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewCredenceClient(conn)
}

// newMember makes a fifth node's home (node4) on the chain's genesis, with
// its own keys and no issuer, peered with every node; edit adjusts its
// CometBFT config. It does not start the node.
func (n *network) newMember(edit func(*cmtcfg.Config)) *node {
	n.t.Helper()
	nd := n.newHome(4, n.base+40, edit)
	n.nodes = append(n.nodes, nd)
	return nd
}

// newHome makes such a home as node<i>, its ports from port on, without
// adding it to the network's nodes.
func (n *network) newHome(i, port int, edit func(*cmtcfg.Config)) *node {
	t := n.t
	t.Helper()
	name := fmt.Sprintf("node%d", i)
	home := filepath.Join(n.dir, name)
	out, err := exec.Command(n.bin, "init", "--home", home, "--moniker", name,
		"--genesis", filepath.Join(n.nodes[0].home, "config", "genesis.json"),
		"--grpc-address", fmt.Sprintf("127.0.0.1:%d", port+2),
		"--http-address", fmt.Sprintf("127.0.0.1:%d", port+5),
		"--rpc-laddr", fmt.Sprintf("tcp://127.0.0.1:%d", port+1),
		"--p2p-laddr", fmt.Sprintf("tcp://127.0.0.1:%d", port),
		"--prometheus-laddr", fmt.Sprintf("127.0.0.1:%d", port+3)).CombinedOutput()
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	c, err := consensus.LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	var peers []string
	for _, nd := range n.nodes {
		key, err := p2p.LoadNodeKey(filepath.Join(nd.home, "config", "node_key.json"))
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, fmt.Sprintf("%s@127.0.0.1:%d", key.ID(), n.base+10*nd.i))
	}
	c.P2P.PersistentPeers = strings.Join(peers, ",")
	c.P2P.AddrBookStrict = false
	c.P2P.AllowDuplicateIP = true
	if edit != nil {
		edit(c)
	}
	cmtcfg.WriteConfigFile(filepath.Join(home, "config", "config.toml"), c)
	nd := &node{i: i, home: home, grpc: fmt.Sprintf("127.0.0.1:%d", port+2), rpc: fmt.Sprintf("127.0.0.1:%d", port+1),
		log: filepath.Join(n.dir, name+".log")}
	nd.client = dialNode(t, nd.grpc)
	return nd
}

// voteIn has members 0, 1 and 2 vote nd's member in with power 10, and
// waits until nd validates.
func (n *network) voteIn(ctx context.Context, nd *node) {
	t := n.t
	t.Helper()
	a := n.nodes[0]
	keys := strings.Split(strings.TrimSpace(runCLI(t, n.bin, "keys", "--home", nd.home)), "\n")
	field := func(name string) string {
		for _, l := range keys {
			if k, v, ok := strings.Cut(l, ":"); ok && k == name {
				return strings.TrimSpace(v)
			}
		}
		t.Fatalf("credenced keys printed no %q", name)
		return ""
	}
	runCLI(t, n.bin, "gov", "propose", "add-member", "--node", a.grpc, "--home", a.home,
		"--id", field("member"), "--admin-key", field("admin key"), "--validator-key", field("validator key"), "--power", "10")
	runCLI(t, n.bin, "gov", "vote", "1", "yes", "--node", a.grpc, "--home", n.nodes[1].home)
	out := runCLI(t, n.bin, "gov", "vote", "1", "yes", "--node", a.grpc, "--home", n.nodes[2].home)
	t.Logf("members 0, 1, 2 voted node%d's member in: %s", nd.i, strings.TrimSpace(out))
	for {
		var vs struct {
			ValidatorInfo struct {
				VotingPower string `json:"voting_power"`
			} `json:"validator_info"`
		}
		if err := nd.rpcJSON(ctx, "/status", &vs); err == nil && vs.ValidatorInfo.VotingPower == "10" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node%d did not become a validator", nd.i)
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Logf("node%d is a validator with power 10", nd.i)
}
