// Package consensus holds the CometBFT side of a Credence node: its config,
// keys and genesis on disk, and the in-process node assembled around the app.
package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	abci "github.com/cometbft/cometbft/abci/types"
	cfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	cmtnode "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/proxy"
	cmttypes "github.com/cometbft/cometbft/types"
	cmttime "github.com/cometbft/cometbft/types/time"
	"github.com/dgraph-io/badger/v4"
	"github.com/spf13/viper"

	"github.com/credence-ledger/credence/internal/store"
)

// maxBlockBytes (block.max_bytes) holds several full batches so that
// issuers anchoring at once share a block rather than queue behind each
// other.
const maxBlockBytes = 21 << 20

// Ports is where a node listens. Zero values take the defaults.
type Ports struct {
	P2P        string // default tcp://0.0.0.0:26656 (peers must reach it)
	RPC        string // default tcp://127.0.0.1:26657
	Prometheus string // default :26660 when instrumentation is on
}

// DefaultConfig is the CometBFT configuration Credence writes at init, with
// every departure from CometBFT's defaults made on purpose. maxTxBytes is
// the largest transaction the state machine accepts (one full batch).
func DefaultConfig(home, moniker string, ports Ports, maxTxBytes int) *cfg.Config {
	c := cfg.DefaultConfig()
	c.SetRoot(home)
	c.Moniker = moniker
	c.DBBackend = "badgerdb"
	c.LogLevel = "info"
	c.RPC.ListenAddress = "tcp://127.0.0.1:26657"
	// CometBFT's own gRPC services stay off: our API has its own port.
	c.RPC.GRPCListenAddress = ""
	// For tools on CometBFT's RPC (broadcast_tx_commit): its own 10 s cap is
	// too short for a round that times out on a loaded machine. The API's
	// Broadcast does not use it (node/txwait.go, broadcast_timeout).
	c.RPC.TimeoutBroadcastTxCommit = time.Minute
	c.P2P.ListenAddress = "tcp://0.0.0.0:26656"
	// Batches are megabytes; CometBFT's 5 MB/s per peer would cap throughput.
	c.P2P.SendRate = 64 << 20
	c.P2P.RecvRate = 64 << 20
	c.P2P.MaxPacketMsgPayloadSize = 64 << 10
	c.Mempool.MaxTxBytes = maxTxBytes
	c.Mempool.MaxTxsBytes = 256 << 20
	c.Mempool.Size = 10000
	// An anchored root becomes provable in the next header; without empty
	// blocks CometBFT still makes that block because the app hash changed.
	c.Consensus.CreateEmptyBlocks = true
	c.Consensus.CreateEmptyBlocksInterval = 30 * time.Second
	c.Consensus.TimeoutCommit = 250 * time.Millisecond
	c.Consensus.TimeoutPropose = 2 * time.Second
	c.Instrumentation.Prometheus = true
	c.Instrumentation.PrometheusListenAddr = "127.0.0.1:26660"
	c.TxIndex.Indexer = "null"
	// No one reads a past block's FinalizeBlock results (the index is
	// derived from the blocks and the state): keep only the last, which
	// crash recovery replays.
	c.Storage.DiscardABCIResponses = true
	if ports.P2P != "" {
		c.P2P.ListenAddress = ports.P2P
	}
	if ports.RPC != "" {
		c.RPC.ListenAddress = ports.RPC
	}
	if ports.Prometheus != "" {
		c.Instrumentation.PrometheusListenAddr = ports.Prometheus
	}
	return c
}

// consensusParams are the genesis consensus parameters.
func consensusParams() *cmttypes.ConsensusParams {
	p := cmttypes.DefaultConsensusParams()
	p.Block.MaxBytes = maxBlockBytes
	return p
}

// Keys are a new validator's key files.
type Keys struct {
	ValidatorPubKey []byte
	NodeID          string
}

