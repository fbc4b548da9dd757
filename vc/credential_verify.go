package vc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
)

func verifyCredential(doc, genesisJSON []byte, cc *credConfig) (*CredentialResult, error) {
	trust, err := proof.TrustRootFromGenesis(genesisJSON)
	if err != nil {
		return nil, err
	}
	genesisHash := GenesisHash(genesisJSON)
	c := newConfig(cc.vcOpts)
	var did *didDocument
	if cc.didDocument != nil {
		if did, err = parseDIDDocument(cc.didDocument, c); err != nil {
			return nil, err
		}
	}
	res := &CredentialResult{Verdict: Invalid}
	fail := func(step string, err error) (*CredentialResult, error) {
		res.Step, res.Err = step, err
		return res, nil
	}
	o, proofs, err := splitProofs(doc, c)
	if err != nil {
		return fail(StepFormat, err)
	}
	if res.Issuer, err = credentialIssuer(o); err != nil {
		return fail(StepFormat, err)
	}
	if res.Hash, err = hashUnsecured(o); err != nil {
		return fail(StepFormat, err)
	}
	if res.Status, err = statusEntries(o); err != nil {
		return fail(StepFormat, err)
	}

	// Sort the proof set: anchors are this package's own; eddsa proofs go
	// to Verify; proofs of other suites are skipped, as generic Data
	// Integrity verifiers skip ours (docs/vc.md, "Other verifiers").
	res.Proofs = make([]ProofResult, len(proofs))
	var eddsa []json.RawMessage
	var eddsaAt, anchorAt []int
	for i, raw := range proofs {
		res.Proofs[i].Index = i
		p, err := parseObject(raw)
		if err != nil {
			return fail(StepFormat, fmt.Errorf("proof %d: %w", i, err))
		}
		typ, _ := stringMember(p, "type")
		suite, _ := stringMember(p, "cryptosuite")
		res.Proofs[i].Cryptosuite = Suite(suite)
		res.Proofs[i].VerificationMethod, _ = stringMember(p, "verificationMethod")
		res.Proofs[i].Created, _ = stringMember(p, "created")
		switch {
		case strings.HasPrefix(suite, anchorSuitePrefix):
			anchorAt = append(anchorAt, i)
		case typ == proofType && (Suite(suite) == EddsaRDFC2022 || Suite(suite) == EddsaJCS2022):
			eddsa = append(eddsa, raw)
			eddsaAt = append(eddsaAt, i)
		default:
			res.Proofs[i].Err = fmt.Errorf("%w: skipped: type %.60q, cryptosuite %.60q", ErrUnsupported, typ, suite)
		}
	}
	if len(anchorAt) == 0 {
		return fail(StepAnchor, fmt.Errorf("%w: the credential carries no %s proof (no receipt)", ErrAnchor, AnchorCryptosuite))
	}

	firstStep, firstErr := "", error(nil)
	for _, i := range anchorAt {
		v, step, err := verifyAnchor(proofs[i], res, trust, genesisHash[:], did, cc)
		if err != nil {
			res.Proofs[i].Err = err
			if firstErr == nil {
				firstStep, firstErr = step, fmt.Errorf("proof %d: %w", i, err)
			}
			continue
		}
		res.Anchors = append(res.Anchors, v)
	}
	if firstErr != nil {
		res.Anchors = nil
		return fail(firstStep, firstErr)
	}

	if len(eddsa) > 0 {
		arr, err := marshalArray(eddsa)
		if err != nil {
			return fail(StepFormat, err)
		}
		sub, err := o.with("proof", arr).marshal()
		if err != nil {
			return fail(StepFormat, err)
		}
		// Each proof of a set covers the document without its proof
		// member, so verifying the eddsa proofs apart from the others
		// checks exactly what they signed.
		results, err := Verify(sub, did.resolver(), cc.vcOpts...)
		for k, r := range results {
			r.Index = eddsaAt[k]
			res.Proofs[eddsaAt[k]] = r
		}
		if err != nil {
			for k, r := range results {
				if r.Err != nil {
					return fail(StepIssuerProof, fmt.Errorf("proof %d: %w", eddsaAt[k], r.Err))
				}
			}
			return fail(StepIssuerProof, err)
		}
	}
	res.Verdict, res.Step, res.Err = Valid, "", nil
	return res, nil
}

