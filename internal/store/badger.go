// Package store opens the node's badger database and exposes namespaces of it
// to IAVL through the github.com/cosmos/iavl/db.DB interface.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
	badgeropts "github.com/dgraph-io/badger/v4/options"
)

// Option configures OpenBadger.
type Option func(*options)

type options struct {
	logger     *slog.Logger
	memory     Memory
	syncWrites bool
}

// Memory is what one badger database may hold in memory: its memtables,
// its block cache and its index cache. Badger's own defaults (five 64 MiB
// memtables, a 256 MiB block cache, table indexes kept for every table
// without bound) let one database grow past half a gigabyte, and a node
// opens four.
type Memory struct {
	// MemTableSize is each memtable's size. It also bounds the largest
	// single badger transaction (15% of it) and must hold a value of
	// badger's value threshold (1 MiB): at least MinMemTableSize.
	MemTableSize int64
	// NumMemTables is how many memtables, the one written and those
	// waiting for their flush, may be in memory; writes wait beyond it.
	NumMemTables int
	// BlockCacheSize bounds the cache of table blocks. It must be positive:
	// tables written compressed by an earlier version would otherwise be
	// decompressed again on every read.
	BlockCacheSize int64
	// IndexCacheSize bounds the cache of table indexes and bloom filters.
	// It must be positive: at zero badger keeps every table's index in
	// memory, which grows with the database.
	IndexCacheSize int64
	// Compactors is how many compactions may run at once. Each holds up to
	// five table builders of twice its output table's size outside every
	// cache above, so with badger's default of four the heap of a loaded
	// database swings by hundreds of megabytes. At least 2: badger's first
	// compactor is kept for level 0, which writes stall on.
	Compactors int
}

// MinMemTableSize is the smallest memtable badger opens with its 1 MiB
// value threshold (15% of the memtable must hold one value).
const MinMemTableSize = 7 << 20

// DefaultMemory is the node database's default budget, 96 MiB: three
// 16 MiB memtables, a 32 MiB block cache and a 16 MiB index cache; and two
// compactors.
var DefaultMemory = Memory{MemTableSize: 16 << 20, NumMemTables: 3, BlockCacheSize: 32 << 20, IndexCacheSize: 16 << 20, Compactors: 2}

// Bytes is the most the database holds in the memory m bounds.
func (m Memory) Bytes() int64 {
	return m.MemTableSize*int64(m.NumMemTables) + m.BlockCacheSize + m.IndexCacheSize
}

// Check refuses a budget badger cannot open with or would not bound.
func (m Memory) Check() error {
	switch {
	case m.MemTableSize < MinMemTableSize:
		return fmt.Errorf("%w: memtable size %d is below %d", ErrMemory, m.MemTableSize, MinMemTableSize)
	case m.NumMemTables < 1:
		return fmt.Errorf("%w: number of memtables %d is below 1", ErrMemory, m.NumMemTables)
	case m.BlockCacheSize <= 0:
		return fmt.Errorf("%w: block cache size must be positive, got %d", ErrMemory, m.BlockCacheSize)
	case m.IndexCacheSize <= 0:
		return fmt.Errorf("%w: index cache size must be positive, got %d", ErrMemory, m.IndexCacheSize)
	case m.Compactors < 2:
		return fmt.Errorf("%w: compactors %d is below 2", ErrMemory, m.Compactors)
	}
	return nil
}

// Compression is the block compression of every badger database a node
// opens. None: what the databases hold is mostly hashes, signatures and
// leaves, which do not compress, and Snappy's work on them cost CPU and a
// second copy of every block in each table builder (builders' memory is
// kept in a pool under load). Tables record their own compression, so a
// database written with another one still reads.
const Compression = badgeropts.None

// ErrMemory is wrapped by the error of a Memory badger cannot use.
var ErrMemory = errors.New("store: bad badger memory settings")

// Apply sets m's bounds on badger options.
func (m Memory) Apply(o badger.Options) badger.Options {
	return o.WithMemTableSize(m.MemTableSize).
		WithNumMemtables(m.NumMemTables).
		WithBlockCacheSize(m.BlockCacheSize).
		WithIndexCacheSize(m.IndexCacheSize).
		WithNumCompactors(m.Compactors)
}

func defaultOptions() options {
	return options{
		logger:     nil, // slog.Default() as of the OpenBadger call
		memory:     DefaultMemory,
		syncWrites: false,
	}
}

// WithLogger routes badger's warnings and errors to l.
// Badger's info and debug messages are dropped: they are per-compaction chatter.
// Default: slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithMemory sets the database's memory budget. The IAVL adapter's
// batches do not depend on the memtable size's bound on one transaction:
// they are split over several. Default: DefaultMemory.
func WithMemory(m Memory) Option {
	return func(o *options) { o.memory = m }
}

// WithSyncWrites makes every badger commit fsync.
// Default: false; durability is explicit, through (*badger.DB).Sync or a
// batch's WriteSync at the points where a caller needs it (e.g. Commit).
func WithSyncWrites(b bool) Option {
	return func(o *options) { o.syncWrites = b }
}

// OpenBadger opens (creating if needed) the badger database in dir.
// The caller owns the returned DB and must Close it; adapters made with
// NewIAVLDB never close it because several namespaces share it.
func OpenBadger(dir string, opts ...Option) (*badger.DB, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if dir == "" {
		return nil, errors.New("store: badger directory is empty")
	}
	if err := o.memory.Check(); err != nil {
		return nil, err
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}

	bo := o.memory.Apply(badger.DefaultOptions(dir)).
		WithLogger(slogAdapter{o.logger}).
		WithSyncWrites(o.syncWrites).
		// Corruption on disk must surface as an error on read, never as a
		// silently short or wrong value: check every block read from disk
		// and every value read from the value log.
		WithChecksumVerificationMode(badgeropts.OnBlockRead).
		WithVerifyValueChecksum(true).
		WithCompression(Compression)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open badger at %s: %w", dir, err)
	}
	return db, nil
}

// slogAdapter implements badger.Logger.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Errorf(format string, args ...any) { a.log(slog.LevelError, format, args) }

func (a slogAdapter) Warningf(format string, args ...any) { a.log(slog.LevelWarn, format, args) }

func (slogAdapter) Infof(string, ...any) {}

func (slogAdapter) Debugf(string, ...any) {}

func (a slogAdapter) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	// Skip formatting when the handler would drop the record anyway.
	if !a.l.Enabled(ctx, level) {
		return
	}
	// Badger terminates its messages with a newline, which slog would keep.
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	a.l.Log(ctx, level, msg, slog.String("component", "badger"))
}
