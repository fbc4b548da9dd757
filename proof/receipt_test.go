package proof

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

const vectorDir = "testdata/vectors"

// vector is a valid receipt of testdata/vectors with its trust root.
type vector struct {
	name  string // chain/receipt
	file  []byte
	trust *TrustRoot
}

// receipt returns a fresh copy of the vector's receipt.
func (v *vector) receipt(tb testing.TB) *Receipt {
	tb.Helper()
	r, err := UnmarshalReceiptJSON(v.file, Limits{})
	if err != nil {
		tb.Fatalf("%s: %v", v.name, err)
	}
	return r
}

func (v *vector) wire(tb testing.TB) []byte {
	tb.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(v.receipt(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func trustFromFile(tb testing.TB, path string) *TrustRoot {
	tb.Helper()
	g, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	tr, err := TrustRootFromGenesis(g)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return tr
}

// validVectors are the valid receipts of testdata/vectors, each chain's
// beside its genesis.
func validVectors(tb testing.TB) []*vector {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(vectorDir, "*", "*.receipt.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no vectors: %v", err)
	}
	var out []*vector
	trust := map[string]*TrustRoot{}
	for _, f := range files {
		chain := filepath.Base(filepath.Dir(f))
		if chain == "invalid" {
			continue
		}
		if trust[chain] == nil {
			trust[chain] = trustFromFile(tb, filepath.Join(vectorDir, chain, "genesis.json"))
		}
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, &vector{name: chain + "/" + strings.TrimSuffix(filepath.Base(f), ".receipt.json"), file: b, trust: trust[chain]})
	}
	return out
}

func vectorNamed(tb testing.TB, name string) *vector {
	tb.Helper()
	for _, v := range validVectors(tb) {
		if v.name == name {
			return v
		}
	}
	tb.Fatalf("no vector %s", name)
	return nil
}

// stepOf returns the step of a verification error, failing the test if err
// is not a *VerifyError wrapping ErrInvalid.
func stepOf(tb testing.TB, err error) Step {
	tb.Helper()
	if err == nil {
		tb.Fatal("verification succeeded, want an error")
	}
	var ve *VerifyError
	if !errors.As(err, &ve) {
		tb.Fatalf("error %v (%T) is not a *VerifyError", err, err)
	}
	if !errors.Is(err, ErrInvalid) {
		tb.Fatalf("error %v does not wrap ErrInvalid", err)
	}
	return ve.Step
}

// safeVerify runs Verify and turns a panic into an error return so that one
// crashing case does not hide the others.
func safeVerify(r *Receipt, tr *TrustRoot) (v *Verified, panicked any, err error) {
	defer func() {
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	v, err = Verify(r, tr)
	return v, nil, err
}

// TestValidVectors: every valid vector verifies against its genesis, says
// what its record says, and its file is exactly what MarshalReceiptJSON
// writes for it.
func TestValidVectors(t *testing.T) {
	vs := validVectors(t)
	want := map[string]bool{}
	for _, v := range vs {
		want[v.name] = true
	}
	for _, n := range []string{"one-validator/single-hash", "one-validator/large-batch",
		"four-validators/full-commit", "four-validators/partial-commit", "four-validators/large-batch",
		"four-validators/validator-link", "four-validators/validator-link-partial-commit"} {
		if !want[n] {
			t.Errorf("vector %s is missing", n)
		}
	}
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			r := v.receipt(t)
			got, err := Verify(r, v.trust)
			if err != nil {
				t.Fatal(err)
			}
			if got.Issuer != r.Batch.Issuer || got.Height != r.Batch.Height || got.LeafCount != r.Batch.LeafCount ||
				!bytes.Equal(got.CredentialHash, r.CredentialHash) || got.Time.UnixNano() != r.Batch.TimeUnixNano {
				t.Errorf("Verify = %+v, receipt says %v", got, r)
			}
			back, err := MarshalReceiptJSON(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(append(back, '\n'), v.file) {
				t.Error("MarshalReceiptJSON does not give back the vector's bytes")
			}
		})
	}
}

// TestVectorsCoverCommitKinds keeps the vectors honest about what they are
// named for: partial commits have an absent signature, full ones none, and
// link vectors carry a link.
func TestVectorsCoverCommitKinds(t *testing.T) {
	for _, v := range validVectors(t) {
		r := v.receipt(t)
		sh, err := decodeSignedHeader(r.SignedHeader, DefaultMaxValidators)
		if err != nil {
			t.Fatal(err)
		}
		absent := 0
		for _, s := range sh.commit.sigs {
			if s.flag == flagAbsent {
				absent++
			}
		}
		partial := strings.Contains(v.name, "partial-commit")
		if partial != (absent > 0) {
			t.Errorf("%s: %d absent signatures", v.name, absent)
		}
		if strings.Contains(v.name, "four-validators/") && len(sh.commit.sigs) < 4 {
			t.Errorf("%s: %d signatures", v.name, len(sh.commit.sigs))
		}
		if strings.Contains(v.name, "validator-link") != (len(r.ValidatorLinks) > 0) {
			t.Errorf("%s: %d links", v.name, len(r.ValidatorLinks))
		}
	}
}

