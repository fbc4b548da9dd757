package consensus

import (
	"fmt"

	cfg "github.com/cometbft/cometbft/config"
	sm "github.com/cometbft/cometbft/state"
	cmtstore "github.com/cometbft/cometbft/store"

	"github.com/credence-ledger/credence/internal/store"
)

// ResumeStateSync readies the stores of a node stopped after state sync
// saved its state (height H) and H's commit, but before the first block:
// CometBFT refuses a state at H beside an empty block store ("state (H) and
// store (0) height mismatch") unless the state store marks H as a
// bootstrap height, as it does for a state synced offline. It marks it, and
// returns H; it returns 0 for any other store, which NewNode then loads
// (and judges) as before. The app is already at H: the restore finished
// before CometBFT saved its state.
func ResumeStateSync(c *cfg.Config, dbMemory store.Memory) (height int64, err error) {
	dbs := &DBs{memory: dbMemory}
	defer func() {
		if r := recover(); r != nil {
			height, err = 0, nil
		}
		// NewNode opens them again, and reports what fails then.
		dbs.Close()
	}()
	// A store that cannot be opened or read is NewNode's to report.
	stateDB, err := dbs.provide(&cfg.DBContext{ID: "state", Config: c})
	if err != nil {
		return 0, nil
	}
	ss := sm.NewStore(stateDB, sm.StoreOptions{DiscardABCIResponses: c.Storage.DiscardABCIResponses})
	state, err := ss.Load()
	if err != nil || state.IsEmpty() || state.LastBlockHeight == 0 {
		return 0, nil
	}
	blockDB, err := dbs.provide(&cfg.DBContext{ID: "blockstore", Config: c})
	if err != nil {
		return 0, nil
	}
	bs := cmtstore.NewBlockStore(blockDB)
	if bs.Height() != 0 || bs.LoadSeenCommit(state.LastBlockHeight) == nil {
		return 0, nil
	}
	if h, err := ss.GetOfflineStateSyncHeight(); err == nil && h == state.LastBlockHeight {
		return h, nil
	}
	if err := ss.SetOfflineStateSyncHeight(state.LastBlockHeight); err != nil {
		return 0, fmt.Errorf("state sync bootstrap height: %w", err)
	}
	return state.LastBlockHeight, nil
}
