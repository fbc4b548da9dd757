package app

import (
	"bytes"
	"crypto/ed25519"
	"fmt"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// Issuers: a member registers an issuer it sponsors; the issuer signs with
// keys that each have a window of heights; the issuer or its sponsor
// rotates keys and revokes anchored hashes; the sponsor marks a key
// compromised from a past height.

const (
	maxIssuerKeys    = 16
	maxRevokedHashes = 1000
	// maxKeyHistory bounds the keys an issuer may reach by rotating
	// itself, rotated ones included, so that its record stays small. Its
	// sponsor's rotations are not bounded by it: a thief holding the
	// issuer's key could otherwise rotate up to it and so leave the
	// sponsor no way to take the issuer back (docs/governance.md).
	maxKeyHistory = 64
	// An issuer may rotate itself at most selfRotationBurst times within
	// selfRotationWindow heights (rotations by its sponsor count too), so
	// that a thief cannot rotate to the cap before the sponsor can act.
	// Heights, not time: the rule must be the same on every node.
	selfRotationBurst  = 4
	selfRotationWindow = 600
	// maxAuditPath is the longest audit path of a batch (2^64 leaves).
	maxAuditPath = 64
)

func (c *checker) issuer(id string) (*pb.Issuer, error) {
	var is pb.Issuer
	found, err := c.get(proof.IssuerKey(id), &is)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: issuer %q is not registered", ErrUnknown, id)
	}
	return &is, nil
}

// keyValidAt reports whether an issuer may sign with pub at height h.
func keyValidAt(is *pb.Issuer, pub []byte, h int64) bool {
	for _, k := range is.Keys {
		if string(k.PublicKey) != string(pub) {
			continue
		}
		if h < k.FromHeight || (k.ToHeight != 0 && h >= k.ToHeight) {
			continue
		}
		if k.CompromisedFrom != 0 && h >= k.CompromisedFrom {
			continue
		}
		return true
	}
	return false
}

func findKey(is *pb.Issuer, pub []byte) *pb.IssuerKey {
	for _, k := range is.Keys {
		if bytes.Equal(k.PublicKey, pub) {
			return k
		}
	}
	return nil
}

// byIssuer says whether a message about issuer, which the issuer or its
// sponsor may sign, is signed by the issuer itself: a member whose id is
// the issuer's acts as sponsor with as_sponsor.
func byIssuer(body *pb.TxBody, issuer string) bool {
	return body.Signer == issuer && !body.AsSponsor
}

// issuerOrSponsorSequenceKey is the sequence space of such a message.
func issuerOrSponsorSequenceKey(body *pb.TxBody, issuer string) []byte {
	if byIssuer(body, issuer) {
		return proof.IssuerSequenceKey(body.Signer)
	}
	return proof.MemberSequenceKey(body.Signer)
}

// issuerSigned: the issuer is active and signed with a key valid now.
func (c *checker) issuerSigned(tx *decodedTx, issuer string) (*pb.Issuer, error) {
	is, err := c.issuer(issuer)
	if err != nil {
		return nil, err
	}
	if is.Status != pb.IssuerStatus_ISSUER_STATUS_ACTIVE {
		return nil, fmt.Errorf("%w: issuer %q is %s", ErrUnauthorized, issuer, is.Status)
	}
	if !keyValidAt(is, tx.pubKey, c.height) {
		return nil, fmt.Errorf("%w: key %s is not a valid key of issuer %q at height %d",
			ErrUnauthorized, proof.FormatBinary(tx.pubKey), issuer, c.height)
	}
	return is, nil
}

// sponsorSigned: the signer is the issuer's sponsoring member, with its
// admin key.
func (c *checker) sponsorSigned(tx *decodedTx, issuer string) (*pb.Issuer, error) {
	is, err := c.issuer(issuer)
	if err != nil {
		return nil, err
	}
	if err := c.memberSigned(tx); err != nil {
		return nil, err
	}
	if is.Sponsor != tx.body.Signer {
		return nil, fmt.Errorf("%w: member %q does not sponsor issuer %q", ErrUnauthorized, tx.body.Signer, issuer)
	}
	return is, nil
}

