// Package node is the Credence daemon: CometBFT with the app in process, the
// durable submission queue, the batcher, the index and the gRPC API.
package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/consensus"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// Overrides replace settings of the home's config files for one run.
type Overrides struct {
	GRPCAddress string
	Ports       consensus.Ports
}

// Node is a running Credence node.
type Node struct {
	log      *slog.Logger
	chainID  string
	db       *badger.DB
	app      *app.App
	cmt      *cmtnode.Node
	rpc      *local.Local
	pipe     *pipeline
	snaps    *snapshots
	receipts *receipts
	auth     *authorizer
	grpc     *grpc.Server
	lis      net.Listener
	rpcAddr  string

	idxMu    sync.Mutex
	idxCond  *sync.Cond
	idxQueue []committed
	idxReady bool
	idxStop  bool
	idxDone  chan struct{}
	idxErr   error

	stopOnce    sync.Once
	pipeStarted bool
}

type committed struct {
	height  int64
	batches []app.CommittedBatch
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
	if ov.Ports.P2P != "" {
		ccfg.P2P.ListenAddress = ov.Ports.P2P
	}
	if ov.Ports.RPC != "" {
		ccfg.RPC.ListenAddress = ov.Ports.RPC
	}
	if ov.Ports.Prometheus != "" {
		ccfg.Instrumentation.PrometheusListenAddr = ov.Ports.Prometheus
	}
	if err := checkLoopback(cfg.GRPCAddress, cfg.TLSCertFile != "" || cfg.PlaintextAPIBeyondLoopback); err != nil {
		return nil, err
	}
	if cfg.TLSCertFile == "" && cfg.PlaintextAPIBeyondLoopback {
		log.Warn("API serves plaintext beyond loopback (plaintext_api_beyond_loopback): tokens cross the network in the clear", "grpc", cfg.GRPCAddress)
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
		h, _ := hex.DecodeString(is.TokenSHA256)
		auth.hashes = append(auth.hashes, h)
		auth.issuers = append(auth.issuers, is.ID)
	}

	n := &Node{log: log, chainID: chainID, auth: auth, idxDone: make(chan struct{})}
	n.idxCond = sync.NewCond(&n.idxMu)
	go n.indexLoop()
	defer func() {
		if err != nil {
			n.abort()
		}
	}()
	n.db, err = store.OpenBadger(filepath.Join(home, "data", "credence"), store.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("open node database: %w", err)
	}
	if err := pinGenesis(n.db, ccfg.GenesisFile(), genJSON); err != nil {
		return nil, err
	}
	n.app, err = app.New(store.NewIAVLDB(n.db, appPrefix), chainID,
		app.WithLogger(log.With("module", "app")), app.WithCommitHook(n.onCommit))
	if err != nil {
		return nil, err
	}
	n.pipe = newPipeline(n.db, n.app, chainID, keys, cfg, log.With("module", "batcher"))
	if err := n.pipe.load(); err != nil {
		return nil, fmt.Errorf("load queue: %w", err)
	}
	appHeight := n.app.Height()
	n.snaps = &snapshots{
		dir: filepath.Join(home, "data", "snapshots"), interval: cfg.SnapshotInterval, keep: cfg.SnapshotKeepRecent,
		app: n.app, db: n.db, pipe: n.pipe, trust: trust, log: log.With("module", "snapshots"),
		indexed: func() int64 { h, _ := indexedHeight(n.db); return h }, stopc: make(chan struct{}),
	}

	n.cmt, err = consensus.NewNode(ctx, ccfg, nodeApp{App: n.app, snaps: n.snaps}, log)
	if err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	n.rpc = local.New(n.cmt)
	n.pipe.broadcast = func(ctx context.Context, tx []byte) (uint32, string, error) {
		res, err := n.rpc.BroadcastTxSync(ctx, tx)
		if err != nil {
			return 0, "", err
		}
		return res.Code, res.Log, nil
	}
	n.receipts, err = newReceipts(n.db, n.rpc, chainID, cfg.ReceiptCacheMB<<20)
	if err != nil {
		return nil, fmt.Errorf("receipt index: %w", err)
	}
	n.snaps.receipts = n.receipts
	if err := n.catchUp(appHeight); err != nil {
		return nil, fmt.Errorf("index catch-up: %w", err)
	}
	if err := n.pipe.reconcile(); err != nil {
		return nil, fmt.Errorf("queue reconcile: %w", err)
	}
	n.idxMu.Lock()
	n.idxReady = true
	n.idxCond.Broadcast()
	n.idxMu.Unlock()

	if err := n.cmt.Start(); err != nil {
		return nil, fmt.Errorf("consensus start: %w", err)
	}
	n.rpcAddr = ccfg.RPC.ListenAddress
	n.pipe.start()
	n.pipeStarted = true

	n.lis, err = listenAPI(cfg)
	if err != nil {
		return nil, err
	}
	n.grpc = grpc.NewServer(append(serverOpts, apiServerOptions(cfg)...)...)
	pb.RegisterCredenceServer(n.grpc, &api{n: n, writes: newTokenLimits(cfg.TokenRate), maxKnownListed: cfg.MaxKnownListed})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(pb.Credence_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(n.grpc, hs)
	reflection.Register(n.grpc)
	go func() {
		if err := n.grpc.Serve(n.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Error("gRPC server stopped", "err", err)
		}
	}()
	log.Info("credence node started", "chain_id", chainID, "grpc", n.lis.Addr().String(),
		"rpc", ccfg.RPC.ListenAddress, "height", n.app.Height())
	return n, nil
}

func inConfigDir(home, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(home, "config", path)
}

func checkLoopback(addr string, allowed bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("grpc_address %q: %w", addr, err)
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
	return fmt.Errorf("grpc_address %q is not loopback: set tls_cert_file and tls_key_file in app.toml to serve the API beyond this host", addr)
}

// GRPCAddr is the address the API listens on.
func (n *Node) GRPCAddr() string { return n.lis.Addr().String() }

// RPCAddr is CometBFT's RPC listen address.
func (n *Node) RPCAddr() string { return n.rpcAddr }

// ChainID is the chain's id.
func (n *Node) ChainID() string { return n.chainID }

// onCommit runs inside the app's Commit: it only queues the block for the
// indexer, so consensus never waits on index writes.
func (n *Node) onCommit(height int64, batches []app.CommittedBatch) {
	n.idxMu.Lock()
	n.idxQueue = append(n.idxQueue, committed{height, batches})
	n.idxCond.Broadcast()
	n.idxMu.Unlock()
}

func (n *Node) indexLoop() {
	defer close(n.idxDone)
	for {
		n.idxMu.Lock()
		for !n.idxStop && (!n.idxReady || len(n.idxQueue) == 0) {
			n.idxCond.Wait()
		}
		if len(n.idxQueue) == 0 || !n.idxReady {
			n.idxMu.Unlock()
			return
		}
		work := n.idxQueue
		n.idxQueue = nil
		n.idxMu.Unlock()
		done, _ := indexedHeight(n.db)
		for _, c := range work {
			if c.height <= done {
				continue
			}
			err := n.noteValidatorChange(c.height)
			if err == nil {
				err = n.pipe.index(c.height, c.batches)
			}
			if err != nil {
				// The index is derived: the next start catches up from blocks.
				n.log.Error("index write failed; index stops until restart", "height", c.height, "err", err)
				n.idxMu.Lock()
				n.idxErr = err
				n.idxMu.Unlock()
				return
			}
		}
	}
}

// catchUp indexes the blocks the app committed before the last stop but the
// index did not record, reading them back from the block store.
func (n *Node) catchUp(appHeight int64) error {
	from, err := indexedHeight(n.db)
	if err != nil {
		return err
	}
	if from >= appHeight {
		return nil
	}
	bs := n.cmt.BlockStore()
	n.log.Info("indexing blocks committed before the last stop", "from", from+1, "to", appHeight)
	for h := from + 1; h <= appHeight; h++ {
		blk := bs.LoadBlock(h)
		if blk == nil {
			return fmt.Errorf("block %d is not in the block store", h)
		}
		var batches []app.CommittedBatch
		for _, raw := range blk.Txs {
			signer, seq, hashes, ok := anchorOf(raw)
			if !ok {
				continue
			}
			b, err := n.app.ProveBatch(signer, seq)
			if errors.Is(err, app.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			root, err := proof.Root(hashes)
			if err != nil || b.Record.Height != h || string(root[:]) != string(b.Record.Root) {
				continue // this transaction was rejected at h
			}
			b.Hashes = hashes
			batches = append(batches, *b)
		}
		if err := n.noteValidatorChange(h); err != nil {
			return err
		}
		if err := n.pipe.index(h, batches); err != nil {
			return err
		}
	}
	return nil
}

// noteValidatorChange records height h when the validator set changes
// after it: the header of h names the next set, so receipts of later
// batches carry that header as a link from the old set to the new.
func (n *Node) noteValidatorChange(h int64) error {
	meta := n.cmt.BlockStore().LoadBlockMeta(h)
	if meta == nil {
		return fmt.Errorf("block %d is not in the block store", h)
	}
	if bytes.Equal(meta.Header.ValidatorsHash, meta.Header.NextValidatorsHash) {
		return nil
	}
	n.log.Info("validator set changes after this height", "height", h)
	if err := n.db.Update(func(txn *badger.Txn) error {
		if _, err := getValue(txn, xvKey(h)); err == nil {
			return nil
		}
		return txn.Set(xvKey(h), []byte{})
	}); err != nil {
		return err
	}
	n.receipts.addLink(h)
	return nil
}

func anchorOf(raw []byte) (string, uint64, []byte, bool) {
	var tx pb.Tx
	if proto.Unmarshal(raw, &tx) != nil {
		return "", 0, nil, false
	}
	var body pb.TxBody
	if proto.Unmarshal(tx.Body, &body) != nil {
		return "", 0, nil, false
	}
	ab := body.GetAnchorBatch()
	if ab == nil {
		return "", 0, nil, false
	}
	return body.Signer, body.Sequence, ab.Hashes, true
}

// Stop shuts the node down cleanly: the API drains, the queue is synced,
// consensus stops, the stores close.
func (n *Node) Stop() error {
	var err error
	n.stopOnce.Do(func() {
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

func (n *Node) stopIndexer() {
	n.idxMu.Lock()
	n.idxStop = true
	n.idxReady = true
	n.idxCond.Broadcast()
	n.idxMu.Unlock()
	<-n.idxDone
}

func (n *Node) closeStores() error {
	n.stopIndexer()
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
	if n.lis != nil {
		_ = n.lis.Close()
	}
	if n.pipeStarted {
		n.pipe.stop()
		n.pipeStarted = false
	}

	if n.cmt != nil {
		if n.cmt.IsRunning() {
			_ = n.cmt.Stop()
			n.cmt.Wait()
		} else {
			// A node that never started still holds its block store open.
			_ = n.cmt.BlockStore().Close()
		}
	}
	if n.snaps != nil {
		n.snaps.stop()
	}
	_ = n.closeStores()
}
