package proof

// Receipts changed byte by byte: the bytes of the valid vectors' wire form
// flipped, unknown fields inserted, encodings other than the canonical one,
// and the signed headers' bytes set to other values. Each change is refused,
// or (an equivalent encoding) verifies as the same receipt.

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// wireByte locates one byte of a receipt's protobuf encoding: the field
// path ("batch.issuer", "audit_path[1]", "validators[0].voting_power") and
// the part of the field the byte is in.
type wireByte struct {
	field string
	part  string // "tag", "len" or "value"
}

func (w wireByte) String() string { return w.field + "/" + w.part }

// wireLayout labels every byte of a protobuf encoding of md, recursing into
// message fields. It fails on anything but a clean encoding.
func wireLayout(md protoreflect.MessageDescriptor, b []byte, prefix string) ([]wireByte, error) {
	var out []wireByte
	counts := map[protowire.Number]int{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		fd := md.Fields().ByNumber(num)
		if fd == nil {
			return nil, fmt.Errorf("%sunknown field %d", prefix, num)
		}
		name := prefix + string(fd.Name())
		if fd.IsList() {
			name = fmt.Sprintf("%s[%d]", name, counts[num])
		}
		counts[num]++
		for range n {
			out = append(out, wireByte{name, "tag"})
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			_, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			for range m {
				out = append(out, wireByte{name, "value"})
			}
			b = b[m:]
		case protowire.BytesType:
			l, m := protowire.ConsumeVarint(b)
			if m < 0 || uint64(len(b)-m) < l {
				return nil, fmt.Errorf("%s: bad length", name)
			}
			for range m {
				out = append(out, wireByte{name, "len"})
			}
			v := b[m : m+int(l)]
			b = b[m+int(l):]
			if fd.Kind() == protoreflect.MessageKind {
				inner, err := wireLayout(fd.Message(), v, name+".")
				if err != nil {
					return nil, err
				}
				out = append(out, inner...)
			} else {
				for range v {
					out = append(out, wireByte{name, "value"})
				}
			}
		default:
			return nil, fmt.Errorf("%s: unexpected wire type %d", name, typ)
		}
	}
	return out, nil
}

// wireValueSteps is, for the value bytes of each field of the receipt
// encoding, the steps at which a change to them may be caught. A value byte
// flip keeps the message structure (for varints, unless it sets or clears a
// continuation bit, in which case the next tag is eaten and decoding almost
// always fails; the steps still apply when it does not). Tag and length
// bytes change the structure, and any step, or a decode failure, is fine
// for them: what matters is that they are rejected.
func wireValueSteps(field string) []Step {
	base := field
	for i := strings.IndexByte(base, '['); i >= 0; i = strings.IndexByte(base, '[') {
		base = base[:i] + base[strings.IndexByte(base, ']')+1:]
	}
	switch base {
	case "version":
		return []Step{StepFormat}
	case "chain_id":
		return []Step{StepChain}
	case "credential_hash", "leaf_index", "audit_path", "batch.root":
		return []Step{StepAuditPath}
	case "batch.leaf_count":
		// The leaf count both shapes the path and is in the proven
		// record: a count of the same path shape passes the path and
		// fails the proof.
		return []Step{StepAuditPath, StepBatchProof}
	case "batch.height":
		return []Step{StepHeader}
	case "batch.issuer", "batch.seq", "batch.signer_key", "batch.time_unix_nano", "batch_proof":
		return []Step{StepBatchProof}
	case "signed_header":
		// Decoding, canonical form and header hash are StepHeader; a
		// flip that decodes to a valid header of other content can only
		// meet a later link. All must be rejected.
		return []Step{StepHeader, StepBatchProof, StepValidators, StepTrustRoot, StepCommit}
	case "validators.ed25519_public_key", "validators.voting_power":
		return []Step{StepValidators}
	case "validator_links.signed_header", "validator_links.next_validators.ed25519_public_key",
		"validator_links.next_validators.voting_power":
		return []Step{StepTrustRoot}
	}
	return nil
}

// receiptHasUnknown reports whether decoding kept unknown fields anywhere in
// the receipt.
func receiptHasUnknown(r *Receipt) bool {
	if len(r.ProtoReflect().GetUnknown()) > 0 || r.Batch != nil && len(r.Batch.ProtoReflect().GetUnknown()) > 0 {
		return true
	}
	return validatorsHaveUnknownFields(r.Validators) || linksHaveUnknownFields(r.ValidatorLinks)
}

