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
	// (snapshots.chunkBytes, snapshots.restoreBatchBytes; 0 keeps the
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
	log      *slog.Logger
	chainID  string
	db       *badger.DB
	app      *app.App
	cmt      *cmtnode.Node
	cmtDBs   *consensus.DBs
	rpc      *local.Local
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

	http        *http.Server
	httpLis     net.Listener
	gatewayConn *grpc.ClientConn

	stopOnce    sync.Once
	pipeStarted bool
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
	n := &Node{log: log, chainID: chainID, auth: auth, trust: trust}
	n.upg.init(home)
	defer func() {
		if err != nil {
			n.abort()
		}
	}()
	defer n.catchStoreDamage(&err) // runs first: abort sees the error
	recreated := dataRecreated(home)
	n.db, err = store.OpenBadger(filepath.Join(home, "data", "credence"), store.WithLogger(log), store.WithMemory(cfg.Memory.nodeDB()))
	if err != nil {
		return nil, fmt.Errorf("open node database: %w", refuseDamage(err))
	}
	if err := pinGenesis(n.db, ccfg.GenesisFile(), genJSON); err != nil {
		return nil, err
	}
	if err := noteDataStarted(n.db, home, recreated, log); err != nil {
		return nil, err
	}
	cc := &consensusChain{}
	n.idx, err = newIndexer(n.db, cc, log, cfg.Memory.IndexRecentHashes, ov.positionTag)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	n.idx.leaves.checks.setMax(cfg.LeavesCheckedBatches)
	n.idx.retryMin, n.idx.retryMax = cfg.IndexRetryMin.Duration, cfg.IndexRetryMax.Duration
	// Filled before anything indexes or Submit runs; later positions are
	// added as they are written.
	began := time.Now()
	if held, err := n.idx.openFilter(cfg.Memory.AnchoredFilterMB); err != nil {
		return nil, fmt.Errorf("anchored filter: %w", err)
	} else if n.idx.anchored != nil {
		log.Info("anchored filter built", "hashes", held, "took", time.Since(began).Round(time.Millisecond))
	}
	n.app, err = app.New(store.NewIAVLDB(n.db, []byte(prefixApp)), chainID,
		app.WithLogger(log.With("module", "app")), app.WithCommitHook(n.idx.onCommit), app.WithUpgradeHalt(n.upg.decide),
		app.WithTxCacheBytes(cfg.Memory.TxCacheMB<<20))
	if err != nil {
		return nil, err
	}
	cc.App = n.app
	if err := n.checkUpgradeAtStart(ov.UnsafeSkipUpgradeCheck); err != nil {
		return nil, err
	}
	n.pipe = newPipeline(n.db, filepath.Join(home, "data", "queue"), cc, chainID, keys, cfg, log.With("module", "batcher"))
	n.idx.pipe = n.pipe
	n.pipe.anchored = n.idx.anchored
	n.pipe.leaves = n.idx.leaves
	if err := n.pipe.load(); err != nil {
		return nil, fmt.Errorf("load queue: %w", err)
	}
	n.snaps = &snapshots{
		dir: filepath.Join(home, "data", "snapshots"), interval: cfg.SnapshotInterval, keep: cfg.SnapshotKeepRecent,
		app: n.app, db: n.db, idx: n.idx, trust: trust, log: log.With("module", "snapshots"),
		chunkBytes: ov.snapshotChunkBytes, restoreBatchBytes: ov.restoreBatchBytes,
		indexed: n.idx.indexedHeight, stopc: make(chan struct{}),
	}
	// A restore cut short by a stop starts over, from an empty state.
	if err := n.snaps.clearInterrupted(); err != nil {
		return nil, err
	}
	appHeight := n.app.Height()
	if hs := n.snaps.heights(); len(hs) > 0 {
		n.snaps.newest.Store(hs[0])
	}
	n.idx.retaining = cfg.RetainBlocks > 0
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
	n.cmt, n.cmtDBs, err = consensus.NewNode(ctx, ccfg, nodeApp{App: n.app, snaps: n.snaps, retain: retain}, log, cfg.consensusDBMemory())
	if err != nil {
		return nil, fmt.Errorf("consensus: %w", refuseDamage(err))
	}
	n.rpc = local.New(n.cmt)
	cc.cmt, cc.rpc = n.cmt, n.rpc
	n.receipts, err = newReceipts(n.db, n.idx.leaves, n.rpc, chainID, cfg.ReceiptCacheMB<<20, cfg.Memory.HeaderCacheMB<<20)
	if err != nil {
		return nil, fmt.Errorf("receipt index: %w", err)
	}
	n.snaps.receipts = n.receipts
	n.statusLists = newStatusListCache(int64(cfg.StatusListCacheMB) << 20)
	n.txWaits = newTxWaits(cfg.MaxBroadcastWaits, cfg.BroadcastTimeout.Duration, log.With("module", "broadcast"))
	n.idx.receipts = n.receipts
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
	n.rpcAddr = ccfg.RPC.ListenAddress
	if err := n.txWaits.start(n.cmt.EventBus()); err != nil {
		return nil, err
	}
	n.pipe.start()
	n.pipeStarted = true

	n.lis, err = listenAPI(cfg)
	if err != nil {
		return nil, err
	}
	n.grpc = grpc.NewServer(append(serverOpts, apiServerOptions(cfg)...)...)
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
	if err := n.startHTTP(cfg, home, genJSON); err != nil {
		return nil, err
	}
	if err := n.startAdmin(home); err != nil {
		// Serving reads and Submit matters more than the backup: say
		// plainly that the queue cannot be backed up from this node.
		log.Error("queue backup and restore are unavailable: "+err.Error()+" (docs/operations.md, \"Backup and disaster recovery\")", "socket", adminSocket(home))
	}
	go n.watchUpgrade()
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

