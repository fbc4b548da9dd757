package vc

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/credence-ledger/credence/proof"
)

// Bitstring Status List v1.0 bounds. A list shorter than
// MinStatusListEntries gives its holders too small a crowd to hide in and is
// refused (STATUS_LIST_LENGTH_ERROR); maxStatusListBytes bounds what an
// encodedList may expand to (the ledger's largest list, 8 Mi entries), so a
// small compressed list cannot claim memory without bound.
const (
	MinStatusListEntries = 131_072
	maxStatusListBytes   = 1 << 20
)

func checkStatus(entry StatusEntry, listDoc []byte, credIssuer string, now time.Time, cc *credConfig) (bool, error) {
	if entry.Type != bitstringStatusListEntry {
		return false, fmt.Errorf("%w: status entry type %.60q, this verifier reads %s", ErrUnsupported, entry.Type, bitstringStatusListEntry)
	}
	if entry.StatusPurpose != "revocation" && entry.StatusPurpose != "suspension" {
		return false, fmt.Errorf("%w: statusPurpose %.60q (revocation and suspension are read)", ErrUnsupported, entry.StatusPurpose)
	}
	if entry.StatusSize > 1 {
		return false, fmt.Errorf("%w: statusSize %d: a %s entry has one bit", ErrUnsupported, entry.StatusSize, entry.StatusPurpose)
	}
	c := newConfig(cc.vcOpts)
	// Every proof of the list verifies, each by a key of the list's issuer.
	results, err := Verify(listDoc, ResolveDIDKey, cc.vcOpts...)
	if err != nil {
		return false, fmt.Errorf("the status list's proof does not verify: %w", err)
	}
	o, _, err := splitProofs(listDoc, c)
	if err != nil {
		return false, err
	}
	listIssuer, err := credentialIssuer(o)
	if err != nil {
		return false, fmt.Errorf("status list: %w", err)
	}
	// Digital Bazaar's rule: the list speaks for the credential only if
	// they have one issuer.
	if listIssuer != credIssuer {
		return false, fmt.Errorf("the status list's issuer %.120s is not the credential's issuer %.120s", listIssuer, credIssuer)
	}
	for _, r := range results {
		if did, _, _ := strings.Cut(r.VerificationMethod, "#"); did != listIssuer {
			return false, fmt.Errorf("the status list is signed by %.120s, not by its issuer %.120s", r.VerificationMethod, listIssuer)
		}
	}
	if id, _ := stringMember(o, "id"); id != entry.StatusListCredential {
		return false, fmt.Errorf("the status list is %.120q, the entry names %.120q", id, entry.StatusListCredential)
	}
	if !hasType(o, "BitstringStatusListCredential") {
		return false, fmt.Errorf("%w: not a BitstringStatusListCredential", ErrMalformed)
	}
	if !now.IsZero() {
		if err := checkValidity(o, now); err != nil {
			return false, err
		}
	}
	raw, ok := o.get("credentialSubject")
	if !ok || firstByte(raw) != '{' {
		return false, fmt.Errorf("%w: status list: credentialSubject must be one object", ErrMalformed)
	}
	subject, err := parseObject(raw)
	if err != nil {
		return false, fmt.Errorf("status list: credentialSubject: %w", err)
	}
	if !hasType(subject, "BitstringStatusList") {
		return false, fmt.Errorf("%w: status list: credentialSubject is not a BitstringStatusList", ErrMalformed)
	}
	if !hasValue(subject, "statusPurpose", entry.StatusPurpose) {
		return false, fmt.Errorf("the status list's statusPurpose is not the entry's %q", entry.StatusPurpose)
	}
	enc, ok := stringMember(subject, "encodedList")
	if !ok {
		return false, fmt.Errorf("%w: status list: no encodedList", ErrMalformed)
	}
	bits, err := proof.DecodeStatusList(enc, maxStatusListBytes)
	if err != nil {
		return false, fmt.Errorf("%w: status list: %v", ErrMalformed, err)
	}
	n := uint64(len(bits)) * 8
	if n < MinStatusListEntries {
		return false, fmt.Errorf("the status list has %d entries, fewer than the %d the specification requires (STATUS_LIST_LENGTH_ERROR)", n, MinStatusListEntries)
	}
	if entry.StatusListIndex >= n {
		return false, fmt.Errorf("statusListIndex %d is outside the list's %d entries (RANGE_ERROR)", entry.StatusListIndex, n)
	}
	return proof.BitSet(bits, entry.StatusListIndex), nil
}

// hasType reports whether o's type is t or an array holding t.
func hasType(o object, t string) bool { return hasValue(o, "type", t) }

// hasValue reports whether member name is the string v or an array holding
// it.
func hasValue(o object, name, v string) bool {
	raw, ok := o.get(name)
	if !ok {
		return false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s == v
	}
	var list []string
	if json.Unmarshal(raw, &list) != nil {
		return false
	}
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// checkValidity applies a credential's validFrom and validUntil at now.
func checkValidity(o object, now time.Time) error {
	for _, m := range []string{"validFrom", "validUntil"} {
		s, ok := stringMember(o, m)
		if !ok {
			if _, present := o.get(m); present {
				return fmt.Errorf("%w: status list: %s is not a string", ErrMalformed, m)
			}
			continue
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return fmt.Errorf("%w: status list: %s %.40q is not a dateTimeStamp", ErrMalformed, m, s)
		}
		if m == "validFrom" && now.Before(t) {
			return fmt.Errorf("the status list is valid from %s, after now (%s)", s, now.UTC().Format(time.RFC3339))
		}
		if m == "validUntil" && now.After(t) {
			return fmt.Errorf("the status list expired at %s", s)
		}
	}
	return nil
}
