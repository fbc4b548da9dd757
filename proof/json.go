package proof

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// The JSON form of a receipt, for files: every binary field is multibase
// (base58btc when written; multibase or hex when read), the batch time is
// RFC 3339 with nanoseconds in UTC. Unknown fields are refused, so a file
// cannot carry anything the verifier does not check.
type receiptJSON struct {
	Version        uint32          `json:"version"`
	ChainID        string          `json:"chain_id"`
	CredentialHash string          `json:"credential_hash"`
	LeafIndex      uint64          `json:"leaf_index"`
	AuditPath      []string        `json:"audit_path"`
	Batch          batchJSON       `json:"batch"`
	BatchProof     string          `json:"batch_proof"`
	SignedHeader   string          `json:"signed_header"`
	Validators     []validatorJSON `json:"validators"`
	ValidatorLinks []linkJSON      `json:"validator_links,omitempty"`
}

type linkJSON struct {
	SignedHeader   string          `json:"signed_header"`
	NextValidators []validatorJSON `json:"next_validators"`
}

type batchJSON struct {
	Issuer    string `json:"issuer"`
	Seq       uint64 `json:"seq"`
	Root      string `json:"root"`
	LeafCount uint64 `json:"leaf_count"`
	SignerKey string `json:"signer_key"`
	Height    int64  `json:"height"`
	Time      string `json:"time"`
}

type validatorJSON struct {
	PublicKey   string `json:"ed25519_public_key"`
	VotingPower int64  `json:"voting_power"`
}

// MarshalReceiptJSON renders a receipt as its JSON file form.
func MarshalReceiptJSON(r *Receipt) ([]byte, error) {
	if r.Batch == nil {
		return nil, fmt.Errorf("receipt has no batch record")
	}
	j := receiptJSON{
		Version:        r.Version,
		ChainID:        r.ChainId,
		CredentialHash: FormatBinary(r.CredentialHash),
		LeafIndex:      r.LeafIndex,
		AuditPath:      make([]string, len(r.AuditPath)),
		Batch: batchJSON{
			Issuer:    r.Batch.Issuer,
			Seq:       r.Batch.Seq,
			Root:      FormatBinary(r.Batch.Root),
			LeafCount: r.Batch.LeafCount,
			SignerKey: FormatBinary(r.Batch.SignerKey),
			Height:    r.Batch.Height,
			Time:      time.Unix(0, r.Batch.TimeUnixNano).UTC().Format(time.RFC3339Nano),
		},
		BatchProof:   FormatBinary(r.BatchProof),
		SignedHeader: FormatBinary(r.SignedHeader),
	}
	for i, p := range r.AuditPath {
		j.AuditPath[i] = FormatBinary(p)
	}
	for _, v := range r.Validators {
		j.Validators = append(j.Validators, validatorJSON{FormatBinary(v.Ed25519PublicKey), v.VotingPower})
	}
	for _, l := range r.ValidatorLinks {
		lj := linkJSON{SignedHeader: FormatBinary(l.SignedHeader)}
		for _, v := range l.NextValidators {
			lj.NextValidators = append(lj.NextValidators, validatorJSON{FormatBinary(v.Ed25519PublicKey), v.VotingPower})
		}
		j.ValidatorLinks = append(j.ValidatorLinks, lj)
	}
	return json.MarshalIndent(j, "", "  ")
}

// UnmarshalReceiptJSON reads a receipt file. It checks the form only;
// Verify checks the evidence.
func UnmarshalReceiptJSON(data []byte) (*Receipt, error) {
	var j receiptJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("receipt JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("receipt JSON: trailing data after the receipt")
	}
	field := func(name, s string) ([]byte, error) {
		b, err := ParseBinary(s)
		if err != nil {
			return nil, fmt.Errorf("receipt JSON %s: %w", name, err)
		}
		return b, nil
	}
	r := &Receipt{Version: j.Version, ChainId: j.ChainID, LeafIndex: j.LeafIndex}
	var err error
	if r.CredentialHash, err = field("credential_hash", j.CredentialHash); err != nil {
		return nil, err
	}
	for i, p := range j.AuditPath {
		b, err := field(fmt.Sprintf("audit_path[%d]", i), p)
		if err != nil {
			return nil, err
		}
		r.AuditPath = append(r.AuditPath, b)
	}
	t, err := time.Parse(time.RFC3339Nano, j.Batch.Time)
	if err != nil {
		return nil, fmt.Errorf("receipt JSON batch.time: %w", err)
	}
	b := &BatchRecord{Issuer: j.Batch.Issuer, Seq: j.Batch.Seq, LeafCount: j.Batch.LeafCount, Height: j.Batch.Height, TimeUnixNano: t.UnixNano()}
	if b.Root, err = field("batch.root", j.Batch.Root); err != nil {
		return nil, err
	}
	if b.SignerKey, err = field("batch.signer_key", j.Batch.SignerKey); err != nil {
		return nil, err
	}
	r.Batch = b
	if r.BatchProof, err = field("batch_proof", j.BatchProof); err != nil {
		return nil, err
	}
	if r.SignedHeader, err = field("signed_header", j.SignedHeader); err != nil {
		return nil, err
	}
	for i, v := range j.Validators {
		pk, err := field(fmt.Sprintf("validators[%d].ed25519_public_key", i), v.PublicKey)
		if err != nil {
			return nil, err
		}
		r.Validators = append(r.Validators, &Validator{Ed25519PublicKey: pk, VotingPower: v.VotingPower})
	}
	for i, lj := range j.ValidatorLinks {
		sh, err := field(fmt.Sprintf("validator_links[%d].signed_header", i), lj.SignedHeader)
		if err != nil {
			return nil, err
		}
		l := &ValidatorSetLink{SignedHeader: sh}
		for k, v := range lj.NextValidators {
			pk, err := field(fmt.Sprintf("validator_links[%d].next_validators[%d].ed25519_public_key", i, k), v.PublicKey)
			if err != nil {
				return nil, err
			}
			l.NextValidators = append(l.NextValidators, &Validator{Ed25519PublicKey: pk, VotingPower: v.VotingPower})
		}
		r.ValidatorLinks = append(r.ValidatorLinks, l)
	}
	return r, nil
}