// TestVerifyWireTamper flips every byte of the receipt's canonical protobuf
// encoding in several ways (xor 0x01, 0x03, 0x80, 0xff), and renumbers every tag,
// and checks that no altered encoding verifies.
//
// The set of bytes whose change still verifies must equal wantUncovered,
// keyed by field as computed from the encoding (wireLayout), and it is
// empty. Empirically: of 3543 flips, 195 do not decode and all 3348 others
// are rejected; none decodes with an unknown field (xor 0x01 changes a
// tag's wire type; xor 0x80 or 0xff makes the tag a multi-byte varint that
// swallows the next byte and derails decoding). Why none can be uncovered:
// every field of the receipt is used by the verifier: version and chain id
// are compared; credential hash, leaf index, audit path, root and leaf
// count feed the RFC 6962 recomputation; the whole batch record is
// re-encoded as the value proven by the ICS23 proof (so its seq, signer key
// and time are covered by the app hash); batch proof and signed header are
// accepted only in their canonical encoding, and every header and commit
// field is covered by the header hash or the signature; the validator keys
// and powers make the set hash named by the header and trusted by genesis.
// Renumbered tags (fields turned unknown) are rejected too: the field then
// reads as absent, and Verify refuses unknown fields.
func TestVerifyWireTamper(t *testing.T) {
	for _, v := range validVectors(t) {
		if strings.HasSuffix(v.name, "large-batch") && !strings.HasPrefix(v.name, "one-validator") {
			continue // the same form as four-validators/full-commit, with a longer path
		}
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			wireTamper(t, v)
		})
	}
}

