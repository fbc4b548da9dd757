package node

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/consensus"
	"github.com/credence-ledger/credence/internal/store"
)

// memoryConfig is app.toml's [memory]: what each store of the node may hold
// in memory. The defaults budget about 460 MiB for a node at full load
// (docs/operations.md, "Memory"), and the positions index's recent entries
// 16–80 MiB more (IndexRecentHashes); the Go runtime's own overhead comes
// on top. That is more than a 512 MiB limit holds at worst; a submitting
// node offered 50,000 hashes/s for ten minutes under that limit lived, once
// badger's blocks were no longer compressed and the leaves left badger
// (docs/benchmarks.md, "Memory"), and was killed for it before.
type memoryConfig struct {
	// DBMemTableMB is the size of each memtable of the node's database
	// (application state, queue, index). Default 16; at least 7. Each
	// memtable is also written out as one table whose builder holds twice
	// its size while it runs.
	DBMemTableMB int `toml:"db_memtable_mb"`
	// DBMemTables is how many of those memtables may be in memory at once
	// (the one written and those being flushed). Default 3.
	DBMemTables int `toml:"db_memtables"`
	// DBBlockCacheMB bounds the node database's cache of table blocks.
	// Default 32.
	DBBlockCacheMB int `toml:"db_block_cache_mb"`
	// DBIndexCacheMB bounds the node database's cache of table indexes and
	// bloom filters. Default 16.
	DBIndexCacheMB int `toml:"db_index_cache_mb"`
	// DBCompactors is how many compactions of the node's database may run
	// at once; each holds table builders of up to a few tens of MB. Default
	// 2, the least badger runs with.
	DBCompactors int `toml:"db_compactors"`
	// ConsensusDBMemTableMB, ConsensusDBMemTables, ConsensusDBBlockCacheMB,
	// ConsensusDBIndexCacheMB and ConsensusDBCompactors are the same for
	// each of CometBFT's databases (block store, state, evidence). Defaults
	// 16, 2, 8, 4, 2.
	ConsensusDBMemTableMB   int `toml:"consensus_db_memtable_mb"`
	ConsensusDBMemTables    int `toml:"consensus_db_memtables"`
	ConsensusDBBlockCacheMB int `toml:"consensus_db_block_cache_mb"`
	ConsensusDBIndexCacheMB int `toml:"consensus_db_index_cache_mb"`
	ConsensusDBCompactors   int `toml:"consensus_db_compactors"`
	// ConsensusDBBlockStoreMemTableKB replaces consensus_db_memtable_mb for
	// the block store, whose memtables hold only small entries and must
	// fill soon for the space of pruned blocks to come back soon
	// (consensus.DefaultBlockStoreMemTableSize). Default 256, at least 27.
	ConsensusDBBlockStoreMemTableKB int `toml:"consensus_db_blockstore_memtable_kb"`
	// HeaderCacheMB bounds the signed headers kept for receipts (the batch
	// trees are bounded by receipt_cache_mb). Default 16.
	HeaderCacheMB int `toml:"header_cache_mb"`
	// TxCacheMB bounds the transactions the state machine keeps decoded
	// between the ABCI calls that check a block. Default 32.
	TxCacheMB int `toml:"tx_cache_mb"`
	// GoMemoryLimitMB is the Go runtime's soft memory limit for the whole
	// process (runtime/debug.SetMemoryLimit): above it the collector runs
	// sooner and returns freed memory to the system, instead of letting the
	// heap grow to twice what is live. 0 leaves the runtime's default; the
	// GOMEMLIMIT environment variable, when set, wins. Default 480.
	GoMemoryLimitMB int `toml:"go_memory_limit_mb"`
	// MaxQueuedHashes bounds the hashes waiting on this node (queued or in
	// a batch not yet anchored), about 150 bytes of memory each; a Submit
	// that would pass it is refused with ResourceExhausted before any of
	// its hashes is acknowledged. Default 500000 (50 s at 10,000 hashes/s).
	// Below 100000 a full Submit (or stream message) is always refused.
	MaxQueuedHashes int `toml:"max_queued_hashes"`
	// AnchoredFilterMB is the Bloom filter over every anchored hash that
	// spares Submit a database lookup for a new hash (positions.Filter): about 10
	// bits a hash for 1 % of new hashes looked up anyway; past that the
	// share rises, nothing else. Rebuilt at start from the index. 0 turns
	// it off. Default 32 (about 27 million hashes).
	AnchoredFilterMB int `toml:"anchored_filter_mb"`
	// IndexRecentHashes is how many positions of anchored hashes the index
	// holds in memory before it writes them to a run file in data/index
	// (internal/positions): 16 bytes each, up to about five times that while earlier
	// sets are still being written and merged. Larger means fewer, larger
	// run files and merges; what memory holds is read back from the
	// batches at start. Default 1048576 (16 MiB; under 11 s at 100,000
	// hashes/s).
	IndexRecentHashes int `toml:"index_recent_hashes"`
}

