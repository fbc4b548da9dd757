package proof

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/multiformats/go-multibase"
	"google.golang.org/protobuf/proto"
)

// Run a target with, for example:
//
//	go test -tags badgerdb -run XXX -fuzz FuzzVerifyWire -fuzztime 20s ./proof/
//
// Crashers are kept under testdata/fuzz/<target>/ and run as regression
// cases by a plain go test:
//
//   - FuzzTrustRootFromGenesis/489e8d5bc10ef059 (found by fuzzing): a genesis
//     validator without pub_key panicked in CometBFT's ValidateAndComplete.
//   - FuzzTrustRootFromGenesis/pub-key-case: the key spelled "Pub_Key" got
//     past a case-insensitive pre-check and panicked the same way.
//
// The version 1 crashers of FuzzVerifyWire (a validator listed twice, an
// extra commit signature) are invalid vectors now:
// testdata/vectors/invalid/four-validators/{validator-listed-twice,commit-extra-signature}.

// hasEmptyBinary reports whether a receipt has an empty binary field, which
// the JSON form cannot round-trip (see TestReceiptJSONRoundTripEdgeValues).
func hasEmptyBinary(r *Receipt) bool {
	if len(r.CredentialHash) == 0 || len(r.BatchProof) == 0 || len(r.SignedHeader) == 0 ||
		r.Batch == nil || len(r.Batch.Root) == 0 || len(r.Batch.SignerKey) == 0 {
		return true
	}
	for _, p := range r.AuditPath {
		if len(p) == 0 {
			return true
		}
	}
	for _, v := range r.Validators {
		if len(v.Ed25519PublicKey) == 0 {
			return true
		}
	}
	return false
}

// noPanic runs f, turning a panic into a test failure with its stack, so
// that a crasher kept in testdata/fuzz fails its own case in a plain go test
// instead of aborting the whole test binary.
func noPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("%s panicked: %v\n%s", what, p, debug.Stack())
		}
	}()
	f()
}

// errorsAsVerifyError is errors.As for *VerifyError, also requiring that
// the error wraps ErrInvalid.
func errorsAsVerifyError(err error, ve **VerifyError) bool {
	return errors.As(err, ve) && errors.Is(err, ErrInvalid)
}

