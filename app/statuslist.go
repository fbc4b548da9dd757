package app

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
	"github.com/credence-ledger/credence/vc"
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

	// DefaultStatusListTTL is a signed list's ttl (milliseconds) unless its
	// creation names one: 5 minutes, the Cache-Control max-age it is
	// served with.
	DefaultStatusListTTL = 300_000
	// maxStatusListTTL bounds a ttl to 30 days.
	maxStatusListTTL = 30 * 24 * 3600 * 1000

	// Bounds of a signed update, consensus constants: every node must
	// accept and refuse the same transactions whatever its configuration.
	// An encodedList holds at most the largest list (1 MiB of bits), which
	// only a nearly random list would approach after GZIP.
	maxEncodedList = 1 << 20
	// A proof object is some 300 bytes; room for longer method ids.
	maxListProof = 4096
	// Limits handed to vc for the rebuilt document: its size is the
	// encodedList plus a few hundred bytes; it nests three levels and
	// carries one proof and no blank node needing n-degree hashing.
	maxListDocument = maxEncodedList + 8192
	maxListDepth    = 8
)

// ErrListMoved: a signed update was made for other bits than the state's.
// The issuer's client rebuilds and signs again.
var ErrListMoved = fmt.Errorf("%w: status list changed since the update was signed", ErrRejected)

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
	// A list is served at a URL ending in its id (/v1/statuslists/{issuer}/{id});
	// clients resolve "." and ".." away there, so such a list could never be
	// fetched. Refused only at creation: no list can hold such an id.
	if m.Id == "." || m.Id == ".." {
		return fmt.Errorf("%w: create_registry.id %q is not usable as a URL path segment", ErrMalformed, m.Id)
	}
	switch m.Purpose {
	case pb.RegistryPurpose_REGISTRY_PURPOSE_REVOCATION, pb.RegistryPurpose_REGISTRY_PURPOSE_SUSPENSION:
	default:
		return fmt.Errorf("%w: create_registry.purpose must be REVOCATION or SUSPENSION", ErrMalformed)
	}
	if m.Size < MinStatusListSize || m.Size > MaxStatusListSize || m.Size%8 != 0 {
		return fmt.Errorf("%w: create_registry.size %d: a multiple of 8 from %d to %d", ErrMalformed, m.Size, MinStatusListSize, MaxStatusListSize)
	}
	if m.Url == "" {
		if m.TtlMs != 0 {
			return fmt.Errorf("%w: create_registry.ttl_ms is for a list with a url", ErrMalformed)
		}
		return nil
	}
	if err := vc.CheckStatusListURL(m.Url); err != nil {
		return fmt.Errorf("%w: create_registry.url: %v", ErrMalformed, err)
	}
	if m.TtlMs > maxStatusListTTL {
		return fmt.Errorf("%w: create_registry.ttl_ms %d above %d", ErrMalformed, m.TtlMs, maxStatusListTTL)
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
		return fmt.Errorf("%w: issuer %q already has status list %q", ErrRejected, tx.body.Signer, m.Id)
	}
	return nil
}

func (m createStatusListMsg) apply(a *App, tx *decodedTx, b execBlock) ([]abci.Event, error) {
	r := &pb.Registry{Issuer: tx.body.Signer, Id: m.Id, Purpose: m.Purpose, Size: m.Size, CreatedHeight: b.height, Url: m.Url}
	if m.Url != "" {
		r.TtlMs = m.TtlMs
		if r.TtlMs == 0 {
			r.TtlMs = DefaultStatusListTTL
		}
	}
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
	if !m.signed() {
		if m.EncodedList != "" || m.ValidFrom != "" || len(m.Proof) > 0 {
			return fmt.Errorf("%w: update_registry: encoded_list, valid_from and proof go together", ErrMalformed)
		}
		return nil
	}
	if len(m.EncodedList) > maxEncodedList {
		return fmt.Errorf("%w: update_registry.encoded_list above %d bytes", ErrMalformed, maxEncodedList)
	}
	if len(m.Proof) > maxListProof {
		return fmt.Errorf("%w: update_registry.proof above %d bytes", ErrMalformed, maxListProof)
	}
	if _, err := vc.ParseValidFrom(m.ValidFrom); err != nil {
		return fmt.Errorf("%w: update_registry.valid_from: %v", ErrMalformed, err)
	}
	return nil
}

