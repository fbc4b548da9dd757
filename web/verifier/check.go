package main

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/credence-ledger/credence/proof"
)

// Steps the page reports beyond proof's own.
const (
	stepGenesis    = "genesis"
	stepFileForm   = "file form"
	stepCredential = "credential file"
)

// timeLayout is how the page shows a time: to the second, in UTC, as a
// person reads it; block times carry nanoseconds nobody needs.
const timeLayout = "2006-01-02 15:04:05 UTC"

// outcome is what the page shows of one check, as JSON.
type outcome struct {
	Valid bool `json:"valid"`
	// Step is the link that failed, Reason why; empty when valid.
	Step   string `json:"step,omitempty"`
	Reason string `json:"reason,omitempty"`
	// GenesisChainID names the trust root the check used.
	GenesisChainID    string `json:"genesis_chain_id,omitempty"`
	GenesisValidators int    `json:"genesis_validators,omitempty"`
	// The receipt's claims, filled once the receipt verified.
	ChainID        string `json:"chain_id,omitempty"`
	CredentialHash string `json:"credential_hash,omitempty"`
	Issuer         string `json:"issuer,omitempty"`
	SignerKey      string `json:"signer_key,omitempty"`
	Height         int64  `json:"height,omitempty"`
	Time           string `json:"time,omitempty"`
	BatchSeq       uint64 `json:"batch_seq,omitempty"`
	LeafIndex      uint64 `json:"leaf_index"`
	LeafCount      uint64 `json:"leaf_count,omitempty"`
	// FileHash is the SHA-256 of the credential file, when one was given.
	// Hashes are multibase (z…), as the CLI prints them.
	FileHash string `json:"file_hash,omitempty"`
}

func (o *outcome) fail(step string, err error) *outcome {
	o.Valid, o.Step, o.Reason = false, step, err.Error()
	return o
}

// checkReceipt verifies a receipt file against a genesis file and, when
// credential is not nil, that the receipt is for that file.
func checkReceipt(genesisJSON, receiptJSON, credential []byte) *outcome {
	o := &outcome{}
	trust, err := proof.TrustRootFromGenesis(genesisJSON)
	if err != nil {
		return o.fail(stepGenesis, err)
	}
	o.GenesisChainID, o.GenesisValidators = trust.ChainID, len(trust.Validators)
	if credential != nil {
		sum := sha256.Sum256(credential)
		o.FileHash = proof.FormatBinary(sum[:])
	}
	r, err := proof.UnmarshalReceiptJSON(receiptJSON, proof.Limits{})
	if err != nil {
		return o.fail(stepFileForm, err)
	}
	v, err := proof.Verify(r, trust)
	if err != nil {
		step, why := failure(err)
		return o.fail(step, why)
	}
	o.Valid = true
	o.ChainID = v.ChainID
	o.CredentialHash = proof.FormatBinary(v.CredentialHash)
	o.Issuer = v.Issuer
	o.SignerKey = proof.FormatBinary(v.SignerKey)
	o.Height = v.Height
	o.Time = v.Time.UTC().Format(timeLayout)
	o.BatchSeq, o.LeafIndex, o.LeafCount = v.BatchSeq, v.LeafIndex, v.LeafCount
	if credential != nil && o.FileHash != o.CredentialHash {
		return o.fail(stepCredential, fmt.Errorf("the file hashes to %s, the receipt is for %s", o.FileHash, o.CredentialHash))
	}
	return o
}

// failure splits a verification error into the step the page names and
// the reason, which then need not repeat the step.
func failure(err error) (string, error) {
	var ve *proof.VerifyError
	if errors.As(err, &ve) {
		return string(ve.Step), ve.Err
	}
	return stepFileForm, err
}

// standing is what the page shows of a status answer, as JSON.
type standing struct {
	Verified bool   `json:"verified"`
	Step     string `json:"step,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Stands is true when the credential is anchored, not revoked, its
	// issuer active and its key not compromised by then; Problem says
	// otherwise why not.
	Stands    bool   `json:"stands"`
	Problem   string `json:"problem,omitempty"`
	Revoked   bool   `json:"revoked"`
	RevokedAt int64  `json:"revoked_at,omitempty"`
	Reason32  uint32 `json:"revocation_reason,omitempty"`
	Height    int64  `json:"height,omitempty"`
	Time      string `json:"time,omitempty"`
	// AgeSeconds is how old the answer's state was at the check.
	AgeSeconds int64 `json:"age_seconds"`
}

// checkStatus verifies a node's status answer (GetStatusResponse in
// protobuf JSON, or its status alone) against a genesis file, as of now.
func checkStatus(genesisJSON, statusJSON []byte, now time.Time) *standing {
	s := &standing{}
	trust, err := proof.TrustRootFromGenesis(genesisJSON)
	if err != nil {
		s.Step, s.Reason = stepGenesis, err.Error()
		return s
	}
	st, err := decodeStatus(statusJSON)
	if err != nil {
		s.Step, s.Reason = stepFileForm, err.Error()
		return s
	}
	// Age is shown, not judged: the person sees how fresh the answer is.
	res, err := proof.VerifyStatus(st, trust, 0, now)
	if err != nil {
		step, why := failure(err)
		s.Step, s.Reason = step, why.Error()
		return s
	}
	s.Verified = true
	s.Revoked, s.RevokedAt, s.Reason32 = res.Revoked, res.RevokedAt, res.RevocationReason
	s.Height, s.Time = res.Height, res.Time.UTC().Format(timeLayout)
	s.AgeSeconds = int64(now.Sub(res.Time) / time.Second)
	if err := res.Valid(); err != nil {
		s.Problem = err.Error()
	} else {
		s.Stands = true
	}
	return s
}

// decodeStatus reads GetStatusResponse in protobuf JSON ({"status": …})
// or the Status message alone.
func decodeStatus(data []byte) (*proof.Status, error) {
	var wrapped map[string]json.RawMessage
	if err := json.Unmarshal(data, &wrapped); err != nil {
		return nil, fmt.Errorf("status answer: %w", err)
	}
	if inner, ok := wrapped["status"]; ok && len(wrapped) == 1 {
		data = inner
	}
	st := &proof.Status{}
	if err := protojson.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("status answer: %w", err)
	}
	return st, nil
}