// WriteHome creates the CometBFT part of a home: config.toml, the node key
// and the validator key (mode 0600), and returns the public parts.
func WriteHome(c *cfg.Config) (*Keys, error) {
	for _, d := range []string{filepath.Join(c.RootDir, "config"), filepath.Join(c.RootDir, "data")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	cfg.WriteConfigFile(filepath.Join(c.RootDir, "config", "config.toml"), c)
	pv := privval.LoadOrGenFilePV(c.PrivValidatorKeyFile(), c.PrivValidatorStateFile())
	nk, err := p2p.LoadOrGenNodeKey(c.NodeKeyFile())
	if err != nil {
		return nil, err
	}
	for _, f := range []string{c.PrivValidatorKeyFile(), c.PrivValidatorStateFile(), c.NodeKeyFile()} {
		if err := os.Chmod(f, 0o600); err != nil {
			return nil, err
		}
	}
	pub, err := pv.GetPubKey()
	if err != nil {
		return nil, err
	}
	return &Keys{ValidatorPubKey: pub.Bytes(), NodeID: string(nk.ID())}, nil
}

// Validator is a genesis validator.
type Validator struct {
	Name   string
	PubKey []byte
	Power  int64
}

// WriteGenesis writes genesis.json with the given validators and app state.
func WriteGenesis(path, chainID string, vals []Validator, appState json.RawMessage) error {
	doc := &cmttypes.GenesisDoc{
		ChainID:         chainID,
		GenesisTime:     cmttime.Now(),
		InitialHeight:   1,
		ConsensusParams: consensusParams(),
		AppState:        appState,
	}
	for i, v := range vals {
		// CometBFT panics on a key of another size and accepts a negative
		// power; both are refused here with the validator named.
		if len(v.PubKey) != ed25519.PubKeySize {
			return fmt.Errorf("genesis: validator %d (%s): public key is %d bytes, want %d", i, v.Name, len(v.PubKey), ed25519.PubKeySize)
		}
		if v.Power <= 0 {
			return fmt.Errorf("genesis: validator %d (%s): power %d, must be positive", i, v.Name, v.Power)
		}
		pk := ed25519.PubKey(v.PubKey)
		doc.Validators = append(doc.Validators, cmttypes.GenesisValidator{
			Address: pk.Address(), PubKey: pk, Power: v.Power, Name: v.Name,
		})
	}
	if err := doc.ValidateAndComplete(); err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	return doc.SaveAs(path)
}

// LoadConfig reads a home's config.toml.
func LoadConfig(home string) (*cfg.Config, error) {
	path := filepath.Join(home, "config", "config.toml")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no node here (run credenced init --home %s): %w", home, err)
	}
	v := viper.New()
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := cfg.DefaultConfig()
	if err := v.Unmarshal(c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.SetRoot(home)
	if err := c.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.DBBackend != "badgerdb" {
		return nil, fmt.Errorf("%s: db_backend is %q; Credence runs on badgerdb", path, c.DBBackend)
	}
	return c, nil
}

// NewNode assembles the in-process CometBFT node around app. The local
// client creator serialises ABCI calls with one mutex, so the app sees one
// call at a time. Each database CometBFT opens (block store, state,
// evidence) is bounded by o.Memory.
//
// The databases CometBFT opens for the node are returned too: a node that
// starts closes them when it stops, but one that never started (Start
// failed after assembling it) must close them itself, or the next start in
// the same process finds them locked.
func NewNode(ctx context.Context, c *cfg.Config, app abci.Application, log *slog.Logger, o DBOptions) (*cmtnode.Node, *DBs, error) {
	if err := o.Memory.Check(); err != nil {
		return nil, nil, err
	}
	if o.BlockStoreGCInterval < 0 {
		return nil, nil, fmt.Errorf("block store GC interval %v is negative", o.BlockStoreGCInterval)
	}
	if min := MinBlockStoreMemTableSize; o.BlockStoreMemTableSize != 0 && o.BlockStoreMemTableSize < min {
		return nil, nil, fmt.Errorf("%w: block store memtable size %d is below %d", store.ErrMemory, o.BlockStoreMemTableSize, min)
	}
	pv := privval.LoadFilePV(c.PrivValidatorKeyFile(), c.PrivValidatorStateFile())
	nk, err := p2p.LoadNodeKey(c.NodeKeyFile())
	if err != nil {
		return nil, nil, fmt.Errorf("node key: %w", err)
	}
	dbs := &DBs{memory: o.Memory, gcInterval: o.BlockStoreGCInterval, blockMemTable: o.BlockStoreMemTableSize, log: log}
	n, err := newNode(ctx, c, pv, nk, app, log, dbs)
	if err != nil {
		return nil, nil, errors.Join(err, dbs.Close())
	}
	return n, dbs, nil
}

func newNode(ctx context.Context, c *cfg.Config, pv *privval.FilePV, nk *p2p.NodeKey, app abci.Application, log *slog.Logger, dbs *DBs) (_ *cmtnode.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = dbs.loadGuard(r, log)
		}
	}()
	return cmtnode.NewNodeWithContext(ctx, c, pv, nk,
		proxy.NewLocalClientCreator(app),
		cmtnode.DefaultGenesisDocProviderFunc(c),
		dbs.provide,
		metricsProvider(c, log),
		newLogger(log, c.LogLevel),
		wrapMempool(c.Mempool.CacheSize),
	)
}