func (c *checker) issuerOrSponsorSigned(tx *decodedTx, issuer string) (*pb.Issuer, error) {
	if byIssuer(tx.body, issuer) {
		return c.issuerSigned(tx, issuer)
	}
	return c.sponsorSigned(tx, issuer)
}

func issuerEvent(key, id string) []abci.Event {
	return []abci.Event{{Type: "issuer", Attributes: []abci.EventAttribute{{Key: key, Value: id, Index: true}}}}
}

// RegisterIssuer: a member registers an issuer it then sponsors.
type registerIssuerMsg struct{ *pb.RegisterIssuer }

func (m registerIssuerMsg) validate(uint64) error {
	if err := ValidID(m.Id); err != nil {
		return fmt.Errorf("%w: register_issuer.id: %v", ErrMalformed, err)
	}
	if len(m.Name) > 200 {
		return fmt.Errorf("%w: register_issuer.name is longer than 200 bytes", ErrMalformed)
	}
	if len(m.Keys) == 0 || len(m.Keys) > maxIssuerKeys {
		return fmt.Errorf("%w: register_issuer.keys: 1 to %d keys", ErrMalformed, maxIssuerKeys)
	}
	for i, k := range m.Keys {
		if err := checkPublicKey(k); err != nil {
			return fmt.Errorf("%w: register_issuer.keys[%d]: %v", ErrMalformed, i, err)
		}
		for _, o := range m.Keys[:i] {
			if bytes.Equal(o, k) {
				return fmt.Errorf("%w: register_issuer.keys[%d] is listed twice", ErrMalformed, i)
			}
		}
	}
	return nil
}

func (registerIssuerMsg) sequenceKey(body *pb.TxBody) []byte {
	return proof.MemberSequenceKey(body.Signer)
}

func (m registerIssuerMsg) check(c *checker, tx *decodedTx) error {
	if err := c.memberSigned(tx); err != nil {
		return err
	}
	raw, err := c.st.Get(proof.IssuerKey(m.Id))
	if err != nil {
		return err
	}
	if raw != nil {
		return fmt.Errorf("%w: issuer %q is already registered", ErrRejected, m.Id)
	}
	return nil
}

// apply: the keys are valid from this height on.
func (m registerIssuerMsg) apply(a *App, tx *decodedTx, b execBlock) ([]abci.Event, error) {
	is := &pb.Issuer{Id: m.Id, Name: m.Name, Sponsor: tx.body.Signer, Status: pb.IssuerStatus_ISSUER_STATUS_ACTIVE}
	for _, k := range m.Keys {
		is.Keys = append(is.Keys, &pb.IssuerKey{PublicKey: k, FromHeight: b.height})
	}
	if err := a.put(proof.IssuerKey(is.Id), is); err != nil {
		return nil, err
	}
	return issuerEvent("registered", is.Id), nil
}

// RotateKey: the issuer or its sponsor replaces every key of the issuer by
// a new one.
type rotateKeyMsg struct{ *pb.RotateKey }

func (m rotateKeyMsg) validate(uint64) error {
	if err := ValidID(m.Issuer); err != nil {
		return fmt.Errorf("%w: rotate_key.issuer: %v", ErrMalformed, err)
	}
	if err := checkPublicKey(m.NewKey); err != nil {
		return fmt.Errorf("%w: rotate_key.new_key: %v", ErrMalformed, err)
	}
	return nil
}

func (m rotateKeyMsg) sequenceKey(body *pb.TxBody) []byte {
	return issuerOrSponsorSequenceKey(body, m.Issuer)
}

func (m rotateKeyMsg) check(c *checker, tx *decodedTx) error {
	is, err := c.issuerOrSponsorSigned(tx, m.Issuer)
	if err != nil {
		return err
	}
	for _, k := range is.Keys {
		if bytes.Equal(k.PublicKey, m.NewKey) {
			return fmt.Errorf("%w: %s is already a key of issuer %q", ErrRejected, proof.FormatBinary(k.PublicKey), is.Id)
		}
	}
	if !byIssuer(tx.body, m.Issuer) {
		return nil // the sponsor's way back in is never refused
	}
	if len(is.Keys) >= maxKeyHistory {
		return fmt.Errorf("%w: issuer %q has had %d keys; only its sponsor may rotate it now (rotate-key --as-sponsor)", ErrRejected, is.Id, maxKeyHistory)
	}
	if n := recentRotations(is, c.height); n >= selfRotationBurst {
		return fmt.Errorf("%w: issuer %q was rotated %d times in the last %d heights; it may rotate itself again later, its sponsor at any time", ErrRejected, is.Id, n, selfRotationWindow)
	}
	return nil
}

