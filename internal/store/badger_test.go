package store

// OpenBadger's options (the memory settings it refuses) and the badger
// logger adapter.

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func TestOpenBadgerRejectsBadOptions(t *testing.T) {
	for name, opts := range map[string][]Option{
		"zero memtable":          {withMemory(func(m *Memory) { m.MemTableSize = 0 })},
		"memtable under 1 value": {withMemory(func(m *Memory) { m.MemTableSize = MinMemTableSizeFor(DefaultValueThreshold) - 1 })},
		"memtable under 1 small value": {WithValueThreshold(4 << 10),
			withMemory(func(m *Memory) { m.MemTableSize = MinMemTableSizeFor(4<<10) - 1 })},
		"no memtables":         {withMemory(func(m *Memory) { m.NumMemTables = 0 })},
		"negative block cache": {withMemory(func(m *Memory) { m.BlockCacheSize = -1 })},
		"zero block cache":     {withMemory(func(m *Memory) { m.BlockCacheSize = 0 })}, // badger itself would panic
		"zero index cache":     {withMemory(func(m *Memory) { m.IndexCacheSize = 0 })}, // unbounded indexes
		"one compactor":        {withMemory(func(m *Memory) { m.Compactors = 1 })},     // level 0 would go unserved
	} {
		db, err := OpenBadger(t.TempDir(), opts...)
		if err == nil {
			_ = db.Close()
		}
		if !errors.Is(err, ErrMemory) {
			t.Errorf("%s: error %v, want ErrMemory", name, err)
		}
	}
	if _, err := OpenBadger(""); err == nil {
		t.Error("empty dir: want error")
	}
	small := Memory{MemTableSize: minMemTableSize, NumMemTables: 1, BlockCacheSize: 1 << 20, IndexCacheSize: 1 << 20, Compactors: 2}
	db, err := OpenBadger(t.TempDir(), WithMemory(small), WithSyncWrites(true),
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	must(t, db.Close())
	// A small value threshold lets a memtable under minMemTableSize open.
	small.MemTableSize = MinMemTableSizeFor(4 << 10)
	db, err = OpenBadger(t.TempDir(), WithMemory(small), WithValueThreshold(4<<10),
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	must(t, db.Close())
}

func withMemory(change func(*Memory)) Option {
	m := DefaultMemory
	change(&m)
	return WithMemory(m)
}

func TestBadgerLoggerKeepsWarningsOnly(t *testing.T) {
	var buf bytes.Buffer
	l := slogAdapter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Debugf("debug %d\n", 1)
	l.Infof("info %d\n", 2)
	l.Warningf("warn %d\n", 3)
	l.Errorf("error %d\n", 4)
	out := buf.String()
	if strings.Contains(out, "debug") || strings.Contains(out, "info 2") {
		t.Errorf("info/debug leaked: %s", out)
	}
	if !strings.Contains(out, `msg="warn 3"`) || !strings.Contains(out, `msg="error 4"`) || !strings.Contains(out, "level=WARN") {
		t.Errorf("warn/error missing or newline kept: %s", out)
	}
}

func TestBadgerOptionsValueLog(t *testing.T) {
	dir := t.TempDir()
	o, err := BadgerOptions(dir)
	if err != nil {
		t.Fatal(err)
	}
	if o.ValueThreshold != DefaultValueThreshold || o.ValueLogFileSize != DefaultValueLogFileSize {
		t.Errorf("defaults: threshold %d, file size %d; want %d, %d", o.ValueThreshold, o.ValueLogFileSize, DefaultValueThreshold, DefaultValueLogFileSize)
	}
	o, err = BadgerOptions(dir, WithValueThreshold(4<<10), WithValueLogFileSize(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	if o.ValueThreshold != 4<<10 || o.ValueLogFileSize != 64<<20 {
		t.Errorf("set: threshold %d, file size %d; want 4096, 64 MiB", o.ValueThreshold, o.ValueLogFileSize)
	}
	for name, opt := range map[string]Option{
		"zero threshold":       WithValueThreshold(0),
		"threshold over 1 MiB": WithValueThreshold(DefaultValueThreshold + 1),
		"file under 1 MiB":     WithValueLogFileSize(1<<20 - 1),
		"file of 2 GiB":        WithValueLogFileSize(2 << 30),
	} {
		if _, err := BadgerOptions(dir, opt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestValueLogValuesAreChecked: with a low value threshold the values are
// in the value log, the tables hold pointers to them; the start's table
// check still passes, the values read back after a reopen, and a value
// damaged in a value log file fails its read through ValueCopy, which
// badger's own ValueCopy does not (it logs the checksum failure and
// returns an empty value); so does one cut off the newest file at open
// (badger takes a damaged entry there for a write cut short by a crash,
// and cuts the file at it).
func TestValueLogValuesAreChecked(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithLogger(slog.New(slog.DiscardHandler)), WithValueThreshold(4 << 10), WithValueLogFileSize(1 << 20)}
	db, err := OpenBadger(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	value := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 64<<10) }
	const parts = 40 // 2.5 MiB: three value log files of 1 MiB
	for i := range parts {
		must(t, db.Update(func(txn *badger.Txn) error { return txn.Set(fmt.Appendf(nil, "part-%02d", i), value(i)) }))
	}
	must(t, db.Close())

	read := func(db *badger.DB, i int) ([]byte, error) {
		var v []byte
		err := db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(fmt.Appendf(nil, "part-%02d", i))
			if err != nil {
				return err
			}
			v, err = ValueCopy(item, nil)
			return err
		})
		return v, err
	}
	// The values are in the log, not in a table.
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	var tableBytes int64
	for _, p := range tables {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		tableBytes += fi.Size()
	}
	if tableBytes >= 64<<10 {
		t.Errorf("tables hold %d bytes, one value is %d: not in the value log", tableBytes, 64<<10)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if len(logs) < 2 {
		t.Fatalf("value log files %v, want several", logs)
	}
	// Part 0 in the first file; the last part in the newest.
	for _, d := range []struct {
		file string
		part int
	}{{logs[0], 0}, {logs[len(logs)-1], parts - 1}} {
		b, err := os.ReadFile(d.file)
		if err != nil {
			t.Fatal(err)
		}
		at := bytes.Index(b, value(d.part)[:1024])
		if at < 0 {
			t.Fatalf("part %d is not in %s", d.part, d.file)
		}
		b[at+512] ^= 0xff
		must(t, os.WriteFile(d.file, b, 0o644))
	}

	db, err = OpenBadger(dir, opts...)
	if err != nil {
		t.Fatalf("reopen after damage: %v", err)
	}
	defer db.Close()
	for _, i := range []int{0, parts - 1} {
		if v, err := read(db, i); !errors.Is(err, ErrDamaged) {
			t.Errorf("damaged part %d: %d bytes, error %v; want ErrDamaged", i, len(v), err)
		}
	}
	for i := 1; i < parts-1; i++ {
		if v, err := read(db, i); err != nil || !bytes.Equal(v, value(i)) {
			t.Errorf("part %d, undamaged: %d bytes, %v; want the value written", i, len(v), err)
		}
	}
}
