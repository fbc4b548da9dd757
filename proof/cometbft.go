package proof

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file implements, from docs/receipt.md, the parts of CometBFT a
// verifier needs: the SignedHeader wire format, the header hash, the
// validator-set hash, vote sign-bytes and commit verification. The tests
// cross-check each against CometBFT's own functions.

// timestamp is a google.protobuf.Timestamp as CometBFT encodes it.
type timestamp struct {
	seconds int64
	nanos   int32
}

// zeroTime is Go's zero time.Time (0001-01-01T00:00:00Z), which CometBFT
// writes as the timestamp of an absent signature.
var zeroTime = timestamp{seconds: -62135596800}

type partSetHeader struct {
	total uint32
	hash  []byte
}

type blockID struct {
	hash  []byte
	parts partSetHeader
}

type header struct {
	versionBlock, versionApp uint64
	chainID                  string
	height                   int64
	time                     timestamp
	lastBlockID              blockID
	lastCommitHash           []byte
	dataHash                 []byte
	validatorsHash           []byte
	nextValidatorsHash       []byte
	consensusHash            []byte
	appHash                  []byte
	lastResultsHash          []byte
	evidenceHash             []byte
	proposerAddress          []byte
}

// Commit signature flags (tendermint.types.BlockIDFlag).
const (
	flagAbsent = 1
	flagCommit = 2
	flagNil    = 3
)

type commitSig struct {
	flag      uint64
	address   []byte
	time      timestamp
	signature []byte
}

type commit struct {
	height  int64
	round   int32
	blockID blockID
	sigs    []commitSig
}

type signedHeader struct {
	header header
	commit commit
}

// Sizes fixed by CometBFT's ed25519 validators.
const (
	addressSize   = 20
	signatureSize = ed25519.SignatureSize
	maxChainIDLen = 50
	// maxTotalVotingPower is CometBFT's bound on a validator set's power;
	// it keeps the 2/3 arithmetic far from overflow.
	maxTotalVotingPower = math.MaxInt64 / 8
)

// ---- decoding ----

// wireReader walks the fields of one protobuf message.
type wireReader struct {
	b   []byte
	err error
}

// next returns the next field's number and type, or false at the end or on
// a malformed tag.
func (r *wireReader) next() (protowire.Number, protowire.Type, bool) {
	if r.err != nil || len(r.b) == 0 {
		return 0, 0, false
	}
	num, typ, n := protowire.ConsumeTag(r.b)
	if n < 0 {
		r.err = protowire.ParseError(n)
		return 0, 0, false
	}
	r.b = r.b[n:]
	return num, typ, true
}

func (r *wireReader) want(typ, got protowire.Type, num protowire.Number) bool {
	if r.err == nil && typ != got {
		r.err = fmt.Errorf("field %d has wire type %d, want %d", num, got, typ)
	}
	return r.err == nil
}

func (r *wireReader) varint(num protowire.Number, typ protowire.Type) uint64 {
	if !r.want(protowire.VarintType, typ, num) {
		return 0
	}
	v, n := protowire.ConsumeVarint(r.b)
	if n < 0 {
		r.err = protowire.ParseError(n)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) bytes(num protowire.Number, typ protowire.Type) []byte {
	if !r.want(protowire.BytesType, typ, num) {
		return nil
	}
	v, n := protowire.ConsumeBytes(r.b)
	if n < 0 {
		r.err = protowire.ParseError(n)
		return nil
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) unknown(num protowire.Number) {
	if r.err == nil {
		r.err = fmt.Errorf("unknown field %d", num)
	}
}

func decodeTimestamp(b []byte) (timestamp, error) {
	var t timestamp
	r := wireReader{b: b}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			t.seconds = int64(r.varint(num, typ))
		case 2:
			t.nanos = int32(r.varint(num, typ))
		default:
			r.unknown(num)
		}
	}
	return t, r.err
}

func decodePartSetHeader(b []byte) (partSetHeader, error) {
	var p partSetHeader
	r := wireReader{b: b}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			p.total = uint32(r.varint(num, typ))
		case 2:
			p.hash = r.bytes(num, typ)
		default:
			r.unknown(num)
		}
	}
	return p, r.err
}

