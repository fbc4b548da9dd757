package proof

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
)

// ReceiptVersion is the receipt format this package writes and verifies.
// Version 1 receipts carried a node's own seen commit and were checked
// only as far as 2/3 of the voting power; they are refused.
const ReceiptVersion = 2

// Step names the link of a receipt's chain of evidence that failed.
type Step string

const (
	StepFormat     Step = "format"
	StepChain      Step = "chain id"
	StepAuditPath  Step = "audit path"
	StepBatchProof Step = "batch proof"
	StepHeader     Step = "signed header"
	StepValidators Step = "validator set"
	StepTrustRoot  Step = "trust root"
	StepCommit     Step = "commit signatures"
)

// ErrInvalid is wrapped by every verification failure.
var ErrInvalid = errors.New("invalid receipt")

// ErrOldVersion is wrapped by the failure of a receipt of an older format.
var ErrOldVersion = errors.New("receipt format no longer verified")

// VerifyError is a failed verification: the step and why.
type VerifyError struct {
	Step Step
	Err  error
}

func (e *VerifyError) Error() string { return fmt.Sprintf("%s: %v", e.Step, e.Err) }

func (e *VerifyError) Unwrap() []error { return []error{ErrInvalid, e.Err} }

func fail(step Step, format string, args ...any) error {
	return &VerifyError{Step: step, Err: fmt.Errorf(format, args...)}
}

// Limits bound the work and memory a receipt can demand of a verifier.
// A zero field takes its default.
type Limits struct {
	// MaxReceiptBytes bounds a receipt file (JSON form). Default 4 MiB.
	MaxReceiptBytes int
	// MaxValidators bounds each validator set. Default 100.
	MaxValidators int
	// MaxLinks bounds the validator-set changes a receipt carries.
	// Default 256.
	MaxLinks int
}

// Default limits; docs/receipt.md ("Limits") explains them.
const (
	DefaultMaxReceiptBytes = 4 << 20
	DefaultMaxValidators   = 100
	DefaultMaxLinks        = 256
	// maxAuditPath is implied by 64-bit leaf counts.
	maxAuditPath = 64
	// maxProofBytes bounds an ICS23 proof: an IAVL path of 64 inner nodes
	// is under 6 KiB.
	maxProofBytes = 16 << 10
)

func (l Limits) withDefaults() Limits {
	if l.MaxReceiptBytes <= 0 {
		l.MaxReceiptBytes = DefaultMaxReceiptBytes
	}
	if l.MaxValidators <= 0 {
		l.MaxValidators = DefaultMaxValidators
	}
	if l.MaxLinks <= 0 {
		l.MaxLinks = DefaultMaxLinks
	}
	return l
}

// maxSignedHeaderBytes bounds a signed header of a set of n validators: a
// header is under 1 KiB, a commit signature under 128 bytes.
func maxSignedHeaderBytes(n int) int { return 1024 + 128*n }

// TrustRoot is what a verifier trusts: the chain id and the validator set
// of the chain's genesis, in set order (voting power descending, then
// address ascending).
type TrustRoot struct {
	ChainID    string
	Validators []*Validator
	// Limits applied to what is verified against this root.
	Limits Limits
}

