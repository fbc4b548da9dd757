package node

import (
	"errors"
	"fmt"

	"github.com/credence-ledger/credence/consensus"
	"github.com/credence-ledger/credence/internal/store"
)

// refuseDamage gives a database's damage found at start (a table that
// fails its checks, a read of CometBFT's stores that fails) the form of
// the node's other refusals of a damaged store: errStoreDamaged and the
// way to recover. Other errors pass as they are.
func refuseDamage(err error) error {
	if errors.Is(err, store.ErrDamaged) || errors.Is(err, consensus.ErrStoreDamaged) {
		return fmt.Errorf("%w: %w; %s", errStoreDamaged, err, recoverHint)
	}
	return err
}

// catchStoreDamage, deferred in Start, turns the panic CometBFT's block
// store raises on a failed read (as the index catches up from it, or
// checks the last batch against it) into the refusal of that store, named.
// Any other panic goes on.
func (n *Node) catchStoreDamage(err *error) {
	r := recover()
	if r == nil {
		return
	}
	d := n.cmtDBs.Damage(r)
	if d == nil {
		panic(r)
	}
	*err = refuseDamage(d)
}