func wireTamper(t *testing.T, v *vector) {
	wire := v.wire(t)
	trust := v.trust
	r0 := v.receipt(t)
	layout, err := wireLayout((&Receipt{}).ProtoReflect().Descriptor(), wire, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(layout) != len(wire) {
		t.Fatalf("layout covers %d of %d bytes", len(layout), len(wire))
	}
	// The layout must see every field, so that every field is tampered.
	seen := map[string]bool{}
	for _, w := range layout {
		seen[w.field] = true
	}
	fields := []string{
		"version", "chain_id", "credential_hash",
		"batch", "batch.issuer", "batch.seq", "batch.root", "batch.leaf_count",
		"batch.signer_key", "batch.height", "batch.time_unix_nano",
		"batch_proof", "signed_header", "validators[0]",
		"validators[0].ed25519_public_key", "validators[0].voting_power",
	}
	if len(r0.AuditPath) > 0 {
		fields = append(fields, "leaf_index", "audit_path[0]")
	}
	if len(r0.ValidatorLinks) > 0 {
		fields = append(fields, "validator_links[0].signed_header", "validator_links[0].next_validators[0].ed25519_public_key",
			"validator_links[0].next_validators[0].voting_power")
	}
	for _, f := range fields {
		if !seen[f] {
			t.Errorf("field %s is not in the encoding", f)
		}
	}

	// uncovered is the set of bytes whose flip still verifies. It must be
	// exactly the set of bytes the receipt format leaves uncovered by
	// design, which is none (see above).
	uncovered := map[string][]string{}
	wantUncovered := map[string][]string{}
	decodeFailures, rejected, withUnknown := 0, 0, 0
	for _, x := range []byte{0x01, 0x03, 0x80, 0xff} {
		for i := range wire {
			m := slices.Clone(wire)
			m[i] ^= x
			var r Receipt
			if err := proto.Unmarshal(m, &r); err != nil {
				decodeFailures++
				continue
			}
			if receiptHasUnknown(&r) {
				withUnknown++
			}
			_, p, err := safeVerify(&r, trust)
			if p != nil {
				t.Errorf("byte %d (%s) ^ %#02x: Verify panicked: %v", i, layout[i], x, p)
				continue
			}
			if err == nil {
				key := layout[i].String()
				uncovered[key] = append(uncovered[key], fmt.Sprintf("%d^%#02x", i, x))
				continue
			}
			rejected++
			step := stepOf(t, err)
			if layout[i].part != "value" {
				continue
			}
			if allowed := wireValueSteps(layout[i].field); !slices.Contains(allowed, step) {
				t.Errorf("byte %d (%s) ^ %#02x: rejected at %q (%v), want one of %q", i, layout[i], x, step, err, allowed)
			}
		}
	}
	// Renumbering a field (its tag to an unused number, same wire type)
	// is the flip the ones above never produce: the encoding still decodes,
	// the field's value moves to the unknown fields and the field itself
	// reads as absent. Every such receipt must be rejected.
	renumbered := 0
	for i := range wire {
		if layout[i].part != "tag" || (i > 0 && layout[i-1] == layout[i]) {
			continue
		}
		_, typ, n := protowire.ConsumeTag(wire[i:])
		if n != 1 {
			t.Fatalf("byte %d: %d-byte tag", i, n)
		}
		m := slices.Clone(wire)
		m[i] = byte(protowire.EncodeTag(15, typ)) // 15: no message of the receipt has it
		var r Receipt
		if err := proto.Unmarshal(m, &r); err != nil {
			t.Errorf("byte %d (%s) renumbered: does not decode: %v", i, layout[i], err)
			continue
		}
		if !receiptHasUnknown(&r) {
			t.Errorf("byte %d (%s) renumbered: no unknown field after decoding", i, layout[i])
		}
		renumbered++
		if _, p, err := safeVerify(&r, trust); p != nil {
			t.Errorf("byte %d (%s) renumbered: Verify panicked: %v", i, layout[i], p)
		} else if err == nil {
			key := layout[i].String() + " renumbered"
			uncovered[key] = append(uncovered[key], fmt.Sprint(i))
		} else {
			stepOf(t, err)
		}
	}
	if renumbered < 15 {
		t.Errorf("only %d tags renumbered", renumbered)
	}

	if fmt.Sprint(uncovered) != fmt.Sprint(wantUncovered) {
		t.Errorf("flipped encodings that still verify, by field: %v; want %v", uncovered, wantUncovered)
	}
	t.Logf("%d bytes x 4 flips: %d decode failures, %d rejected by Verify (%d of them decoded with unknown fields)",
		len(wire), decodeFailures, rejected, withUnknown)
	if rejected == 0 {
		t.Error("no flip reached Verify; the test is not testing the verifier")
	}
}

// TestVerifyRejectsUnknownWireFields inserts unknown fields into the
// receipt's encoding. proto3 decoding keeps them, and nothing in them is
// checked, so a receipt carrying them is not "the canonical protobuf" the
// format promises and carries data no one vouches for; the JSON form
// refuses unknown fields for the same reason. (Verify accepted them at the
// top level and in a validator entry until commit b7d96d2; those in the
// batch record were always caught, at StepBatchProof, because the record
// is re-encoded, with them, as the proven value.)
func TestVerifyRejectsUnknownWireFields(t *testing.T) {
	v := vectorNamed(t, "four-validators/validator-link")
	wire := v.wire(t)
	trust := v.trust
	unknownVarint := protowire.AppendVarint(protowire.AppendTag(nil, 15, protowire.VarintType), 1)
	unknownBytes := protowire.AppendBytes(protowire.AppendTag(nil, 100, protowire.BytesType), []byte("anything"))

	// insertIntoField re-encodes the wire with extra appended to the
	// value of the (first) message field number num.
	insertIntoField := func(num protowire.Number, extra []byte) []byte {
		var out []byte
		b, done := wire, false
		for len(b) > 0 {
			n, typ, tl := protowire.ConsumeTag(b)
			fl := protowire.ConsumeFieldValue(n, typ, b[tl:])
			if n == num && typ == protowire.BytesType && !done {
				v, _ := protowire.ConsumeBytes(b[tl:])
				out = protowire.AppendTag(out, n, typ)
				out = protowire.AppendBytes(out, append(slices.Clone(v), extra...))
				done = true
			} else {
				out = append(out, b[:tl+fl]...)
			}
			b = b[tl+fl:]
		}
		if !done {
			t.Fatalf("no field %d", num)
		}
		return out
	}
	for _, c := range []struct {
		name string
		wire []byte
	}{
		{"receipt: unknown varint field appended", append(slices.Clone(wire), unknownVarint...)},
		{"receipt: unknown bytes field prepended", append(slices.Clone(unknownBytes), wire...)},
		{"batch record: unknown field", insertIntoField(6, unknownVarint)},
		{"validator: unknown field", insertIntoField(9, unknownBytes)},
		{"validator link: unknown field", insertIntoField(10, unknownBytes)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r Receipt
			if err := proto.Unmarshal(c.wire, &r); err != nil {
				t.Fatalf("unmarshal: %v", err) // it is valid protobuf
			}
			if !receiptHasUnknown(&r) {
				t.Fatal("the decoded receipt kept no unknown field; the case tests nothing")
			}
			_, p, err := safeVerify(&r, trust)
			if p != nil {
				t.Fatalf("Verify panicked: %v", p)
			}
			if err == nil {
				t.Fatal("receipt with unknown fields verifies")
			}
			if step := stepOf(t, err); step != StepFormat && step != StepBatchProof {
				t.Errorf("step %q (%v), want %q (or %q for the batch record)", step, err, StepFormat, StepBatchProof)
			}
		})
	}
}

