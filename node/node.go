package node

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	cmtnode "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/rpc/client/local"
	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/consensus"
	"github.com/credence-ledger/credence/internal/positions"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// Overrides replace settings of the home's config files for one run.
type Overrides struct {
	GRPCAddress string
	HTTPAddress string
	Ports       consensus.Ports
	// UnsafeSkipUpgradeCheck starts a binary that has a pending plan's
	// handler before the chain reached the plan (upgrade.go): emergencies
	// only.
	UnsafeSkipUpgradeCheck bool

	// snapshotChunkBytes and restoreBatchBytes set the snapshots' sizes
	// (snapshotOptions.ChunkBytes, RestoreBatchBytes; 0 keeps the
	// defaults). This package's tests shrink them, so that a short chain's
	// snapshot spans many chunks and restores in many groups.
	snapshotChunkBytes int
	restoreBatchBytes  int
	// positionTag tags hashes in the positions index; nil is
	// positions.SHA256Tag. Tests make hashes collide with it.
	positionTag func(hash []byte) positions.Tag
}

// Node is a running Credence node.
type Node struct {
	log     *slog.Logger
	chainID string
	db      *badger.DB
	app     *app.App
	cmt     *cmtnode.Node
	cmtDBs  *consensus.DBs
	rpc     *local.Local
	// chain is the app and CometBFT as the pipeline and the indexer read
	// them.
	chain    *consensusChain
	index    *index
	pipe     *pipeline
	idx      *indexer
	snaps    *snapshots
	receipts *receipts
	auth     *authorizer
	grpc     *grpc.Server
	lis      net.Listener
	rpcAddr  string
	trust    *proof.TrustRoot

	// statusLists keeps rendered W3C status lists (statuslist.go).
	statusLists *statusListCache
	// txWaits hands Broadcast its transaction's result (txwait.go).
	txWaits *txWaits
	// receiptWaits wakes GetReceipt calls waiting for a hash to be final.
	receiptWaits *receiptWaits

	http        *http.Server
	httpLis     net.Listener
	gatewayConn *grpc.ClientConn

	// closers unwinds Start, at Stop or when Start fails.
	closers  closers
	stopOnce sync.Once
	// admin serves queue backup and restore (backup.go).
	admin *adminServer
	// upg is the halt for an upgrade this binary cannot run (upgrade.go).
	upg upgradeState
}