// Verified is what a valid receipt proves.
type Verified struct {
	ChainID        string
	CredentialHash []byte
	Issuer         string
	SignerKey      []byte
	BatchSeq       uint64
	BatchRoot      []byte
	LeafIndex      uint64
	LeafCount      uint64
	Height         int64
	Time           time.Time
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// Verify checks a receipt offline against a trust root (see the package
// documentation and docs/receipt.md). Every failure is a *VerifyError
// naming the step.
func Verify(r *Receipt, trust *TrustRoot) (*Verified, error) {
	if r == nil || trust == nil || len(trust.Validators) == 0 {
		return nil, fail(StepFormat, "receipt and trust root are required")
	}
	if hasUnknownFields(r) {
		return nil, fail(StepFormat, "receipt carries fields this verifier does not know")
	}
	if r.Version != ReceiptVersion {
		if r.Version > 0 && r.Version < ReceiptVersion {
			return nil, &VerifyError{Step: StepFormat, Err: fmt.Errorf("%w: version %d, this verifier reads version %d; fetch a new receipt from any member node (credenced receipt HASH)", ErrOldVersion, r.Version, ReceiptVersion)}
		}
		return nil, fail(StepFormat, "version %d, this verifier reads %d", r.Version, ReceiptVersion)
	}
	if r.ChainId != trust.ChainID {
		return nil, fail(StepChain, "receipt is for chain %q, trust root is chain %q", r.ChainId, trust.ChainID)
	}
	b := r.Batch
	if b == nil {
		return nil, fail(StepFormat, "no batch record")
	}
	if len(r.CredentialHash) != HashSize {
		return nil, fail(StepFormat, "credential hash is %d bytes, want %d", len(r.CredentialHash), HashSize)
	}
	if len(b.Root) != HashSize {
		return nil, fail(StepFormat, "batch root is %d bytes, want %d", len(b.Root), HashSize)
	}
	if len(r.AuditPath) > maxAuditPath {
		return nil, fail(StepAuditPath, "%d path entries, at most %d", len(r.AuditPath), maxAuditPath)
	}

	root, err := RootFromAuditPath(LeafHash(r.CredentialHash), r.LeafIndex, b.LeafCount, r.AuditPath)
	if err != nil {
		return nil, fail(StepAuditPath, "%v", err)
	}
	if !bytes.Equal(root[:], b.Root) {
		return nil, fail(StepAuditPath, "path leads to root %s, batch root is %s", FormatBinary(root[:]), FormatBinary(b.Root))
	}

	if err := VerifyBatch(b, r.BatchProof, r.SignedHeader, r.Validators, r.ValidatorLinks, trust); err != nil {
		return nil, err
	}

	return &Verified{
		ChainID:        r.ChainId,
		CredentialHash: r.CredentialHash,
		Issuer:         b.Issuer,
		SignerKey:      b.SignerKey,
		BatchSeq:       b.Seq,
		BatchRoot:      b.Root,
		LeafIndex:      r.LeafIndex,
		LeafCount:      b.LeafCount,
		Height:         b.Height,
		Time:           time.Unix(0, b.TimeUnixNano).UTC(),
	}, nil
}

// hasUnknownFields reports whether any message of the receipt kept fields
// its decoder did not know: bytes that no check would cover.
func hasUnknownFields(r *Receipt) bool {
	if len(r.ProtoReflect().GetUnknown()) > 0 {
		return true
	}
	if r.Batch != nil && len(r.Batch.ProtoReflect().GetUnknown()) > 0 {
		return true
	}
	return validatorsHaveUnknownFields(r.Validators) || linksHaveUnknownFields(r.ValidatorLinks)
}

func validatorsHaveUnknownFields(vs []*Validator) bool {
	for _, v := range vs {
		if v != nil && len(v.ProtoReflect().GetUnknown()) > 0 {
			return true
		}
	}
	return false
}

func linksHaveUnknownFields(links []*ValidatorSetLink) bool {
	for _, l := range links {
		if l != nil && (len(l.ProtoReflect().GetUnknown()) > 0 || validatorsHaveUnknownFields(l.NextValidators)) {
			return true
		}
	}
	return false
}

// VerifyBatch checks that a batch record is in the state whose hash is the
// AppHash of signedHeader (height record.height + 1), signed by
// validators, which must be the set the links lead to from the trust root.
// It is Verify without the leaf: what a node checks of a snapshot's index.
func VerifyBatch(b *BatchRecord, batchProof, signedHeader []byte, validators []*Validator, links []*ValidatorSetLink, trust *TrustRoot) error {
	if b == nil || trust == nil || len(trust.Validators) == 0 {
		return fail(StepFormat, "batch record and trust root are required")
	}
	if len(b.GetRoot()) != HashSize {
		return fail(StepFormat, "batch root is %d bytes, want %d", len(b.GetRoot()), HashSize)
	}
	if b.Height <= 0 {
		return fail(StepFormat, "batch height %d", b.Height)
	}
	sh, err := stateHeader(b.Height, signedHeader, trust)
	if err != nil {
		return err
	}
	value, err := deterministic.Marshal(b)
	if err != nil {
		return fail(StepFormat, "batch record: %v", err)
	}
	if err := membership(sh.header.appHash, batchProof, BatchKey(b.Issuer, b.Seq), value); err != nil {
		return fail(StepBatchProof, "batch %s/%d: %v", b.Issuer, b.Seq, err)
	}
	return verifySigners(sh, validators, links, trust, 0, time.Time{})
}

// stateHeader decodes the signed header that proves the state of height
// (it is the header of height+1) and checks its form for the trusted chain.
func stateHeader(height int64, raw []byte, trust *TrustRoot) (*signedHeader, error) {
	lim := trust.Limits.withDefaults()
	if len(raw) > maxSignedHeaderBytes(lim.MaxValidators) {
		return nil, fail(StepHeader, "%d bytes, more than a set of %d validators signs", len(raw), lim.MaxValidators)
	}
	sh, err := decodeSignedHeader(raw, lim.MaxValidators)
	if err != nil {
		return nil, fail(StepHeader, "%v", err)
	}
	if _, err := sh.checkHeader(trust.ChainID); err != nil {
		return nil, fail(StepHeader, "%v", err)
	}
	if sh.header.height != height+1 {
		return nil, fail(StepHeader, "header height %d, want state height %d + 1", sh.header.height, height)
	}
	return sh, nil
}

// verifySigners checks that sh is signed by validators, the set the links
// lead to from the trust root, and is no older than maxAge at now (0: any
// age).
func verifySigners(sh *signedHeader, validators []*Validator, links []*ValidatorSetLink,
	trust *TrustRoot, maxAge time.Duration, now time.Time) error {
	lim := trust.Limits.withDefaults()
	vals, err := newValidatorSet(validators, lim.MaxValidators)
	if err != nil {
		return fail(StepValidators, "%v", err)
	}
	if !bytes.Equal(vals.hash[:], sh.header.validatorsHash) {
		return fail(StepValidators, "set hash %X, header names %X", vals.hash, sh.header.validatorsHash)
	}
	trusted, err := walkLinks(links, sh.header.height, trust)
	if err != nil {
		return err
	}
	if vals.hash != trusted.hash {
		return fail(StepTrustRoot, "signing validator set %X is not the trusted set %X", vals.hash, trusted.hash)
	}
	if err := verifyCommit(vals, sh, trust.ChainID); err != nil {
		return fail(StepCommit, "%v", err)
	}
	if t := sh.header.time.time(); maxAge > 0 && now.Sub(t) > maxAge {
		return fail(StepFreshness, "answer is from %s, older than the %s accepted", t.Format(time.RFC3339), maxAge)
	}
	return nil
}

func (t timestamp) time() time.Time { return time.Unix(t.seconds, int64(t.nanos)).UTC() }

// verifyState checks the header proving the state of height and its
// signers; it returns that state's app hash and the header's time.
func verifyState(height int64, signedHeader []byte, validators []*Validator, links []*ValidatorSetLink,
	trust *TrustRoot, maxAge time.Duration, now time.Time) ([]byte, time.Time, error) {
	sh, err := stateHeader(height, signedHeader, trust)
	if err != nil {
		return nil, time.Time{}, err
	}
	if err := verifySigners(sh, validators, links, trust, maxAge, now); err != nil {
		return nil, time.Time{}, err
	}
	return sh.header.appHash, sh.header.time.time(), nil
}

// walkLinks carries trust from the genesis validators through each change
// of the set below height (docs/receipt.md, step 6). It returns the set
// trusted at height.
func walkLinks(links []*ValidatorSetLink, height int64, trust *TrustRoot) (*validatorSet, error) {
	lim := trust.Limits.withDefaults()
	trusted, err := newValidatorSet(trust.Validators, lim.MaxValidators)
	if err != nil {
		return nil, fail(StepTrustRoot, "genesis validators: %v", err)
	}
	if len(links) > lim.MaxLinks {
		return nil, fail(StepTrustRoot, "%d validator links, at most %d", len(links), lim.MaxLinks)
	}
	var last int64
	for i, l := range links {
		if l == nil {
			return nil, fail(StepTrustRoot, "link %d is empty", i)
		}
		if len(l.SignedHeader) > maxSignedHeaderBytes(lim.MaxValidators) {
			return nil, fail(StepTrustRoot, "link %d: signed header of %d bytes", i, len(l.SignedHeader))
		}
		sh, err := decodeSignedHeader(l.SignedHeader, lim.MaxValidators)
		if err != nil {
			return nil, fail(StepTrustRoot, "link %d: %v", i, err)
		}
		if _, err := sh.checkHeader(trust.ChainID); err != nil {
			return nil, fail(StepTrustRoot, "link %d: %v", i, err)
		}
		h := sh.header.height
		if h <= last || h >= height {
			return nil, fail(StepTrustRoot, "link %d at height %d is out of order (after %d, before %d)", i, h, last, height)
		}
		last = h
		if !bytes.Equal(trusted.hash[:], sh.header.validatorsHash) {
			return nil, fail(StepTrustRoot, "link %d: height %d was signed by set %X, not the trusted set %X", i, h, sh.header.validatorsHash, trusted.hash)
		}
		if err := verifyCommit(trusted, sh, trust.ChainID); err != nil {
			return nil, fail(StepTrustRoot, "link %d: %v", i, err)
		}
		next, err := newValidatorSet(l.NextValidators, lim.MaxValidators)
		if err != nil {
			return nil, fail(StepTrustRoot, "link %d next set: %v", i, err)
		}
		if !bytes.Equal(next.hash[:], sh.header.nextValidatorsHash) {
			return nil, fail(StepTrustRoot, "link %d: next set hashes to %X, header %d names %X", i, next.hash, h, sh.header.nextValidatorsHash)
		}
		if next.hash == trusted.hash {
			return nil, fail(StepTrustRoot, "link %d at height %d records no change of the set", i, h)
		}
		trusted = next
	}
	return trusted, nil
}

// VerifyValidatorLinks checks that links carry trust from the trust root
// through every validator-set change they record below height.
func VerifyValidatorLinks(links []*ValidatorSetLink, height int64, trust *TrustRoot) error {
	if trust == nil {
		return fail(StepFormat, "trust root is required")
	}
	_, err := walkLinks(links, height, trust)
	return err
}
