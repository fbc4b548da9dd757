package store

// OpenBadger's options (the memory settings it refuses) and the badger
// logger adapter.

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestOpenBadgerRejectsBadOptions(t *testing.T) {
	for name, opts := range map[string][]Option{
		"zero memtable":          {withMemory(func(m *Memory) { m.MemTableSize = 0 })},
		"memtable under 1 value": {withMemory(func(m *Memory) { m.MemTableSize = MinMemTableSize - 1 })},
		"no memtables":           {withMemory(func(m *Memory) { m.NumMemTables = 0 })},
		"negative block cache":   {withMemory(func(m *Memory) { m.BlockCacheSize = -1 })},
		"zero block cache":       {withMemory(func(m *Memory) { m.BlockCacheSize = 0 })}, // badger itself would panic
		"zero index cache":       {withMemory(func(m *Memory) { m.IndexCacheSize = 0 })}, // unbounded indexes
		"one compactor":          {withMemory(func(m *Memory) { m.Compactors = 1 })},     // level 0 would go unserved
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
	small := Memory{MemTableSize: MinMemTableSize, NumMemTables: 1, BlockCacheSize: 1 << 20, IndexCacheSize: 1 << 20, Compactors: 2}
	db, err := OpenBadger(t.TempDir(), WithMemory(small), WithSyncWrites(true),
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