// TestVerifyWireEquivalentEncodings: encodings that differ from the
// canonical one but decode to an equal receipt carry nothing unverified, and
// verify (Verify sees only the decoded receipt). This pins down that the
// flips above are rejected for their content, not for their form.
func TestVerifyWireEquivalentEncodings(t *testing.T) {
	v := vectorNamed(t, "four-validators/full-commit")
	wire := v.wire(t)
	trust := v.trust
	want := v.receipt(t)
	// version (field 1) = 2 as a two-byte varint: 0x82 0x00.
	if wire[0] != 0x08 || wire[1] != 0x02 {
		t.Fatalf("encoding starts % x, want 08 02", wire[:2])
	}
	for _, c := range []struct {
		name string
		wire []byte
	}{
		{"non-minimal varint", append([]byte{0x08, 0x82, 0x00}, wire[2:]...)},
		{"field repeated, last wins", append([]byte{0x08, 0x05}, wire...)},
		{"fields out of order", append(slices.Clone(wire[2:]), 0x08, 0x02)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r Receipt
			if err := proto.Unmarshal(c.wire, &r); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&r, want) {
				t.Fatalf("decodes to %v, want the vector", &r)
			}
			if _, err := Verify(&r, trust); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

// TestSignedHeaderEveryByteValue sets every byte of the signed headers of a
// 4-validator receipt with a link and an absent signature to each of its
// 255 other values (signature bytes to three); none of the changed headers is accepted by the header
// and commit checks (decoding, canonical form, header hash, every
// signature with its flag and timestamp, the absent signature's empty
// fields, the power for the block).
func TestSignedHeaderEveryByteValue(t *testing.T) {
	v := vectorNamed(t, "four-validators/validator-link-partial-commit")
	r := v.receipt(t)
	genesis, err := newValidatorSet(v.trust.Validators, DefaultMaxValidators)
	if err != nil {
		t.Fatal(err)
	}
	signers, err := newValidatorSet(r.Validators, DefaultMaxValidators)
	if err != nil {
		t.Fatal(err)
	}
	accept := func(raw []byte, set *validatorSet) error {
		sh, err := decodeSignedHeader(raw, DefaultMaxValidators)
		if err != nil {
			return err
		}
		if _, err := sh.checkHeader(v.trust.ChainID); err != nil {
			return err
		}
		return verifyCommit(set, sh, v.trust.ChainID)
	}
	for _, c := range []struct {
		name string
		raw  []byte
		set  *validatorSet
	}{
		{"receipt header", r.SignedHeader, signers},
		{"link header", r.ValidatorLinks[0].SignedHeader, genesis},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if err := accept(c.raw, c.set); err != nil {
				t.Fatalf("unchanged: %v", err)
			}
			// A signature byte takes three values rather than 255: each
			// try costs signature verifications, and the bytes around
			// the signatures are the ones in question.
			sh, err := decodeSignedHeader(c.raw, DefaultMaxValidators)
			if err != nil {
				t.Fatal(err)
			}
			inSignature := make([]bool, len(c.raw))
			for _, s := range sh.commit.sigs {
				if len(s.signature) == 0 {
					continue
				}
				at := bytes.Index(c.raw, s.signature)
				for k := range s.signature {
					inSignature[at+k] = true
				}
			}
			accepted, tries := 0, 0
			for i := range c.raw {
				m := slices.Clone(c.raw)
				for x := 1; x < 256; x++ {
					if inSignature[i] && x != 0x01 && x != 0x80 && x != 0xff {
						continue
					}
					tries++
					m[i] = c.raw[i] ^ byte(x)
					if accept(m, c.set) == nil {
						accepted++
						t.Errorf("byte %d ^ %#02x accepted", i, x)
					}
				}
			}
			t.Logf("%d bytes, %d changed headers: %d accepted", len(c.raw), tries, accepted)
		})
	}
}
