package app

// State export and import for state-sync snapshots: the node streams a saved
// version out (ExportState) and builds a new node's state from one
// (ImportState); Reset starts a failed restore over.

import (
	"errors"
	"fmt"

	"github.com/cosmos/iavl"
)

// ExportState streams the state saved at height, node by node in IAVL
// export order, to fn. It reads a saved version, so consensus goes on
// meanwhile.
func (a *App) ExportState(height int64, fn func(*iavl.ExportNode) error) error {
	a.mu.Lock()
	it, err := a.tree.GetImmutable(height)
	a.mu.Unlock()
	if err != nil {
		return fmt.Errorf("state at height %d: %w", height, err)
	}
	exp, err := it.Export()
	if err != nil {
		return err
	}
	defer exp.Close()
	for {
		n, err := exp.Next()
		if errors.Is(err, iavl.ErrorExportDone) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(n); err != nil {
			return err
		}
	}
}

// ErrNotEmpty is returned by ImportState on a node that already has state.
var ErrNotEmpty = errors.New("application state is not empty")

// ImportState builds the state at height from exported nodes (next returns
// nil, nil when done) on a node with no state, and returns its hash. The
// caller checks the hash against the one consensus trusts.
func (a *App) ImportState(height int64, next func() (*iavl.ExportNode, error)) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tree.Version() != 0 {
		return nil, ErrNotEmpty
	}
	imp, err := a.tree.Import(height)
	if err != nil {
		return nil, err
	}
	defer imp.Close()
	for {
		n, err := next()
		if err != nil {
			return nil, err
		}
		if n == nil {
			break
		}
		if err := imp.Add(n); err != nil {
			return nil, err
		}
	}
	if err := imp.Commit(); err != nil {
		return nil, err
	}
	if _, err := a.tree.LoadVersion(height); err != nil {
		return nil, err
	}
	if err := a.loadSettings(); err != nil {
		return nil, err
	}
	a.decoded.reset()
	return a.tree.Hash(), nil
}

// Reset forgets the state after the caller has emptied the database under
// it: a failed snapshot restore starts over from nothing.
func (a *App) Reset() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tree = iavl.NewMutableTree(a.db, 100_000, false, iavl.NewNopLogger())
	if _, err := a.tree.Load(); err != nil {
		return err
	}
	if !a.tree.IsEmpty() {
		return ErrNotEmpty
	}
	a.params = nil
	a.version = baseVersion
	a.decoded.reset()
	clear(a.checkSeq)
	return nil
}