func decodeBlockID(b []byte) (blockID, error) {
	var id blockID
	r := wireReader{b: b}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			id.hash = r.bytes(num, typ)
		case 2:
			if p := r.bytes(num, typ); r.err == nil {
				id.parts, r.err = decodePartSetHeader(p)
			}
		default:
			r.unknown(num)
		}
	}
	return id, r.err
}

func decodeHeader(b []byte) (header, error) {
	var h header
	r := wireReader{b: b}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			v := wireReader{b: r.bytes(num, typ)}
			for vn, vt, ok := v.next(); ok; vn, vt, ok = v.next() {
				switch vn {
				case 1:
					h.versionBlock = v.varint(vn, vt)
				case 2:
					h.versionApp = v.varint(vn, vt)
				default:
					v.unknown(vn)
				}
			}
			if r.err == nil {
				r.err = v.err
			}
		case 2:
			h.chainID = string(r.bytes(num, typ))
		case 3:
			h.height = int64(r.varint(num, typ))
		case 4:
			if t := r.bytes(num, typ); r.err == nil {
				h.time, r.err = decodeTimestamp(t)
			}
		case 5:
			if id := r.bytes(num, typ); r.err == nil {
				h.lastBlockID, r.err = decodeBlockID(id)
			}
		case 6:
			h.lastCommitHash = r.bytes(num, typ)
		case 7:
			h.dataHash = r.bytes(num, typ)
		case 8:
			h.validatorsHash = r.bytes(num, typ)
		case 9:
			h.nextValidatorsHash = r.bytes(num, typ)
		case 10:
			h.consensusHash = r.bytes(num, typ)
		case 11:
			h.appHash = r.bytes(num, typ)
		case 12:
			h.lastResultsHash = r.bytes(num, typ)
		case 13:
			h.evidenceHash = r.bytes(num, typ)
		case 14:
			h.proposerAddress = r.bytes(num, typ)
		default:
			r.unknown(num)
		}
	}
	return h, r.err
}

func decodeCommitSig(b []byte) (commitSig, error) {
	var s commitSig
	r := wireReader{b: b}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			s.flag = r.varint(num, typ)
		case 2:
			s.address = r.bytes(num, typ)
		case 3:
			if t := r.bytes(num, typ); r.err == nil {
				s.time, r.err = decodeTimestamp(t)
			}
		case 4:
			s.signature = r.bytes(num, typ)
		default:
			r.unknown(num)
		}
	}
	return s, r.err
}

func decodeCommit(b []byte, maxSignatures int) (commit, error) {
	var c commit
	r := wireReader{b: b}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			c.height = int64(r.varint(num, typ))
		case 2:
			c.round = int32(r.varint(num, typ))
		case 3:
			if id := r.bytes(num, typ); r.err == nil {
				c.blockID, r.err = decodeBlockID(id)
			}
		case 4:
			if len(c.sigs) == maxSignatures {
				return c, fmt.Errorf("more than %d signatures", maxSignatures)
			}
			if s := r.bytes(num, typ); r.err == nil {
				var sig commitSig
				sig, r.err = decodeCommitSig(s)
				c.sigs = append(c.sigs, sig)
			}
		default:
			r.unknown(num)
		}
	}
	return c, r.err
}

// decodeSignedHeader reads a tendermint.types.SignedHeader and accepts only
// its canonical encoding (docs/receipt.md, "Canonical protobuf"): the
// decoded value is encoded again and must give back the same bytes, so no
// byte of it goes unchecked.
func decodeSignedHeader(raw []byte, maxSignatures int) (*signedHeader, error) {
	var sh signedHeader
	var haveHeader, haveCommit bool
	r := wireReader{b: raw}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			if h := r.bytes(num, typ); r.err == nil {
				sh.header, r.err = decodeHeader(h)
				haveHeader = true
			}
		case 2:
			if c := r.bytes(num, typ); r.err == nil {
				sh.commit, r.err = decodeCommit(c, maxSignatures)
				haveCommit = true
			}
		default:
			r.unknown(num)
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode: %w", r.err)
	}
	if !haveHeader || !haveCommit {
		return nil, errors.New("decode: header and commit are required")
	}
	if !bytes.Equal(sh.encode(), raw) {
		return nil, errors.New("not the canonical encoding")
	}
	return &sh, nil
}