// TestOldVersionRefused: a version 1 receipt file is refused, naming the
// version and how to get a new receipt.
func TestOldVersionRefused(t *testing.T) {
	_, err := UnmarshalReceiptJSON(readTestdata(t, "receipt-v1.json"), Limits{})
	if !errors.Is(err, ErrOldVersion) || !strings.Contains(err.Error(), "version 1") || !strings.Contains(err.Error(), "credenced receipt") {
		t.Fatalf("UnmarshalReceiptJSON(v1) = %v", err)
	}
	v := vectorNamed(t, "four-validators/full-commit")
	r := v.receipt(t)
	r.Version = 1
	_, err = Verify(r, v.trust)
	if !errors.Is(err, ErrOldVersion) || stepOf(t, err) != StepFormat {
		t.Fatalf("Verify(version 1) = %v", err)
	}
}

// TestVerifyWrongTrustRoot: a receipt checked against another chain's
// genesis fails, at the chain id when it differs, else at the trust root.
func TestVerifyWrongTrustRoot(t *testing.T) {
	four := vectorNamed(t, "four-validators/full-commit")
	one := vectorNamed(t, "one-validator/single-hash")
	if _, err := Verify(four.receipt(t), one.trust); stepOf(t, err) != StepTrustRoot {
		t.Errorf("4-validator receipt against the 1-validator genesis: %v", err)
	}
	other := *four.trust
	other.ChainID = "other"
	if _, err := Verify(four.receipt(t), &other); stepOf(t, err) != StepChain {
		t.Errorf("against another chain id: %v", err)
	}
	if _, err := Verify(four.receipt(t), &TrustRoot{ChainID: four.trust.ChainID}); stepOf(t, err) != StepFormat {
		t.Errorf("against a trust root without validators: %v", err)
	}
}

// TestLimits: what a receipt may demand of a verifier is bounded, and
// refused before the work.
func TestLimits(t *testing.T) {
	v := vectorNamed(t, "four-validators/validator-link")
	trust := *v.trust
	trust.Limits = Limits{MaxValidators: 4}
	if _, err := Verify(v.receipt(t), &trust); err == nil || !strings.Contains(err.Error(), "at most 4") && !strings.Contains(err.Error(), "more than") {
		t.Errorf("5 validators under MaxValidators 4: %v", err)
	}
	trust.Limits = Limits{MaxLinks: 1}
	r := v.receipt(t)
	r.ValidatorLinks = append(r.ValidatorLinks, r.ValidatorLinks[0])
	if _, err := Verify(r, &trust); err == nil || !strings.Contains(err.Error(), "at most 1") {
		t.Errorf("2 links under MaxLinks 1: %v", err)
	}
	r = v.receipt(t)
	r.AuditPath = make([][]byte, 65)
	if _, err := Verify(r, v.trust); stepOf(t, err) != StepAuditPath {
		t.Errorf("65 path entries: %v", err)
	}
	if _, err := UnmarshalReceiptJSON(v.file, Limits{MaxReceiptBytes: len(v.file) - 1}); err == nil {
		t.Error("file one byte over MaxReceiptBytes accepted")
	}
	if _, err := UnmarshalReceiptJSON(v.file, Limits{MaxReceiptBytes: len(v.file)}); err != nil {
		t.Errorf("file at MaxReceiptBytes: %v", err)
	}
}

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

// TestVectorsEveryFormatVersion: the vectors hold receipts of every format
// version from 2 to ReceiptVersion, and each verifies against the genesis
// beside it, so a later format cannot silently drop an earlier one's
// vectors (a verifier keeps verifying every receipt ever served).
func TestVectorsEveryFormatVersion(t *testing.T) {
	const firstKept = 2 // version 1 receipts are refused (docs/receipt.md)
	byVersion := map[uint32][]string{}
	for _, v := range validVectors(t) {
		r := v.receipt(t)
		if _, err := Verify(r, v.trust); err != nil {
			t.Errorf("%s (format version %d): %v", v.name, r.Version, err)
		}
		byVersion[r.Version] = append(byVersion[r.Version], v.name)
	}
	for ver := uint32(firstKept); ver <= ReceiptVersion; ver++ {
		if len(byVersion[ver]) == 0 {
			t.Errorf("no vector of receipt format version %d in %s: every version from %d on keeps its vectors", ver, vectorDir, firstKept)
		}
	}
	for ver, names := range byVersion {
		if ver < firstKept || ver > ReceiptVersion {
			t.Errorf("vectors %v have format version %d, outside %d to %d", names, ver, firstKept, ReceiptVersion)
		}
	}
}
