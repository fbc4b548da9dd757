package node

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/p2p"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/consensus"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/internal/testport"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// restoreChildEnv makes the test binary the restoring process of
// TestSnapshotRestoreKilled: it restores the snapshot in the directory named
// by the variable into a home, and stops dead at the moment asked for, to be
// killed there.
const restoreChildEnv = "CREDENCE_TEST_RESTORE_CHILD"

// The moments a restore is killed at, as the restoring process reports them.
const (
	killAmongChunks   = "chunks"   // half the chunks kept, the restore not begun
	killWhileIndexing = "indexing" // state imported, the index half written
	killAfterRestore  = "restored" // restored, consensus not yet told
	killTakenUp       = "taken-up" // consensus bootstrapped from it, no block yet
)

const restoreStopped = "RESTORE-STOPPED"

// Every node of TestSnapshotRestoreKilled, the restoring process's too, cuts
// its snapshots into small chunks and indexes a restore a batch at a time,
// so that a kill while indexing falls among many groups.
const killChunkBytes, killRestoreBatchBytes = 1 << 10, 1

// TestSnapshotRestoreKilled kills a process restoring a snapshot with
// SIGKILL among the chunks, while the restore writes the index, once the
// restore is done but before consensus took it up, and once consensus
// bootstrapped from it but before its first block; then starts the node with
// state sync. It must restore anew from a live peer, follow the chain with
// the peer's app hash, and serve verifying receipts of batches anchored
// before it joined.
func TestSnapshotRestoreKilled(t *testing.T) {
	if dir := os.Getenv(restoreChildEnv); dir != "" {
		restoreChild(t, dir)
		return
	}
	// Not parallel: it starts child processes. A child holds a copy of
	// every descriptor open at its fork until it execs, badger's directory
	// lock among them, so a parallel test that closed and reopened its
	// database in that moment would find it locked. Serial tests finish
	// before parallel ones start.
	src := snapshottingHome(t, 4)
	src.ov.snapshotChunkBytes, src.ov.restoreBatchBytes = killChunkBytes, killRestoreBatchBytes
	// Snapshots kept long enough for a joiner to fetch the one it picked.
	sc, err := loadConfig(src.dir)
	if err != nil {
		t.Fatal(err)
	}
	sc.SnapshotKeepRecent = 50
	os.Remove(appConfigPath(src.dir))
	if err := writeConfig(src.dir, sc); err != nil {
		t.Fatal(err)
	}
	n := src.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	snap, appHash, chunks, anchored := testSnapshot(ctx, t, src, n, cl)

	// Blocks keep coming, for the joiner's light client and to follow.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			cl.Submit(src.authed(ctx), &pb.SubmitRequest{Hashes: randomHashes(t, 5)})
		}
	}()

	for _, at := range []string{killAmongChunks, killWhileIndexing, killAfterRestore, killTakenUp} {
		t.Run(at, func(t *testing.T) {
			j := joinerHome(t, src)
			j.ov.snapshotChunkBytes, j.ov.restoreBatchBytes = killChunkBytes, killRestoreBatchBytes
			trustHeight := int64(2)
			commit, err := n.rpc.Commit(ctx, &trustHeight)
			if err != nil {
				t.Fatal(err)
			}
			c, err := consensus.LoadConfig(j.dir)
			if err != nil {
				t.Fatal(err)
			}
			rpc := strings.TrimPrefix(src.ov.Ports.RPC, "tcp://")
			c.StateSync.Enable = true
			c.StateSync.RPCServers = []string{rpc, rpc}
			c.StateSync.TrustHeight = trustHeight
			c.StateSync.TrustHash = commit.Commit.BlockID.Hash.String()
			c.StateSync.TrustPeriod = 24 * time.Hour
			c.StateSync.DiscoveryTime = 5 * time.Second
			key, err := p2p.LoadNodeKey(filepath.Join(src.dir, "config", "node_key.json"))
			if err != nil {
				t.Fatal(err)
			}
			c.P2P.PersistentPeers = string(key.ID()) + "@" + strings.TrimPrefix(src.ov.Ports.P2P, "tcp://")
			c.P2P.AddrBookStrict = false
			cmtcfg.WriteConfigFile(filepath.Join(j.dir, "config", "config.toml"), c)
			killRestore(ctx, t, j.dir, snap, appHash, chunks, at)

			logPath := filepath.Join(t.TempDir(), "joiner.log")
			logf, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer logf.Close()
			t.Cleanup(func() {
				if t.Failed() {
					b, _ := os.ReadFile(logPath)
					lines := strings.Split(string(b), "\n")
					t.Logf("joiner's log, last lines:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
				}
			})
			jn, err := Start(ctx, j.dir, j.ov, slog.New(slog.NewTextHandler(logf, nil)))
			if err != nil {
				t.Fatalf("start after a restore killed (%s): %v", at, err)
			}
			defer jn.Stop()

			// The joiner must get past the height the killed restore reached
			// and agree with the peer there.
			catchUp, cancel := context.WithTimeout(ctx, 90*time.Second)
			defer cancel()
			reach := func(height int64) {
				for jn.app.Height() < height {
					select {
					case <-catchUp.Done():
						t.Fatalf("joiner at height %d, never reached %d", jn.app.Height(), height)
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
			reach(n.app.Height() + 1)
			// A restore offered anew at start can land at that height or past
			// it with no block committed on it yet: the next block is.
			target := jn.app.Height() + 1
			reach(target)
			// A block committed on the restore: it is the node's own state now.
			if mark, err := jn.snaps.restoreMark(); err != nil || mark != 0 {
				t.Fatalf("restore marker %d (%v) after a block committed on the restore", mark, err)
			}
			want, err := n.rpc.Commit(ctx, &target)
			if err != nil {
				t.Fatal(err)
			}
			got, err := jn.rpc.Commit(ctx, &target)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.AppHash) != string(want.AppHash) {
				t.Fatalf("joiner's app hash at height %d is %X, the peer's %X", target, got.AppHash, want.AppHash)
			}
			jcl := dialTest(t, jn.GRPCAddr())
			for _, hash := range anchored {
				res, err := jcl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hash})
				if err != nil {
					t.Fatalf("joiner's receipt of a hash anchored before it joined: %v", err)
				}
				if _, err := proof.Verify(res.Receipt, src.trust); err != nil {
					t.Fatalf("joiner's receipt: %v", err)
				}
			}
			// The path taken: a restore cut short is cleared at start, a
			// finished one when consensus offers a snapshot again, one
			// consensus took up is followed on from.
			b, err := os.ReadFile(logPath)
			if err != nil {
				t.Fatal(err)
			}
			for line, want := range map[string]bool{
				"a snapshot restore was cut short":                  at == killWhileIndexing,
				"clearing a restored state consensus never took up": at == killAfterRestore,
				"state sync was stopped after consensus took up":    at == killTakenUp,
			} {
				if strings.Contains(string(b), line) != want {
					t.Fatalf("joiner's log holds %q: %v, want %v", line, !want, want)
				}
			}
			t.Logf("killed %s, restarted: caught up to %d with the peer's app hash; %d receipts from before the snapshot verify", at, target, len(anchored))
		})
	}
}

