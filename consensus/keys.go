package consensus

import (
	"github.com/cometbft/cometbft/crypto"
	"github.com/cometbft/cometbft/crypto/ed25519"
)

func ed25519PubKey(b []byte) crypto.PubKey { return ed25519.PubKey(b) }
