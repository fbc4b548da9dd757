package vc

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/credence-ledger/credence/proof"
)

// AnchorCryptosuite names Credence's Data Integrity cryptosuite for a
// receipt embedded in the credential it anchors (docs/vc.md). The year is
// its version: a verifier refuses any other credence-anchor-* name rather
// than guess at its rules.
const AnchorCryptosuite = "credence-anchor-2026"

// The steps of VerifyCredential, named in CredentialResult.Step when the
// verdict is Invalid (docs/vc.md, "Verification").
const (
	StepFormat         = "format"
	StepCredentialHash = "credential-hash"
	StepAnchor         = "anchor"
	StepIssuerMatch    = "issuer-match"
	StepIssuerProof    = "issuer-proof"
	StepStatus         = "status"
)

// ErrAnchor is wrapped by every failure of an anchor proof or of attaching
// one; ErrStatus by every failure of a status check.
var (
	ErrAnchor = errors.New("vc: anchor proof")
	ErrStatus = errors.New("vc: credential status")
)

// CredentialHash is SHA-256 of the JCS (RFC 8785) form of doc without its
// top-level "proof" member: what Credence anchors for a credential, equal to
// eddsa-jcs-2022's document hash. Key order, whitespace and the proof set do
// not change it. doc must be a JSON object within the package's limits
// (WithOptions(WithLimits(…))); duplicate member names and numbers a double
// cannot hold exactly are refused, since either would give one file two
// readings.
func CredentialHash(doc []byte, opts ...CredentialOption) ([32]byte, error) {
	cc := newCredConfig(opts)
	o, _, err := splitProofs(doc, newConfig(cc.vcOpts))
	if err != nil {
		return [32]byte{}, err
	}
	return hashUnsecured(o)
}

func hashUnsecured(o object) ([32]byte, error) {
	canon, err := canonicalize(EddsaJCS2022, o.without("proof"), nil)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(canon), nil
}

// GenesisHash is SHA-256 of a genesis file's bytes as distributed (what
// CometBFT records as the genesis document hash); an anchor proof names its
// chain by it.
func GenesisHash(genesisJSON []byte) [32]byte { return sha256.Sum256(genesisJSON) }

// AttachReceipt adds to doc's proof set a DataIntegrityProof of
// cryptosuite AnchorCryptosuite whose proofValue is r in canonical binary
// form (multibase base58btc) and whose verificationMethod names the chain
// (chain id and GenesisHash(genesisJSON)). It refuses a receipt that does
// not verify against genesisJSON, whose leaf is not CredentialHash(doc), or
// whose signer's did:key is not the credential's issuer: what it returns
// verifies. The document's members and other proofs keep their bytes
// (re-compacted).
func AttachReceipt(doc []byte, r *proof.Receipt, genesisJSON []byte, opts ...CredentialOption) ([]byte, error) {
	cc := newCredConfig(opts)
	trust, err := proof.TrustRootFromGenesis(genesisJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAnchor, err)
	}
	c := newConfig(cc.vcOpts)
	o, _, err := splitProofs(doc, c)
	if err != nil {
		return nil, err
	}
	issuer, err := credentialIssuer(o)
	if err != nil {
		return nil, err
	}
	v, err := proof.Verify(r, trust)
	if err != nil {
		return nil, fmt.Errorf("%w: receipt does not verify against the genesis given: %w", ErrAnchor, err)
	}
	var did *didDocument
	if cc.didDocument != nil {
		if did, err = parseDIDDocument(cc.didDocument, c); err != nil {
			return nil, err
		}
	}
	if err := matchIssuer(issuer, v.SignerKey, did); err != nil {
		return nil, err
	}
	return attach(doc, r, GenesisHash(genesisJSON), cc)
}

// DefaultMaxAnchorBytes bounds the receipt an anchor proof carries (binary
// form). Base58 decoding costs the square of the length, so the bound is
// applied before decoding (some 0.3 s at the limit). 64 KiB holds the
// receipt of a 100-validator set with two set changes; typical receipts are
// 1 to 10 KiB. A longer one cannot be attached and stays a separate file.
const DefaultMaxAnchorBytes = 64 << 10

type credConfig struct {
	didDocument    []byte
	maxAnchorBytes int
	vcOpts         []Option
}

// CredentialOption adjusts VerifyCredential, AttachReceipt, CredentialHash
// and CheckStatus.
type CredentialOption func(*credConfig)