// Start opens the home and runs the node until Stop.
func Start(ctx context.Context, home string, ov Overrides, log *slog.Logger) (_ *Node, err error) {
	ccfg, err := consensus.LoadConfig(home)
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(home)
	if err != nil {
		return nil, err
	}
	if ov.GRPCAddress != "" {
		cfg.GRPCAddress = ov.GRPCAddress
	}
	if ov.HTTPAddress != "" {
		cfg.HTTPAddress = ov.HTTPAddress
	}
	if ov.Ports.P2P != "" {
		ccfg.P2P.ListenAddress = ov.Ports.P2P
	}
	if ov.Ports.RPC != "" {
		ccfg.RPC.ListenAddress = ov.Ports.RPC
	}
	if ov.Ports.Prometheus != "" {
		ccfg.Instrumentation.PrometheusListenAddr = ov.Ports.Prometheus
	}
	beyondLoopback := cfg.TLSCertFile != "" || cfg.PlaintextAPIBeyondLoopback
	if err := checkLoopback("grpc_address", cfg.GRPCAddress, beyondLoopback); err != nil {
		return nil, err
	}
	if cfg.HTTPAddress != "" {
		if err := checkLoopback("http_address", cfg.HTTPAddress, beyondLoopback); err != nil {
			return nil, err
		}
	}
	if cfg.TLSCertFile == "" && cfg.PlaintextAPIBeyondLoopback {
		log.Warn("API serves plaintext beyond loopback (plaintext_api_beyond_loopback): tokens cross the network in the clear", "grpc", cfg.GRPCAddress, "http", cfg.HTTPAddress)
	}
	var serverOpts []grpc.ServerOption
	if cfg.TLSCertFile != "" {
		creds, err := credentials.NewServerTLSFromFile(inConfigDir(home, cfg.TLSCertFile), inConfigDir(home, cfg.TLSKeyFile))
		if err != nil {
			return nil, fmt.Errorf("API TLS: %w", err)
		}
		serverOpts = append(serverOpts, grpc.Creds(creds))
	}
	// The genesis is read once: the trust root a snapshot's index is
	// checked against, and the chain id.
	genJSON, err := os.ReadFile(ccfg.GenesisFile())
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	trust, err := proof.TrustRootFromGenesis(genJSON)
	if err != nil {
		return nil, err
	}
	if err := checkConsensusKeys(ccfg); err != nil {
		return nil, err
	}
	chainID := trust.ChainID
	keys := make(map[string]ed25519.PrivateKey)
	auth := &authorizer{}
	for _, is := range cfg.Issuers {
		_, k, err := readKeyFile(inConfigDir(home, is.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("issuer %q key: %w", is.ID, err)
		}
		keys[is.ID] = k
		h, err := hex.DecodeString(is.TokenSHA256)
		if err != nil {
			return nil, fmt.Errorf("issuer %q token_sha256: %w", is.ID, err)
		}
		auth.hashes = append(auth.hashes, h)
		auth.issuers = append(auth.issuers, is.ID)
	}

	cfg.Memory.applyGoMemoryLimit()
	n := &Node{log: log, chainID: chainID, auth: auth, trust: trust, closers: closers{log: log}}
	n.upg.init(home)
	defer func() {
		if err != nil {
			n.closers.close()
		}
	}()
	defer n.catchStoreDamage(&err) // runs first: the unwinding sees the error

	// The parts, each made with what it needs, in the order they need each
	// other; each pushes its closer as soon as it holds something.
	recreated := dataRecreated(home)
	n.db, err = store.OpenBadger(filepath.Join(home, "data", "credence"), store.WithLogger(log), store.WithMemory(cfg.Memory.nodeDB()))
	if err != nil {
		return nil, fmt.Errorf("open node database: %w", refuseDamage(err))
	}
	n.closers.push("node database", func() error { return errors.Join(n.db.Sync(), n.db.Close()) })
	if err := pinGenesis(n.db, ccfg.GenesisFile(), genJSON); err != nil {
		return nil, err
	}
	if err := noteDataStarted(n.db, home, recreated, log); err != nil {
		return nil, err
	}

	began := time.Now()
	n.index, err = openIndex(n.db, indexOptions{
		RecentHashes: cfg.Memory.IndexRecentHashes, CheckedBatches: cfg.LeavesCheckedBatches,
		FilterMB: cfg.Memory.AnchoredFilterMB, Tag: ov.positionTag, Log: log,
	})
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	n.closers.push("index", func() error {
		// What the index held only in memory is rebuilt from the batches
		// at the next start: a failure here is no failure of the stop.
		if err := n.index.close(); err != nil {
			log.Warn("closing the positions index", "err", err)
		}
		return nil
	})
	if n.index.anchored != nil {
		log.Info("anchored filter built", "hashes", n.index.filled, "took", time.Since(began).Round(time.Millisecond))
	}

	// The app hands each block it commits to the index writer, which is
	// made later (it needs the pipeline, which needs the app): through
	// this queue, made first.
	commits := newCommitQueue()
	n.app, err = app.New(store.NewIAVLDB(n.db, []byte(prefixApp)), chainID,
		app.WithLogger(log.With("module", "app")), app.WithCommitHook(commits.push), app.WithUpgradeHalt(n.upg.decide),
		app.WithTxCacheBytes(cfg.Memory.TxCacheMB<<20))
	if err != nil {
		return nil, err
	}
	n.closers.push("state", n.app.Close)
	if err := n.checkUpgradeAtStart(ov.UnsafeSkipUpgradeCheck); err != nil {
		return nil, err
	}
	n.chain = newConsensusChain(n.app)

	n.pipe = newPipeline(n.db, n.chain, n.index, cfg, pipelineOptions{
		QueueDir: filepath.Join(home, "data", "queue"), ChainID: chainID, Keys: keys, Log: log.With("module", "batcher"),
	})
	// Closes the log when the pipeline never ran; at a stop the pipeline
	// (below) has closed it already.
	n.closers.push("queue log", n.pipe.queue.close)
	if err := n.pipe.load(); err != nil {
		return nil, fmt.Errorf("load queue: %w", err)
	}
	n.receipts, err = newReceipts(n.db, n.index, n.chain, chainID, cfg.ReceiptCacheMB<<20, cfg.Memory.HeaderCacheMB<<20)
	if err != nil {
		return nil, fmt.Errorf("receipt index: %w", err)
	}
	n.receiptWaits = newReceiptWaits(cfg.MaxReceiptWaits, cfg.ReceiptWaitMax.Duration)
	n.idx, err = newIndexer(n.db, n.chain, commits, n.index, n.pipe, n.receipts, indexerOptions{
		RetryMin: cfg.IndexRetryMin.Duration, RetryMax: cfg.IndexRetryMax.Duration, Retaining: cfg.RetainBlocks > 0, Log: log,
		Indexed: n.receiptWaits.blockIndexed,
	})
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	n.closers.push("index writer", func() error { n.idx.stop(); return nil })
	n.snaps = newSnapshots(n.db, n.app, n.idx, n.receipts, trust, snapshotOptions{
		Dir: filepath.Join(home, "data", "snapshots"), Interval: cfg.SnapshotInterval, Keep: cfg.SnapshotKeepRecent,
		ChunkBytes: ov.snapshotChunkBytes, RestoreBatchBytes: ov.restoreBatchBytes, Log: log.With("module", "snapshots"),
	})
	n.closers.push("snapshots", func() error { n.snaps.stop(); return nil })
	// A restore cut short by a stop starts over, from an empty state.
	if err := n.snaps.clearInterrupted(); err != nil {
		return nil, err
	}
	appHeight := n.app.Height()
	retain := &retention{blocks: cfg.RetainBlocks, durable: n.idx.durableHeight, snaps: n.snaps}

	// A stop right after state sync, before the first block
	// (consensus/resume.go). Only a restore no block was committed on yet
	// can leave that, so other starts do not open CometBFT's stores (and
	// check their tables) twice.
	if n.snaps.unconfirmed.Load() {
		if h, err := consensus.ResumeStateSync(ccfg, cfg.consensusDBMemory()); err != nil {
			return nil, fmt.Errorf("consensus: %w", err)
		} else if h > 0 {
			log.Info("state sync was stopped after consensus took up the restore; following the chain from it", "height", h)
		}
	}
	n.cmt, n.cmtDBs, err = consensus.NewNode(ctx, ccfg, nodeApp{App: n.app, snaps: n.snaps, retain: retain}, log, consensus.DBOptions{Memory: cfg.consensusDBMemory(), BlockStoreGCInterval: cfg.BlockStoreGCInterval.Duration,
		BlockStoreMemTableSize: int64(cfg.Memory.ConsensusDBBlockStoreMemTableKB) << 10})
	if err != nil {
		return nil, fmt.Errorf("consensus: %w", refuseDamage(err))
	}
	// A node that never started still holds its databases open; a stopped
	// one closed them, and closing them again does nothing.
	n.closers.push("consensus databases", n.cmtDBs.Close)
	n.rpc = local.New(n.cmt)
	n.chain.attach(n.cmt, n.rpc)
	n.statusLists = newStatusListCache(int64(cfg.StatusListCacheMB) << 20)
	n.txWaits = newTxWaits(cfg.MaxBroadcastWaits, cfg.BroadcastTimeout.Duration, log.With("module", "broadcast"))

	// Before anything runs: the index catches up with the blocks committed
	// before the last stop, and the queue drops what they anchored.
	if err := n.idx.backfillHeaders(); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if err := n.idx.catchUp(appHeight); err != nil {
		return nil, fmt.Errorf("index catch-up: %w", err)
	}
	if err := n.idx.checkLastBatch(); err != nil {
		return nil, err
	}
	if err := n.pipe.reconcile(); err != nil {
		return nil, fmt.Errorf("queue reconcile: %w", err)
	}
	n.idx.start()

	if err := checkPrometheusListen(ccfg); err != nil {
		return nil, err
	}
	if err := n.cmt.Start(); err != nil {
		return nil, fmt.Errorf("consensus start: %w", err)
	}
	n.closers.push("consensus", func() error {
		if err := n.cmt.Stop(); err != nil {
			n.log.Warn("consensus stop", "err", err)
		}
		n.cmt.Wait()
		return nil
	})
	n.rpcAddr = ccfg.RPC.ListenAddress
	if err := n.txWaits.start(n.cmt.EventBus()); err != nil {
		return nil, err
	}
	n.pipe.start()
	n.closers.push("pipeline", func() error { n.pipe.stop(); return nil })

	n.lis, err = listenAPI(cfg)
	if err != nil {
		return nil, err
	}
	n.grpc = grpc.NewServer(append(serverOpts, apiServerOptions(cfg)...)...)
	// Stopping the server closes the listener, even before Serve takes it.
	n.closers.push("gRPC API", n.stopGRPC)
	pb.RegisterCredenceServer(n.grpc, &api{n: n, writes: newTokenLimits(cfg.TokenRate), maxKnownListed: cfg.MaxKnownListed})
	hs := health.NewServer()
	// NOT_SERVING while Submit is refused (liveness.go); NodeInfo's
	// problems say why.
	n.pipe.live.watch(func(serving bool) {
		st := healthpb.HealthCheckResponse_SERVING
		if !serving {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		hs.SetServingStatus("", st)
		hs.SetServingStatus(pb.Credence_ServiceDesc.ServiceName, st)
	})
	healthpb.RegisterHealthServer(n.grpc, hs)
	reflection.Register(n.grpc)
	grpcMetrics.InitializeMetrics(n.grpc)
	go func() {
		if err := n.grpc.Serve(n.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Error("gRPC server stopped", "err", err)
		}
	}()
	n.closers.push("HTTP gateway", func() error { n.stopHTTP(); return nil })
	if err := n.startHTTP(cfg, home, genJSON); err != nil {
		return nil, err
	}
	n.closers.push("admin socket", func() error { n.stopAdmin(); return nil })
	if err := n.startAdmin(home); err != nil {
		// Serving reads and Submit matters more than the backup: say
		// plainly that the queue cannot be backed up from this node.
		log.Error("queue backup and restore are unavailable: "+err.Error()+" (docs/operations.md, \"Backup and disaster recovery\")", "socket", adminSocket(home))
	}
	go n.watchUpgrade()
	n.closers.push("upgrade watch", func() error { n.upg.stop(); return nil })
	if err := dataLossReported(n.db); err != nil {
		return nil, err
	}
	log.Info("credence node started", "chain_id", chainID, "grpc", n.lis.Addr().String(),
		"http", n.HTTPAddr(), "rpc", ccfg.RPC.ListenAddress, "height", n.app.Height())
	return n, nil
}

func inConfigDir(home, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(home, "config", path)
}

func checkLoopback(field, addr string, allowed bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", field, addr, err)
	}
	if allowed {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s %q is not loopback: set tls_cert_file and tls_key_file in app.toml to serve the API beyond this host", field, addr)
}

// GRPCAddr is the address the API listens on.
func (n *Node) GRPCAddr() string { return n.lis.Addr().String() }

// RPCAddr is CometBFT's RPC listen address.
func (n *Node) RPCAddr() string { return n.rpcAddr }

// ChainID is the chain's id.
func (n *Node) ChainID() string { return n.chainID }

// Stop shuts the node down cleanly, unwinding what Start built: the API
// drains, the pipeline stops and syncs the queue, consensus stops, the
// snapshots stop, the stores close.
func (n *Node) Stop() error {
	var err error
	n.stopOnce.Do(func() { err = n.closers.close() })
	return err
}

// stopGRPC lets the API's calls finish, for at most 10 s.
func (n *Node) stopGRPC() error {
	done := make(chan struct{})
	go func() { n.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		n.grpc.Stop()
	}
	return nil
}
