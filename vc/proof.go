package vc

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gowebpki/jcs"
	"github.com/multiformats/go-multibase"
)

// Suite names a Data Integrity cryptosuite.
type Suite string

// The cryptosuites of W3C vc-di-eddsa v1.0 (Recommendation 2025-05-15).
const (
	EddsaRDFC2022 Suite = "eddsa-rdfc-2022"
	EddsaJCS2022  Suite = "eddsa-jcs-2022"
)

const (
	proofType       = "DataIntegrityProof"
	assertionMethod = "assertionMethod"
)

// Sentinel errors; every error returned wraps one of these (or ErrDIDKey,
// ErrUnknownContext, ErrCanonicalize) so callers map them with errors.Is.
var (
	// ErrTooLarge: the document exceeds a configured size or nesting limit.
	ErrTooLarge = errors.New("vc: document exceeds limit")
	// ErrMalformed: not a UTF-8 JSON object, duplicate keys, bad proof member.
	ErrMalformed = errors.New("vc: malformed document")
	// ErrNoProof: Verify was given a document without proof.
	ErrNoProof = errors.New("vc: document has no proof")
	// ErrUnsupported: a proof type, cryptosuite, purpose or feature this
	// package does not verify (e.g. previousProof chains).
	ErrUnsupported = errors.New("vc: unsupported proof")
	// ErrKey: the verification method could not be resolved to a key.
	ErrKey = errors.New("vc: verification method not resolved")
	// ErrSignature: the proof does not verify.
	ErrSignature = errors.New("vc: signature does not verify")
)

// Limits applied unless overridden by options. Documents are refused before
// any parsing when larger than DefaultMaxDocumentBytes: 1 MiB holds a
// Bitstring Status List credential of the largest practical list (a
// compressed, base64url encoded bitstring of 131072+ entries stays far below)
// with room to spare.
const (
	DefaultMaxDocumentBytes = 1 << 20
	// DefaultMaxDepth bounds JSON nesting; credentials nest a few levels,
	// and the JSON-LD algorithms recurse once per level.
	DefaultMaxDepth = 32
	// DefaultMaxProofs bounds a proof set; each proof costs a
	// canonicalization and a signature check.
	DefaultMaxProofs = 8
	// DefaultMaxAmbiguousBlankNodes bounds the blank nodes that need
	// RDFC-1.0 n-degree hashing (factorial cost); credentials have none or
	// two or three (identical anonymous objects).
	DefaultMaxAmbiguousBlankNodes = 8
)

type config struct {
	created                string
	verificationMethod     string
	proofID                string
	maxBytes               int
	maxDepth               int
	maxProofs              int
	maxAmbiguousBlankNodes int
	contexts               map[string][]byte
}

// Option adjusts Sign or Verify.
type Option func(*config)

// WithCreated sets the proof's created time (UTC, second precision). Without
// it the proof has no created member: the package never reads the clock, so
// the same input always gives the same bytes.
func WithCreated(t time.Time) Option {
	return func(c *config) { c.created = t.UTC().Format(time.RFC3339) }
}

// WithVerificationMethod sets the proof's verificationMethod. Default: the
// did:key verification method of the signing key.
func WithVerificationMethod(id string) Option {
	return func(c *config) { c.verificationMethod = id }
}

// WithProofID sets the proof's id (useful in proof sets). Default: none.
func WithProofID(id string) Option {
	return func(c *config) { c.proofID = id }
}

// WithLimits overrides the input limits; a value <= 0 keeps the default
// (DefaultMaxDocumentBytes, DefaultMaxDepth, DefaultMaxProofs,
// DefaultMaxAmbiguousBlankNodes).
func WithLimits(maxBytes, maxDepth, maxProofs, maxAmbiguousBlankNodes int) Option {
	return func(c *config) {
		if maxBytes > 0 {
			c.maxBytes = maxBytes
		}
		if maxDepth > 0 {
			c.maxDepth = maxDepth
		}
		if maxProofs > 0 {
			c.maxProofs = maxProofs
		}
		if maxAmbiguousBlankNodes > 0 {
			c.maxAmbiguousBlankNodes = maxAmbiguousBlankNodes
		}
	}
}

// WithContext makes one more JSON-LD context available to the document
// loader, next to the bundled ones. Default: only the bundled contexts.
func WithContext(url string, doc []byte) Option {
	return func(c *config) {
		if c.contexts == nil {
			c.contexts = map[string][]byte{}
		}
		c.contexts[url] = doc
	}
}