// ---- canonical encoding ----

// Proto3 rules: a scalar field at its zero value is left out. Embedded
// messages that CometBFT declares non-nullable are always written, even
// when empty.

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return appendMessageField(b, num, v)
}

func appendMessageField(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// int32 fields are varints of the value sign-extended to 64 bits.
func int32Varint(v int32) uint64 { return uint64(int64(v)) }

func (t timestamp) encode() []byte {
	b := appendVarintField(nil, 1, uint64(t.seconds))
	return appendVarintField(b, 2, int32Varint(t.nanos))
}

func (p partSetHeader) encode() []byte {
	b := appendVarintField(nil, 1, uint64(p.total))
	return appendBytesField(b, 2, p.hash)
}

func (id blockID) encode() []byte {
	b := appendBytesField(nil, 1, id.hash)
	return appendMessageField(b, 2, id.parts.encode())
}

func (h *header) encodeVersion() []byte {
	b := appendVarintField(nil, 1, h.versionBlock)
	return appendVarintField(b, 2, h.versionApp)
}

func (h *header) encode() []byte {
	b := appendMessageField(nil, 1, h.encodeVersion())
	b = appendBytesField(b, 2, []byte(h.chainID))
	b = appendVarintField(b, 3, uint64(h.height))
	b = appendMessageField(b, 4, h.time.encode())
	b = appendMessageField(b, 5, h.lastBlockID.encode())
	for i, f := range h.hashFields() {
		b = appendBytesField(b, protowire.Number(6+i), f)
	}
	return b
}

// hashFields are fields 6 to 14 of the header, in order.
func (h *header) hashFields() [9][]byte {
	return [9][]byte{h.lastCommitHash, h.dataHash, h.validatorsHash, h.nextValidatorsHash,
		h.consensusHash, h.appHash, h.lastResultsHash, h.evidenceHash, h.proposerAddress}
}

func (s *commitSig) encode() []byte {
	b := appendVarintField(nil, 1, s.flag)
	b = appendBytesField(b, 2, s.address)
	b = appendMessageField(b, 3, s.time.encode())
	return appendBytesField(b, 4, s.signature)
}

func (c *commit) encode() []byte {
	b := appendVarintField(nil, 1, uint64(c.height))
	b = appendVarintField(b, 2, int32Varint(c.round))
	b = appendMessageField(b, 3, c.blockID.encode())
	for i := range c.sigs {
		b = appendMessageField(b, 4, c.sigs[i].encode())
	}
	return b
}

func (sh *signedHeader) encode() []byte {
	b := appendMessageField(nil, 1, sh.header.encode())
	return appendMessageField(b, 2, sh.commit.encode())
}

// ---- hashes ----

// merkleHashFromByteSlices is CometBFT's merkle.HashFromByteSlices: the
// RFC 6962 tree hash of the items as leaves.
func merkleHashFromByteSlices(items [][]byte) [HashSize]byte {
	switch len(items) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return merkleLeafHashData(items[0])
	}
	k := 1 << (bits.Len(uint(len(items))-1) - 1)
	l := merkleHashFromByteSlices(items[:k])
	r := merkleHashFromByteSlices(items[k:])
	return merkleNodeHash(l[:], r[:])
}

// wrapperBytes is the encoding of a google.protobuf wrapper message
// (StringValue, Int64Value, BytesValue) holding v: field 1, left out when
// v is empty.
func wrapperBytes(v []byte) []byte { return appendBytesField(nil, 1, v) }

// hash is the header's hash, the block id a commit signs: the Merkle hash
// of its 14 fields, each encoded on its own (docs/receipt.md, "Header
// hash").
func (h *header) hash() [HashSize]byte {
	leaves := make([][]byte, 0, 14)
	leaves = append(leaves,
		h.encodeVersion(),
		wrapperBytes([]byte(h.chainID)),
		appendVarintField(nil, 1, uint64(h.height)),
		h.time.encode(),
		h.lastBlockID.encode(),
	)
	for _, f := range h.hashFields() {
		leaves = append(leaves, wrapperBytes(f))
	}
	return merkleHashFromByteSlices(leaves)
}