// joinerHome is a fresh home on src's chain, with no issuer.
func joinerHome(t *testing.T, src *testHome) *testHome {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "joiner")
	ov := Overrides{
		GRPCAddress: fmt.Sprintf("127.0.0.1:%d", testport.Free(t)),
		HTTPAddress: fmt.Sprintf("127.0.0.1:%d", testport.Free(t)),
		Ports: consensus.Ports{
			P2P:        fmt.Sprintf("tcp://127.0.0.1:%d", testport.Free(t)),
			RPC:        fmt.Sprintf("tcp://127.0.0.1:%d", testport.Free(t)),
			Prometheus: fmt.Sprintf("127.0.0.1:%d", testport.Free(t)),
		},
	}
	if _, err := Init(dir, InitOptions{Moniker: "joiner", Ports: ov.Ports, GRPCAddress: ov.GRPCAddress, HTTPAddress: ov.HTTPAddress,
		Genesis: filepath.Join(src.dir, "config", "genesis.json")}); err != nil {
		t.Fatal(err)
	}
	h := &testHome{dir: dir, ov: ov, trust: src.trust}
	h.configure(t, func(c *config) { c.Memory.GoMemoryLimitMB = noProcessMemoryLimit })
	return h
}

// killRestore runs a restore of snap into home in a child process, and
// kills it with SIGKILL once it reports the moment at.
func killRestore(ctx context.Context, t *testing.T, home string, snap *abci.Snapshot, appHash []byte, chunks [][]byte, at string) {
	t.Helper()
	dir := t.TempDir()
	b, err := snap.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"snapshot": b, "apphash": appHash}
	for i, c := range chunks {
		files[fmt.Sprintf("chunk-%06d", i)] = c
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSnapshotRestoreKilled$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), restoreChildEnv+"="+dir, "CREDENCE_TEST_RESTORE_HOME="+home, "CREDENCE_TEST_RESTORE_AT="+at)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var seen []string
	stopped := false
	for sc.Scan() {
		if sc.Text() == restoreStopped {
			stopped = true
			break
		}
		seen = append(seen, sc.Text())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if !stopped {
		t.Fatalf("the restoring process ended without reaching %q:\n%s", at, strings.Join(seen, "\n"))
	}
}

