package app

import (
	"fmt"
	"slices"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// Status registries (W3C Bitstring Status List v1.0). The bits are kept in
// fixed chunks so that one entry's status is one chunk and its proof; an
// absent chunk is all zeros, so a new registry costs one record.
const (
	// MinRegistrySize is the specification's herd-privacy minimum.
	MinRegistrySize = 131_072
	// MaxRegistrySize bounds a registry (1 MiB of bits).
	MaxRegistrySize    = 8 << 20
	maxRegistryUpdates = 10_000
)

func checkRegistryMsg(body *pb.TxBody) error {
	switch m := body.Msg.(type) {
	case *pb.TxBody_CreateRegistry:
		r := m.CreateRegistry
		if err := ValidID(r.Id); err != nil {
			return fmt.Errorf("%w: create_registry.id: %v", ErrMalformed, err)
		}
		switch r.Purpose {
		case pb.RegistryPurpose_REGISTRY_PURPOSE_REVOCATION, pb.RegistryPurpose_REGISTRY_PURPOSE_SUSPENSION:
		default:
			return fmt.Errorf("%w: create_registry.purpose must be REVOCATION or SUSPENSION", ErrMalformed)
		}
		if r.Size < MinRegistrySize || r.Size > MaxRegistrySize || r.Size%8 != 0 {
			return fmt.Errorf("%w: create_registry.size %d: a multiple of 8 from %d to %d", ErrMalformed, r.Size, MinRegistrySize, MaxRegistrySize)
		}
	case *pb.TxBody_UpdateRegistry:
		u := m.UpdateRegistry
		if err := ValidID(u.Issuer); err != nil {
			return fmt.Errorf("%w: update_registry.issuer: %v", ErrMalformed, err)
		}
		if err := ValidID(u.Id); err != nil {
			return fmt.Errorf("%w: update_registry.id: %v", ErrMalformed, err)
		}
		n := len(u.Set) + len(u.Clear)
		if n == 0 || n > maxRegistryUpdates {
			return fmt.Errorf("%w: update_registry: 1 to %d indices", ErrMalformed, maxRegistryUpdates)
		}
		seen := make(map[uint64]bool, n)
		for _, i := range append(append([]uint64(nil), u.Set...), u.Clear...) {
			if seen[i] {
				return fmt.Errorf("%w: update_registry: index %d given twice", ErrMalformed, i)
			}
			seen[i] = true
		}
	}
	return nil
}

func (c *checker) registry(issuer, id string) (*pb.Registry, error) {
	raw, err := c.st.Get(proof.RegistryKey(issuer, id))
	if err != nil || raw == nil {
		return nil, err
	}
	var r pb.Registry
	if err := proto.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (c *checker) checkStatusList(tx *decodedTx) error {
	switch m := tx.body.Msg.(type) {
	case *pb.TxBody_CreateRegistry:
		if _, err := c.issuerSigned(tx, tx.body.Signer); err != nil {
			return err
		}
		r, err := c.registry(tx.body.Signer, m.CreateRegistry.Id)
		if err != nil {
			return err
		}
		if r != nil {
			return fmt.Errorf("%w: issuer %q already has registry %q", ErrRejected, tx.body.Signer, m.CreateRegistry.Id)
		}
	case *pb.TxBody_UpdateRegistry:
		u := m.UpdateRegistry
		if _, err := c.issuerOrSponsorSigned(tx); err != nil {
			return err
		}
		r, err := c.registry(u.Issuer, u.Id)
		if err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("%w: issuer %q has no registry %q", ErrRejected, u.Issuer, u.Id)
		}
		if len(u.Clear) > 0 && r.Purpose != pb.RegistryPurpose_REGISTRY_PURPOSE_SUSPENSION {
			return fmt.Errorf("%w: registry %q is for %s: its bits are never cleared", ErrRejected, u.Id, r.Purpose)
		}
		for _, i := range append(append([]uint64(nil), u.Set...), u.Clear...) {
			if i >= r.Size {
				return fmt.Errorf("%w: index %d is outside registry %q of %d entries", ErrRejected, i, u.Id, r.Size)
			}
		}
	}
	return nil
}

func (a *App) applyStatusList(tx *decodedTx, height int64) ([]abci.Event, error) {
	switch m := tx.body.Msg.(type) {
	case *pb.TxBody_CreateRegistry:
		r := &pb.Registry{Issuer: tx.body.Signer, Id: m.CreateRegistry.Id, Purpose: m.CreateRegistry.Purpose,
			Size: m.CreateRegistry.Size, CreatedHeight: height}
		if err := a.put(proof.RegistryKey(r.Issuer, r.Id), r); err != nil {
			return nil, err
		}
		return []abci.Event{{Type: "registry", Attributes: []abci.EventAttribute{{Key: "created", Value: r.Issuer + "/" + r.Id, Index: true}}}}, nil
	case *pb.TxBody_UpdateRegistry:
		u := m.UpdateRegistry
		// Chunks are loaded once and written back in index order: the
		// writes are the same on every node whatever the map's order.
		chunks := make(map[uint32][]byte)
		var order []uint32
		load := func(c uint32) ([]byte, error) {
			if b, ok := chunks[c]; ok {
				return b, nil
			}
			raw, err := a.tree.Get(proof.ChunkKey(u.Issuer, u.Id, c))
			if err != nil {
				return nil, err
			}
			b := make([]byte, proof.ChunkBits/8)
			copy(b, raw)
			chunks[c] = b
			order = append(order, c)
			return b, nil
		}
		flip := func(i uint64, set bool) error {
			b, err := load(uint32(i / proof.ChunkBits))
			if err != nil {
				return err
			}
			off := i % proof.ChunkBits
			mask := byte(0x80 >> (off % 8))
			if set {
				b[off/8] |= mask
			} else {
				b[off/8] &^= mask
			}
			return nil
		}
		for _, i := range u.Set {
			if err := flip(i, true); err != nil {
				return nil, err
			}
		}
		for _, i := range u.Clear {
			if err := flip(i, false); err != nil {
				return nil, err
			}
		}
		slices.Sort(order)
		for _, c := range order {
			b := chunks[c]
			if allZero(b) {
				if _, _, err := a.tree.Remove(proof.ChunkKey(u.Issuer, u.Id, c)); err != nil {
					return nil, err
				}
				continue
			}
			if _, err := a.tree.Set(proof.ChunkKey(u.Issuer, u.Id, c), b); err != nil {
				return nil, err
			}
		}
		return []abci.Event{{Type: "registry", Attributes: []abci.EventAttribute{
			{Key: "updated", Value: u.Issuer + "/" + u.Id, Index: true},
			{Key: "set", Value: fmt.Sprint(len(u.Set))}, {Key: "cleared", Value: fmt.Sprint(len(u.Clear))},
		}}}, nil
	}
	return nil, nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
