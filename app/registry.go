package app

import (
	"bytes"
	"fmt"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

const (
	maxIssuerKeys    = 16
	maxRevokedHashes = 1000
)

func checkRegisterIssuer(m *pb.RegisterIssuer) error {
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

func checkRevoke(m *pb.Revoke) error {
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
		if len(h.AuditPath) > 64 {
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

// checkIssuerMsg applies the stateless rules of the registry messages.
func checkIssuerMsg(body *pb.TxBody) error {
	switch m := body.Msg.(type) {
	case *pb.TxBody_RegisterIssuer:
		return checkRegisterIssuer(m.RegisterIssuer)
	case *pb.TxBody_RotateKey:
		if err := ValidID(m.RotateKey.Issuer); err != nil {
			return fmt.Errorf("%w: rotate_key.issuer: %v", ErrMalformed, err)
		}
		if err := checkPublicKey(m.RotateKey.NewKey); err != nil {
			return fmt.Errorf("%w: rotate_key.new_key: %v", ErrMalformed, err)
		}
	case *pb.TxBody_CompromiseKey:
		if err := ValidID(m.CompromiseKey.Issuer); err != nil {
			return fmt.Errorf("%w: compromise_key.issuer: %v", ErrMalformed, err)
		}
		if len(m.CompromiseKey.Key) != 32 {
			return fmt.Errorf("%w: compromise_key.key is %d bytes, want 32", ErrMalformed, len(m.CompromiseKey.Key))
		}
		if m.CompromiseKey.FromHeight <= 0 {
			return fmt.Errorf("%w: compromise_key.from_height must be positive", ErrMalformed)
		}
	case *pb.TxBody_Revoke:
		return checkRevoke(m.Revoke)
	}
	return nil
}

// issuerOrSponsor names who signs a message about issuer: the issuer
// itself when the signer is the issuer, else its sponsoring member.
func issuerOrSponsor(body *pb.TxBody) (issuer string, byIssuer bool) {
	switch m := body.Msg.(type) {
	case *pb.TxBody_RotateKey:
		issuer = m.RotateKey.Issuer
	case *pb.TxBody_Revoke:
		issuer = m.Revoke.Issuer
	case *pb.TxBody_UpdateRegistry:
		issuer = m.UpdateRegistry.Issuer
	default:
		return "", false
	}
	return issuer, body.Signer == issuer && !body.AsSponsor
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

func (c *checker) issuerOrSponsorSigned(tx *decodedTx) (*pb.Issuer, error) {
	issuer, byIssuer := issuerOrSponsor(tx.body)
	if byIssuer {
		return c.issuerSigned(tx, issuer)
	}
	return c.sponsorSigned(tx, issuer)
}

// checkRegistry applies the stateful rules of the registry messages.
func (c *checker) checkRegistry(tx *decodedTx) error {
	switch m := tx.body.Msg.(type) {
	case *pb.TxBody_RegisterIssuer:
		if err := c.memberSigned(tx); err != nil {
			return err
		}
		raw, err := c.st.Get(proof.IssuerKey(m.RegisterIssuer.Id))
		if err != nil {
			return err
		}
		if raw != nil {
			return fmt.Errorf("%w: issuer %q is already registered", ErrRejected, m.RegisterIssuer.Id)
		}
	case *pb.TxBody_RotateKey:
		is, err := c.issuerOrSponsorSigned(tx)
		if err != nil {
			return err
		}
		for _, k := range is.Keys {
			if bytes.Equal(k.PublicKey, m.RotateKey.NewKey) {
				return fmt.Errorf("%w: %s is already a key of issuer %q", ErrRejected, proof.FormatBinary(k.PublicKey), is.Id)
			}
		}
		if len(is.Keys) >= 64 {
			return fmt.Errorf("%w: issuer %q has had 64 keys", ErrRejected, is.Id)
		}
	case *pb.TxBody_CompromiseKey:
		is, err := c.sponsorSigned(tx, m.CompromiseKey.Issuer)
		if err != nil {
			return err
		}
		k := findKey(is, m.CompromiseKey.Key)
		if k == nil {
			return fmt.Errorf("%w: %s is not a key of issuer %q", ErrRejected, proof.FormatBinary(m.CompromiseKey.Key), is.Id)
		}
		if m.CompromiseKey.FromHeight > c.height {
			return fmt.Errorf("%w: compromise_key.from_height %d is in the future (height %d); rotate the key instead", ErrRejected, m.CompromiseKey.FromHeight, c.height)
		}
		if k.CompromisedFrom != 0 && k.CompromisedFrom <= m.CompromiseKey.FromHeight {
			return fmt.Errorf("%w: key already marked compromised from height %d", ErrRejected, k.CompromisedFrom)
		}
	case *pb.TxBody_Revoke:
		if _, err := c.issuerOrSponsorSigned(tx); err != nil {
			return err
		}
		for i, h := range m.Revoke.Hashes {
			if err := c.checkRevocable(m.Revoke.Issuer, h); err != nil {
				return fmt.Errorf("revoke.hashes[%d]: %w", i, err)
			}
		}
	}
	return nil
}

func findKey(is *pb.Issuer, pub []byte) *pb.IssuerKey {
	for _, k := range is.Keys {
		if bytes.Equal(k.PublicKey, pub) {
			return k
		}
	}
	return nil
}

// checkRevocable: the hash is in the issuer's batch as its audit path
// says, and not revoked yet.
func (c *checker) checkRevocable(issuer string, h *pb.RevokedHash) error {
	raw, err := c.st.Get(proof.BatchKey(issuer, h.BatchSeq))
	if err != nil {
		return err
	}
	if raw == nil {
		return fmt.Errorf("%w: issuer %q has no batch %d", ErrRejected, issuer, h.BatchSeq)
	}
	var rec proof.BatchRecord
	if err := proto.Unmarshal(raw, &rec); err != nil {
		return err
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

// applyRegistry executes a registry message already checked.
func (a *App) applyRegistry(tx *decodedTx, height int64) ([]abci.Event, error) {
	c := &checker{st: a.tree}
	switch m := tx.body.Msg.(type) {
	case *pb.TxBody_RegisterIssuer:
		is := &pb.Issuer{Id: m.RegisterIssuer.Id, Name: m.RegisterIssuer.Name, Sponsor: tx.body.Signer, Status: pb.IssuerStatus_ISSUER_STATUS_ACTIVE}
		for _, k := range m.RegisterIssuer.Keys {
			is.Keys = append(is.Keys, &pb.IssuerKey{PublicKey: k, FromHeight: height})
		}
		if err := a.put(proof.IssuerKey(is.Id), is); err != nil {
			return nil, err
		}
		return []abci.Event{{Type: "issuer", Attributes: []abci.EventAttribute{{Key: "registered", Value: is.Id, Index: true}}}}, nil
	case *pb.TxBody_RotateKey:
		is, err := c.issuer(m.RotateKey.Issuer)
		if err != nil {
			return nil, err
		}
		// The rotation takes effect at the next height, so that what this
		// block accepted stays inside the stored windows. A key not valid yet
		// gets an empty window: it never signs.
		next := height + 1
		for _, k := range is.Keys {
			if k.ToHeight == 0 || k.ToHeight > next {
				k.ToHeight = max(next, k.FromHeight)
			}
		}
		is.Keys = append(is.Keys, &pb.IssuerKey{PublicKey: m.RotateKey.NewKey, FromHeight: next})
		if err := a.put(proof.IssuerKey(is.Id), is); err != nil {
			return nil, err
		}
		return []abci.Event{{Type: "issuer", Attributes: []abci.EventAttribute{{Key: "rotated", Value: is.Id, Index: true}}}}, nil
	case *pb.TxBody_CompromiseKey:
		is, err := c.issuer(m.CompromiseKey.Issuer)
		if err != nil {
			return nil, err
		}
		findKey(is, m.CompromiseKey.Key).CompromisedFrom = m.CompromiseKey.FromHeight
		if err := a.put(proof.IssuerKey(is.Id), is); err != nil {
			return nil, err
		}
		return []abci.Event{{Type: "issuer", Attributes: []abci.EventAttribute{{Key: "key_compromised", Value: is.Id, Index: true}}}}, nil
	case *pb.TxBody_Revoke:
		for _, h := range m.Revoke.Hashes {
			if err := a.put(proof.RevocationKey(m.Revoke.Issuer, h.Hash), &pb.Revocation{
				Reason: m.Revoke.Reason, Height: height, BatchSeq: h.BatchSeq, RevokedBy: tx.body.Signer,
			}); err != nil {
				return nil, err
			}
		}
		return []abci.Event{{Type: "revoke", Attributes: []abci.EventAttribute{
			{Key: "issuer", Value: m.Revoke.Issuer, Index: true},
			{Key: "count", Value: fmt.Sprint(len(m.Revoke.Hashes))},
		}}}, nil
	}
	return nil, nil
}
