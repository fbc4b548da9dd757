package vc

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"github.com/multiformats/go-multibase"
)

// ErrDIDKey is wrapped by every did:key and Multikey decoding failure.
var ErrDIDKey = errors.New("vc: bad did:key")

const didKeyPrefix = "did:key:"

// The multicodec varint prefixes for Ed25519 keys (multiformats table:
// ed25519-pub 0xed, ed25519-priv 0x1300), as the Multikey spec requires.
var (
	ed25519PubCodec  = []byte{0xed, 0x01}
	ed25519PrivCodec = []byte{0x80, 0x26}
)

// EncodeMultikey returns the Multikey publicKeyMultibase of an Ed25519 public
// key: base58btc ('z') over 0xed 0x01 followed by the 32 key bytes.
func EncodeMultikey(pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: public key is %d bytes, want %d", ErrDIDKey, len(pub), ed25519.PublicKeySize)
	}
	return multibase.Encode(multibase.Base58BTC, append(append([]byte{}, ed25519PubCodec...), pub...))
}

// DecodeMultikey is the inverse of EncodeMultikey. It refuses other
// multibase encodings and other key types rather than guessing, because a key
// read the wrong way verifies nothing.
func DecodeMultikey(s string) (ed25519.PublicKey, error) {
	raw, err := decodeBase58btc(s)
	if err != nil {
		return nil, err
	}
	if len(raw) < 2 || raw[0] != ed25519PubCodec[0] || raw[1] != ed25519PubCodec[1] {
		return nil, fmt.Errorf("%w: %q is not an ed25519-pub multikey (multicodec 0xed01)", ErrDIDKey, s)
	}
	if len(raw) != 2+ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %q holds a %d-byte key, want %d", ErrDIDKey, s, len(raw)-2, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw[2:]), nil
}

// DecodeMultikeyPrivate reads an Ed25519 secret key seed in Multikey form
// (base58btc over 0x80 0x26 + 32-byte seed), as the W3C vectors publish it.
func DecodeMultikeyPrivate(s string) (ed25519.PrivateKey, error) {
	raw, err := decodeBase58btc(s)
	if err != nil {
		return nil, err
	}
	if len(raw) != 2+ed25519.SeedSize || raw[0] != ed25519PrivCodec[0] || raw[1] != ed25519PrivCodec[1] {
		return nil, fmt.Errorf("%w: not an ed25519-priv multikey (multicodec 0x1300, 32-byte seed)", ErrDIDKey)
	}
	return ed25519.NewKeyFromSeed(raw[2:]), nil
}

func decodeBase58btc(s string) ([]byte, error) {
	if !strings.HasPrefix(s, "z") {
		return nil, fmt.Errorf("%w: %q is not multibase base58btc (must start with 'z')", ErrDIDKey, s)
	}
	_, raw, err := multibase.Decode(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrDIDKey, s, err)
	}
	return raw, nil
}

// DIDKey returns the did:key DID of an Ed25519 public key (did:key:z6Mk…).
func DIDKey(pub ed25519.PublicKey) (string, error) {
	mk, err := EncodeMultikey(pub)
	if err != nil {
		return "", err
	}
	return didKeyPrefix + mk, nil
}

// DIDKeyVerificationMethod returns the verification method id did:key
// resolution gives the key: the DID, '#', and the multikey again.
func DIDKeyVerificationMethod(pub ed25519.PublicKey) (string, error) {
	mk, err := EncodeMultikey(pub)
	if err != nil {
		return "", err
	}
	return didKeyPrefix + mk + "#" + mk, nil
}

// ResolveDIDKey returns the Ed25519 key of a did:key DID or of one of its
// verification method ids (DID#fragment; the fragment must be the DID's own
// multikey, the only method an Ed25519 did:key has). It is the Resolver to
// hand to Verify for did:key issuers: the key is in the identifier, so no
// network is needed.
func ResolveDIDKey(verificationMethod string) (ed25519.PublicKey, error) {
	did, frag, hasFrag := strings.Cut(verificationMethod, "#")
	mk, ok := strings.CutPrefix(did, didKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: %q does not start with %q", ErrDIDKey, verificationMethod, didKeyPrefix)
	}
	if hasFrag && frag != mk {
		return nil, fmt.Errorf("%w: fragment %q of %q is not its key %q", ErrDIDKey, frag, verificationMethod, mk)
	}
	return DecodeMultikey(mk)
}

// DIDDocument is the document did:key resolution produces for an Ed25519
// key (did:key method spec, Multikey representation).
type DIDDocument struct {
	Context              []string             `json:"@context"`
	ID                   string               `json:"id"`
	VerificationMethod   []VerificationMethod `json:"verificationMethod"`
	Authentication       []string             `json:"authentication"`
	AssertionMethod      []string             `json:"assertionMethod"`
	CapabilityInvocation []string             `json:"capabilityInvocation"`
	CapabilityDelegation []string             `json:"capabilityDelegation"`
}

// VerificationMethod is a Multikey verification method.
type VerificationMethod struct {
	ID                 string `json:"id"`
	Type               string `json:"type"`
	Controller         string `json:"controller"`
	PublicKeyMultibase string `json:"publicKeyMultibase"`
}

// ResolveDIDKeyDocument expands a did:key DID into its DID document.
func ResolveDIDKeyDocument(did string) (*DIDDocument, error) {
	if strings.Contains(did, "#") {
		return nil, fmt.Errorf("%w: %q is a DID URL, not a DID", ErrDIDKey, did)
	}
	pub, err := ResolveDIDKey(did)
	if err != nil {
		return nil, err
	}
	mk, _ := EncodeMultikey(pub)
	vm := did + "#" + mk
	refs := []string{vm}
	return &DIDDocument{
		Context: []string{"https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"},
		ID:      did,
		VerificationMethod: []VerificationMethod{{
			ID: vm, Type: "Multikey", Controller: did, PublicKeyMultibase: mk,
		}},
		Authentication:       refs,
		AssertionMethod:      refs,
		CapabilityInvocation: refs,
		CapabilityDelegation: refs,
	}, nil
}