// DefaultDBMemory is the default budget of each of CometBFT's databases,
// 44 MiB: two 16 MiB memtables (the block store's are smaller,
// DefaultBlockStoreMemTableSize), an 8 MiB block cache and a 4 MiB index
// cache; and two compactors.
var DefaultDBMemory = store.Memory{MemTableSize: 16 << 20, NumMemTables: 2, BlockCacheSize: 8 << 20, IndexCacheSize: 4 << 20, Compactors: 2}

// DBOptions are the settings of CometBFT's databases.
type DBOptions struct {
	// Memory bounds each database (DefaultDBMemory).
	Memory store.Memory
	// BlockStoreGCInterval is how often the block store's value log is
	// garbage-collected, which frees the space of pruned blocks' parts
	// (blockStoreValueThreshold); 0 never does. Default
	// DefaultBlockStoreGCInterval.
	BlockStoreGCInterval time.Duration
	// BlockStoreMemTableSize replaces Memory's memtable size for the block
	// store (DefaultBlockStoreMemTableSize); 0 is the default. At least
	// MinBlockStoreMemTableSize.
	BlockStoreMemTableSize int64
}

// DefaultBlockStoreMemTableSize is the block store's memtable size, 256
// KiB. The space of pruned block parts comes back only once a compaction
// has met their deletions and counted them garbage in the value log, and
// compactions follow memtable flushes (one of level 0 every five). With
// its parts in the value log (blockStoreValueThreshold) the block store's
// memtable fills with small entries only: in
// TestBlockStoreGCFreesPrunedPartsAsItGoes the GC freed the first value
// log file after some 24,500 entries (sets and deletes) at 256 KiB, 96,000
// at 1 MiB, and not within 260,000 at 16 MiB. At 1.6 MB/s of transactions
// with pruning, some 60 entries a second, that is about seven minutes,
// half an hour, and more than seven hours. Badger's largest transaction,
// 15% of the memtable, still holds the pointers of a 21 MiB block's 336
// parts, so a block is still saved in one.
const DefaultBlockStoreMemTableSize = 256 << 10

// MinBlockStoreMemTableSize is the smallest block store memtable badger
// opens with: 15% of it must hold a value of blockStoreValueThreshold.
var MinBlockStoreMemTableSize = store.MinMemTableSizeFor(blockStoreValueThreshold)

// DefaultBlockStoreGCInterval is the block store's default value-log GC
// interval, a minute: a run that finds no file half garbage costs a
// lookup, and at 50,000 hashes a second (1.6 MB/s of transactions) a
// value log file of 128 MiB fills in under two minutes, so a file is
// freed within a minute of compactions counting it garbage.
const DefaultBlockStoreGCInterval = time.Minute

// blockStoreValueThreshold: the block store's values of 4 KiB or more,
// the 64 KiB parts of every block (and a block's last, shorter, part),
// are written once, to the value log, and the LSM tree holds pointers to
// them. With badger's 1 MiB threshold every part went through the
// memtable's log, the memtable, a level-0 table and every compaction that
// moved it down: copies that cost a loaded validator about a seventh of
// its CPU. The block store's other values (block metas, commits, its
// state) are smaller and stay in the tree. The state and evidence stores
// keep badger's threshold: their values are small, and the state store
// overwrites its own (the last ABCI responses, every block): garbage that
// compaction frees at no cost in the tree, and only value-log GC could
// free in the value log.
const blockStoreValueThreshold = 4 << 10

// blockStoreValueLogFileSize is the block store's value log file size.
// GC never rewrites the file being written, so pruned parts in it wait
// until it is full: with badger's 1 GiB files that was 15 minutes of
// blocks at 35,000 hashes/s (a 5-minute run with retain_blocks = 200
// freed nothing); 128 MiB files are full in about two.
const blockStoreValueLogFileSize = 128 << 20

// DBs are the databases CometBFT opened for one node.
type DBs struct {
	memory     store.Memory
	gcInterval time.Duration // the block store's value-log GC
	// blockMemTable is the block store's memtable size; 0 is
	// DefaultBlockStoreMemTableSize.
	blockMemTable int64
	// vlogFileSize is the block store's value log file size; 0 is
	// blockStoreValueLogFileSize. Tests shrink it so that GC has files to
	// free.
	vlogFileSize int64
	log          *slog.Logger
	mu           sync.Mutex
	open         []dbm.DB
}

