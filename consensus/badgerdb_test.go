package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	cfg "github.com/cometbft/cometbft/config"
	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/store"
)

func badgerOf(t *testing.T, db dbm.DB) *badger.DB {
	t.Helper()
	n, ok := db.(namedDB)
	if !ok {
		t.Fatalf("database is %T, want namedDB", db)
	}
	b, ok := n.DB.(*badgerDB)
	if !ok {
		t.Fatalf("database is %T, want *badgerDB", n.DB)
	}
	return b.db
}

// TestBlockStoreValueThreshold: the block store puts its parts in the value
// log; the state and evidence stores keep badger's threshold.
func TestBlockStoreValueThreshold(t *testing.T) {
	c := DefaultConfig(t.TempDir(), "solo", Ports{}, testMaxTxBytes)
	dbs := &DBs{memory: DefaultDBMemory, log: slog.New(slog.DiscardHandler)}
	defer dbs.Close()
	for id, want := range map[string]int64{"blockstore": blockStoreValueThreshold, "state": store.DefaultValueThreshold, "evidence": store.DefaultValueThreshold} {
		db, err := dbs.provide(&cfg.DBContext{ID: id, Config: c})
		if err != nil {
			t.Fatal(err)
		}
		if got := badgerOf(t, db).Opts().ValueThreshold; got != want {
			t.Errorf("%s: value threshold %d, want %d", id, got, want)
		}
	}
	if blockStoreValueThreshold >= 64<<10 {
		t.Errorf("block store value threshold %d does not let a 64 KiB part into the value log", blockStoreValueThreshold)
	}
}

