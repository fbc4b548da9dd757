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
	logger         *slog.Logger
	memTableSize   int64
	blockCacheSize int64
	syncWrites     bool
}

func defaultOptions() options {
	return options{
		logger:         nil, // slog.Default() as of the OpenBadger call
		memTableSize:   64 << 20,
		blockCacheSize: 64 << 20,
		syncWrites:     false,
	}
}

// WithLogger routes badger's warnings and errors to l.
// Badger's info and debug messages are dropped: they are per-compaction chatter.
// Default: slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithMemTableSize sets the size of each badger memtable. It also bounds the
// largest single badger transaction (about 15% of it), which the IAVL adapter's
// batches do not depend on because they are split over several transactions.
// Default: 64 MiB.
func WithMemTableSize(n int64) Option {
	return func(o *options) { o.memTableSize = n }
}

// WithBlockCacheSize sets badger's block cache. It must be positive: badger
// compresses blocks by default and panics at open without a block cache.
// Default: 64 MiB (badger's own default is 256 MiB).
func WithBlockCacheSize(n int64) Option {
	return func(o *options) { o.blockCacheSize = n }
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
	if o.memTableSize <= 0 {
		return nil, fmt.Errorf("store: memtable size must be positive, got %d", o.memTableSize)
	}
	if o.blockCacheSize <= 0 {
		return nil, fmt.Errorf("store: block cache size must be positive, got %d", o.blockCacheSize)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}

	bo := badger.DefaultOptions(dir).
		WithLogger(slogAdapter{o.logger}).
		WithMemTableSize(o.memTableSize).
		WithBlockCacheSize(o.blockCacheSize).
		WithSyncWrites(o.syncWrites).
		// Corruption on disk must surface as an error on read, never as a
		// silently short or wrong value: check every block read from disk
		// and every value read from the value log.
		WithChecksumVerificationMode(badgeropts.OnBlockRead).
		WithVerifyValueChecksum(true)
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
