package proof

import (
	"bytes"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
)

// StatusVersion is the status format this package reads.
const StatusVersion = 1

// StepFreshness and StepStatus name the status checks beyond the receipt.
const (
	StepFreshness Step = "freshness"
	StepStatus    Step = "status proof"
)

// StatusResult is what a valid status proves, as of Height and Time.
type StatusResult struct {
	*Verified
	// Height and Time of the state the answer is about.
	Height int64
	Time   time.Time
	// IssuerActive: the issuer is not suspended.
	IssuerActive bool
	// KeyCompromisedFrom is the height from which the batch's signing key is
	// known compromised, 0 if it is not. A batch at or above it does not
	// count as the issuer's.
	KeyCompromisedFrom int64
	Revoked            bool
	RevokedAt          int64
	RevocationReason   uint32
}

// Valid reports whether the credential stands: anchored by an active
// issuer with a key not compromised by then, and not revoked.
func (s *StatusResult) Valid() error {
	switch {
	case s.Revoked:
		return fmt.Errorf("revoked at height %d (reason %d)", s.RevokedAt, s.RevocationReason)
	case !s.IssuerActive:
		return fmt.Errorf("issuer %q is suspended", s.Issuer)
	case s.KeyCompromisedFrom != 0 && s.KeyCompromisedFrom <= s.Verified.Height:
		return fmt.Errorf("the key that signed it was compromised from height %d, at or before the batch (%d)", s.KeyCompromisedFrom, s.Verified.Height)
	}
	return nil
}

// VerifyStatus checks a status answer offline: its receipt, its header
// (signed through the validator links from the trust root), the issuer
// record and the revocation entry (or its absence) in that header's state,
// and that the header is no older than maxAge at now.
func VerifyStatus(st *Status, trust *TrustRoot, maxAge time.Duration, now time.Time) (*StatusResult, error) {
	if st == nil || st.Receipt == nil {
		return nil, fail(StepFormat, "status and its receipt are required")
	}
	if st.Version != StatusVersion {
		return nil, fail(StepFormat, "status version %d, this verifier reads %d", st.Version, StatusVersion)
	}
	if len(st.ProtoReflect().GetUnknown()) > 0 || validatorsHaveUnknownFields(st.Validators) || linksHaveUnknownFields(st.ValidatorLinks) {
		return nil, fail(StepFormat, "status carries fields this verifier does not know")
	}
	v, err := Verify(st.Receipt, trust)
	if err != nil {
		return nil, err
	}
	if st.Height < v.Height {
		return nil, fail(StepStatus, "state height %d is before the batch (%d)", st.Height, v.Height)
	}
	appHash, headerTime, err := verifyState(st.Height, st.SignedHeader, st.Validators, st.ValidatorLinks, trust, maxAge, now)
	if err != nil {
		return nil, err
	}

	if err := membership(appHash, st.IssuerProof, IssuerKey(v.Issuer), st.IssuerRecord); err != nil {
		return nil, fail(StepStatus, "issuer record: %v", err)
	}
	var is IssuerRecord
	if err := proto.Unmarshal(st.IssuerRecord, &is); err != nil || is.Id != v.Issuer {
		return nil, fail(StepStatus, "issuer record does not decode as issuer %q", v.Issuer)
	}
	res := &StatusResult{Verified: v, Height: st.Height, Time: headerTime, IssuerActive: is.Status == 1}
	for _, k := range is.Keys {
		if bytes.Equal(k.PublicKey, v.SignerKey) {
			res.KeyCompromisedFrom = k.CompromisedFrom
		}
	}
	rkey := RevocationKey(v.Issuer, v.CredentialHash)
	if len(st.Revocation) == 0 {
		if err := nonMembership(appHash, st.RevocationProof, rkey); err != nil {
			return nil, fail(StepStatus, "not revoked: %v", err)
		}
		return res, nil
	}
	if err := membership(appHash, st.RevocationProof, rkey, st.Revocation); err != nil {
		return nil, fail(StepStatus, "revocation: %v", err)
	}
	var rv RevocationRecord
	if err := proto.Unmarshal(st.Revocation, &rv); err != nil {
		return nil, fail(StepStatus, "revocation entry does not decode")
	}
	res.Revoked, res.RevokedAt, res.RevocationReason = true, rv.Height, rv.Reason
	return res, nil
}
