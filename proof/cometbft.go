package proof

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file implements, from docs/receipt.md, the parts of CometBFT a
// verifier needs: the header hash, the validator-set hash, vote sign-bytes
// and commit verification; cometbft_wire.go the SignedHeader wire format.
// The tests cross-check each against CometBFT's own functions.

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
	b := appendMessageField(make([]byte, 0, 4+len(key)+binary.MaxVarintLen64), 1, key)
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
	v := make([]byte, 0, 256)
	v = appendVarintField(v, 1, 2) // SIGNED_MSG_TYPE_PRECOMMIT
	if c.height != 0 {
		v = protowire.AppendTag(v, 2, protowire.Fixed64Type)
		v = binary.LittleEndian.AppendUint64(v, uint64(c.height))
	}
	if c.round != 0 {
		v = protowire.AppendTag(v, 3, protowire.Fixed64Type)
		v = binary.LittleEndian.AppendUint64(v, uint64(int64(c.round)))
	}
	// A nil vote signs no block id; a commit vote signs the commit's, whose
	// CanonicalBlockID encoding is its BlockID encoding (same fields, part
	// set header always written).
	if s.flag == flagCommit {
		v = appendMessageField(v, 4, c.blockID.encode())
	}
	v = appendMessageField(v, 5, s.time.encode())
	v = appendBytesField(v, 6, []byte(chainID))
	return protowire.AppendBytes(make([]byte, 0, binary.MaxVarintLen64+len(v)), v)
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
		if !verifySignature(vals.vals[i].pub, c.voteSignBytes(chainID, s), s.signature) {
			return fmt.Errorf("signature %d of height %d (validator %X) does not verify", i, c.height, vals.vals[i].address)
		}
	}
	return nil
}

// stdlibRule is the acceptance rule of docs/receipt.md ("Vote sign-bytes"):
// Go's crypto/ed25519, which curve25519-voi's preset reproduces (canonical
// S, cofactorless equation, R compared by its encoding, A decoded as Go
// does). voi is used for its speed alone: on amd64 its AVX2 backend checks
// a signature in about two thirds of crypto/ed25519's time, and a receipt's
// cost is its signatures. TestSignatureRuleIsStdlib holds the two to the
// same verdicts. voi's batch verifier is not an option: it is cofactored,
// and accepts signatures this rule refuses.
var stdlibRule = &ed25519.Options{Verify: ed25519.VerifyOptionsStdLib}

// verifySignature reports whether sig is pub's signature of msg; pub must
// be 32 bytes (newValidatorSet checks it).
func verifySignature(pub, msg, sig []byte) bool {
	return ed25519.VerifyWithOptions(pub, msg, sig, stdlibRule)
}
