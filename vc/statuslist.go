package vc

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// StatusList holds what a W3C Bitstring Status List credential (VC Data
// Model 2.0, Bitstring Status List v1.0) is made of. The ledger keeps these
// fields, not the document: the issuer signs Document's bytes, the state
// machine rebuilds them to check the signature, and every node rebuilds them
// to serve, so all three must get the same bytes from the same fields.
type StatusList struct {
	// URL is where the credential is served: its id; the list is URL#list.
	URL string
	// Issuer is the issuer's DID (did:key of the signing key).
	Issuer string
	// ValidFrom is RFC 3339 UTC to the second.
	ValidFrom string
	// Purpose is "revocation" or "suspension": one string, as Digital
	// Bazaar's verifier compares it.
	Purpose string
	// EncodedList is the multibase base64url GZIP of the bitstring.
	EncodedList string
	// TTLms is the credential's ttl in milliseconds (0: no ttl member).
	TTLms uint64
}

// Document returns the unsigned credential as compact JSON with a fixed
// member order, so the same fields always give the same bytes. It refuses
// fields the signature could not cover faithfully.
func (s StatusList) Document() ([]byte, error) {
	if err := CheckStatusListURL(s.URL); err != nil {
		return nil, err
	}
	if _, err := ParseValidFrom(s.ValidFrom); err != nil {
		return nil, err
	}
	if s.Purpose != "revocation" && s.Purpose != "suspension" {
		return nil, fmt.Errorf("%w: statusPurpose %q", ErrMalformed, s.Purpose)
	}
	if s.Issuer == "" || s.EncodedList == "" {
		return nil, fmt.Errorf("%w: status list without issuer or encodedList", ErrMalformed)
	}
	if s.TTLms > 1<<53 {
		return nil, fmt.Errorf("%w: ttl %d is not exact as a JSON number", ErrMalformed, s.TTLms)
	}
	str := func(v string) json.RawMessage { return marshalString(v) }
	subject := object{
		{"id", str(s.URL + "#list")},
		{"type", str("BitstringStatusList")},
		{"statusPurpose", str(s.Purpose)},
		{"encodedList", str(s.EncodedList)},
	}
	if s.TTLms > 0 {
		subject = append(subject, member{"ttl", json.RawMessage(strconv.FormatUint(s.TTLms, 10))})
	}
	sub, err := subject.marshal()
	if err != nil {
		return nil, err
	}
	return object{
		{"@context", json.RawMessage(`["https://www.w3.org/ns/credentials/v2"]`)},
		{"id", str(s.URL)},
		{"type", json.RawMessage(`["VerifiableCredential","BitstringStatusListCredential"]`)},
		{"issuer", str(s.Issuer)},
		{"validFrom", str(s.ValidFrom)},
		{"credentialSubject", sub},
	}.marshal()
}

// SignedDocument is Document with proof (a proof object's JSON, as Sign
// makes it) as its last member: the bytes Sign returns for Document.
func (s StatusList) SignedDocument(proof []byte) ([]byte, error) {
	doc, err := s.Document()
	if err != nil {
		return nil, err
	}
	p := bytes.TrimSpace(proof)
	if firstByte(p) != '{' || !json.Valid(p) {
		return nil, fmt.Errorf("%w: proof is not a JSON object", ErrMalformed)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, p); err != nil {
		return nil, fmt.Errorf("%w: proof: %v", ErrMalformed, err)
	}
	o, err := parseObject(doc)
	if err != nil {
		return nil, err
	}
	return o.with("proof", compact.Bytes()).marshal()
}

// ExtractProof returns the proof member of a document Sign returned.
func ExtractProof(signed []byte) ([]byte, error) {
	o, err := parseObject(signed)
	if err != nil {
		return nil, err
	}
	p, ok := o.get("proof")
	if !ok {
		return nil, ErrNoProof
	}
	return p, nil
}

// MaxStatusListURL bounds a status list URL (it is in every credential
// that points at the list).
const MaxStatusListURL = 512

// CheckStatusListURL accepts an absolute http or https URL with a host, no
// fragment, no user info, and characters that JSON-LD and N-Quads keep as
// they are.
func CheckStatusListURL(s string) error {
	if s == "" || len(s) > MaxStatusListURL {
		return fmt.Errorf("%w: status list URL: 1 to %d bytes", ErrMalformed, MaxStatusListURL)
	}
	for _, r := range s {
		if r <= 0x20 || r >= 0x7f || r == '<' || r == '>' || r == '"' || r == '{' || r == '}' || r == '|' || r == '\\' || r == '^' || r == '`' {
			return fmt.Errorf("%w: status list URL %q: character %q", ErrMalformed, s, r)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: status list URL: %v", ErrMalformed, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" || s[len(s)-1] == '#' {
		return fmt.Errorf("%w: status list URL %q: want an absolute http(s) URL without user info or fragment", ErrMalformed, s)
	}
	return nil
}

// ParseValidFrom reads a validFrom of the form the ledger keeps: RFC 3339,
// UTC ("Z"), whole seconds; one spelling per instant, so one document.
func ParseValidFrom(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil || t.UTC().Format(time.RFC3339) != s {
		return time.Time{}, fmt.Errorf("%w: validFrom %q: want RFC 3339 UTC to the second (2006-01-02T15:04:05Z)", ErrMalformed, s)
	}
	return t, nil
}

// Sign returns the eddsa-rdfc-2022 proof object (JSON) by key over
// Document, created at ValidFrom: what an update transaction carries.
func (s StatusList) Sign(key ed25519.PrivateKey, opts ...Option) ([]byte, error) {
	doc, err := s.Document()
	if err != nil {
		return nil, err
	}
	created, _ := ParseValidFrom(s.ValidFrom)
	signed, err := Sign(doc, EddsaRDFC2022, key, append(opts, WithCreated(created))...)
	if err != nil {
		return nil, err
	}
	return ExtractProof(signed)
}

// Verify checks that proof is one eddsa-rdfc-2022 proof over Document by
// pub, named as pub's did:key verification method, and returns the signed
// document. Any other key, suite or proof set is refused: the ledger
// accepts only the signature of the key that signed the transaction.
func (s StatusList) Verify(proof []byte, pub ed25519.PublicKey, opts ...Option) ([]byte, error) {
	signed, err := s.SignedDocument(proof)
	if err != nil {
		return nil, err
	}
	vm, err := DIDKeyVerificationMethod(pub)
	if err != nil {
		return nil, err
	}
	resolve := func(got string) (ed25519.PublicKey, error) {
		if got != vm {
			return nil, fmt.Errorf("verification method %q is not the signer's %q", got, vm)
		}
		return pub, nil
	}
	res, err := Verify(signed, resolve, opts...)
	if err != nil {
		return nil, err
	}
	if len(res) != 1 || res[0].Cryptosuite != EddsaRDFC2022 {
		return nil, fmt.Errorf("%w: want one %s proof", ErrUnsupported, EddsaRDFC2022)
	}
	return signed, nil
}
