package consensus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credence-ledger/credence/internal/testport"

	abci "github.com/cometbft/cometbft/abci/types"
	cfg "github.com/cometbft/cometbft/config"
	cmtbytes "github.com/cometbft/cometbft/libs/bytes"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/credence-ledger/credence/internal/store"
)

const testMaxTxBytes = 4 << 20

// TestDefaultConfig pins the departures from CometBFT's defaults that
// Credence makes on purpose, and that the result is a valid configuration.
func TestDefaultConfig(t *testing.T) {
	home := t.TempDir()
	c := DefaultConfig(home, "uni-a", Ports{}, testMaxTxBytes)
	if err := c.ValidateBasic(); err != nil {
		t.Fatalf("ValidateBasic: %v", err)
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"root", c.RootDir, home},
		{"moniker", c.Moniker, "uni-a"},
		{"db_backend", c.DBBackend, "badgerdb"},
		{"log_level", c.LogLevel, "info"},
		{"rpc.laddr", c.RPC.ListenAddress, "tcp://127.0.0.1:26657"},
		{"rpc.grpc_laddr", c.RPC.GRPCListenAddress, ""},
		{"p2p.laddr", c.P2P.ListenAddress, "tcp://0.0.0.0:26656"},
		{"p2p.send_rate", c.P2P.SendRate, int64(64 << 20)},
		{"p2p.recv_rate", c.P2P.RecvRate, int64(64 << 20)},
		{"p2p.max_packet_msg_payload_size", c.P2P.MaxPacketMsgPayloadSize, 64 << 10},
		{"mempool.max_tx_bytes", c.Mempool.MaxTxBytes, testMaxTxBytes},
		{"mempool.max_txs_bytes", c.Mempool.MaxTxsBytes, int64(256 << 20)},
		{"mempool.size", c.Mempool.Size, 10000},
		{"consensus.create_empty_blocks", c.Consensus.CreateEmptyBlocks, true},
		{"rpc.timeout_broadcast_tx_commit", c.RPC.TimeoutBroadcastTxCommit, time.Minute},
		{"consensus.create_empty_blocks_interval", c.Consensus.CreateEmptyBlocksInterval, 30 * time.Second},
		{"consensus.timeout_commit", c.Consensus.TimeoutCommit, 250 * time.Millisecond},
		{"consensus.timeout_propose", c.Consensus.TimeoutPropose, 2 * time.Second},
		{"instrumentation.prometheus", c.Instrumentation.Prometheus, true},
		{"instrumentation.prometheus_listen_addr", c.Instrumentation.PrometheusListenAddr, "127.0.0.1:26660"},
		{"tx_index.indexer", c.TxIndex.Indexer, "null"},
		{"storage.discard_abci_responses", c.Storage.DiscardABCIResponses, true},
	} {
		if f.got != f.want {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}
	// A batch of the largest size fits in a block several times over.
	if p := consensusParams(); p.Block.MaxBytes != maxBlockBytes || p.Block.MaxBytes < 4*testMaxTxBytes {
		t.Errorf("block.max_bytes %d", p.Block.MaxBytes)
	}

	ports := Ports{P2P: "tcp://127.0.0.1:1001", RPC: "tcp://127.0.0.1:1002", Prometheus: "127.0.0.1:1003"}
	c = DefaultConfig(home, "uni-a", ports, testMaxTxBytes)
	if c.P2P.ListenAddress != ports.P2P || c.RPC.ListenAddress != ports.RPC || c.Instrumentation.PrometheusListenAddr != ports.Prometheus {
		t.Errorf("ports %+v: p2p %s rpc %s prometheus %s", ports, c.P2P.ListenAddress, c.RPC.ListenAddress, c.Instrumentation.PrometheusListenAddr)
	}
}

