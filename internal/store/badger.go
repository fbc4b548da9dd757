// Package store opens the node's badger database and exposes namespaces of it
// to IAVL through the github.com/cosmos/iavl/db.DB interface.
package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	badgeropts "github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// Option configures OpenBadger.
type Option func(*options)

type options struct {
	logger           *slog.Logger
	memory           Memory
	syncWrites       bool
	valueThreshold   int64
	valueLogFileSize int64
}

// Memory is what one badger database may hold in memory: its memtables,
// its block cache and its index cache. Badger's own defaults (five 64 MiB
// memtables, a 256 MiB block cache, table indexes kept for every table
// without bound) let one database grow past half a gigabyte, and a node
// opens four.
type Memory struct {
	// MemTableSize is each memtable's size. It also bounds the largest
	// single badger transaction (15% of it) and must hold a value of
	// badger's value threshold (1 MiB): at least minMemTableSize.
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

// minMemTableSize is the smallest memtable badger opens with its 1 MiB
// value threshold (15% of the memtable must hold one value).
const minMemTableSize = 7 << 20

// MinMemTableSizeFor is the smallest memtable badger opens with the value
// threshold t: its largest transaction, 15% of the memtable, must hold a
// value of t bytes.
func MinMemTableSizeFor(t int64) int64 { return (100*t + 14) / 15 }

// DefaultMemory is the node database's default budget, 96 MiB: three
// 16 MiB memtables, a 32 MiB block cache and a 16 MiB index cache; and two
// compactors.
var DefaultMemory = Memory{MemTableSize: 16 << 20, NumMemTables: 3, BlockCacheSize: 32 << 20, IndexCacheSize: 16 << 20, Compactors: 2}

// Bytes is the most the database holds in the memory m bounds.
func (m Memory) Bytes() int64 {
	return m.MemTableSize*int64(m.NumMemTables) + m.BlockCacheSize + m.IndexCacheSize
}

// Check refuses a budget badger cannot open with, at any value threshold,
// or would not bound.
func (m Memory) Check() error { return m.check(minMemTableSize) }

// check is Check with the memtable's lower bound minMemTable: a database
// with a smaller value threshold opens with a smaller memtable.
func (m Memory) check(minMemTable int64) error {
	switch {
	case m.MemTableSize < minMemTable:
		return fmt.Errorf("%w: memtable size %d is below %d", ErrMemory, m.MemTableSize, minMemTable)
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
		// Badger's own defaults.
		valueThreshold:   DefaultValueThreshold,
		valueLogFileSize: DefaultValueLogFileSize,
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

// DefaultValueThreshold is badger's value threshold, its largest: every
// value under 1 MiB is written into the LSM tree with its key (the
// memtable's log, the memtable, then each table and compaction that
// carries the key), and only larger ones into the value log.
const DefaultValueThreshold = 1 << 20

// DefaultValueLogFileSize is badger's size of a value log file, 1 GiB: the
// unit value-log garbage collection frees.
const DefaultValueLogFileSize = 1<<30 - 1

// WithValueThreshold writes values of n bytes or more once, to the value
// log, and keeps only a pointer to each in the LSM tree, for a database of
// large values that are written once and read rarely (CometBFT's block
// parts). Space of such values deleted or overwritten comes back only
// through (*badger.DB).RunValueLogGC, not through compaction, so a
// database with this option that deletes must run it. n is in
// [1, DefaultValueThreshold]. Default: DefaultValueThreshold.
func WithValueThreshold(n int64) Option {
	return func(o *options) { o.valueThreshold = n }
}

// WithValueLogFileSize sets the size at which badger starts a new value log
// file, in [1 MiB, 2 GiB). Value-log garbage collection rewrites and frees
// a whole file at a time, and never the newest. Default:
// DefaultValueLogFileSize.
func WithValueLogFileSize(n int64) Option {
	return func(o *options) { o.valueLogFileSize = n }
}

// ErrDamaged is wrapped by the error of a database whose files are damaged:
// a table that does not pass its checks, or one that makes badger panic.
var ErrDamaged = errors.New("store: badger database damaged")

// ValueCopy is item.ValueCopy(dst) for a value that may be in the value
// log. Badger checks such a value against its checksum when it reads it
// (VerifyValueChecksum), but a read that fails, a damaged entry or one cut
// off the newest value log file at open (which badger takes for a write
// cut short), it only logs, and returns an empty value with no error. An
// empty value where the key's entry says there is one is that failure,
// returned here wrapping ErrDamaged. (A value kept in the tree reads what
// its entry says; a value is in the log only from the value threshold up,
// never empty.)
func ValueCopy(item *badger.Item, dst []byte) ([]byte, error) {
	v, err := item.ValueCopy(dst)
	if err != nil {
		return nil, err
	}
	if len(v) == 0 && item.ValueSize() > 0 {
		return nil, fmt.Errorf("%w: the value of key %q could not be read from the value log (badger logged why)", ErrDamaged, item.Key())
	}
	return v, nil
}

// BadgerOptions are the badger options of the database in dir, for a
// caller that opens it through another library (CometBFT's databases,
// through cometbft-db) with Open.
func BadgerOptions(dir string, opts ...Option) (badger.Options, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if dir == "" {
		return badger.Options{}, errors.New("store: badger directory is empty")
	}
	if o.valueThreshold < 1 || o.valueThreshold > DefaultValueThreshold {
		return badger.Options{}, fmt.Errorf("store: value threshold %d is outside [1, %d]", o.valueThreshold, DefaultValueThreshold)
	}
	if err := o.memory.check(MinMemTableSizeFor(o.valueThreshold)); err != nil {
		return badger.Options{}, err
	}
	if o.valueLogFileSize < 1<<20 || o.valueLogFileSize >= 2<<30 {
		return badger.Options{}, fmt.Errorf("store: value log file size %d is outside [1 MiB, 2 GiB)", o.valueLogFileSize)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return o.memory.Apply(badger.DefaultOptions(dir)).
		WithValueThreshold(o.valueThreshold).
		WithValueLogFileSize(o.valueLogFileSize).
		WithLogger(slogAdapter{o.logger}).
		WithSyncWrites(o.syncWrites).
		// Corruption on disk must surface as an error on read, never as a
		// silently short or wrong value: check every block read from disk
		// and every value read from the value log.
		WithChecksumVerificationMode(badgeropts.OnBlockRead).
		WithVerifyValueChecksum(true).
		WithCompression(Compression), nil
}

// OpenBadger opens (creating if needed) the badger database in dir.
// The caller owns the returned DB and must Close it; adapters made with
// NewIAVLDB never close it because several namespaces share it.
func OpenBadger(dir string, opts ...Option) (*badger.DB, error) {
	bo, err := BadgerOptions(dir, opts...)
	if err != nil {
		return nil, err
	}
	var db *badger.DB
	err = Open(bo, func(bo badger.Options) (err error) {
		db, err = badger.Open(bo)
		return err
	})
	if err != nil {
		// badger.Open returns a half-built DB with some errors, which
		// panics when used.
		return nil, err
	}
	return db, nil
}

// Open opens the database bo describes with open (badger.Open, or a
// library's wrapper of it), once its tables pass checkTables. A panic of
// badger's own start-up on this goroutine becomes an error naming the
// database's directory: badger panics on some damage (y.Check), and a
// node must refuse a damaged store, not crash in it.
func Open(bo badger.Options, open func(badger.Options) error) (err error) {
	if err := checkTables(bo); err != nil {
		return fmt.Errorf("store: open badger at %s: %w", bo.Dir, err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: open badger at %s: %w: badger panicked: %v", bo.Dir, ErrDamaged, r)
		}
	}()
	if err := open(bo); err != nil {
		return fmt.Errorf("store: open badger at %s: %w", bo.Dir, err)
	}
	return nil
}

// checkTables reads every table the manifest of bo's database lists, and
// checks each block's checksum, before badger opens them. Badger opens its
// tables on goroutines of its own, where a table cut short panics
// (table.initIndex) beyond any recover of its caller, and it leaves out,
// with only a log line, a table whose index fails its checksum: a start
// on silently fewer keys. Badger only checks the blocks it reads later,
// and parses a block before it checks it (a damaged one can panic the
// reader, an API call or CometBFT). Reading every table once at start
// costs one pass over the tables; a damaged one is refused here.
// A manifest that cannot be read is left to badger, which refuses it;
// one missing beside tables is refused here: badger would start a new
// database and delete the tables.
func checkTables(bo badger.Options) error {
	f, err := os.Open(filepath.Join(bo.Dir, badger.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		// Badger writes the manifest before any table.
		if tables, _ := filepath.Glob(filepath.Join(bo.Dir, "*.sst")); len(tables) > 0 {
			return fmt.Errorf("%w: its %s is missing, and it holds %d tables", ErrDamaged, badger.ManifestFilename, len(tables))
		}
		return nil
	}
	if err != nil {
		return nil
	}
	m, _, err := badger.ReplayManifestFile(f, bo.ExternalMagicVersion, bo)
	f.Close()
	if err != nil {
		return nil
	}
	if err := checkOrphans(bo.Dir, m); err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(m.Tables)) {
		if err := checkTable(table.NewFilename(id, bo.Dir), m.Tables[id].Compression, bo); err != nil {
			return err
		}
	}
	return nil
}

// checkOrphans refuses tables the manifest does not list, in a database
// closed cleanly (no memtable log, .mem, left): badger deletes them as
// the leftovers of a flush or compaction cut short by a crash, but a clean
// close leaves none, so there they are tables the manifest lost (it was
// cut short), and deleting them would lose their keys.
func checkOrphans(dir string, m badger.Manifest) error {
	if mems, _ := filepath.Glob(filepath.Join(dir, "*.mem")); len(mems) > 0 {
		return nil
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	for _, p := range paths {
		id, ok := table.ParseFileID(p)
		if !ok {
			continue
		}
		if _, listed := m.Tables[id]; !listed {
			return fmt.Errorf("%w: table %s is not in its %s, which lists %d tables (a manifest cut short?)", ErrDamaged, p, badger.ManifestFilename, len(m.Tables))
		}
	}
	return nil
}

func checkTable(path string, c badgeropts.CompressionType, bo badger.Options) (err error) {
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: table %s is missing: %v", ErrDamaged, path, err)
		}
		return fmt.Errorf("%w: table %s: %v", ErrDamaged, path, err)
	}
	defer func() {
		// OpenTable panicked before it could close the file.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: table %s does not parse: %v", ErrDamaged, path, r)
			mf.Close(-1)
		}
	}()
	t, err := table.OpenTable(mf, table.Options{
		BlockSize:   bo.BlockSize,
		Compression: c,
		// Every block, once: OnTableRead checks each block after
		// reading it whole.
		ChkMode: badgeropts.OnTableRead,
	})
	if err != nil {
		// Not closed here: OpenTable closes the file on most of its
		// errors, and a second munmap could unmap another mapping. The
		// start is refused; the process lets go of the file.
		return fmt.Errorf("%w: table %s: %v", ErrDamaged, path, err)
	}
	// Not DecrRef: at no reference left it deletes the table's file.
	return t.MmapFile.Close(-1)
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