// TestBlockStoreGCFreesPrunedParts prunes block parts the way CometBFT does
// (a batch of deletes behind the retain height) over several runs of the
// block store, and requires the value-log GC to delete the value log files
// that held only pruned parts, while the parts kept still read whole.
func TestBlockStoreGCFreesPrunedParts(t *testing.T) {
	c := DefaultConfig(t.TempDir(), "solo", Ports{}, testMaxTxBytes)
	ctx := &cfg.DBContext{ID: "blockstore", Config: c}
	dir := filepath.Join(c.DBDir(), "blockstore")
	const heights, partsPerHeight, keep = 8, 16, 2 // 1 MiB of parts a height
	part := func(h, i int) []byte { return bytes.Repeat([]byte{byte(h), byte(i)}, 32<<10) }
	key := func(h, i int) []byte { return fmt.Appendf(nil, "P:%d:%d", h, i) }
	open := func(gc time.Duration) (*DBs, dbm.DB) {
		dbs := &DBs{memory: DefaultDBMemory, gcInterval: gc, vlogFileSize: 1 << 20, log: slog.New(slog.DiscardHandler)}
		db, err := dbs.provide(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return dbs, db
	}
	// One height per run of the store: each close flushes a level-0
	// table, and enough of them start the compaction that finds the
	// pruned parts' values garbage.
	for h := range heights {
		dbs, db := open(0)
		b := db.NewBatch()
		for i := range partsPerHeight {
			must(t, b.Set(key(h, i), part(h, i)))
		}
		if p := h - keep; p >= 0 {
			for i := range partsPerHeight {
				must(t, b.Delete(key(p, i)))
			}
		}
		must(t, b.WriteSync())
		must(t, b.Close())
		must(t, dbs.Close())
	}
	before := vlogFiles(t, dir)
	if len(before) < heights {
		t.Fatalf("value log files %v, want one a height at least", before)
	}
	// Compactions settle before the GC starts: one still installing its
	// tables when the GC rewrites a file whose garbage it counted brings
	// the pruned parts it dropped back (badgerDB's doc comment). Flatten
	// waits for those under way and compacts the rest.
	{
		dbs, db := open(0)
		must(t, badgerOf(t, db).Flatten(1))
		must(t, dbs.Close())
	}

	dbs, db := open(10 * time.Millisecond)
	defer dbs.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(before[0]); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("value log files after GC: %v; the first, all pruned, is still there", vlogFiles(t, dir))
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := vlogFiles(t, dir)
	t.Logf("value log files: %d before GC, %d after", len(before), len(after))
	for h := heights - keep; h < heights; h++ {
		for i := range partsPerHeight {
			v, err := db.Get(key(h, i))
			if err != nil || !bytes.Equal(v, part(h, i)) {
				t.Fatalf("part %d:%d after GC: %d bytes, %v", h, i, len(v), err)
			}
		}
	}
	if v, err := db.Get(key(0, 0)); err != nil || v != nil {
		t.Errorf("pruned part 0:0 after GC: %d bytes, %v; want absent", len(v), err)
	}
}

func vlogFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestBlockStoreDamagedPartIsAStoreError: a block part damaged in the
// value log reads as an error naming the block store, which CometBFT's
// panic carries to DBs.Damage, not as the empty value badger returns for
// it (which CometBFT takes for a part it does not have).
func TestBlockStoreDamagedPartIsAStoreError(t *testing.T) {
	c := DefaultConfig(t.TempDir(), "solo", Ports{}, testMaxTxBytes)
	ctx := &cfg.DBContext{ID: "blockstore", Config: c}
	dir := filepath.Join(c.DBDir(), "blockstore")
	part := bytes.Repeat([]byte{0x5a, 0xa5}, 32<<10)
	dbs := &DBs{memory: DefaultDBMemory, log: slog.New(slog.DiscardHandler)}
	db, err := dbs.provide(ctx)
	if err != nil {
		t.Fatal(err)
	}
	must(t, db.SetSync([]byte("P:1:0"), part))
	must(t, dbs.Close())
	var damaged bool
	for _, p := range vlogFiles(t, dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if at := bytes.Index(b, part[:1024]); at >= 0 {
			b[at+4096] ^= 0xff
			must(t, os.WriteFile(p, b, 0o644))
			damaged = true
		}
	}
	if !damaged {
		t.Fatal("the part is in no value log file")
	}

	dbs = &DBs{memory: DefaultDBMemory, log: slog.New(slog.DiscardHandler)}
	defer dbs.Close()
	db, err = dbs.provide(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := db.Get([]byte("P:1:0"))
	if !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("damaged part: %d bytes, error %v; want store.ErrDamaged", len(v), err)
	}
	if d := dbs.Damage(err); !errors.Is(d, ErrStoreDamaged) || !strings.Contains(d.Error(), dir) {
		t.Errorf("CometBFT's panic on it: %v; want ErrStoreDamaged naming %s", d, dir)
	}
	// An iterator cannot return the error with the value: it ends, and
	// its Error says why.
	for _, reverse := range []bool{false, true} {
		open := db.Iterator
		if reverse {
			open = db.ReverseIterator
		}
		it, err := open(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !it.Valid() || !bytes.Equal(it.Key(), []byte("P:1:0")) {
			t.Fatalf("reverse %t: the iterator does not start at the damaged part", reverse)
		}
		if v := it.Value(); v != nil {
			t.Errorf("reverse %t: damaged part read as %d bytes", reverse, len(v))
		}
		if it.Valid() || !errors.Is(it.Error(), store.ErrDamaged) {
			t.Errorf("reverse %t: after the damaged value, valid %t, error %v; want ended with store.ErrDamaged", reverse, it.Valid(), it.Error())
		}
		must(t, it.Close())
	}
}

// TestBlockStoreGCFreesPrunedPartsAsItGoes writes and prunes blocks in one
// run of the block store, with its default memtable and its GC running,
// and no Flatten: the compactions that follow memtable flushes must count
// the pruned parts garbage soon enough for the GC to delete the first value
// log file while blocks are still being written.
func TestBlockStoreGCFreesPrunedPartsAsItGoes(t *testing.T) {
	c := DefaultConfig(t.TempDir(), "solo", Ports{}, testMaxTxBytes)
	dir := filepath.Join(c.DBDir(), "blockstore")
	dbs := &DBs{memory: DefaultDBMemory, gcInterval: 10 * time.Millisecond, vlogFileSize: 1 << 20, log: slog.New(slog.DiscardHandler)}
	defer dbs.Close()
	db, err := dbs.provide(&cfg.DBContext{ID: "blockstore", Config: c})
	if err != nil {
		t.Fatal(err)
	}
	if got := badgerOf(t, db).Opts().MemTableSize; got != DefaultBlockStoreMemTableSize {
		t.Fatalf("block store memtable %d, want %d", got, DefaultBlockStoreMemTableSize)
	}
	// The smallest parts the value log takes, so that the memtable fills
	// with as little data as can be: 32 parts and a meta a height, eight
	// heights a value log file.
	const partsPerHeight, keep, maxHeights = 32, 4, 4000
	part := func(h, i int) []byte {
		return bytes.Repeat([]byte{byte(h), byte(h >> 8), byte(i)}, blockStoreValueThreshold/3+1)
	}
	partKey := func(h, i int) []byte { return fmt.Appendf(nil, "P:%d:%d", h, i) }
	metaKey := func(h int) []byte { return fmt.Appendf(nil, "H:%d", h) }
	var first string
	h := 0
	for ; h < maxHeights; h++ {
		b := db.NewBatch()
		for i := range partsPerHeight {
			must(t, b.Set(partKey(h, i), part(h, i)))
		}
		must(t, b.Set(metaKey(h), bytes.Repeat([]byte{byte(h)}, 300)))
		if p := h - keep; p >= 0 {
			for i := range partsPerHeight {
				must(t, b.Delete(partKey(p, i)))
			}
			must(t, b.Delete(metaKey(p)))
		}
		must(t, b.WriteSync())
		must(t, b.Close())
		if first == "" {
			first = vlogFiles(t, dir)[0]
		}
		if _, err := os.Stat(first); os.IsNotExist(err) {
			break
		}
	}
	if h == maxHeights {
		t.Fatalf("after %d heights (%d value log files), the first, pruned long ago, is still there", h, len(vlogFiles(t, dir)))
	}
	t.Logf("first value log file deleted at height %d of %d parts; %d value log files left", h, partsPerHeight, len(vlogFiles(t, dir)))
	// Pruned parts the GC brought back (badgerDB's doc comment): counted,
	// not failed on, as the race is badger's.
	it, err := db.Iterator([]byte("P:"), []byte("P;"))
	if err != nil {
		t.Fatal(err)
	}
	live := 0
	for ; it.Valid(); it.Next() {
		live++
	}
	must(t, it.Error())
	must(t, it.Close())
	t.Logf("parts in the store: %d, of which pruned and back: %d", live, live-keep*partsPerHeight)
	for p := max(0, h-keep+1); p <= h; p++ {
		for i := range partsPerHeight {
			v, err := db.Get(partKey(p, i))
			if err != nil || !bytes.Equal(v, part(p, i)) {
				t.Fatalf("part %d:%d after GC: %d bytes, %v", p, i, len(v), err)
			}
		}
	}
}
