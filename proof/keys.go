package proof

import "encoding/binary"

// The state keys that receipts and status answers prove. The verifier owns
// this layout; the state machine writes under it. Issuer and registry ids
// cannot contain '/', so every key is unambiguous.

// ChunkBits is the number of status-registry entries per stored chunk.
const ChunkBits = 16_384

// BatchKey is the key of batch (issuer, seq): "b/" + issuer + "/" + seq as
// 8 bytes big-endian.
func BatchKey(issuer string, seq uint64) []byte {
	k := make([]byte, 0, 3+len(issuer)+8)
	k = append(k, "b/"...)
	k = append(k, issuer...)
	k = append(k, '/')
	return binary.BigEndian.AppendUint64(k, seq)
}

// IssuerKey is the key of an issuer's record: "i/" + id.
func IssuerKey(id string) []byte { return []byte("i/" + id) }

// RevocationKey is the key of a revoked hash: "r/" + issuer + "/" + hash.
func RevocationKey(issuer string, hash []byte) []byte {
	return append([]byte("r/"+issuer+"/"), hash...)
}

// RegistryKey is the key of a status registry's record: "sl/" + issuer +
// "/" + id.
func RegistryKey(issuer, id string) []byte { return []byte("sl/" + issuer + "/" + id) }

// ChunkKey is the key of chunk c of a registry: "sc/" + issuer + "/" + id
// + "/" + c as 4 bytes big-endian. An absent chunk is all zeros.
func ChunkKey(issuer, id string, c uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte("sc/"+issuer+"/"+id+"/"), c)
}