// TestWriteHome: the config written is the config loaded; the key files
// are private and hold the keys WriteHome reports; writing a home again
// keeps its keys.
func TestWriteHome(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	ports := Ports{P2P: "tcp://127.0.0.1:1101", RPC: "tcp://127.0.0.1:1102", Prometheus: "127.0.0.1:1103"}
	want := DefaultConfig(home, "uni-b", ports, testMaxTxBytes)
	keys, err := WriteHome(want)
	if err != nil {
		t.Fatal(err)
	}

	for _, d := range []string{"config", "data"} {
		fi, err := os.Stat(filepath.Join(home, d))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v", d, fi, err)
		}
	}
	for _, f := range []string{want.PrivValidatorKeyFile(), want.PrivValidatorStateFile(), want.NodeKeyFile()} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v (want mode 0600)", f, fi, err)
		}
	}
	pv := privval.LoadFilePV(want.PrivValidatorKeyFile(), want.PrivValidatorStateFile())
	if !bytes.Equal(pv.Key.PubKey.Bytes(), keys.ValidatorPubKey) || len(keys.ValidatorPubKey) != 32 {
		t.Errorf("validator key %x, WriteHome reports %x", pv.Key.PubKey.Bytes(), keys.ValidatorPubKey)
	}
	nk, err := p2p.LoadNodeKey(want.NodeKeyFile())
	if err != nil || string(nk.ID()) != keys.NodeID {
		t.Errorf("node key %v (%v), WriteHome reports %s", nk, err, keys.NodeID)
	}

	got, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"root", got.RootDir, home},
		{"moniker", got.Moniker, want.Moniker},
		{"db_backend", got.DBBackend, want.DBBackend},
		{"rpc.laddr", got.RPC.ListenAddress, ports.RPC},
		{"rpc.grpc_laddr", got.RPC.GRPCListenAddress, ""},
		{"p2p.laddr", got.P2P.ListenAddress, ports.P2P},
		{"p2p.send_rate", got.P2P.SendRate, want.P2P.SendRate},
		{"p2p.recv_rate", got.P2P.RecvRate, want.P2P.RecvRate},
		{"p2p.max_packet_msg_payload_size", got.P2P.MaxPacketMsgPayloadSize, want.P2P.MaxPacketMsgPayloadSize},
		{"mempool.max_tx_bytes", got.Mempool.MaxTxBytes, testMaxTxBytes},
		{"mempool.max_txs_bytes", got.Mempool.MaxTxsBytes, want.Mempool.MaxTxsBytes},
		{"mempool.size", got.Mempool.Size, want.Mempool.Size},
		{"consensus.create_empty_blocks_interval", got.Consensus.CreateEmptyBlocksInterval, want.Consensus.CreateEmptyBlocksInterval},
		{"consensus.timeout_commit", got.Consensus.TimeoutCommit, want.Consensus.TimeoutCommit},
		{"consensus.timeout_propose", got.Consensus.TimeoutPropose, want.Consensus.TimeoutPropose},
		{"instrumentation.prometheus_listen_addr", got.Instrumentation.PrometheusListenAddr, ports.Prometheus},
		{"tx_index.indexer", got.TxIndex.Indexer, "null"},
		{"storage.discard_abci_responses", got.Storage.DiscardABCIResponses, true},
	} {
		if f.got != f.want {
			t.Errorf("loaded %s = %v, written %v", f.name, f.got, f.want)
		}
	}

	again, err := WriteHome(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.ValidatorPubKey, keys.ValidatorPubKey) || again.NodeID != keys.NodeID {
		t.Errorf("writing the home again changed its keys: %+v, was %+v", again, keys)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	t.Run("no home", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "nothing")
		_, err := LoadConfig(dir)
		if err == nil || !strings.Contains(err.Error(), "credenced init --home "+dir) {
			t.Errorf("error %v, want one telling to run credenced init", err)
		}
	})
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"another database backend", `db_backend = "badgerdb"`, `db_backend = "goleveldb"`, `db_backend is "goleveldb"`},
		{"an invalid value", `timeout_commit = "250ms"`, `timeout_commit = "-1s"`, "timeout_commit"},
		{"not TOML", `[p2p]`, `[p2p`, "config.toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			if _, err := WriteHome(DefaultConfig(home, "m", Ports{}, testMaxTxBytes)); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(home, "config", "config.toml")
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(raw, []byte(tc.from)) {
				t.Fatalf("config.toml has no %q", tc.from)
			}
			if err := os.WriteFile(path, bytes.Replace(raw, []byte(tc.from), []byte(tc.to), 1), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = LoadConfig(home)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v, want one naming %s and %q", err, path, tc.want)
			}
		})
	}
}

