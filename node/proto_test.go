package node

import (
	"crypto/sha256"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
)

func protoMarshal(r *proof.Receipt) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(r)
}

func sha256sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
