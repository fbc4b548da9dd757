package node

import (
	"crypto/sha256"
	"errors"
	"fmt"

	cfg "github.com/cometbft/cometbft/config"
	"github.com/dgraph-io/badger/v4"
)

// Operator mistakes that must stop the node at start rather than let it run
// on a home that is no longer what it was.

// pinGenesis records the genesis at first start and refuses a later start
// with another: a chain's genesis never changes, and an edited one (a new
// chain_id, say) would have the app and CometBFT disagree about the chain.
func pinGenesis(db *badger.DB, genesisFile string, genesisJSON []byte) error {
	sum := sha256.Sum256(genesisJSON)
	return db.Update(func(txn *badger.Txn) error {
		was, err := getValue(txn, []byte(keyGenesis))
		if errors.Is(err, errNotFound) {
			return txn.Set([]byte(keyGenesis), sum[:])
		}
		if err != nil {
			return err
		}
		if string(was) != string(sum[:]) {
			return fmt.Errorf("%s changed since this node first started (SHA-256 %x, was %x): a chain's genesis never changes; put the original file back", genesisFile, sum, was)
		}
		return nil
	})
}

// checkConsensusKeys refuses CometBFT's key files when others can read
// them, as issuer and admin keys are refused: the validator key signs
// votes, the node key is the node's P2P identity.
func checkConsensusKeys(c *cfg.Config) error {
	for _, f := range []string{c.PrivValidatorKeyFile(), c.NodeKeyFile()} {
		if err := checkSecretMode(f); err != nil {
			return err
		}
	}
	return nil
}