func FuzzUnmarshalReceiptJSON(f *testing.F) {
	vec := vectorNamed(f, "four-validators/validator-link-partial-commit")
	file := vec.file
	trust := vec.trust
	orig := vec.receipt(f)
	f.Add(file)
	f.Add(bytes.TrimRight(file, "\n"))
	f.Add([]byte(strings.ReplaceAll(string(file), "\n", "")))
	f.Add([]byte(`{"version":2,"batch":{"time":"2026-11-28T12:58:03Z","root":"f","signer_key":"u"},"credential_hash":"0x00","batch_proof":"z2","signed_header":"00","audit_path":["z1"],"validators":[{"ed25519_public_key":"baaaaa"}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var (
			r   *Receipt
			err error
		)
		noPanic(t, "UnmarshalReceiptJSON", func() { r, err = UnmarshalReceiptJSON(data, Limits{}) })
		if err != nil {
			if r != nil {
				t.Fatalf("receipt returned with error %v", err)
			}
			return
		}
		var v *Verified
		noPanic(t, "Verify", func() { v, err = Verify(r, trust) })
		if err == nil {
			// Only the vector's receipt (in any equivalent JSON form)
			// verifies against this trust root.
			if !proto.Equal(r, orig) {
				t.Fatalf("a receipt other than the vector verifies: %v (%+v)", r, v)
			}
		} else {
			var ve *VerifyError
			if !errorsAsVerifyError(err, &ve) {
				t.Fatalf("Verify error %v is not a *VerifyError wrapping ErrInvalid", err)
			}
		}
		// What was read can be written and read back unchanged.
		if r.Batch == nil || hasEmptyBinary(r) {
			return
		}
		out, err := MarshalReceiptJSON(r)
		if err != nil {
			t.Fatalf("MarshalReceiptJSON of a read receipt: %v", err)
		}
		back, err := UnmarshalReceiptJSON(out, Limits{})
		if err != nil {
			t.Fatalf("re-reading a written receipt: %v\n%s", err, out)
		}
		if !proto.Equal(back, r) {
			t.Fatalf("JSON round trip changed the receipt:\n got %v\nwant %v", back, r)
		}
	})
}

func FuzzVerifyWire(f *testing.F) {
	vec := vectorNamed(f, "four-validators/validator-link-partial-commit")
	trust := vec.trust
	orig := vec.receipt(f)
	wire := vec.wire(f)
	want, err := Verify(orig, trust)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(wire)
	f.Add(wire[:len(wire)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Receipt
		if err := proto.Unmarshal(data, &r); err != nil {
			return
		}
		var (
			v   *Verified
			err error
		)
		noPanic(t, "Verify", func() { v, err = Verify(&r, trust) })
		if err != nil {
			var ve *VerifyError
			if !errorsAsVerifyError(err, &ve) {
				t.Fatalf("Verify error %v is not a *VerifyError wrapping ErrInvalid", err)
			}
			if v != nil {
				t.Fatalf("Verify returned a result and error %v", err)
			}
			return
		}
		// Whatever verifies proves exactly what the vector
		// proves, and is that receipt (encoding details aside: field
		// order, repeated scalars, non-minimal varints). proto.Equal also
		// compares unknown fields, which Verify must refuse.
		if !reflect.DeepEqual(v, want) {
			t.Fatalf("verified %+v, want %+v", v, want)
		}
		if !proto.Equal(&r, orig) {
			t.Fatalf("a receipt other than the vector verifies: %v", &r)
		}
	})
}

func FuzzParseBinary(f *testing.F) {
	for _, s := range []string{
		"zBCTJLiDyyhDLb8V82hULYw1TiqAcFFRfHhokfkKvKqMz", "uAQL_", "MAQL/", "f0102ff", "F0102FF",
		"baebp6", "0102ff", "0x0102ff", "0X0102FF", " 0a ", "", "0x", "z", "f", "abc", "z0OIl",
		"00000001", "k2lsw", "\x00ab", "🚀🚀", "7", "9",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var (
			b, h      []byte
			err, herr error
		)
		noPanic(t, "ParseBinary", func() { b, err = ParseBinary(s) })
		noPanic(t, "ParseHash", func() { h, herr = ParseHash(s) })
		if err != nil {
			if b != nil {
				t.Fatalf("ParseBinary(%q) returned %x and %v", s, b, err)
			}
			if herr == nil {
				t.Fatalf("ParseHash(%q) accepted what ParseBinary refused (%v)", s, err)
			}
			return
		}
		// ParseHash is ParseBinary plus the length.
		if (herr == nil) != (len(b) == HashSize) {
			t.Fatalf("ParseHash(%q): %v, for %d bytes", s, herr, len(b))
		}
		if herr == nil && !bytes.Equal(h, b) {
			t.Fatalf("ParseHash(%q) = %x, ParseBinary = %x", s, h, b)
		}
		// The documented rule: an even-length string of hex digits,
		// optionally 0x-prefixed, is hex.
		trimmed := strings.TrimSpace(s)
		for _, p := range []string{"0x", "0X"} {
			trimmed = strings.TrimPrefix(trimmed, p)
		}
		if len(trimmed)%2 == 0 {
			if hb, herr := hex.DecodeString(trimmed); herr == nil && len(trimmed) > 0 && !bytes.Equal(hb, b) {
				t.Fatalf("ParseBinary(%q) = %x, want hex %x", s, b, hb)
			}
		}
		// What was read can be written and read back (not for empty
		// values: see TestReceiptJSONRoundTripEdgeValues).
		if len(b) == 0 {
			return
		}
		back, err := ParseBinary(FormatBinary(b))
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("ParseBinary(FormatBinary(%x)) = %x, %v", b, back, err)
		}
	})
}

func FuzzTrustRootFromGenesis(f *testing.F) {
	for _, name := range []string{"vectors/one-validator/genesis.json", "vectors/four-validators/genesis.json"} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte(`{"chain_id":"c","validators":[{"pub_key":{"type":"tendermint/PubKeyEd25519","value":"O95JeydbAfQM7h4ne2u2E77I0lbzFwWKMIcJ/Z08VzY="},"power":"10"}]}`))
	r := vectorNamed(f, "four-validators/full-commit").receipt(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var (
			tr  *TrustRoot
			err error
		)
		noPanic(t, "TrustRootFromGenesis", func() { tr, err = TrustRootFromGenesis(data) })
		if err != nil {
			return
		}
		if len(tr.Validators) == 0 {
			t.Fatal("trust root without validators")
		}
		// Any trust root is usable: verifying against it does not panic.
		noPanic(t, "Verify", func() { _, err = Verify(r, tr) })
		if err != nil {
			var ve *VerifyError
			if !errorsAsVerifyError(err, &ve) {
				t.Fatalf("Verify error %v is not a *VerifyError", err)
			}
		}
	})
}

// FuzzParseBase58 compares the receipt files' base58btc reader with
// go-multibase's: they agree on every value both accept, and parseBase58
// accepts exactly the "z" values multibase reads that are not empty.
func FuzzParseBase58(f *testing.F) {
	for _, s := range []string{"z", "z1", "z11", "z2", "zz", "z1z", "z0", "zI", "zOl", "z" + strings.Repeat("z", 60), "f00", "z\x00", "z🚀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var (
			got []byte
			err error
		)
		noPanic(t, "parseBase58", func() { got, err = parseBase58(s, 1<<10) })
		_, want, merr := multibase.Decode(s)
		if len(s) > 0 && s[0] != 'z' {
			if err == nil {
				t.Fatalf("parseBase58(%q) accepted a non-base58btc prefix", s)
			}
			return
		}
		if err == nil {
			if merr != nil || !bytes.Equal(got, want) {
				t.Fatalf("parseBase58(%q) = %x, multibase = %x, %v", s, got, want, merr)
			}
			if FormatBinary(got) != s {
				t.Fatalf("parseBase58(%q) = %x, which is written %q", s, got, FormatBinary(got))
			}
			return
		}
		if merr == nil && len(want) > 0 && len(want) <= 1<<10 {
			t.Fatalf("parseBase58(%q): %v, multibase reads %x", s, err, want)
		}
	})
}