// validator is one member of a validator set.
type validator struct {
	pub     ed25519.PublicKey
	power   int64
	address []byte
}

// validatorSet is a validator set in CometBFT's order, with its hash.
type validatorSet struct {
	vals  []validator
	total int64
	hash  [HashSize]byte
}

func validatorAddress(pub []byte) []byte {
	sum := sha256.Sum256(pub)
	return sum[:addressSize]
}

// simpleValidator is the encoding of tendermint.types.SimpleValidator
// with an ed25519 key: the leaf of the validator-set hash.
func simpleValidator(pub []byte, power int64) []byte {
	key := appendBytesField(nil, 1, pub)
	b := appendMessageField(nil, 1, key)
	return appendVarintField(b, 2, uint64(power))
}

// newValidatorSet checks a listed set and computes its hash. The list must
// already be in CometBFT's order (voting power descending, then address
// ascending): that order is the commit's, so a set listed otherwise is
// refused rather than sorted.
func newValidatorSet(vs []*Validator, maxValidators int) (*validatorSet, error) {
	if len(vs) == 0 {
		return nil, errors.New("empty")
	}
	if len(vs) > maxValidators {
		return nil, fmt.Errorf("%d validators, more than the %d accepted", len(vs), maxValidators)
	}
	set := &validatorSet{vals: make([]validator, len(vs))}
	leaves := make([][]byte, len(vs))
	for i, v := range vs {
		if v == nil {
			return nil, fmt.Errorf("validator %d is empty", i)
		}
		if len(v.Ed25519PublicKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("validator %d: public key is %d bytes, want %d", i, len(v.Ed25519PublicKey), ed25519.PublicKeySize)
		}
		if v.VotingPower <= 0 {
			return nil, fmt.Errorf("validator %d: voting power %d", i, v.VotingPower)
		}
		if v.VotingPower > maxTotalVotingPower-set.total {
			return nil, fmt.Errorf("total voting power exceeds %d", int64(maxTotalVotingPower))
		}
		set.total += v.VotingPower
		set.vals[i] = validator{pub: ed25519.PublicKey(v.Ed25519PublicKey), power: v.VotingPower, address: validatorAddress(v.Ed25519PublicKey)}
		if i > 0 {
			prev := set.vals[i-1]
			switch c := bytes.Compare(prev.address, set.vals[i].address); {
			case c == 0:
				return nil, fmt.Errorf("validator %d is listed twice", i)
			case prev.power < v.VotingPower || prev.power == v.VotingPower && c > 0:
				return nil, fmt.Errorf("validator %d is out of order (power descending, then address ascending)", i)
			}
		}
		leaves[i] = simpleValidator(v.Ed25519PublicKey, v.VotingPower)
	}
	// Equal addresses can only be adjacent when powers are equal; a key
	// listed twice with different powers is caught here.
	seen := make(map[string]bool, len(vs))
	for i, v := range set.vals {
		if seen[string(v.address)] {
			return nil, fmt.Errorf("validator %d is listed twice", i)
		}
		seen[string(v.address)] = true
	}
	set.hash = merkleHashFromByteSlices(leaves)
	return set, nil
}

// sortValidators puts validators in CometBFT's set order.
func sortValidators(vs []*Validator) {
	slices.SortStableFunc(vs, func(a, b *Validator) int {
		if a.VotingPower != b.VotingPower {
			if a.VotingPower > b.VotingPower {
				return -1
			}
			return 1
		}
		return bytes.Compare(validatorAddress(a.Ed25519PublicKey), validatorAddress(b.Ed25519PublicKey))
	})
}

// ---- votes and commits ----

