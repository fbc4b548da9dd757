package consensus

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	cfg "github.com/cometbft/cometbft/config"
)

// TestStoreReadPanicNamesStore: CometBFT panics on any error of its
// stores (its block store's LoadBlock, for one); the error a failed read
// of one of them returns names the store, so that the panic can be turned
// back into a refusal naming it, and a panic not of a store passes on.
func TestStoreReadPanicNamesStore(t *testing.T) {
	c := cfg.DefaultConfig()
	c.SetRoot(t.TempDir())
	c.DBBackend = "badgerdb"
	dbs := &DBs{memory: DefaultDBMemory, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	db, err := dbs.provide(&cfg.DBContext{ID: "blockstore", Config: c})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	// A closed badger database fails every read: a real store error.
	if err := dbs.Close(); err != nil {
		t.Fatal(err)
	}
	_, readErr := db.Get([]byte("k"))
	if readErr == nil {
		t.Fatal("read of a closed database succeeded")
	}
	dir := filepath.Join(c.DBDir(), "blockstore")
	dbs.open = append(dbs.open[:0], db)
	for _, r := range []any{readErr, errors.Join(errors.New("LoadBlockMeta"), readErr), "failed: " + readErr.Error()} {
		err := dbs.Damage(r)
		if !errors.Is(err, ErrStoreDamaged) || !strings.Contains(err.Error(), dir) {
			t.Errorf("panic %v: error %v, want ErrStoreDamaged naming %s", r, err, dir)
		}
	}
	if err := dbs.Damage("index out of range"); err != nil {
		t.Errorf("a panic not of a store: %v", err)
	}
}
