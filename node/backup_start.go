package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/vfs"
)

// dataLossReported ends the report of a recreated data/ once a start that
// logged it has completed.
func dataLossReported(db *badger.DB) error {
	return db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(keyDataRecreated)) })
}

// startedMarker is written in config/ at a node's first start, beside the
// keys and settings an operator backs up with it: a start that finds it
// and no node database knows data/ was lost or replaced (a new disk, a
// restore), not a first start, and that the queue went with it.
func startedMarker(home string) string { return filepath.Join(home, "config", "node_started") }

// dataRecreated reports, before the node database opens (and creates
// itself), whether this home had started before and has no database now.
func dataRecreated(home string) bool {
	if _, err := os.Stat(startedMarker(home)); err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(home, "data", "credence"))
	return errors.Is(err, os.ErrNotExist)
}

// noteDataStarted says what a recreated data/ lost, and marks the home as
// started. The hashes this node acknowledged and had not anchored lived
// only in data/ (the queue log, its mark qm, the batches in flight under
// qf/): without them not even their number is known, so the operator must
// be told, never left to find out from an issuer's missing receipt.
func noteDataStarted(db *badger.DB, home string, recreated bool, log *slog.Logger) error {
	if recreated {
		// Kept until a start completes (dataLossReported): a start that
		// fails on the new data/ would otherwise take the only report of
		// the loss with it.
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyDataRecreated), []byte{1}) }); err != nil {
			return fmt.Errorf("noting the recreated data/: %w", err)
		}
		if err := db.Sync(); err != nil {
			return fmt.Errorf("noting the recreated data/: %w", err)
		}
	}
	err := db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(keyDataRecreated))
		return err
	})
	switch {
	case err == nil:
		log.Error("data/ was recreated: this home's node had started before ("+startedMarker(home)+") but its database is new. "+
			"The hashes it acknowledged and had not anchored were kept only in data/ and are lost unless restored: "+
			"once the node runs (state sync brings back the chain and the receipts of anchored hashes), "+
			"run `credenced restore queue --home "+home+" FILE` with the latest queue backup (hashes already anchored are answered anchored). "+
			"Without a backup this node cannot tell which hashes, or how many, were lost: the queue log and the queue mark that listed it went with data/; "+
			"their issuers must submit again every hash whose receipt they never got (docs/operations.md, \"Backup and disaster recovery\")",
			"home", home)
	case !errors.Is(err, badger.ErrKeyNotFound):
		return fmt.Errorf("reading the recreated-data/ note: %w", err)
	}
	path := startedMarker(home)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	const text = "This node started on this home. If data/ is ever found missing beside this file,\n" +
		"the node warns at start that its unanchored hashes were lost unless restored\n" +
		"(credenced restore queue). Back this file up with config/.\n"
	if err := vfs.WriteFileSynced(vfs.Default, path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("marking the home started: %w", err)
	}
	return nil
}