// TestTestnetHomes builds what a testnet is made of: several homes, each
// with its own ports and keys, and one genesis naming every validator,
// which each home loads.
func TestTestnetHomes(t *testing.T) {
	const n = 4
	root := t.TempDir()
	var configs []*cfg.Config
	var vals []Validator
	ids := map[string]bool{}
	for i := range n {
		home := filepath.Join(root, fmt.Sprintf("node%d", i))
		ports := Ports{
			P2P:        fmt.Sprintf("tcp://127.0.0.1:%d", 2000+10*i),
			RPC:        fmt.Sprintf("tcp://127.0.0.1:%d", 2001+10*i),
			Prometheus: fmt.Sprintf("127.0.0.1:%d", 2002+10*i),
		}
		c := DefaultConfig(home, fmt.Sprintf("uni-%d", i), ports, testMaxTxBytes)
		keys, err := WriteHome(c)
		if err != nil {
			t.Fatal(err)
		}
		if ids[keys.NodeID] {
			t.Fatalf("node %d has the node id of another node", i)
		}
		ids[keys.NodeID] = true
		for _, v := range vals {
			if bytes.Equal(v.PubKey, keys.ValidatorPubKey) {
				t.Fatalf("node %d has the validator key of %s", i, v.Name)
			}
		}
		configs = append(configs, c)
		vals = append(vals, Validator{Name: c.Moniker, PubKey: keys.ValidatorPubKey, Power: int64(10 + i)})
	}
	appState := json.RawMessage(`{"members":[]}`)
	genesis := filepath.Join(root, "genesis.json")
	if err := WriteGenesis(genesis, "credence-testnet-1", vals, appState); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(genesis)
	if err != nil {
		t.Fatal(err)
	}

	for i, c := range configs {
		if err := os.WriteFile(c.GenesisFile(), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		loaded, err := LoadConfig(c.RootDir)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		doc, err := cmttypes.GenesisDocFromFile(loaded.GenesisFile())
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if doc.ChainID != "credence-testnet-1" || doc.InitialHeight != 1 || doc.ConsensusParams.Block.MaxBytes != maxBlockBytes {
			t.Errorf("genesis: chain %q initial height %d block.max_bytes %d", doc.ChainID, doc.InitialHeight, doc.ConsensusParams.Block.MaxBytes)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, doc.AppState); err != nil || !bytes.Equal(compact.Bytes(), appState) {
			t.Errorf("genesis app_state %s (%v), want %s", doc.AppState, err, appState)
		}
		if len(doc.Validators) != n {
			t.Fatalf("genesis has %d validators, want %d", len(doc.Validators), n)
		}
		for j, v := range doc.Validators {
			if v.Name != vals[j].Name || v.Power != vals[j].Power || !bytes.Equal(v.PubKey.Bytes(), vals[j].PubKey) || !bytes.Equal(v.Address, v.PubKey.Address()) {
				t.Errorf("genesis validator %d: %s power %d key %x address %s; want %s power %d key %x", j, v.Name, v.Power, v.PubKey.Bytes(), v.Address, vals[j].Name, vals[j].Power, vals[j].PubKey)
			}
		}
		// The home's own validator key is in the genesis.
		pv := privval.LoadFilePV(loaded.PrivValidatorKeyFile(), loaded.PrivValidatorStateFile())
		if !bytes.Equal(pv.Key.PubKey.Bytes(), doc.Validators[i].PubKey.Bytes()) {
			t.Errorf("node %d's validator key is not genesis validator %d", i, i)
		}
	}
}

func TestWriteGenesisRefusesBadValidators(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name string
		val  Validator
		want string
	}{
		{"no power", Validator{Name: "v", PubKey: key, Power: 0}, "power"},
		{"negative power", Validator{Name: "v", PubKey: key, Power: -5}, "power"},
		{"31-byte key", Validator{Name: "v", PubKey: key[:31], Power: 1}, "31 bytes"},
		{"no key", Validator{Name: "v", Power: 1}, "0 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "genesis.json")
			err := WriteGenesis(path, "credence-1", []Validator{tc.val}, json.RawMessage(`{}`))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one about %q", err, tc.want)
			}
			if _, serr := os.Stat(path); serr == nil {
				t.Error("a genesis file was written")
			}
		})
	}
	if err := WriteGenesis(filepath.Join(t.TempDir(), "genesis.json"), "", []Validator{{Name: "v", PubKey: key, Power: 1}}, json.RawMessage(`{}`)); err == nil || !strings.Contains(err.Error(), "chain_id") {
		t.Errorf("empty chain id: error %v", err)
	}
}

// TestLogger: CometBFT's logs reach slog with their key-values readable,
// and its debug lines only at log_level debug.
func TestLogger(t *testing.T) {
	var out strings.Builder
	l := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))

	newLogger(l, "info").With("height", 5).Info("committed", "hash", cmtbytes.HexBytes{0xab, 0xcd}, "raw", []byte{1, 2}, "n", 3)
	newLogger(l, "info").Debug("hidden")
	newLogger(l, "debug").Debug("shown")
	got := out.String()
	for _, want := range []string{"module=cometbft", "height=5", "msg=committed", "hash=ABCD", "raw=0102", "n=3", "msg=shown"} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "hidden") {
		t.Errorf("a debug line at log_level info: %q", got)
	}
}

