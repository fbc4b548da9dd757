package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// damagedDB writes keys into a database in a new directory and closes it,
// which flushes them into a table; it returns the directory and the table.
func damagedDB(t *testing.T) (dir, table string) {
	t.Helper()
	dir = t.TempDir()
	db, err := OpenBadger(dir, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error {
		for i := range 2000 {
			if err := txn.Set(fmt.Appendf(nil, "key-%05d", i), make([]byte, 100)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	m, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil || len(m) != 1 {
		t.Fatalf("tables %v (%v), want one", m, err)
	}
	return dir, m[0]
}

// TestOpenBadgerRefusesDamagedTables: badger panics on its own goroutine
// on a table cut short, leaves out a table whose index fails its checksum
// (a database silently short of keys), and reads a block damaged in its
// header before it checks it. Each is refused at open, naming the table.
func TestOpenBadgerRefusesDamagedTables(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"cut short", func(b []byte) []byte { return b[:len(b)/2] }},
		{"cut to nothing", func(b []byte) []byte { return nil }},
		// The index and its checksum are at the table's end.
		{"index flipped", func(b []byte) []byte { b[len(b)-40] ^= 0xff; return b }},
		{"first block flipped", func(b []byte) []byte { b[10] ^= 0xff; return b }},
		{"zeroed", func(b []byte) []byte { clear(b); return b }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, table := damagedDB(t)
			b, err := os.ReadFile(table)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(table, c.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := OpenBadger(dir, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			if err == nil {
				db.Close()
				t.Fatal("opened a database with a damaged table")
			}
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), table) {
				t.Fatalf("error %q: want ErrDamaged naming %s", err, table)
			}
		})
	}
	t.Run("a table missing", func(t *testing.T) {
		dir, table := damagedDB(t)
		if err := os.Remove(table); err != nil {
			t.Fatal(err)
		}
		db, err := OpenBadger(dir)
		if err == nil {
			db.Close()
			t.Fatal("opened a database without one of its tables")
		}
		if !strings.Contains(err.Error(), dir) {
			t.Fatalf("error %q does not name %s", err, dir)
		}
	})
}

// TestOpenBadgerFailedOpenReturnsNoDB: badger.Open returns a half-built DB
// with some errors (a damaged key registry or value log header); a caller
// that closed it on its way out panicked. OpenBadger returns none.
func TestOpenBadgerFailedOpenReturnsNoDB(t *testing.T) {
	for _, c := range []struct{ file string }{{"KEYREGISTRY"}, {"000001.vlog"}} {
		t.Run(c.file, func(t *testing.T) {
			dir, _ := damagedDB(t)
			p := filepath.Join(dir, c.file)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for i := 4; i < 20 && i < len(b); i++ {
				b[i] ^= 0x5a
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := OpenBadger(dir, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			if err == nil {
				db.Close()
				t.Fatalf("opened a database with a damaged %s", c.file)
			}
			if db != nil {
				t.Fatalf("error %v, and a DB", err)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Fatalf("error %q does not name %s", err, dir)
			}
		})
	}
}

// TestOpenBadgerRefusesLostManifest: without its manifest badger starts a
// new, empty database and deletes the tables it finds.
func TestOpenBadgerRefusesLostManifest(t *testing.T) {
	dir, table := damagedDB(t)
	if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	db, err := OpenBadger(dir, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err == nil {
		db.Close()
		t.Fatal("opened a database without its manifest")
	}
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "MANIFEST") {
		t.Fatalf("error %q: want ErrDamaged naming %s and its manifest", err, dir)
	}
	if _, err := os.Stat(table); err != nil {
		t.Fatalf("the table is gone: %v", err)
	}
}

// TestOpenBadgerRefusesManifestCutShort: a manifest that lost the record
// of a table makes badger delete the table as a crash's leftover; in a
// database closed cleanly there are no leftovers.
func TestOpenBadgerRefusesManifestCutShort(t *testing.T) {
	dir, table := damagedDB(t)
	// The manifest's header is its first 8 bytes.
	if err := os.Truncate(filepath.Join(dir, "MANIFEST"), 8); err != nil {
		t.Fatal(err)
	}
	db, err := OpenBadger(dir, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err == nil {
		db.Close()
		t.Fatal("opened a database whose manifest lost its table")
	}
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), table) {
		t.Fatalf("error %q: want ErrDamaged naming %s", err, table)
	}
	if _, err := os.Stat(table); err != nil {
		t.Fatalf("the table is gone: %v", err)
	}
}