// verifyAnchor checks one anchor proof (docs/vc.md, "Verification") and
// returns what its receipt proves, or the step that failed and why.
func verifyAnchor(raw json.RawMessage, res *CredentialResult, trust *proof.TrustRoot, genesisHash []byte,
	did *didDocument, cc *credConfig) (*proof.Verified, string, error) {
	p, err := parseObject(raw)
	if err != nil {
		return nil, StepAnchor, err
	}
	vals := map[string]string{}
	for _, m := range p {
		known := false
		for _, k := range anchorMembers {
			known = known || k == m.key
		}
		if !known {
			return nil, StepAnchor, fmt.Errorf("%w: member %.60q is not part of %s", ErrAnchor, m.key, AnchorCryptosuite)
		}
		var s string
		if err := json.Unmarshal(m.val, &s); err != nil {
			return nil, StepAnchor, fmt.Errorf("%w: %s is not a string", ErrAnchor, m.key)
		}
		vals[m.key] = s
	}
	for _, k := range anchorMembers {
		if _, ok := vals[k]; !ok {
			return nil, StepAnchor, fmt.Errorf("%w: no %s", ErrAnchor, k)
		}
	}
	if vals["cryptosuite"] != AnchorCryptosuite {
		return nil, StepAnchor, fmt.Errorf("%w: cryptosuite %.60q: this verifier reads %s", ErrUnsupported, vals["cryptosuite"], AnchorCryptosuite)
	}
	if vals["type"] != proofType || vals["proofPurpose"] != assertionMethod {
		return nil, StepAnchor, fmt.Errorf("%w: want type %s and proofPurpose %s", ErrAnchor, proofType, assertionMethod)
	}
	chainID, gh, err := parseAnchorVerificationMethod(vals["verificationMethod"])
	if err != nil {
		return nil, StepAnchor, fmt.Errorf("%w: %v", ErrAnchor, err)
	}
	if chainID != trust.ChainID {
		return nil, StepAnchor, fmt.Errorf("%w: anchored on chain %q, the genesis given is chain %q", ErrAnchor, chainID, trust.ChainID)
	}
	if !bytes.Equal(gh, genesisHash) {
		return nil, StepAnchor, fmt.Errorf("%w: anchored on the chain whose genesis hashes to %s, the genesis given hashes to %s",
			ErrAnchor, proof.FormatBinary(gh), proof.FormatBinary(genesisHash))
	}
	r, err := decodeReceipt(vals["proofValue"], cc.maxAnchorBytes)
	if err != nil {
		return nil, StepAnchor, err
	}
	if !bytes.Equal(r.CredentialHash, res.Hash[:]) {
		return nil, StepCredentialHash, fmt.Errorf("%w: the receipt anchors %s, the credential hashes to %s: the credential was changed after anchoring",
			ErrAnchor, proof.FormatBinary(r.CredentialHash), proof.FormatBinary(res.Hash[:]))
	}
	v, err := proof.Verify(r, trust)
	if err != nil {
		return nil, StepAnchor, fmt.Errorf("%w: receipt: %w", ErrAnchor, err)
	}
	if want := anchorCreated(r); vals["created"] != want {
		return nil, StepAnchor, fmt.Errorf("%w: created %.40q, the receipt's block time is %s", ErrAnchor, vals["created"], want)
	}
	if err := matchIssuer(res.Issuer, v.SignerKey, did); err != nil {
		return nil, StepIssuerMatch, err
	}
	return v, "", nil
}

