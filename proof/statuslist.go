package proof

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/proto"
)

// EncodeStatusList renders a bitstring as a Bitstring Status List
// encodedList: multibase base64url without padding ("u" prefix) of its
// GZIP compression.
func EncodeStatusList(bits []byte) (string, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(bits); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return "u" + base64.RawURLEncoding.EncodeToString(buf.Bytes()), nil
}

// DecodeStatusList reads an encodedList back into its bitstring. It refuses
// lists that decompress beyond maxBytes.
func DecodeStatusList(encoded string, maxBytes int) ([]byte, error) {
	if len(encoded) == 0 || encoded[0] != 'u' {
		return nil, errors.New(`encodedList must be multibase base64url (prefix "u")`)
	}
	raw, err := base64.RawURLEncoding.DecodeString(encoded[1:])
	if err != nil {
		return nil, fmt.Errorf("encodedList: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("encodedList: %w", err)
	}
	bits, err := io.ReadAll(io.LimitReader(zr, int64(maxBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("encodedList: %w", err)
	}
	if len(bits) > maxBytes {
		return nil, fmt.Errorf("encodedList decompresses beyond %d bytes", maxBytes)
	}
	return bits, nil
}

// BitSet reports entry index of a bitstring: the first index is the most
// significant bit of the first byte.
func BitSet(bits []byte, index uint64) bool {
	return bits[index/8]&(0x80>>(index%8)) != 0
}

// RegistryResult is what a registry status proves.
type RegistryResult struct {
	Issuer, ID string
	// Purpose is "revocation" or "suspension".
	Purpose string
	Size    uint64
	Index   uint64
	Set     bool
	Height  int64
	Time    time.Time
}

// PurposeName is a registry purpose as the Recommendation spells statusPurpose.
func PurposeName(p int32) string {
	switch p {
	case 1:
		return "revocation"
	case 2:
		return "suspension"
	}
	return fmt.Sprintf("unknown(%d)", p)
}

func verifyRegistryRecord(appHash, record, recordProof []byte) (*RegistryRecord, error) {
	var rec RegistryRecord
	if err := proto.Unmarshal(record, &rec); err != nil {
		return nil, fail(StepStatus, "status list record does not decode")
	}
	if err := membership(appHash, recordProof, RegistryKey(rec.Issuer, rec.Id), record); err != nil {
		return nil, fail(StepStatus, "status list record: %v", err)
	}
	return &rec, nil
}

func verifyChunk(appHash []byte, rec *RegistryRecord, c uint32, chunk, chunkProof []byte) error {
	key := ChunkKey(rec.Issuer, rec.Id, c)
	if len(chunk) == 0 {
		if err := nonMembership(appHash, chunkProof, key); err != nil {
			return fail(StepStatus, "chunk %d absent: %v", c, err)
		}
		return nil
	}
	if len(chunk) != ChunkBits/8 {
		return fail(StepStatus, "chunk %d is %d bytes, want %d", c, len(chunk), ChunkBits/8)
	}
	if err := membership(appHash, chunkProof, key, chunk); err != nil {
		return fail(StepStatus, "chunk %d: %v", c, err)
	}
	return nil
}

// VerifyRegistryStatus checks offline one entry of a status registry.
func VerifyRegistryStatus(rs *RegistryStatus, trust *TrustRoot, maxAge time.Duration, now time.Time) (*RegistryResult, error) {
	if rs == nil || trust == nil || len(trust.Validators) == 0 {
		return nil, fail(StepFormat, "status list entry and trust root are required")
	}
	if rs.Version != StatusVersion || len(rs.ProtoReflect().GetUnknown()) > 0 ||
		validatorsHaveUnknownFields(rs.Validators) || linksHaveUnknownFields(rs.ValidatorLinks) {
		return nil, fail(StepFormat, "not a version %d status list entry", StatusVersion)
	}
	if rs.ChainId != trust.ChainID {
		return nil, fail(StepChain, "status is for chain %q, trust root is chain %q", rs.ChainId, trust.ChainID)
	}
	appHash, t, err := verifyState(rs.Height, rs.SignedHeader, rs.Validators, rs.ValidatorLinks, trust, maxAge, now)
	if err != nil {
		return nil, err
	}
	rec, err := verifyRegistryRecord(appHash, rs.RegistryRecord, rs.RegistryProof)
	if err != nil {
		return nil, err
	}
	if rs.Index >= rec.Size {
		return nil, fail(StepStatus, "index %d outside the status list's %d entries", rs.Index, rec.Size)
	}
	c := uint32(rs.Index / ChunkBits)
	if err := verifyChunk(appHash, rec, c, rs.Chunk, rs.ChunkProof); err != nil {
		return nil, err
	}
	set := len(rs.Chunk) > 0 && BitSet(rs.Chunk, rs.Index%ChunkBits)
	return &RegistryResult{Issuer: rec.Issuer, ID: rec.Id, Purpose: PurposeName(rec.Purpose), Size: rec.Size,
		Index: rs.Index, Set: set, Height: rs.Height, Time: t}, nil
}

// VerifyRegistryExport checks offline a whole exported registry: every
// chunk against the signed state, and that encodedList is exactly those
// bits. It returns the bitstring.
func VerifyRegistryExport(ex *RegistryExport, trust *TrustRoot, maxAge time.Duration, now time.Time) ([]byte, *RegistryResult, error) {
	if ex == nil || trust == nil || len(trust.Validators) == 0 {
		return nil, nil, fail(StepFormat, "export and trust root are required")
	}
	if ex.Version != StatusVersion || len(ex.ProtoReflect().GetUnknown()) > 0 ||
		validatorsHaveUnknownFields(ex.Validators) || linksHaveUnknownFields(ex.ValidatorLinks) {
		return nil, nil, fail(StepFormat, "not a version %d status list export", StatusVersion)
	}
	if ex.ChainId != trust.ChainID {
		return nil, nil, fail(StepChain, "export is for chain %q, trust root is chain %q", ex.ChainId, trust.ChainID)
	}
	appHash, t, err := verifyState(ex.Height, ex.SignedHeader, ex.Validators, ex.ValidatorLinks, trust, maxAge, now)
	if err != nil {
		return nil, nil, err
	}
	rec, err := verifyRegistryRecord(appHash, ex.RegistryRecord, ex.RegistryProof)
	if err != nil {
		return nil, nil, err
	}
	n := (rec.Size + ChunkBits - 1) / ChunkBits
	if uint64(len(ex.Chunks)) != n {
		return nil, nil, fail(StepStatus, "%d chunks for a registry of %d", len(ex.Chunks), n)
	}
	bits := make([]byte, rec.Size/8)
	for i, ch := range ex.Chunks {
		if ch.Index != uint32(i) {
			return nil, nil, fail(StepStatus, "chunk %d out of order", i)
		}
		if err := verifyChunk(appHash, rec, ch.Index, ch.Chunk, ch.Proof); err != nil {
			return nil, nil, err
		}
		copy(bits[i*ChunkBits/8:], ch.Chunk)
	}
	got, err := DecodeStatusList(ex.EncodedList, len(bits))
	if err != nil {
		return nil, nil, fail(StepStatus, "%v", err)
	}
	if !bytes.Equal(got, bits) {
		return nil, nil, fail(StepStatus, "encodedList is not the proven bitstring")
	}
	return bits, &RegistryResult{Issuer: rec.Issuer, ID: rec.Id, Purpose: PurposeName(rec.Purpose), Size: rec.Size, Height: ex.Height, Time: t}, nil
}
