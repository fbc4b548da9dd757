package node

import (
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
)

func protoMarshal(r *proof.Receipt) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(r)
}