// decodeReceipt reads an anchor proof's proofValue: "z" and base58btc of the
// receipt's canonical binary form, nothing else (one spelling per receipt,
// so the proof has no bytes its checks do not cover).
func decodeReceipt(pv string, maxBytes int) (*proof.Receipt, error) {
	if len(pv) < 2 || pv[0] != 'z' {
		return nil, fmt.Errorf("%w: proofValue is not multibase base58btc", ErrAnchor)
	}
	// Base58 decoding costs the square of the length: bound it first
	// (each digit carries log2(58) > 5.8 bits).
	if len(pv)-1 > maxBytes*138/100+1 {
		return nil, fmt.Errorf("%w: proofValue of %d characters holds more than the %d bytes a receipt may have", ErrTooLarge, len(pv), maxBytes)
	}
	bin, err := decodeBase58btc(pv)
	if err != nil {
		return nil, fmt.Errorf("%w: proofValue: %v", ErrAnchor, err)
	}
	if len(bin) > maxBytes {
		return nil, fmt.Errorf("%w: receipt of %d bytes, limit %d", ErrTooLarge, len(bin), maxBytes)
	}
	if proof.FormatBinary(bin) != pv {
		return nil, fmt.Errorf("%w: proofValue is not canonical base58btc", ErrAnchor)
	}
	var r proof.Receipt
	if err := proto.Unmarshal(bin, &r); err != nil {
		return nil, fmt.Errorf("%w: proofValue is not a receipt: %v", ErrAnchor, err)
	}
	back, err := canonicalReceipt.Marshal(&r)
	if err != nil || !bytes.Equal(back, bin) {
		return nil, fmt.Errorf("%w: the receipt is not in canonical binary form", ErrAnchor)
	}
	return &r, nil
}

// statusEntries reads the credentialStatus member (an object or an array
// of them). Entries of other types are kept with their type and id only:
// the caller cannot check them and says so.
func statusEntries(o object) ([]StatusEntry, error) {
	raw, ok := o.get("credentialStatus")
	if !ok {
		return nil, nil
	}
	var items []json.RawMessage
	switch firstByte(raw) {
	case '{':
		items = []json.RawMessage{raw}
	case '[':
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("%w: credentialStatus: %v", ErrMalformed, err)
		}
	default:
		return nil, fmt.Errorf("%w: credentialStatus is neither an object nor an array", ErrMalformed)
	}
	out := make([]StatusEntry, 0, len(items))
	for i, it := range items {
		e, err := parseStatusEntry(it)
		if err != nil {
			return nil, fmt.Errorf("credentialStatus[%d]: %w", i, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func parseStatusEntry(raw json.RawMessage) (StatusEntry, error) {
	p, err := parseObject(raw)
	if err != nil {
		return StatusEntry{}, err
	}
	var e StatusEntry
	e.ID, _ = stringMember(p, "id")
	var ok bool
	if e.Type, ok = stringMember(p, "type"); !ok {
		return e, fmt.Errorf("%w: type is required and must be a string", ErrMalformed)
	}
	if e.Type != bitstringStatusListEntry {
		return e, nil
	}
	if e.StatusPurpose, ok = stringMember(p, "statusPurpose"); !ok || e.StatusPurpose == "" {
		return e, fmt.Errorf("%w: statusPurpose is required and must be a string", ErrMalformed)
	}
	if e.StatusListCredential, ok = stringMember(p, "statusListCredential"); !ok || e.StatusListCredential == "" {
		return e, fmt.Errorf("%w: statusListCredential is required and must be a URL", ErrMalformed)
	}
	// Bitstring Status List v1.0: statusListIndex is a string of the
	// decimal integer.
	idx, ok := stringMember(p, "statusListIndex")
	if !ok || !isDecimal(idx) {
		return e, fmt.Errorf("%w: statusListIndex must be a string of decimal digits", ErrMalformed)
	}
	if e.StatusListIndex, err = strconv.ParseUint(idx, 10, 64); err != nil {
		return e, fmt.Errorf("%w: statusListIndex %.40q: %v", ErrMalformed, idx, err)
	}
	e.StatusSize = 1
	if raw, ok := p.get("statusSize"); ok {
		if e.StatusSize, err = strconv.ParseUint(string(bytes.TrimSpace(raw)), 10, 64); err != nil || e.StatusSize == 0 {
			return e, fmt.Errorf("%w: statusSize must be a positive integer", ErrMalformed)
		}
	}
	return e, nil
}

const bitstringStatusListEntry = "BitstringStatusListEntry"

func isDecimal(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