// recentRotations counts the keys rotation gave the issuer (those
// registered with it, valid from its first height, are not counted) that
// became valid within selfRotationWindow heights before h.
func recentRotations(is *pb.Issuer, h int64) int {
	if len(is.Keys) == 0 {
		return 0
	}
	registered := is.Keys[0].FromHeight
	n := 0
	for _, k := range is.Keys {
		if k.FromHeight > registered && k.FromHeight > h-selfRotationWindow {
			n++
		}
	}
	return n
}

// apply: the rotation takes effect at the next height, so that what this
// block accepted stays inside the stored windows. A key not valid yet gets
// an empty window: it never signs.
func (m rotateKeyMsg) apply(a *App, _ *decodedTx, b execBlock) ([]abci.Event, error) {
	is, err := (&checker{st: a.tree}).issuer(m.Issuer)
	if err != nil {
		return nil, err
	}
	next := b.height + 1
	for _, k := range is.Keys {
		if k.ToHeight == 0 || k.ToHeight > next {
			k.ToHeight = max(next, k.FromHeight)
		}
	}
	is.Keys = append(is.Keys, &pb.IssuerKey{PublicKey: m.NewKey, FromHeight: next})
	if err := a.put(proof.IssuerKey(is.Id), is); err != nil {
		return nil, err
	}
	return issuerEvent("rotated", is.Id), nil
}

// CompromiseKey: the sponsor declares a key of the issuer compromised from
// a past height; what it signed from then on stops verifying.
type compromiseKeyMsg struct{ *pb.CompromiseKey }

func (m compromiseKeyMsg) validate(uint64) error {
	if err := ValidID(m.Issuer); err != nil {
		return fmt.Errorf("%w: compromise_key.issuer: %v", ErrMalformed, err)
	}
	if len(m.Key) != 32 {
		return fmt.Errorf("%w: compromise_key.key is %d bytes, want 32", ErrMalformed, len(m.Key))
	}
	if m.FromHeight <= 0 {
		return fmt.Errorf("%w: compromise_key.from_height must be positive", ErrMalformed)
	}
	return nil
}

func (compromiseKeyMsg) sequenceKey(body *pb.TxBody) []byte {
	return proof.MemberSequenceKey(body.Signer)
}

func (m compromiseKeyMsg) check(c *checker, tx *decodedTx) error {
	is, err := c.sponsorSigned(tx, m.Issuer)
	if err != nil {
		return err
	}
	k := findKey(is, m.Key)
	if k == nil {
		return fmt.Errorf("%w: %s is not a key of issuer %q", ErrRejected, proof.FormatBinary(m.Key), is.Id)
	}
	if m.FromHeight > c.height {
		return fmt.Errorf("%w: compromise_key.from_height %d is in the future (height %d); rotate the key instead", ErrRejected, m.FromHeight, c.height)
	}
	if k.CompromisedFrom != 0 && k.CompromisedFrom <= m.FromHeight {
		return fmt.Errorf("%w: key already marked compromised from height %d", ErrRejected, k.CompromisedFrom)
	}
	return nil
}

func (m compromiseKeyMsg) apply(a *App, _ *decodedTx, _ execBlock) ([]abci.Event, error) {
	is, err := (&checker{st: a.tree}).issuer(m.Issuer)
	if err != nil {
		return nil, err
	}
	findKey(is, m.Key).CompromisedFrom = m.FromHeight
	if err := a.put(proof.IssuerKey(is.Id), is); err != nil {
		return nil, err
	}
	return issuerEvent("key_compromised", is.Id), nil
}

// Revoke: the issuer or its sponsor revokes hashes of the issuer's
// batches, each shown to be in its batch by an audit path.
type revokeMsg struct{ *pb.Revoke }

