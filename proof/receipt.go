package proof

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	cmttypes "github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"
)

// ReceiptVersion is the receipt format this package writes and verifies.
const ReceiptVersion = 1

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

// TrustRoot is what a verifier trusts: the chain id and the validator set
// of the chain's genesis.
type TrustRoot struct {
	ChainID    string
	Validators *cmttypes.ValidatorSet
}

// TrustRootFromGenesis reads a trust root from a CometBFT genesis file's JSON.
func TrustRootFromGenesis(genesisJSON []byte) (*TrustRoot, error) {
	if err := checkGenesisValidators(genesisJSON); err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	doc, err := cmttypes.GenesisDocFromJSON(genesisJSON)
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	if len(doc.Validators) == 0 {
		return nil, errors.New("genesis: no validators")
	}
	vals := make([]*cmttypes.Validator, len(doc.Validators))
	for i, v := range doc.Validators {
		vals[i] = cmttypes.NewValidator(v.PubKey, v.Power)
	}
	set, err := cmttypes.ValidatorSetFromExistingValidators(vals)
	if err != nil {
		return nil, fmt.Errorf("genesis validators: %w", err)
	}
	return &TrustRoot{ChainID: doc.ChainID, Validators: set}, nil
}

// checkGenesisValidators rejects what CometBFT's genesis validation would
// panic on: a validator without a public key, or one listed twice.
func checkGenesisValidators(genesisJSON []byte) error {
	var g struct {
		Validators []struct {
			PubKey *struct {
				Value string `json:"value"`
			} `json:"pub_key"`
		} `json:"validators"`
	}
	if err := json.Unmarshal(genesisJSON, &g); err != nil {
		return err
	}
	seen := make(map[string]bool)
	for i, v := range g.Validators {
		if v.PubKey == nil || v.PubKey.Value == "" {
			return fmt.Errorf("validators[%d]: no pub_key", i)
		}
		if seen[v.PubKey.Value] {
			return fmt.Errorf("validators[%d]: listed twice", i)
		}
		seen[v.PubKey.Value] = true
	}
	return nil
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

// Verify checks a receipt offline against a trust root: the audit path
// leads to the batch root; the batch record is in the state whose hash is
// the AppHash of the signed header of the next height; that header is signed
// by more than 2/3 of the voting power of a validator set that is the trust
// root's. Every failure is a *VerifyError naming the step.
func Verify(r *Receipt, trust *TrustRoot) (*Verified, error) {
	if r == nil || trust == nil || trust.Validators == nil {
		return nil, fail(StepFormat, "receipt and trust root are required")
	}
	if hasUnknownFields(r) {
		return nil, fail(StepFormat, "receipt carries fields this verifier does not know")
	}
	if r.Version != ReceiptVersion {
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
	for _, v := range r.Validators {
		if v != nil && len(v.ProtoReflect().GetUnknown()) > 0 {
			return true
		}
	}
	for _, l := range r.ValidatorLinks {
		if l == nil {
			continue
		}
		if len(l.ProtoReflect().GetUnknown()) > 0 {
			return true
		}
		for _, v := range l.NextValidators {
			if v != nil && len(v.ProtoReflect().GetUnknown()) > 0 {
				return true
			}
		}
	}
	return false
}

// VerifyBatch checks that a batch record is in the state whose hash is the
// AppHash of signedHeader (height record.height + 1), signed by more than
// 2/3 of validators, which must be the trust root's set. It is Verify
// without the leaf: what a node checks of a snapshot's index.
func VerifyBatch(b *BatchRecord, batchProof, signedHeader []byte, validators []*Validator, links []*ValidatorSetLink, trust *TrustRoot) error {
	if b == nil || trust == nil || trust.Validators == nil {
		return fail(StepFormat, "batch record and trust root are required")
	}
	if len(b.GetRoot()) != HashSize {
		return fail(StepFormat, "batch root is %d bytes, want %d", len(b.GetRoot()), HashSize)
	}
	sh, err := stateHeader(b.Height, signedHeader, trust)
	if err != nil {
		return err
	}
	value, err := deterministic.Marshal(b)
	if err != nil {
		return fail(StepFormat, "batch record: %v", err)
	}
	if err := membership([]byte(sh.AppHash), batchProof, BatchKey(b.Issuer, b.Seq), value); err != nil {
		return fail(StepBatchProof, "batch %s/%d: %v", b.Issuer, b.Seq, err)
	}
	return verifySigners(sh, validators, links, trust, 0, time.Time{})
}

// verifyCommit checks that more than 2/3 of vals signed sh, each signature
// at the position of the validator it names.
func verifyCommit(vals *cmttypes.ValidatorSet, sh *cmttypes.SignedHeader, chainID string) error {
	if len(sh.Commit.Signatures) != len(vals.Validators) {
		return fail(StepCommit, "commit of height %d has %d signatures for %d validators", sh.Height, len(sh.Commit.Signatures), len(vals.Validators))
	}
	for i, s := range sh.Commit.Signatures {
		if s.BlockIDFlag != cmttypes.BlockIDFlagAbsent && !bytes.Equal(s.ValidatorAddress, vals.Validators[i].Address) {
			return fail(StepCommit, "signature %d of height %d names validator %X, set has %X", i, sh.Height, []byte(s.ValidatorAddress), []byte(vals.Validators[i].Address))
		}
	}
	if err := vals.VerifyCommitLight(chainID, sh.Commit.BlockID, sh.Height, sh.Commit); err != nil {
		return fail(StepCommit, "height %d: %v", sh.Height, err)
	}
	return nil
}

// walkLinks carries trust from the genesis validators through each change
// of the set below height: a link's header is signed by more than 2/3 of
// the set trusted so far, and its NextValidatorsHash names the set trusted
// from then on. It returns the set trusted at height.
func walkLinks(links []*ValidatorSetLink, height int64, trust *TrustRoot) (*cmttypes.ValidatorSet, error) {
	trusted := trust.Validators
	var last int64
	for i, l := range links {
		if l == nil {
			return nil, fail(StepTrustRoot, "link %d is empty", i)
		}
		sh, err := decodeSignedHeader(l.SignedHeader)
		if err != nil {
			return nil, fail(StepTrustRoot, "link %d: %v", i, err)
		}
		if err := sh.ValidateBasic(trust.ChainID); err != nil {
			return nil, fail(StepTrustRoot, "link %d: %v", i, err)
		}
		if sh.Height <= last || sh.Height >= height {
			return nil, fail(StepTrustRoot, "link %d at height %d is out of order (after %d, before %d)", i, sh.Height, last, height)
		}
		last = sh.Height
		if !bytes.Equal(trusted.Hash(), sh.ValidatorsHash) {
			return nil, fail(StepTrustRoot, "link %d: height %d was signed by set %X, not the trusted set %X", i, sh.Height, []byte(sh.ValidatorsHash), trusted.Hash())
		}
		if err := verifyCommit(trusted, sh, trust.ChainID); err != nil {
			return nil, err
		}
		next, err := validatorSet(l.NextValidators)
		if err != nil {
			return nil, fail(StepValidators, "link %d: %v", i, err)
		}
		if !bytes.Equal(next.Hash(), sh.NextValidatorsHash) {
			return nil, fail(StepValidators, "link %d: next set hashes to %X, header %d names %X", i, next.Hash(), sh.Height, []byte(sh.NextValidatorsHash))
		}
		trusted = next
	}
	return trusted, nil
}

// decodeSignedHeader accepts only the canonical encoding, so that no byte of
// the receipt can change without the verifier noticing.
func decodeSignedHeader(raw []byte) (*cmttypes.SignedHeader, error) {
	var p cmtproto.SignedHeader
	if err := p.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if canon, err := p.Marshal(); err != nil || !bytes.Equal(canon, raw) {
		return nil, errors.New("not the canonical encoding")
	}
	return cmttypes.SignedHeaderFromProto(&p)
}

func validatorSet(vs []*Validator) (*cmttypes.ValidatorSet, error) {
	if len(vs) == 0 {
		return nil, errors.New("empty")
	}
	vals := make([]*cmttypes.Validator, len(vs))
	seen := make(map[string]bool, len(vs))
	for i, v := range vs {
		if seen[string(v.GetEd25519PublicKey())] {
			return nil, fmt.Errorf("validator %d is listed twice", i)
		}
		seen[string(v.GetEd25519PublicKey())] = true
		if len(v.GetEd25519PublicKey()) != cmted25519.PubKeySize {
			return nil, fmt.Errorf("validator %d: public key is %d bytes, want %d", i, len(v.GetEd25519PublicKey()), cmted25519.PubKeySize)
		}
		if v.VotingPower <= 0 {
			return nil, fmt.Errorf("validator %d: voting power %d", i, v.VotingPower)
		}
		vals[i] = cmttypes.NewValidator(cmted25519.PubKey(v.Ed25519PublicKey), v.VotingPower)
	}
	set, err := cmttypes.ValidatorSetFromExistingValidators(vals)
	if err != nil {
		return nil, err
	}
	// The set's order is the commit's signature order; a receipt listing
	// validators in another order is rejected rather than silently sorted.
	for i, v := range set.Validators {
		if !bytes.Equal(v.PubKey.Bytes(), vs[i].Ed25519PublicKey) {
			return nil, fmt.Errorf("validator %d is out of order", i)
		}
	}
	return set, nil
}

// ValidatorsFromSet lists a validator set for a receipt.
func ValidatorsFromSet(set *cmttypes.ValidatorSet) ([]*Validator, error) {
	out := make([]*Validator, len(set.Validators))
	for i, v := range set.Validators {
		if _, ok := v.PubKey.(cmted25519.PubKey); !ok {
			return nil, fmt.Errorf("validator %X: key type %s, receipts carry ed25519", []byte(v.Address), v.PubKey.Type())
		}
		out[i] = &Validator{Ed25519PublicKey: v.PubKey.Bytes(), VotingPower: v.VotingPower}
	}
	return out, nil
}

// VerifyValidatorLinks checks that links carry trust from the trust root
// through every validator-set change they record below height.
func VerifyValidatorLinks(links []*ValidatorSetLink, height int64, trust *TrustRoot) error {
	_, err := walkLinks(links, height, trust)
	return err
}
