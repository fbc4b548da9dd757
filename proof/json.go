package proof

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The JSON form of a receipt, for files: every binary field is multibase
// base58btc ("z…"), the batch time is RFC 3339 in UTC as Go's RFC3339Nano
// writes it. docs/receipt.md ("File form") gives the exact rules.
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

// The JSON names of a receipt file; any other key is refused.
var receiptJSONKeys = map[string]bool{
	"version": true, "chain_id": true, "credential_hash": true, "leaf_index": true, "audit_path": true,
	"batch": true, "issuer": true, "seq": true, "root": true, "leaf_count": true, "signer_key": true,
	"height": true, "time": true, "batch_proof": true, "signed_header": true, "validators": true,
	"ed25519_public_key": true, "voting_power": true, "validator_links": true, "next_validators": true,
}

// What a receipt file is read into: a field left nil was absent (or null).
type receiptIn struct {
	Version        *uint32        `json:"version"`
	ChainID        *string        `json:"chain_id"`
	CredentialHash *string        `json:"credential_hash"`
	LeafIndex      *uint64        `json:"leaf_index"`
	AuditPath      *[]string      `json:"audit_path"`
	Batch          *batchIn       `json:"batch"`
	BatchProof     *string        `json:"batch_proof"`
	SignedHeader   *string        `json:"signed_header"`
	Validators     *[]validatorIn `json:"validators"`
	ValidatorLinks *[]linkIn      `json:"validator_links"`
}

type batchIn struct {
	Issuer    *string `json:"issuer"`
	Seq       *uint64 `json:"seq"`
	Root      *string `json:"root"`
	LeafCount *uint64 `json:"leaf_count"`
	SignerKey *string `json:"signer_key"`
	Height    *int64  `json:"height"`
	Time      *string `json:"time"`
}

type validatorIn struct {
	PublicKey   *string `json:"ed25519_public_key"`
	VotingPower *int64  `json:"voting_power"`
}

type linkIn struct {
	SignedHeader   *string        `json:"signed_header"`
	NextValidators *[]validatorIn `json:"next_validators"`
}

// receiptReader turns a receiptIn into a Receipt, naming the first field
// that breaks a rule.
type receiptReader struct {
	lim Limits
	err error
}

func (rd *receiptReader) failf(field, format string, args ...any) {
	if rd.err == nil {
		rd.err = fmt.Errorf("receipt JSON %s: %s", field, fmt.Sprintf(format, args...))
	}
}

func (rd *receiptReader) present(field string, ok bool) bool {
	if !ok {
		rd.failf(field, "missing")
	}
	return ok && rd.err == nil
}

// binary reads a base58btc value of at most maxLen bytes; wantLen > 0
// requires that length exactly.
func (rd *receiptReader) binary(field string, s *string, maxLen, wantLen int) []byte {
	if !rd.present(field, s != nil) {
		return nil
	}
	b, err := parseBase58(*s, maxLen)
	if err != nil {
		rd.failf(field, "%v", err)
		return nil
	}
	if wantLen > 0 && len(b) != wantLen {
		rd.failf(field, "%d bytes, want %d", len(b), wantLen)
		return nil
	}
	return b
}

func (rd *receiptReader) validators(field string, in *[]validatorIn) []*Validator {
	if !rd.present(field, in != nil) {
		return nil
	}
	if len(*in) > rd.lim.MaxValidators {
		rd.failf(field, "%d validators, at most %d", len(*in), rd.lim.MaxValidators)
		return nil
	}
	out := make([]*Validator, len(*in))
	for i, v := range *in {
		f := fmt.Sprintf("%s[%d]", field, i)
		pk := rd.binary(f+".ed25519_public_key", v.PublicKey, HashSize, HashSize)
		if !rd.present(f+".voting_power", v.VotingPower != nil) {
			return nil
		}
		out[i] = &Validator{Ed25519PublicKey: pk, VotingPower: *v.VotingPower}
	}
	return out
}