// voteSignBytes is what validator i signed for commit c: the
// length-delimited encoding of tendermint.types.CanonicalVote.
func (c *commit) voteSignBytes(chainID string, s *commitSig) []byte {
	var v []byte
	v = appendVarintField(v, 1, 2) // SIGNED_MSG_TYPE_PRECOMMIT
	if c.height != 0 {
		v = protowire.AppendTag(v, 2, protowire.Fixed64Type)
		v = binary.LittleEndian.AppendUint64(v, uint64(c.height))
	}
	if c.round != 0 {
		v = protowire.AppendTag(v, 3, protowire.Fixed64Type)
		v = binary.LittleEndian.AppendUint64(v, uint64(int64(c.round)))
	}
	// A nil vote signs no block id; a commit vote signs the commit's.
	if s.flag == flagCommit {
		id := appendBytesField(nil, 1, c.blockID.hash)
		id = appendMessageField(id, 2, c.blockID.parts.encode())
		v = appendMessageField(v, 4, id)
	}
	v = appendMessageField(v, 5, s.time.encode())
	v = appendBytesField(v, 6, []byte(chainID))
	return protowire.AppendBytes(nil, v)
}

// checkHeader applies the form rules of a signed header for chain chainID
// (docs/receipt.md, step 3) and returns the header's hash.
func (sh *signedHeader) checkHeader(chainID string) ([HashSize]byte, error) {
	h, c := &sh.header, &sh.commit
	if h.chainID != chainID {
		return [HashSize]byte{}, fmt.Errorf("header is for chain %q, want %q", h.chainID, chainID)
	}
	if h.height <= 0 {
		return [HashSize]byte{}, fmt.Errorf("header height %d", h.height)
	}
	if len(h.validatorsHash) != HashSize || len(h.nextValidatorsHash) != HashSize {
		return [HashSize]byte{}, errors.New("header lacks a 32-byte validators or next validators hash")
	}
	if c.height != h.height {
		return [HashSize]byte{}, fmt.Errorf("commit is for height %d, header is height %d", c.height, h.height)
	}
	if c.round < 0 {
		return [HashSize]byte{}, fmt.Errorf("commit round %d", c.round)
	}
	hash := h.hash()
	if !bytes.Equal(c.blockID.hash, hash[:]) {
		return [HashSize]byte{}, fmt.Errorf("commit is for block %X, header hashes to %X", c.blockID.hash, hash)
	}
	if c.blockID.parts.total == 0 || len(c.blockID.parts.hash) != HashSize {
		return [HashSize]byte{}, errors.New("commit's block id has no part set header")
	}
	return hash, nil
}

// verifyCommit checks every signature of sh's commit against vals, and
// that those for the block carry more than 2/3 of the set's power.
// Signature i belongs to validator i; an absent one carries nothing. The
// form of every entry and the power are checked before any signature, the
// costly part.
func verifyCommit(vals *validatorSet, sh *signedHeader, chainID string) error {
	c := &sh.commit
	if len(c.sigs) != len(vals.vals) {
		return fmt.Errorf("commit of height %d has %d signatures for %d validators", c.height, len(c.sigs), len(vals.vals))
	}
	var forBlock int64
	for i := range c.sigs {
		s := &c.sigs[i]
		v := &vals.vals[i]
		switch s.flag {
		case flagAbsent:
			if len(s.address) != 0 || len(s.signature) != 0 || s.time != zeroTime {
				return fmt.Errorf("signature %d of height %d is absent but carries an address, time or signature", i, c.height)
			}
			continue
		case flagCommit:
			forBlock += v.power
		case flagNil:
		default:
			return fmt.Errorf("signature %d of height %d has flag %d", i, c.height, s.flag)
		}
		if !bytes.Equal(s.address, v.address) {
			return fmt.Errorf("signature %d of height %d names validator %X, set has %X", i, c.height, s.address, v.address)
		}
		if len(s.signature) != signatureSize {
			return fmt.Errorf("signature %d of height %d is %d bytes, want %d", i, c.height, len(s.signature), signatureSize)
		}
	}
	if need := vals.total * 2 / 3; forBlock <= need {
		return fmt.Errorf("height %d: signatures for the block carry power %d of %d, need more than %d", c.height, forBlock, vals.total, need)
	}
	for i := range c.sigs {
		s := &c.sigs[i]
		if s.flag == flagAbsent {
			continue
		}
		if !ed25519.Verify(vals.vals[i].pub, c.voteSignBytes(chainID, s), s.signature) {
			return fmt.Errorf("signature %d of height %d (validator %X) does not verify", i, c.height, vals.vals[i].address)
		}
	}
	return nil
}