// Stop shuts the node down cleanly: the API drains, the queue is synced,
// consensus stops, the stores close.
func (n *Node) Stop() error {
	var err error
	n.stopOnce.Do(func() {
		n.upg.stop()
		n.stopAdmin()
		n.stopHTTP()
		if n.grpc != nil {
			done := make(chan struct{})
			go func() { n.grpc.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				n.grpc.Stop()
			}
		}
		n.pipe.stop()
		if err2 := n.cmt.Stop(); err2 != nil {
			n.log.Warn("consensus stop", "err", err2)
		}
		n.cmt.Wait()
		n.snaps.stop()
		err = n.closeStores()
	})
	return err
}

func (n *Node) closeStores() error {
	if n.idx != nil {
		n.idx.stop()
	}
	var errs []error
	if n.app != nil {
		errs = append(errs, n.app.Close())
	}
	if n.db != nil {
		errs = append(errs, n.db.Sync(), n.db.Close())
	}
	return errors.Join(errs...)
}

// abort releases what a failed Start opened.
func (n *Node) abort() {
	n.stopOnce.Do(func() {})
	n.upg.stop()
	n.stopAdmin()
	n.stopHTTP()
	if n.grpc != nil {
		// Stop closes the listener too.
		n.grpc.Stop()
	} else if n.lis != nil {
		if err := n.lis.Close(); err != nil {
			n.log.Warn("closing the gRPC listener of a failed start", "err", err)
		}
	}
	if n.pipeStarted {
		n.pipe.stop()
		n.pipeStarted = false
	}

	if n.cmt != nil {
		if n.cmt.IsRunning() {
			if err := n.cmt.Stop(); err != nil {
				n.log.Warn("stopping consensus after a failed start", "err", err)
			}
			n.cmt.Wait()
		} else if err := n.cmtDBs.Close(); err != nil {
			// A node that never started still holds its databases open.
			n.log.Warn("closing consensus databases after a failed start", "err", err)
		}
	}
	if n.snaps != nil {
		n.snaps.stop()
	}
	if err := n.closeStores(); err != nil {
		n.log.Error("closing the stores after a failed start", "err", err)
	}
}