func newConfig(opts []Option) *config {
	c := &config{
		maxBytes:               DefaultMaxDocumentBytes,
		maxDepth:               DefaultMaxDepth,
		maxProofs:              DefaultMaxProofs,
		maxAmbiguousBlankNodes: DefaultMaxAmbiguousBlankNodes,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// splitProofs returns the document members and its proofs (a single proof
// object or a proof set array).
func splitProofs(doc []byte, c *config) (object, []json.RawMessage, error) {
	if err := checkInput(doc, c); err != nil {
		return nil, nil, err
	}
	o, err := parseObject(doc)
	if err != nil {
		return nil, nil, err
	}
	raw, ok := o.get("proof")
	if !ok {
		return o, nil, nil
	}
	var proofs []json.RawMessage
	switch firstByte(raw) {
	case '{':
		proofs = []json.RawMessage{raw}
	case '[':
		if err := json.Unmarshal(raw, &proofs); err != nil {
			return nil, nil, fmt.Errorf("%w: proof: %v", ErrMalformed, err)
		}
	default:
		return nil, nil, fmt.Errorf("%w: proof is neither an object nor an array", ErrMalformed)
	}
	if len(proofs) > c.maxProofs {
		return nil, nil, fmt.Errorf("%w: %d proofs, limit %d", ErrTooLarge, len(proofs), c.maxProofs)
	}
	return o, proofs, nil
}

func firstByte(raw []byte) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// Sign adds a Data Integrity proof (cryptosuite suite) made with key to the
// JSON object doc and returns the signed document as compact JSON, with the
// document's members in their original order and the proof last. If doc
// already has proofs, the new one joins them in a proof set; like each of
// them it covers the document without its proof member.
func Sign(doc []byte, suite Suite, key ed25519.PrivateKey, opts ...Option) ([]byte, error) {
	c := newConfig(opts)
	if suite != EddsaRDFC2022 && suite != EddsaJCS2022 {
		return nil, fmt.Errorf("%w: cryptosuite %q", ErrUnsupported, suite)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: private key is %d bytes, want %d", ErrKey, len(key), ed25519.PrivateKeySize)
	}
	o, proofs, err := splitProofs(doc, c)
	if err != nil {
		return nil, err
	}
	unsecured := o.without("proof")
	vm := c.verificationMethod
	if vm == "" {
		if vm, err = DIDKeyVerificationMethod(key.Public().(ed25519.PublicKey)); err != nil {
			return nil, err
		}
	}
	str := func(s string) json.RawMessage { return marshalString(s) }
	options := object{{"type", str(proofType)}}
	if c.proofID != "" {
		options = append(options, member{"id", str(c.proofID)})
	}
	options = append(options, member{"cryptosuite", str(string(suite))})
	if c.created != "" {
		options = append(options, member{"created", str(c.created)})
	}
	options = append(options,
		member{"verificationMethod", str(vm)},
		member{"proofPurpose", str(assertionMethod)})

	data, err := hashData(suite, unsecured, options, c)
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(key, data)
	pv, err := multibase.Encode(multibase.Base58BTC, sig)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	proof := options
	if ctx, ok := unsecured.get("@context"); ok && suite == EddsaJCS2022 {
		// eddsa-jcs-2022 §3.3.1 step 2: the proof carries the context it was
		// made under; eddsa-rdfc-2022 leaves it out.
		proof = proof.with("@context", ctx)
	}
	proof = proof.with("proofValue", str(pv))

	proofVal, err := proof.marshal()
	if err != nil {
		return nil, err
	}
	if len(proofs) > 0 {
		if proofVal, err = marshalArray(append(append([]json.RawMessage{}, proofs...), proofVal)); err != nil {
			return nil, err
		}
	}
	return o.with("proof", proofVal).marshal()
}

// hashData is the vc-di-eddsa "hashing" step: SHA-256 of the canonical proof
// configuration followed by SHA-256 of the canonical document.
func hashData(suite Suite, unsecured, options object, c *config) ([]byte, error) {
	cfg := options
	if ctx, ok := unsecured.get("@context"); ok {
		cfg = cfg.with("@context", ctx)
	}
	canonCfg, err := canonicalize(suite, cfg, c)
	if err != nil {
		return nil, fmt.Errorf("proof configuration: %w", err)
	}
	canonDoc, err := canonicalize(suite, unsecured, c)
	if err != nil {
		return nil, fmt.Errorf("document: %w", err)
	}
	h1, h2 := sha256.Sum256(canonCfg), sha256.Sum256(canonDoc)
	return append(h1[:], h2[:]...), nil
}

func canonicalize(suite Suite, o object, c *config) ([]byte, error) {
	raw, err := o.marshal()
	if err != nil {
		return nil, err
	}
	switch suite {
	case EddsaJCS2022:
		out, err := jcs.Transform(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: JCS: %v", ErrCanonicalize, err)
		}
		return out, nil
	case EddsaRDFC2022:
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return canonicalizeJSONLD(v, c)
	}
	return nil, fmt.Errorf("%w: cryptosuite %q", ErrUnsupported, suite)
}

// ProofResult reports one proof of a verified document.
type ProofResult struct {
	Index              int    // position in the proof set (0 for a single proof)
	Cryptosuite        Suite  // as the proof names it
	VerificationMethod string // as the proof names it
	Created            string // as the proof gives it, "" if absent
	Err                error  // nil when the proof verified
}

// Resolver returns the Ed25519 public key of a verification method id;
// ResolveDIDKey serves did:key issuers.
type Resolver func(verificationMethod string) (ed25519.PublicKey, error)

// Verify checks every proof of doc and returns one result per proof. The
// error is nil only when the document has at least one proof and all of them
// verified; otherwise it wraps the reason (for a failed proof: the first
// failure, wrapping that proof's own sentinel).
func Verify(doc []byte, resolve Resolver, opts ...Option) ([]ProofResult, error) {
	c := newConfig(opts)
	o, proofs, err := splitProofs(doc, c)
	if err != nil {
		return nil, err
	}
	if len(proofs) == 0 {
		return nil, ErrNoProof
	}
	unsecured := o.without("proof")
	results := make([]ProofResult, len(proofs))
	var first error
	for i, raw := range proofs {
		results[i] = verifyProof(i, raw, unsecured, resolve, c)
		if results[i].Err != nil && first == nil {
			first = fmt.Errorf("proof %d: %w", i, results[i].Err)
		}
	}
	return results, first
}

func verifyProof(i int, raw json.RawMessage, unsecured object, resolve Resolver, c *config) ProofResult {
	res := ProofResult{Index: i}
	proof, err := parseObject(raw)
	if err != nil {
		res.Err = err
		return res
	}
	field := func(name string, required bool) (string, error) {
		v, ok := proof.get(name)
		if !ok {
			if required {
				return "", fmt.Errorf("%w: proof has no %s", ErrMalformed, name)
			}
			return "", nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("%w: proof %s is not a string", ErrMalformed, name)
		}
		return s, nil
	}
	var typ, suite, purpose, pv string
	for _, f := range []struct {
		dst  *string
		name string
		req  bool
	}{
		{&typ, "type", true}, {&suite, "cryptosuite", true},
		{&res.VerificationMethod, "verificationMethod", true},
		{&purpose, "proofPurpose", true}, {&pv, "proofValue", true},
		{&res.Created, "created", false},
	} {
		if *f.dst, err = field(f.name, f.req); err != nil {
			res.Err = err
			return res
		}
	}
	res.Cryptosuite = Suite(suite)
	res.Err = func() error {
		if typ != proofType {
			return fmt.Errorf("%w: proof type %q", ErrUnsupported, typ)
		}
		if res.Cryptosuite != EddsaRDFC2022 && res.Cryptosuite != EddsaJCS2022 {
			return fmt.Errorf("%w: cryptosuite %q", ErrUnsupported, suite)
		}
		if purpose != assertionMethod {
			return fmt.Errorf("%w: proofPurpose %q, want %q", ErrUnsupported, purpose, assertionMethod)
		}
		if _, ok := proof.get("previousProof"); ok {
			return fmt.Errorf("%w: previousProof chains", ErrUnsupported)
		}
		if res.Created != "" {
			if _, err := time.Parse(time.RFC3339, res.Created); err != nil {
				return fmt.Errorf("%w: created %q is not an XML Schema dateTimeStamp", ErrMalformed, res.Created)
			}
		}
		sig, err := decodeBase58btc(pv)
		if err != nil || len(sig) != ed25519.SignatureSize {
			return fmt.Errorf("%w: proofValue is not a base58btc 64-byte signature", ErrMalformed)
		}
		options := proof.without("proofValue")
		doc := unsecured
		if pctx, ok := options.get("@context"); ok {
			// vc-di-eddsa verify: the document's context must begin with the
			// proof's, and the proof's is the one that was signed.
			dctx, _ := unsecured.get("@context")
			if err := contextPrefix(pctx, dctx); err != nil {
				return err
			}
			doc = doc.with("@context", pctx)
		}
		data, err := hashData(res.Cryptosuite, doc, options, c)
		if err != nil {
			return err
		}
		pub, err := resolve(res.VerificationMethod)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrKey, res.VerificationMethod, err)
		}
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: %s: key is %d bytes", ErrKey, res.VerificationMethod, len(pub))
		}
		if !ed25519.Verify(pub, data, sig) {
			return ErrSignature
		}
		return nil
	}()
	return res
}

// contextPrefix checks that the document context dctx starts with every
// entry of the proof context pctx, in order.
func contextPrefix(pctx, dctx json.RawMessage) error {
	p, err := contextList(pctx)
	if err != nil {
		return err
	}
	d, err := contextList(dctx)
	if err != nil {
		return err
	}
	if len(p) > len(d) {
		return fmt.Errorf("%w: proof @context is longer than the document's", ErrSignature)
	}
	for i := range p {
		if !bytes.Equal(p[i], d[i]) {
			return fmt.Errorf("%w: document @context does not start with the proof's", ErrSignature)
		}
	}
	return nil
}

func contextList(raw json.RawMessage) ([][]byte, error) {
	if raw == nil {
		return nil, nil
	}
	var items []json.RawMessage
	if firstByte(raw) == '[' {
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("%w: @context: %v", ErrMalformed, err)
		}
	} else {
		items = []json.RawMessage{raw}
	}
	out := make([][]byte, len(items))
	for i, it := range items {
		c, err := jcs.Transform(it)
		if err != nil {
			return nil, fmt.Errorf("%w: @context: %v", ErrMalformed, err)
		}
		out[i] = c
	}
	return out, nil
}
