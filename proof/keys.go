package proof

import "encoding/binary"

// The state key layout, in one table. The verifier owns it because receipts
// and status answers prove values under these keys; the state machine writes
// under the same functions. Ids cannot contain '/', so every key is
// unambiguous, and no prefix is a prefix of another's keys.
//
//	prefix  key after the prefix                       value
//	b/      issuer "/" seq (8 bytes big-endian)         BatchRecord
//	i/      issuer                                      Issuer
//	r/      issuer "/" hash                             Revocation
//	sl/     issuer "/" status list id                   Registry
//	sc/     issuer "/" id "/" chunk (4 bytes b.-e.)     status bits (absent: all 0)
//	sd/     issuer "/" status list id                   SignedStatusList (absent: unsigned)
//	m/      member                                      Member
//	s/      account: "i/" issuer or "m/" member         last sequence (8 bytes b.-e.)
//	g/p/    proposal id (8 bytes big-endian)            Proposal
//	g/o/    expiry height, id (8 bytes b.-e. each)      empty: open proposals by expiry
//	g/next  (exact key)                                 next proposal id (8 bytes b.-e.)
//	p       (exact key)                                 Params
//	h/changed (exact key)                               last height whose block changed the state
//	h/proof   (exact key)                               last height written only to be proven
//	u/plan    (exact key)                               UpgradePlan passed, not yet reached
//	u/version (exact key)                               app version (8 bytes b.-e.; absent: 2)
//	u/done/   plan name                                 height it was applied at (8 bytes b.-e.)
//
// A scan over every key under a prefix runs from the prefix to
// PrefixEnd(prefix).
const (
	PrefixBatch        = "b/"
	PrefixIssuer       = "i/"
	PrefixRevocation   = "r/"
	PrefixStatusList   = "sl/"
	PrefixStatusChunk  = "sc/"
	PrefixSignedList   = "sd/"
	PrefixMember       = "m/"
	PrefixSequence     = "s/"
	PrefixProposal     = "g/p/"
	PrefixOpenProposal = "g/o/"
	KeyNextProposal    = "g/next"
	KeyParams          = "p"
	// KeyChangedAt and KeyProofBlock pace the blocks a receipt needs; see
	// the app's markForProof.
	KeyChangedAt  = "h/changed"
	KeyProofBlock = "h/proof"
	// KeyAppVersion is absent until the first upgrade: a chain that never
	// upgraded keeps the state (and app hashes) it had before the key existed.
	KeyAppVersion     = "u/version"
	KeyUpgradePlan    = "u/plan"
	PrefixUpgradeDone = "u/done/"
)

// UpgradeDoneKey is the key of the height a plan named name was applied at.
func UpgradeDoneKey(name string) []byte { return []byte(PrefixUpgradeDone + name) }

// Signers' sequence spaces under PrefixSequence: an issuer and a member may
// share an id, and each counts its own transactions.
const (
	accountIssuer = "i/"
	accountMember = "m/"
)

// ChunkBits is the number of status list entries per stored chunk.
const ChunkBits = 16_384

// PrefixEnd is the exclusive end of a scan over every key that begins with
// prefix: the prefix with its last byte below 0xff incremented and what
// follows that byte dropped. It is nil (no end) when every byte is 0xff.
func PrefixEnd(prefix string) []byte {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// BatchKey is the key of batch (issuer, seq).
func BatchKey(issuer string, seq uint64) []byte {
	k := make([]byte, 0, len(PrefixBatch)+len(issuer)+1+8)
	k = append(k, PrefixBatch...)
	k = append(k, issuer...)
	k = append(k, '/')
	return binary.BigEndian.AppendUint64(k, seq)
}

// IssuerKey is the key of an issuer's record.
func IssuerKey(id string) []byte { return []byte(PrefixIssuer + id) }

// RevocationKey is the key of a revoked hash.
func RevocationKey(issuer string, hash []byte) []byte {
	return append([]byte(PrefixRevocation+issuer+"/"), hash...)
}

// RegistryKey is the key of a status list's record.
func RegistryKey(issuer, id string) []byte { return []byte(PrefixStatusList + issuer + "/" + id) }

// ChunkKey is the key of chunk c of a status list. An absent chunk is all
// zeros.
func ChunkKey(issuer, id string, c uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(PrefixStatusChunk+issuer+"/"+id+"/"), c)
}

// SignedListKey is the key of what the issuer signed for a status list's
// current bits. Kept apart from the registry record so that record and the
// chunk proofs stay small.
func SignedListKey(issuer, id string) []byte {
	return []byte(PrefixSignedList + issuer + "/" + id)
}

// MemberKey is the key of a consortium member's record.
func MemberKey(id string) []byte { return []byte(PrefixMember + id) }

// IssuerSequenceKey is the key of the last sequence an issuer signed with.
func IssuerSequenceKey(id string) []byte {
	return []byte(PrefixSequence + accountIssuer + id)
}

// MemberSequenceKey is the key of the last sequence a member signed with.
func MemberSequenceKey(id string) []byte {
	return []byte(PrefixSequence + accountMember + id)
}

// ProposalKey is the key of governance proposal id.
func ProposalKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(PrefixProposal), id)
}

// OpenProposalKey marks proposal id open until expires; the keys sort by
// expiry, so the proposals that expire before a height are one scan.
func OpenProposalKey(expires int64, id uint64) []byte {
	k := binary.BigEndian.AppendUint64([]byte(PrefixOpenProposal), uint64(expires))
	return binary.BigEndian.AppendUint64(k, id)
}