// signed: the update carries the issuer's signed credential.
func (m updateStatusListMsg) signed() bool {
	return m.EncodedList != "" && m.ValidFrom != "" && len(m.Proof) > 0
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
		return fmt.Errorf("%w: issuer %q has no status list %q", ErrRejected, m.Issuer, m.Id)
	}
	if len(m.Clear) > 0 && r.Purpose != pb.RegistryPurpose_REGISTRY_PURPOSE_SUSPENSION {
		return fmt.Errorf("%w: status list %q is for %s: its bits are never cleared", ErrRejected, m.Id, r.Purpose)
	}
	for _, i := range m.indices() {
		if i >= r.Size {
			return fmt.Errorf("%w: index %d is outside status list %q of %d entries", ErrRejected, i, m.Id, r.Size)
		}
	}
	switch {
	case r.Url == "" && m.signed():
		return fmt.Errorf("%w: status list %q has no url: its credential is not signed", ErrRejected, m.Id)
	case r.Url != "" && byIssuer(tx.body, m.Issuer) && !m.signed():
		return fmt.Errorf("%w: status list %q has a url: the issuer's update carries encoded_list, valid_from and proof", ErrMalformed, m.Id)
	case !byIssuer(tx.body, m.Issuer) && m.signed():
		// Only the key that signs the credential may stand for it.
		return fmt.Errorf("%w: a sponsor's update carries no issuer proof", ErrMalformed)
	case m.signed():
		return m.checkSigned(c, tx, r)
	}
	return nil
}

// checkSigned: the update's credential lists exactly the bits the update
// leaves, and the transaction's key signed it as its did:key. The document
// is rebuilt here from state and the transaction (vc.StatusList), never
// compressed here: GZIP output may differ between builds, so the issuer's
// encodedList is kept as sent and compared by its bits.
func (m updateStatusListMsg) checkSigned(c *checker, tx *decodedTx, r *pb.Registry) error {
	bits := make([]byte, r.Size/8)
	for ch := uint32(0); uint64(ch)*proof.ChunkBits < r.Size; ch++ {
		raw, err := c.st.Get(proof.ChunkKey(m.Issuer, m.Id, ch))
		if err != nil {
			return err
		}
		copy(bits[int(ch)*proof.ChunkBits/8:], raw)
	}
	for _, i := range m.Set {
		bits[i/8] |= 0x80 >> (i % 8)
	}
	for _, i := range m.Clear {
		bits[i/8] &^= 0x80 >> (i % 8)
	}
	// Bounded by the list's size: a GZIP bomb stops there.
	got, err := proof.DecodeStatusList(m.EncodedList, len(bits))
	if err != nil {
		return fmt.Errorf("%w: update_registry.encoded_list: %v", ErrMalformed, err)
	}
	if !bytes.Equal(got, bits) {
		return ErrListMoved
	}
	did, err := vc.DIDKey(tx.pubKey)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	sl := StatusListOf(r, did, m.ValidFrom, m.EncodedList)
	if _, err := sl.Verify(m.Proof, tx.pubKey, vc.WithLimits(maxListDocument, maxListDepth, 1, 1)); err != nil {
		if errors.Is(err, vc.ErrSignature) || errors.Is(err, vc.ErrKey) {
			return fmt.Errorf("%w: update_registry.proof: %v", ErrBadSignature, err)
		}
		return fmt.Errorf("%w: update_registry.proof: %v", ErrMalformed, err)
	}
	return nil
}

// StatusListOf is the credential of registry r with the given fields. The
// node serves what it builds, so what is served is what was verified here.
func StatusListOf(r *pb.Registry, issuerDID, validFrom, encodedList string) vc.StatusList {
	return vc.StatusList{URL: r.Url, Issuer: issuerDID, ValidFrom: validFrom,
		Purpose: proof.PurposeName(int32(r.Purpose)), EncodedList: encodedList, TTLms: r.TtlMs}
}

// apply loads each touched chunk once and writes them back in index
// order: the writes are the same on every node whatever the map's order.
// A chunk left all zeros leaves the state.
func (m updateStatusListMsg) apply(a *App, tx *decodedTx, b execBlock) ([]abci.Event, error) {
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
	if err := m.applySigned(a, b); err != nil {
		return nil, err
	}
	return []abci.Event{{Type: "registry", Attributes: []abci.EventAttribute{
		{Key: "updated", Value: m.Issuer + "/" + m.Id, Index: true},
		{Key: "set", Value: fmt.Sprint(len(m.Set))}, {Key: "cleared", Value: fmt.Sprint(len(m.Clear))},
	}}}, nil
}

// applySigned keeps what the issuer signed for the new bits, or, after an
// update without it (a sponsor's), drops the old signature: it no longer
// describes the list. Lists without url keep no signature at all.
func (m updateStatusListMsg) applySigned(a *App, b execBlock) error {
	key := proof.SignedListKey(m.Issuer, m.Id)
	if m.signed() {
		return a.put(key, &pb.SignedStatusList{EncodedList: m.EncodedList, ValidFrom: m.ValidFrom, Proof: m.Proof, Height: b.height})
	}
	r, err := (&checker{st: a.tree}).statusList(m.Issuer, m.Id)
	if err != nil || r == nil || r.Url == "" {
		return err
	}
	_, _, err = a.tree.Remove(key)
	return err
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
