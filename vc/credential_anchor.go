package vc

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
)

// The anchor proof's verificationMethod is a URN naming the chain: a Data
// Integrity proof must name one, and for this suite what verifies it is the
// chain's genesis, not a key. Chain ids are percent-encoded (every byte but
// A-Z a-z 0-9 - . _ ~) so the URN has one reading whatever the id holds.
const (
	anchorURNPrefix   = "urn:credence:chain:"
	anchorURNGenesis  = ":genesis:"
	anchorSuitePrefix = "credence-anchor-"
)

// anchorMembers are the members an anchor proof has, all required; any
// other member would be bytes no check covers, so it is refused.
var anchorMembers = []string{"type", "cryptosuite", "created", "verificationMethod", "proofPurpose", "proofValue"}

// canonicalReceipt is the receipt's canonical binary form: protobuf with
// fields in number order and zero values left out (docs/receipt.md,
// "Canonical protobuf"), which Go's deterministic encoding writes for these
// schemas.
var canonicalReceipt = proto.MarshalOptions{Deterministic: true}

// AnchorVerificationMethod is the verificationMethod of an anchor proof for
// the chain chainID whose genesis file hashes to genesisHash.
func AnchorVerificationMethod(chainID string, genesisHash []byte) string {
	var b strings.Builder
	b.WriteString(anchorURNPrefix)
	for i := 0; i < len(chainID); i++ {
		c := chainID[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	b.WriteString(anchorURNGenesis)
	b.WriteString(proof.FormatBinary(genesisHash))
	return b.String()
}

// parseAnchorVerificationMethod is the inverse of AnchorVerificationMethod;
// it accepts only what that function writes.
func parseAnchorVerificationMethod(vm string) (chainID string, genesisHash []byte, err error) {
	rest, ok := strings.CutPrefix(vm, anchorURNPrefix)
	if !ok {
		return "", nil, fmt.Errorf("verificationMethod %.120q does not start with %q", vm, anchorURNPrefix)
	}
	enc, gh, ok := strings.Cut(rest, anchorURNGenesis)
	if !ok {
		return "", nil, fmt.Errorf("verificationMethod %.120q names no genesis", vm)
	}
	// Lower-case hex and needless escapes decode here and fail the
	// canonical-form check below.
	id, err := url.PathUnescape(enc)
	if err != nil {
		return "", nil, fmt.Errorf("verificationMethod %.120q: bad percent-encoding", vm)
	}
	hash, err := decodeBase58btc(gh)
	if err != nil || len(hash) != sha256.Size {
		return "", nil, fmt.Errorf("verificationMethod %.120q: genesis hash is not base58btc of 32 bytes", vm)
	}
	if AnchorVerificationMethod(id, hash) != vm {
		return "", nil, fmt.Errorf("verificationMethod %.120q is not in canonical form", vm)
	}
	return id, hash, nil
}

// anchorCreated is the created time an anchor proof states: its batch's
// block time, in seconds, as Data Integrity writes dateTimeStamps.
func anchorCreated(r *proof.Receipt) string {
	return time.Unix(0, r.GetBatch().GetTimeUnixNano()).UTC().Format(time.RFC3339)
}

// attach adds the anchor proof of r to doc, checking only that r's leaf is
// the credential's hash and that no anchor proof names the same chain; the
// exported AttachReceipt verifies r first.
func attach(doc []byte, r *proof.Receipt, genesisHash [32]byte, cc *credConfig) ([]byte, error) {
	c := newConfig(cc.vcOpts)
	o, proofs, err := splitProofs(doc, c)
	if err != nil {
		return nil, err
	}
	hash, err := hashUnsecured(o)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(r.GetCredentialHash(), hash[:]) {
		return nil, fmt.Errorf("%w: the receipt is for hash %s, the credential's hash is %s", ErrAnchor,
			proof.FormatBinary(r.GetCredentialHash()), proof.FormatBinary(hash[:]))
	}
	if len(proofs) >= c.maxProofs {
		return nil, fmt.Errorf("%w: the credential has %d proofs already, limit %d", ErrTooLarge, len(proofs), c.maxProofs)
	}
	vm := AnchorVerificationMethod(r.GetChainId(), genesisHash[:])
	for i, raw := range proofs {
		p, err := parseObject(raw)
		if err != nil {
			return nil, fmt.Errorf("proof %d: %w", i, err)
		}
		suite, _ := stringMember(p, "cryptosuite")
		method, _ := stringMember(p, "verificationMethod")
		if strings.HasPrefix(suite, anchorSuitePrefix) && method == vm {
			return nil, fmt.Errorf("%w: proof %d already anchors the credential on chain %q", ErrAnchor, i, r.GetChainId())
		}
	}
	bin, err := canonicalReceipt.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("%w: receipt: %v", ErrAnchor, err)
	}
	if len(bin) > cc.maxAnchorBytes {
		return nil, fmt.Errorf("%w: receipt of %d bytes, limit %d", ErrTooLarge, len(bin), cc.maxAnchorBytes)
	}
	str := func(s string) json.RawMessage { return marshalString(s) }
	p := object{
		{"type", str(proofType)},
		{"cryptosuite", str(AnchorCryptosuite)},
		{"created", str(anchorCreated(r))},
		{"verificationMethod", str(vm)},
		{"proofPurpose", str(assertionMethod)},
		{"proofValue", str(proof.FormatBinary(bin))},
	}
	pv, err := p.marshal()
	if err != nil {
		return nil, err
	}
	if len(proofs) > 0 {
		if pv, err = marshalArray(append(append([]json.RawMessage{}, proofs...), pv)); err != nil {
			return nil, err
		}
	}
	return o.with("proof", pv).marshal()
}

func stringMember(o object, name string) (string, bool) {
	raw, ok := o.get(name)
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// credentialIssuer returns the issuer's id: the issuer member as a string,
// or the id of an issuer object (VC Data Model 2.0, "issuer").
func credentialIssuer(o object) (string, error) {
	raw, ok := o.get("issuer")
	if !ok {
		return "", fmt.Errorf("%w: the credential has no issuer", ErrMalformed)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && s != "" {
		return s, nil
	}
	if firstByte(raw) == '{' {
		io, err := parseObject(raw)
		if err != nil {
			return "", err
		}
		if id, ok := stringMember(io, "id"); ok && id != "" {
			return id, nil
		}
	}
	return "", fmt.Errorf("%w: issuer is neither a URL nor an object with an id", ErrMalformed)
}

// didDocument is what VerifyCredential uses of an issuer's DID document:
// its id and the Ed25519 keys of its assertionMethod relationship.
type didDocument struct {
	id        string
	assertion map[string]ed25519.PublicKey // absolute method id -> key
}

// ErrDIDDocument is wrapped by the refusal of a DID document given with
// WithDIDDocument.
var ErrDIDDocument = errors.New("vc: bad DID document")

func parseDIDDocument(raw []byte, c *config) (*didDocument, error) {
	if err := checkInput(raw, c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDIDDocument, err)
	}
	if _, err := parseObject(raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDIDDocument, err)
	}
	var d struct {
		ID                 string               `json:"id"`
		VerificationMethod []VerificationMethod `json:"verificationMethod"`
		AssertionMethod    []json.RawMessage    `json:"assertionMethod"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDIDDocument, err)
	}
	if !strings.HasPrefix(d.ID, "did:") || strings.ContainsAny(d.ID, "#?") {
		return nil, fmt.Errorf("%w: id %.120q is not a DID", ErrDIDDocument, d.ID)
	}
	abs := func(id string) string {
		if strings.HasPrefix(id, "#") {
			return d.ID + id
		}
		return id
	}
	methods := map[string]VerificationMethod{}
	for _, vm := range d.VerificationMethod {
		methods[abs(vm.ID)] = vm
	}
	out := &didDocument{id: d.ID, assertion: map[string]ed25519.PublicKey{}}
	for i, a := range d.AssertionMethod {
		var vm VerificationMethod
		var ref string
		if json.Unmarshal(a, &ref) == nil {
			m, ok := methods[abs(ref)]
			if !ok {
				return nil, fmt.Errorf("%w: assertionMethod %.120q is not among its verification methods", ErrDIDDocument, ref)
			}
			vm = m
		} else if err := json.Unmarshal(a, &vm); err != nil {
			return nil, fmt.Errorf("%w: assertionMethod[%d]: %v", ErrDIDDocument, i, err)
		}
		if vm.Type != "Multikey" && vm.Type != "Ed25519VerificationKey2020" {
			continue // not an Ed25519 key this package reads; proofs naming it fail to resolve
		}
		if vm.Controller != d.ID {
			return nil, fmt.Errorf("%w: verification method %.120q is controlled by %.120q, not by %.120q", ErrDIDDocument, vm.ID, vm.Controller, d.ID)
		}
		pub, err := DecodeMultikey(vm.PublicKeyMultibase)
		if err != nil {
			return nil, fmt.Errorf("%w: %.120q: %w", ErrDIDDocument, vm.ID, err)
		}
		out.assertion[abs(vm.ID)] = pub
	}
	if len(out.assertion) == 0 {
		return nil, fmt.Errorf("%w: no Ed25519 assertionMethod key", ErrDIDDocument)
	}
	return out, nil
}

// resolver resolves did:key methods from the identifier and others from the
// DID document given, if any (its assertionMethod keys only: every proof
// verified here has purpose assertionMethod).
func (d *didDocument) resolver() Resolver {
	return func(vm string) (ed25519.PublicKey, error) {
		if strings.HasPrefix(vm, didKeyPrefix) {
			return ResolveDIDKey(vm)
		}
		if d == nil {
			return nil, fmt.Errorf("%.120q is not a did:key, and no DID document was given", vm)
		}
		if pub, ok := d.assertion[vm]; ok {
			return pub, nil
		}
		return nil, fmt.Errorf("%.120q is not an assertionMethod key of the DID document of %.120q", vm, d.id)
	}
}

// matchIssuer checks that the key that anchored the credential is the
// issuer's: the issuer is the key's did:key, or the DID document given is
// the issuer's and lists the key for assertionMethod.
func matchIssuer(issuer string, signerKey []byte, d *didDocument) error {
	if len(signerKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: anchoring key is %d bytes", ErrAnchor, len(signerKey))
	}
	if strings.HasPrefix(issuer, didKeyPrefix) {
		did, err := DIDKey(signerKey)
		if err != nil {
			return err
		}
		if did != issuer {
			return fmt.Errorf("%w: anchored by %s, the credential's issuer is %.120s", ErrAnchor, did, issuer)
		}
		return nil
	}
	if d == nil {
		return fmt.Errorf("%w: issuer %.120s is not a did:key; its DID document is needed to tie it to the anchoring key", ErrAnchor, issuer)
	}
	if d.id != issuer {
		return fmt.Errorf("%w: the DID document given is %.120s's, the credential's issuer is %.120s", ErrAnchor, d.id, issuer)
	}
	for _, pub := range d.assertion {
		if bytes.Equal(pub, signerKey) {
			return nil
		}
	}
	mk, _ := EncodeMultikey(signerKey)
	return fmt.Errorf("%w: anchoring key %s is not an assertionMethod key of %.120s", ErrAnchor, mk, issuer)
}