// provide opens a database where cfg.DefaultDBProvider does, with the
// options of the node's own database (store.BadgerOptions: every block
// read checked against its checksum, badger's warnings logged), which
// write the same files as cometbft-db's NewBadgerDB, bounded by d.memory:
// with badger's defaults each of CometBFT's databases may hold five 64 MiB
// memtables and a 256 MiB block cache. The block store writes its block
// parts to the value log (blockStoreValueThreshold), which is
// garbage-collected every d.gcInterval; a database written with another
// threshold reads the same, each value where it was put.
func (d *DBs) provide(ctx *cfg.DBContext) (dbm.DB, error) {
	if ctx.Config.DBBackend != string(dbm.BadgerDBBackend) {
		return nil, fmt.Errorf("db_backend is %q; Credence runs on badgerdb", ctx.Config.DBBackend)
	}
	dir := filepath.Join(ctx.Config.DBDir(), ctx.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	log := d.log
	if log == nil {
		log = slog.Default()
	}
	// CometBFT syncs where it needs to (store.WithSyncWrites' default).
	so := []store.Option{store.WithMemory(d.memory), store.WithLogger(log.With("db", ctx.ID))}
	var gc time.Duration
	if ctx.ID == "blockstore" {
		mem := d.memory
		mem.MemTableSize = d.blockMemTable
		if mem.MemTableSize == 0 {
			mem.MemTableSize = DefaultBlockStoreMemTableSize
		}
		so = append(so, store.WithMemory(mem), store.WithValueThreshold(blockStoreValueThreshold))
		vlog := d.vlogFileSize
		if vlog <= 0 {
			vlog = blockStoreValueLogFileSize
		}
		so = append(so, store.WithValueLogFileSize(vlog))
		gc = d.gcInterval
	}
	opts, err := store.BadgerOptions(dir, so...)
	if err != nil {
		return nil, err
	}
	var bdb *badger.DB
	err = store.Open(opts, func(o badger.Options) (err error) {
		bdb, err = badger.Open(o)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", ctx.ID, err)
	}
	var db dbm.DB = namedDB{DB: newBadgerDB(bdb, gc, log.With("db", ctx.ID)), dir: dir}
	d.mu.Lock()
	d.open = append(d.open, db)
	d.mu.Unlock()
	return db, nil
}

// Close closes the databases of a node that never started.
func (d *DBs) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, db := range d.open {
		errs = append(errs, db.Close())
	}
	d.open = nil
	return errors.Join(errs...)
}

// metricsRegistered: CometBFT registers its metrics in the process-wide
// Prometheus registry, which takes each name once. A second node in the same
// process (tests, a restart in place) runs without metrics rather than panic.
var metricsRegistered atomic.Bool

func metricsProvider(c *cfg.Config, log *slog.Logger) cmtnode.MetricsProvider {
	if c.Instrumentation.Prometheus && metricsRegistered.Swap(true) {
		log.Warn("Prometheus metrics already registered in this process; this node runs without them")
		off := *c.Instrumentation
		off.Prometheus = false
		return cmtnode.DefaultMetricsProvider(&off)
	}
	return cmtnode.DefaultMetricsProvider(c.Instrumentation)
}

// slogAdapter routes CometBFT's logs into slog.
type slogAdapter struct {
	l     *slog.Logger
	debug bool
}

func newLogger(l *slog.Logger, level string) cmtlog.Logger {
	return &slogAdapter{l: l.With("module", "cometbft"), debug: level == "debug"}
}

func (s *slogAdapter) Debug(msg string, kv ...any) {
	if s.debug {
		s.l.Debug(msg, printable(kv)...)
	}
}
func (s *slogAdapter) Info(msg string, kv ...any)  { s.l.Info(msg, printable(kv)...) }
func (s *slogAdapter) Error(msg string, kv ...any) { s.l.Error(msg, printable(kv)...) }
func (s *slogAdapter) Warn(msg string, kv ...any)  { s.l.Warn(msg, printable(kv)...) }
func (s *slogAdapter) With(kv ...any) cmtlog.Logger {
	return &slogAdapter{l: s.l.With(printable(kv)...), debug: s.debug}
}

// printable renders CometBFT's hashes (HexBytes and other Stringers) as
// their text, not as raw bytes.
func printable(kv []any) []any {
	for i, v := range kv {
		switch x := v.(type) {
		case fmt.Stringer:
			kv[i] = x.String()
		case []byte:
			kv[i] = fmt.Sprintf("%X", x)
		}
	}
	return kv
}