func (m revokeMsg) validate(uint64) error {
	if err := ValidID(m.Issuer); err != nil {
		return fmt.Errorf("%w: revoke.issuer: %v", ErrMalformed, err)
	}
	if len(m.Hashes) == 0 || len(m.Hashes) > maxRevokedHashes {
		return fmt.Errorf("%w: revoke.hashes: 1 to %d per transaction", ErrMalformed, maxRevokedHashes)
	}
	seen := make(map[string]bool, len(m.Hashes))
	for i, h := range m.Hashes {
		if len(h.Hash) != proof.HashSize {
			return fmt.Errorf("%w: revoke.hashes[%d].hash is %d bytes, want %d", ErrMalformed, i, len(h.Hash), proof.HashSize)
		}
		if seen[string(h.Hash)] {
			return fmt.Errorf("%w: revoke.hashes[%d] is listed twice", ErrMalformed, i)
		}
		seen[string(h.Hash)] = true
		if h.BatchSeq == 0 {
			return fmt.Errorf("%w: revoke.hashes[%d].batch_seq must be positive", ErrMalformed, i)
		}
		if len(h.AuditPath) > maxAuditPath {
			return fmt.Errorf("%w: revoke.hashes[%d].audit_path is too long", ErrMalformed, i)
		}
		for j, p := range h.AuditPath {
			if len(p) != proof.HashSize {
				return fmt.Errorf("%w: revoke.hashes[%d].audit_path[%d] is %d bytes", ErrMalformed, i, j, len(p))
			}
		}
	}
	return nil
}

func (m revokeMsg) sequenceKey(body *pb.TxBody) []byte {
	return issuerOrSponsorSequenceKey(body, m.Issuer)
}

func (m revokeMsg) check(c *checker, tx *decodedTx) error {
	if _, err := c.issuerOrSponsorSigned(tx, m.Issuer); err != nil {
		return err
	}
	for i, h := range m.Hashes {
		if err := c.checkRevocable(m.Issuer, h); err != nil {
			return fmt.Errorf("revoke.hashes[%d]: %w", i, err)
		}
	}
	return nil
}

// checkRevocable: the hash is in the issuer's batch as its audit path
// says, and not revoked yet.
func (c *checker) checkRevocable(issuer string, h *pb.RevokedHash) error {
	var rec proof.BatchRecord
	found, err := c.get(proof.BatchKey(issuer, h.BatchSeq), &rec)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: issuer %q has no batch %d", ErrRejected, issuer, h.BatchSeq)
	}
	root, err := proof.RootFromAuditPath(proof.LeafHash(h.Hash), h.LeafIndex, rec.LeafCount, h.AuditPath)
	if err != nil || !bytes.Equal(root[:], rec.Root) {
		return fmt.Errorf("%w: %s is not leaf %d of issuer %q's batch %d", ErrRejected, proof.FormatBinary(h.Hash), h.LeafIndex, issuer, h.BatchSeq)
	}
	prev, err := c.st.Get(proof.RevocationKey(issuer, h.Hash))
	if err != nil {
		return err
	}
	if prev != nil {
		return fmt.Errorf("%w: %s is already revoked", ErrRejected, proof.FormatBinary(h.Hash))
	}
	return nil
}

func (m revokeMsg) apply(a *App, tx *decodedTx, b execBlock) ([]abci.Event, error) {
	for _, h := range m.Hashes {
		if err := a.put(proof.RevocationKey(m.Issuer, h.Hash), &pb.Revocation{
			Reason: m.Reason, Height: b.height, BatchSeq: h.BatchSeq, RevokedBy: tx.body.Signer,
		}); err != nil {
			return nil, err
		}
	}
	return []abci.Event{{Type: "revoke", Attributes: []abci.EventAttribute{
		{Key: "issuer", Value: m.Issuer, Index: true},
		{Key: "count", Value: fmt.Sprint(len(m.Hashes))},
	}}}, nil
}

// CanSign is nil when pub may sign issuer's batches in the next block, by
// committed state; otherwise why not, wrapping ErrUnknown (no such issuer)
// or ErrUnauthorized (not active, or the key not valid then). A node checks
// its configured key with it, so that it stops taking submissions it could
// never anchor.
func (a *App) CanSign(issuer string, pub ed25519.PublicKey) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := &checker{st: a.committed(), height: a.nextHeight()}
	_, err := c.issuerSigned(&decodedTx{pubKey: pub}, issuer)
	return err
}
