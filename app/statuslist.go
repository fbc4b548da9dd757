package app

import (
	"fmt"
	"slices"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// Status lists (W3C Bitstring Status List v1.0; "registry" in the wire
// format and the CLI). The bits are kept in fixed chunks so that one
// entry's status is one chunk and its proof; an absent chunk is all zeros,
// so a new status list costs one record.
const (
	// MinStatusListSize is the specification's herd-privacy minimum.
	MinStatusListSize = 131_072
	// MaxStatusListSize bounds a status list (1 MiB of bits).
	MaxStatusListSize = 8 << 20
	// maxStatusListUpdates bounds the indices one update sets or clears.
	maxStatusListUpdates = 10_000
)

func (c *checker) statusList(issuer, id string) (*pb.Registry, error) {
	var r pb.Registry
	found, err := c.get(proof.RegistryKey(issuer, id), &r)
	if err != nil || !found {
		return nil, err
	}
	return &r, nil
}

// CreateRegistry: an issuer creates a status list of its own, all zeros.
type createStatusListMsg struct{ *pb.CreateRegistry }

func (m createStatusListMsg) validate(uint64) error {
	if err := ValidID(m.Id); err != nil {
		return fmt.Errorf("%w: create_registry.id: %v", ErrMalformed, err)
	}
	switch m.Purpose {
	case pb.RegistryPurpose_REGISTRY_PURPOSE_REVOCATION, pb.RegistryPurpose_REGISTRY_PURPOSE_SUSPENSION:
	default:
		return fmt.Errorf("%w: create_registry.purpose must be REVOCATION or SUSPENSION", ErrMalformed)
	}
	if m.Size < MinStatusListSize || m.Size > MaxStatusListSize || m.Size%8 != 0 {
		return fmt.Errorf("%w: create_registry.size %d: a multiple of 8 from %d to %d", ErrMalformed, m.Size, MinStatusListSize, MaxStatusListSize)
	}
	return nil
}

func (createStatusListMsg) sequenceKey(body *pb.TxBody) []byte {
	return proof.IssuerSequenceKey(body.Signer)
}

func (m createStatusListMsg) check(c *checker, tx *decodedTx) error {
	if _, err := c.issuerSigned(tx, tx.body.Signer); err != nil {
		return err
	}
	r, err := c.statusList(tx.body.Signer, m.Id)
	if err != nil {
		return err
	}
	if r != nil {
		return fmt.Errorf("%w: issuer %q already has registry %q", ErrRejected, tx.body.Signer, m.Id)
	}
	return nil
}

func (m createStatusListMsg) apply(a *App, tx *decodedTx, b execBlock) ([]abci.Event, error) {
	r := &pb.Registry{Issuer: tx.body.Signer, Id: m.Id, Purpose: m.Purpose, Size: m.Size, CreatedHeight: b.height}
	if err := a.put(proof.RegistryKey(r.Issuer, r.Id), r); err != nil {
		return nil, err
	}
	return []abci.Event{{Type: "registry", Attributes: []abci.EventAttribute{{Key: "created", Value: r.Issuer + "/" + r.Id, Index: true}}}}, nil
}

// UpdateRegistry: the issuer or its sponsor sets bits of a status list,
// and clears bits of a suspension list (a revocation is final).
type updateStatusListMsg struct{ *pb.UpdateRegistry }

func (m updateStatusListMsg) validate(uint64) error {
	if err := ValidID(m.Issuer); err != nil {
		return fmt.Errorf("%w: update_registry.issuer: %v", ErrMalformed, err)
	}
	if err := ValidID(m.Id); err != nil {
		return fmt.Errorf("%w: update_registry.id: %v", ErrMalformed, err)
	}
	n := len(m.Set) + len(m.Clear)
	if n == 0 || n > maxStatusListUpdates {
		return fmt.Errorf("%w: update_registry: 1 to %d indices", ErrMalformed, maxStatusListUpdates)
	}
	seen := make(map[uint64]bool, n)
	for _, i := range m.indices() {
		if seen[i] {
			return fmt.Errorf("%w: update_registry: index %d given twice", ErrMalformed, i)
		}
		seen[i] = true
	}
	return nil
}

// indices are the indices set, then those cleared.
func (m updateStatusListMsg) indices() []uint64 {
	return append(append([]uint64(nil), m.Set...), m.Clear...)
}

func (m updateStatusListMsg) sequenceKey(body *pb.TxBody) []byte {
	return issuerOrSponsorSequenceKey(body, m.Issuer)
}

func (m updateStatusListMsg) check(c *checker, tx *decodedTx) error {
	if _, err := c.issuerOrSponsorSigned(tx, m.Issuer); err != nil {
		return err
	}
	r, err := c.statusList(m.Issuer, m.Id)
	if err != nil {
		return err
	}
	if r == nil {
		return fmt.Errorf("%w: issuer %q has no registry %q", ErrRejected, m.Issuer, m.Id)
	}
	if len(m.Clear) > 0 && r.Purpose != pb.RegistryPurpose_REGISTRY_PURPOSE_SUSPENSION {
		return fmt.Errorf("%w: registry %q is for %s: its bits are never cleared", ErrRejected, m.Id, r.Purpose)
	}
	for _, i := range m.indices() {
		if i >= r.Size {
			return fmt.Errorf("%w: index %d is outside registry %q of %d entries", ErrRejected, i, m.Id, r.Size)
		}
	}
	return nil
}

// apply loads each touched chunk once and writes them back in index
// order: the writes are the same on every node whatever the map's order.
// A chunk left all zeros leaves the state.
func (m updateStatusListMsg) apply(a *App, _ *decodedTx, _ execBlock) ([]abci.Event, error) {
	chunks := make(map[uint32][]byte)
	var order []uint32
	load := func(c uint32) ([]byte, error) {
		if b, ok := chunks[c]; ok {
			return b, nil
		}
		raw, err := a.tree.Get(proof.ChunkKey(m.Issuer, m.Id, c))
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
	for _, i := range m.Set {
		if err := flip(i, true); err != nil {
			return nil, err
		}
	}
	for _, i := range m.Clear {
		if err := flip(i, false); err != nil {
			return nil, err
		}
	}
	slices.Sort(order)
	for _, c := range order {
		key := proof.ChunkKey(m.Issuer, m.Id, c)
		if b := chunks[c]; !allZero(b) {
			if _, err := a.tree.Set(key, b); err != nil {
				return nil, err
			}
		} else if _, _, err := a.tree.Remove(key); err != nil {
			return nil, err
		}
	}
	return []abci.Event{{Type: "registry", Attributes: []abci.EventAttribute{
		{Key: "updated", Value: m.Issuer + "/" + m.Id, Index: true},
		{Key: "set", Value: fmt.Sprint(len(m.Set))}, {Key: "cleared", Value: fmt.Sprint(len(m.Clear))},
	}}}, nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