// restoreChild is the restoring process: the node's stores opened as Start
// opens them, the snapshot offered and applied as CometBFT would, stopped
// dead at the moment asked for.
func restoreChild(t *testing.T, dir string) {
	home, at := os.Getenv("CREDENCE_TEST_RESTORE_HOME"), os.Getenv("CREDENCE_TEST_RESTORE_AT")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var snap abci.Snapshot
	if err := snap.Unmarshal(read("snapshot")); err != nil {
		t.Fatal(err)
	}
	appHash := read("apphash")
	g, err := os.ReadFile(filepath.Join(home, "config", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	trust, err := proof.TrustRootFromGenesis(g)
	if err != nil {
		t.Fatal(err)
	}
	halt := func() {
		fmt.Println(restoreStopped)
		select {}
	}
	log := slog.New(&haltAt{at: at, halt: halt})
	if at == killTakenUp {
		// The whole node, state syncing from the peer its config names.
		ov := Overrides{snapshotChunkBytes: killChunkBytes, restoreBatchBytes: killRestoreBatchBytes}
		if _, err := Start(context.Background(), home, ov, log); err != nil {
			t.Fatal(err)
		}
		select {}
	}
	db, err := store.OpenBadger(filepath.Join(home, "data", "credence"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(store.NewIAVLDB(db, []byte(prefixApp)), trust.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	c := newConsensusChain(a)
	idx, err := openIndex(db, indexOptions{RecentHashes: defaultMemoryConfig().IndexRecentHashes, CheckedBatches: defaultLeavesCheckedBatches, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	p := newPipeline(db, c, idx, defaultConfig(), pipelineOptions{QueueDir: filepath.Join(home, "data", "queue"), ChainID: trust.ChainID, Log: log})
	r, err := newReceipts(db, idx, c, trust.ChainID, 64<<20, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := newIndexer(db, c, newCommitQueue(), idx, p, r, indexerOptions{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	s := newSnapshots(db, a, ix, r, trust, snapshotOptions{
		Dir: filepath.Join(home, "data", "snapshots"), ChunkBytes: killChunkBytes, RestoreBatchBytes: killRestoreBatchBytes, Log: log})
	if r := s.offer(&snap, appHash); r != abci.ResponseOfferSnapshot_ACCEPT {
		t.Fatalf("offer: %v", r)
	}
	for i := uint32(0); i < snap.Chunks; i++ {
		res := s.apply(&abci.RequestApplySnapshotChunk{Index: i, Chunk: read(fmt.Sprintf("chunk-%06d", i)), Sender: "peer"})
		if res.Result != abci.ResponseApplySnapshotChunk_ACCEPT {
			t.Fatalf("chunk %d: %v", i, res.Result)
		}
		if at == killAmongChunks && i == snap.Chunks/2 {
			halt()
		}
	}
	t.Fatalf("the restore finished before %q", at)
}

// haltAt is the restoring process's log: it halts at the first group of
// batches indexed, at the restore's end, or once consensus took it up.
type haltAt struct {
	at      string
	halt    func()
	indexed int
}

func (h *haltAt) Enabled(context.Context, slog.Level) bool { return true }
func (h *haltAt) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *haltAt) WithGroup(string) slog.Handler            { return h }
func (h *haltAt) Handle(_ context.Context, r slog.Record) error {
	switch {
	case h.at == killWhileIndexing && strings.HasPrefix(r.Message, "restoring snapshot: batches indexed"):
		if h.indexed++; h.indexed == 1 {
			h.halt()
		}
	case h.at == killAfterRestore && r.Message == "snapshot restored":
		h.halt()
	case h.at == killTakenUp && r.Message == "Enabling blocksync reactor":
		// CometBFT saved its state and the commit from the restore.
		h.halt()
	}
	return nil
}

// testSnapshot anchors batches on n until it holds a snapshot at height 8
// or more, and returns it with the app hash consensus trusts for it, its
// chunks, and the hashes anchored.
func testSnapshot(ctx context.Context, t *testing.T, h *testHome, n *Node, cl pb.CredenceClient) (*abci.Snapshot, []byte, [][]byte, [][]byte) {
	t.Helper()
	var anchored [][]byte
	var snap *abci.Snapshot
	for snap == nil {
		hs := randomHashes(t, 50)
		if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hs}); err != nil {
			t.Fatal(err)
		}
		waitReceipt(ctx, t, cl, hs[:32])
		for i := 0; i < len(hs); i += 32 {
			anchored = append(anchored, hs[i:i+32])
		}
		for _, s := range n.snaps.list() {
			if s.Height >= 8 {
				snap = s
			}
		}
		if ctx.Err() != nil {
			t.Fatal("no snapshot at height >= 8")
		}
	}
	// The app hash of height H is in header H+1.
	next := int64(snap.Height) + 1
	for n.app.Height() < next {
		time.Sleep(20 * time.Millisecond)
	}
	commit, err := n.rpc.Commit(ctx, &next)
	if err != nil {
		t.Fatal(err)
	}
	return snap, []byte(commit.AppHash), readChunks(t, n.snaps, snap), anchored
}