// TestNewNode runs a one-validator chain from a written home until it
// commits a block, twice in one process: the second node runs without
// Prometheus metrics rather than panic on their second registration.
func TestNewNode(t *testing.T) {
	for i := range 2 {
		home := t.TempDir()
		ports := Ports{
			P2P:        fmt.Sprintf("tcp://127.0.0.1:%d", testport.Free(t)),
			RPC:        fmt.Sprintf("tcp://127.0.0.1:%d", testport.Free(t)),
			Prometheus: fmt.Sprintf("127.0.0.1:%d", testport.Free(t)),
		}
		c := DefaultConfig(home, "solo", ports, testMaxTxBytes)
		keys, err := WriteHome(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteGenesis(c.GenesisFile(), "credence-solo", []Validator{{Name: "solo", PubKey: keys.ValidatorPubKey, Power: 1}}, json.RawMessage(`{}`)); err != nil {
			t.Fatal(err)
		}
		loaded, err := LoadConfig(home)
		if err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		n, _, err := NewNode(context.Background(), loaded, abci.NewBaseApplication(), slog.New(slog.NewTextHandler(&logs, nil)), DBOptions{Memory: DefaultDBMemory})
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if err := n.Start(); err != nil {
			t.Fatalf("node %d: start: %v", i, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for n.BlockStore().Height() < 1 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		height := n.BlockStore().Height()
		if err := n.Stop(); err != nil {
			t.Errorf("node %d: stop: %v", i, err)
		}
		n.Wait()
		if height < 1 {
			t.Fatalf("node %d committed no block in 30s; logs:\n%s", i, logs.String())
		}
		if i == 1 && !strings.Contains(logs.String(), "without them") {
			t.Errorf("second node in the process: no warning that it runs without metrics; logs:\n%s", logs.String())
		}
	}
}

// TestUnstartedNodeReleasesDatabases: a node assembled but never started
// (the daemon's start failed after assembling it) closes its databases, so
// the same home opens again in the same process.
func TestUnstartedNodeReleasesDatabases(t *testing.T) {
	c := soloHome(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range 2 {
		_, dbs, err := NewNode(context.Background(), c, abci.NewBaseApplication(), log, DBOptions{Memory: DefaultDBMemory})
		if err != nil {
			t.Fatalf("assembly %d: %v", i, err)
		}
		if err := dbs.Close(); err != nil {
			t.Fatalf("assembly %d: close: %v", i, err)
		}
	}
}

// TestBoundedDatabasesKeepTheFormat: CometBFT's databases opened with a
// memory budget are the ones CometBFT's default provider opens, in the same
// directory and format, so a home from before the budget keeps its blocks.
func TestBoundedDatabasesKeepTheFormat(t *testing.T) {
	c := DefaultConfig(t.TempDir(), "solo", Ports{}, testMaxTxBytes)
	ctx := &cfg.DBContext{ID: "blockstore", Config: c}
	plain, err := cfg.DefaultDBProvider(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.SetSync([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}
	dbs := &DBs{memory: DefaultDBMemory}
	bounded, err := dbs.provide(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := bounded.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Errorf("bounded database reads %q, %v; want the value the default provider wrote", v, err)
	}
	if err := dbs.Close(); err != nil {
		t.Fatal(err)
	}

	c.DBBackend = "goleveldb"
	if db, err := (&DBs{memory: DefaultDBMemory}).provide(ctx); err == nil {
		db.Close()
		t.Error("goleveldb backend: opened; want refused")
	}
}

func TestNewNodeRefusesUnboundedMemory(t *testing.T) {
	c := DefaultConfig(t.TempDir(), "solo", Ports{}, testMaxTxBytes)
	bad := DefaultDBMemory
	bad.IndexCacheSize = 0
	if _, _, err := NewNode(context.Background(), c, abci.NewBaseApplication(), slog.New(slog.DiscardHandler), DBOptions{Memory: bad}); !errors.Is(err, store.ErrMemory) {
		t.Errorf("index cache 0: error %v, want store.ErrMemory", err)
	}
}

// soloHome writes a one-validator home on free loopback ports, without
// Prometheus, and returns its config.
func soloHome(tb testing.TB) *cfg.Config {
	tb.Helper()
	c := DefaultConfig(tb.TempDir(), "solo", Ports{P2P: fmt.Sprintf("tcp://127.0.0.1:%d", testport.Free(tb)), RPC: fmt.Sprintf("tcp://127.0.0.1:%d", testport.Free(tb))}, testMaxTxBytes)
	c.Instrumentation.Prometheus = false
	keys, err := WriteHome(c)
	if err != nil {
		tb.Fatal(err)
	}
	if err := WriteGenesis(c.GenesisFile(), "credence-solo", []Validator{{Name: "solo", PubKey: keys.ValidatorPubKey, Power: 1}}, json.RawMessage(`{}`)); err != nil {
		tb.Fatal(err)
	}
	return c
}