// WithDIDDocument gives VerifyCredential the issuer's DID document (JSON),
// for issuers that are not did:key (did:web): its Multikey verification
// methods resolve the issuer's proofs, and the anchoring key must be one of
// its assertionMethod keys.
func WithDIDDocument(didDocument []byte) CredentialOption {
	return func(c *credConfig) { c.didDocument = didDocument }
}

// WithMaxAnchorBytes overrides DefaultMaxAnchorBytes (<= 0 keeps it).
func WithMaxAnchorBytes(n int) CredentialOption {
	return func(c *credConfig) {
		if n > 0 {
			c.maxAnchorBytes = n
		}
	}
}

// WithOptions passes Sign/Verify options (limits, extra contexts) to the
// document processing.
func WithOptions(opts ...Option) CredentialOption {
	return func(c *credConfig) { c.vcOpts = append(c.vcOpts, opts...) }
}

func newCredConfig(opts []CredentialOption) *credConfig {
	c := &credConfig{maxAnchorBytes: DefaultMaxAnchorBytes}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Verdict is the one answer about a credential.
type Verdict int

const (
	// Unchecked: no verdict (a status could not be checked).
	Unchecked Verdict = iota
	Valid
	Invalid
	Revoked
	Suspended
)

func (v Verdict) String() string {
	switch v {
	case Valid:
		return "VALID"
	case Invalid:
		return "INVALID"
	case Revoked:
		return "REVOKED"
	case Suspended:
		return "SUSPENDED"
	}
	return "UNCHECKED"
}

// CredentialResult is what VerifyCredential found.
type CredentialResult struct {
	// Verdict is Valid or Invalid here; a status check (CheckStatus, by
	// the caller) turns a Valid one into Revoked or Suspended.
	Verdict Verdict
	// Step is the failed step when Invalid (the Step* constants), Err why.
	Step string
	Err  error
	// Issuer is the credential's issuer DID; Hash its CredentialHash.
	Issuer string
	Hash   [32]byte
	// Anchors holds what each anchor proof's receipt proved, in proof
	// set order.
	Anchors []*proof.Verified
	// Proofs reports every proof of the set: the issuer's eddsa proofs,
	// the anchor proofs (Cryptosuite AnchorCryptosuite), and proofs of
	// suites this package does not know, which are skipped (Err wraps
	// ErrUnsupported) as generic Data Integrity verifiers skip ours.
	Proofs []ProofResult
	// Status holds the credential's credentialStatus entries, for the
	// caller's online check.
	Status []StatusEntry
}

// VerifyCredential checks a credential offline against the chain whose
// genesis file is genesisJSON: every anchor proof's receipt (proof.Verify,
// chain id and genesis hash as named, leaf = CredentialHash(doc)), that each
// anchoring key is the issuer's (did:key of the key equals the issuer, or is
// a verification method of the DID document given with WithDIDDocument), and
// the issuer's eddsa-rdfc-2022 / eddsa-jcs-2022 proofs. A credential needs at
// least one anchor proof. Status is not checked here.
//
// A credential that fails is a result with Verdict Invalid, not an error;
// the error is for inputs of the verifier's own that are unusable (the
// genesis file, the DID document), so a caller can tell "invalid" from
// "could not check".
func VerifyCredential(doc []byte, genesisJSON []byte, opts ...CredentialOption) (*CredentialResult, error) {
	return verifyCredential(doc, genesisJSON, newCredConfig(opts))
}

// StatusEntry is a credentialStatus entry of type BitstringStatusListEntry.
type StatusEntry struct {
	ID                   string
	Type                 string
	StatusPurpose        string
	StatusListIndex      uint64
	StatusListCredential string
	// StatusSize is the entry's statusSize (1 when absent).
	StatusSize uint64
}

// CheckStatus applies a Bitstring Status List credential (the served
// document's bytes) to a credential's status entry, by the Recommendation's
// validate algorithm and the rules Digital Bazaar's verifier adds: the list's
// eddsa proof verifies under its issuer's did:key, its issuer is the
// credential's, its id is the entry's statusListCredential, purposes are
// equal, statusSize is 1, the index is in range, and at now (zero: not
// checked) the list is within validFrom/validUntil. It returns whether the
// entry's bit is set. Errors wrap ErrStatus.
func CheckStatus(entry StatusEntry, listDoc []byte, credentialIssuer string, now time.Time, opts ...CredentialOption) (bool, error) {
	set, err := checkStatus(entry, listDoc, credentialIssuer, now, newCredConfig(opts))
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrStatus, err)
	}
	return set, nil
}
