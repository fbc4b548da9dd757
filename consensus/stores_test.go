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
	// A closed badger database fails every write: a real store error, of
	// the kind a damaged one gives its reads (a read of a closed store
	// answers absent: see badgerDB.Get).
	if err := dbs.Close(); err != nil {
		t.Fatal(err)
	}
	storeErr := db.Set([]byte("k"), []byte("w"))
	if storeErr == nil {
		t.Fatal("write to a closed database succeeded")
	}
	dir := filepath.Join(c.DBDir(), "blockstore")
	dbs.open = append(dbs.open[:0], db)
	for _, r := range []any{storeErr, errors.Join(errors.New("LoadBlockMeta"), storeErr), "failed: " + storeErr.Error()} {
		err := dbs.Damage(r)
		if !errors.Is(err, ErrStoreDamaged) || !strings.Contains(err.Error(), dir) {
			t.Errorf("panic %v: error %v, want ErrStoreDamaged naming %s", r, err, dir)
		}
	}
	if err := dbs.Damage("index out of range"); err != nil {
		t.Errorf("a panic not of a store: %v", err)
	}
}