// UnmarshalReceiptJSON reads a receipt file under lim (zero fields take
// their defaults). It checks the form only; Verify checks the evidence.
func UnmarshalReceiptJSON(data []byte, lim Limits) (*Receipt, error) {
	lim = lim.withDefaults()
	if len(data) > lim.MaxReceiptBytes {
		return nil, fmt.Errorf("receipt JSON: %d bytes, more than the %d accepted", len(data), lim.MaxReceiptBytes)
	}
	if err := checkJSON(data, receiptJSONKeys); err != nil {
		return nil, fmt.Errorf("receipt JSON: %w", err)
	}
	var j receiptIn
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("receipt JSON: %w", err)
	}
	if j.Version == nil {
		return nil, errors.New("receipt JSON version: missing")
	}
	if v := *j.Version; v != ReceiptVersion {
		if v > 0 && v < ReceiptVersion {
			return nil, fmt.Errorf("%w: version %d, this verifier reads version %d; fetch a new receipt from any member node (credenced receipt HASH)", ErrOldVersion, v, ReceiptVersion)
		}
		return nil, fmt.Errorf("receipt JSON version: %d, this verifier reads %d", v, ReceiptVersion)
	}
	rd := &receiptReader{lim: lim}
	r := &Receipt{Version: *j.Version}
	if rd.present("chain_id", j.ChainID != nil) {
		r.ChainId = *j.ChainID
	}
	r.CredentialHash = rd.binary("credential_hash", j.CredentialHash, HashSize, HashSize)
	if rd.present("leaf_index", j.LeafIndex != nil) {
		r.LeafIndex = *j.LeafIndex
	}
	if rd.present("audit_path", j.AuditPath != nil) {
		if len(*j.AuditPath) > maxAuditPath {
			rd.failf("audit_path", "%d entries, at most %d", len(*j.AuditPath), maxAuditPath)
		}
		r.AuditPath = make([][]byte, 0, len(*j.AuditPath))
		for i := range *j.AuditPath {
			r.AuditPath = append(r.AuditPath, rd.binary(fmt.Sprintf("audit_path[%d]", i), &(*j.AuditPath)[i], HashSize, HashSize))
		}
	}
	if b := j.Batch; rd.present("batch", b != nil) {
		rec := &BatchRecord{}
		if rd.present("batch.issuer", b.Issuer != nil) {
			rec.Issuer = *b.Issuer
		}
		if rd.present("batch.seq", b.Seq != nil) {
			rec.Seq = *b.Seq
		}
		rec.Root = rd.binary("batch.root", b.Root, HashSize, HashSize)
		if rd.present("batch.leaf_count", b.LeafCount != nil) {
			rec.LeafCount = *b.LeafCount
		}
		rec.SignerKey = rd.binary("batch.signer_key", b.SignerKey, HashSize, HashSize)
		if rd.present("batch.height", b.Height != nil) {
			rec.Height = *b.Height
		}
		if rd.present("batch.time", b.Time != nil) {
			t, err := parseTime(*b.Time)
			if err != nil {
				rd.failf("batch.time", "%v", err)
			}
			rec.TimeUnixNano = t
		}
		r.Batch = rec
	}
	r.BatchProof = rd.binary("batch_proof", j.BatchProof, maxProofBytes, 0)
	shMax := maxSignedHeaderBytes(lim.MaxValidators)
	r.SignedHeader = rd.binary("signed_header", j.SignedHeader, shMax, 0)
	r.Validators = rd.validators("validators", j.Validators)
	if j.ValidatorLinks != nil {
		if len(*j.ValidatorLinks) > lim.MaxLinks {
			rd.failf("validator_links", "%d links, at most %d", len(*j.ValidatorLinks), lim.MaxLinks)
		}
		for i, lj := range *j.ValidatorLinks {
			f := fmt.Sprintf("validator_links[%d]", i)
			sh := rd.binary(f+".signed_header", lj.SignedHeader, shMax, 0)
			next := rd.validators(f+".next_validators", lj.NextValidators)
			if rd.err != nil {
				break
			}
			r.ValidatorLinks = append(r.ValidatorLinks, &ValidatorSetLink{SignedHeader: sh, NextValidators: next})
		}
	}
	if rd.err != nil {
		return nil, rd.err
	}
	return r, nil
}

// parseTime reads the batch time: exactly what Go's RFC3339Nano layout
// writes for a UTC time (a "Z" zone, a fraction without trailing zeros),
// within the range of int64 Unix nanoseconds.
func parseTime(s string) (int64, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, err
	}
	if t.UTC().Format(time.RFC3339Nano) != s {
		return 0, fmt.Errorf("%q is not in the canonical form (UTC, \"Z\", no trailing zeros), e.g. %q", s, t.UTC().Format(time.RFC3339Nano))
	}
	ns := t.UnixNano()
	if !time.Unix(0, ns).Equal(t) {
		return 0, fmt.Errorf("%q is outside the range of Unix nanoseconds", s)
	}
	return ns, nil
}
