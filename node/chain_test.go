package node

import (
	"context"
	"errors"
	"testing"
)

// TestChainBeforeAttach: the chain's reads of CometBFT, before consensus is
// attached, answer an error a caller can tell, not a nil dereference.
func TestChainBeforeAttach(t *testing.T) {
	t.Parallel()
	c := newConsensusChain(nil)
	if _, _, err := c.Broadcast(context.Background(), []byte("tx")); !errors.Is(err, errConsensusNotAttached) {
		t.Errorf("Broadcast: %v", err)
	}
	if _, err := c.BlockTxs(1); !errors.Is(err, errConsensusNotAttached) {
		t.Errorf("BlockTxs: %v", err)
	}
	if _, err := c.SignedHeader(1); !errors.Is(err, errConsensusNotAttached) {
		t.Errorf("SignedHeader: %v", err)
	}
	if _, err := c.ReadSignedHeader(context.Background(), 1); !errors.Is(err, errConsensusNotAttached) {
		t.Errorf("ReadSignedHeader: %v", err)
	}
	if _, err := c.ValidatorsChangeAfter(1); !errors.Is(err, errConsensusNotAttached) {
		t.Errorf("ValidatorsChangeAfter: %v", err)
	}
}