func defaultMemoryConfig() memoryConfig {
	return memoryConfig{
		DBMemTableMB:                    int(store.DefaultMemory.MemTableSize >> 20),
		DBMemTables:                     store.DefaultMemory.NumMemTables,
		DBBlockCacheMB:                  int(store.DefaultMemory.BlockCacheSize >> 20),
		DBIndexCacheMB:                  int(store.DefaultMemory.IndexCacheSize >> 20),
		DBCompactors:                    store.DefaultMemory.Compactors,
		ConsensusDBMemTableMB:           int(consensus.DefaultDBMemory.MemTableSize >> 20),
		ConsensusDBMemTables:            consensus.DefaultDBMemory.NumMemTables,
		ConsensusDBBlockCacheMB:         int(consensus.DefaultDBMemory.BlockCacheSize >> 20),
		ConsensusDBIndexCacheMB:         int(consensus.DefaultDBMemory.IndexCacheSize >> 20),
		ConsensusDBCompactors:           consensus.DefaultDBMemory.Compactors,
		ConsensusDBBlockStoreMemTableKB: consensus.DefaultBlockStoreMemTableSize >> 10,
		HeaderCacheMB:                   16,
		TxCacheMB:                       app.DefaultTxCacheBytes >> 20,
		GoMemoryLimitMB:                 480,
		MaxQueuedHashes:                 500_000,
		AnchoredFilterMB:                32,
		IndexRecentHashes:               1 << 20,
	}
}

func (m memoryConfig) nodeDB() store.Memory {
	return store.Memory{MemTableSize: int64(m.DBMemTableMB) << 20, NumMemTables: m.DBMemTables,
		BlockCacheSize: int64(m.DBBlockCacheMB) << 20, IndexCacheSize: int64(m.DBIndexCacheMB) << 20,
		Compactors: m.DBCompactors}
}

func (m memoryConfig) consensusDB() store.Memory {
	return store.Memory{MemTableSize: int64(m.ConsensusDBMemTableMB) << 20, NumMemTables: m.ConsensusDBMemTables,
		BlockCacheSize: int64(m.ConsensusDBBlockCacheMB) << 20, IndexCacheSize: int64(m.ConsensusDBIndexCacheMB) << 20,
		Compactors: m.ConsensusDBCompactors}
}

// applyGoMemoryLimit sets the runtime's soft limit, unless the operator set
// GOMEMLIMIT for the process.
func (m memoryConfig) applyGoMemoryLimit() {
	if m.GoMemoryLimitMB > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(m.GoMemoryLimitMB) << 20)
	}
}

func (c *config) consensusDBMemory() store.Memory { return c.Memory.consensusDB() }

// check names the setting at fault.
func (m memoryConfig) check() error {
	if err := m.nodeDB().Check(); err != nil {
		return fmt.Errorf("[memory] db_*: %w", err)
	}
	if err := m.consensusDB().Check(); err != nil {
		return fmt.Errorf("[memory] consensus_db_*: %w", err)
	}
	if int64(m.ConsensusDBBlockStoreMemTableKB)<<10 < consensus.MinBlockStoreMemTableSize {
		return fmt.Errorf("[memory] consensus_db_blockstore_memtable_kb must be at least %d", (consensus.MinBlockStoreMemTableSize+1023)>>10)
	}
	if m.TxCacheMB <= 0 {
		return fmt.Errorf("[memory] tx_cache_mb must be positive")
	}
	if m.HeaderCacheMB <= 0 {
		return fmt.Errorf("[memory] header_cache_mb must be positive")
	}
	if m.GoMemoryLimitMB < 0 {
		return fmt.Errorf("[memory] go_memory_limit_mb must be 0 (off) or positive")
	}
	if m.AnchoredFilterMB < 0 {
		return fmt.Errorf("[memory] anchored_filter_mb must be 0 (off) or positive")
	}
	if m.IndexRecentHashes < 1 {
		return fmt.Errorf("[memory] index_recent_hashes must be at least 1")
	}
	if m.MaxQueuedHashes < 1 {
		return fmt.Errorf("[memory] max_queued_hashes must be at least 1")
	}
	return nil
}
