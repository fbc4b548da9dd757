package proof

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/multiformats/go-multibase"
	"google.golang.org/protobuf/proto"
)

func TestReceiptJSONRoundTrip(t *testing.T) {
	file := readTestdata(t, "receipt.json")
	r := testReceipt(t)
	out, err := MarshalReceiptJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	// The testdata file was written by MarshalReceiptJSON (plus a final
	// newline): reading and writing it is the identity.
	if !bytes.Equal(append(slices.Clone(out), '\n'), file) {
		t.Errorf("MarshalReceiptJSON(testdata) differs from the file:\n%s", out)
	}
	back, err := UnmarshalReceiptJSON(out)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back, r) {
		t.Errorf("round trip changed the receipt:\n got %v\nwant %v", back, r)
	}
	again, err := MarshalReceiptJSON(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, out) {
		t.Errorf("re-marshalling differs:\n%s\nvs\n%s", again, out)
	}
	// And the wire form agrees: the JSON form loses nothing.
	w1, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	w2, _ := proto.MarshalOptions{Deterministic: true}.Marshal(back)
	if !bytes.Equal(w1, w2) {
		t.Error("wire encodings differ after a JSON round trip")
	}
}

// TestReceiptJSONRoundTripEdgeValues round-trips receipts that are not
// valid but are representable: the JSON form must not lose or refuse them.
//
// BUG (reported): an empty binary field is written as "z" (FormatBinary of
// nothing), which ParseBinary refuses (go-multibase rejects a zero-length
// base58 string), so MarshalReceiptJSON writes files UnmarshalReceiptJSON
// cannot read.
func TestReceiptJSONRoundTripEdgeValues(t *testing.T) {
	for _, c := range []struct {
		name string
		r    *Receipt
	}{
		{"all zero", &Receipt{Batch: &BatchRecord{}}},
		{"empty signer key", func() *Receipt { r := testReceipt(t); r.Batch.SignerKey = nil; return r }()},
		{"empty audit path element", func() *Receipt { r := testReceipt(t); r.AuditPath[1] = nil; return r }()},
		{"no audit path", func() *Receipt { r := testReceipt(t); r.AuditPath = nil; return r }()},
		{"leading zero bytes", func() *Receipt {
			r := testReceipt(t)
			r.CredentialHash = make([]byte, HashSize)
			r.CredentialHash[HashSize-1] = 1
			return r
		}()},
		{"max numbers", func() *Receipt {
			r := testReceipt(t)
			r.Version, r.LeafIndex = ^uint32(0), ^uint64(0)
			r.Batch.Seq, r.Batch.LeafCount, r.Batch.Height = ^uint64(0), ^uint64(0), 1<<63-1
			r.Validators[0].VotingPower = -1 << 63
			return r
		}()},
		{"negative time", func() *Receipt { r := testReceipt(t); r.Batch.TimeUnixNano = -1; return r }()},
		{"time at whole second", func() *Receipt { r := testReceipt(t); r.Batch.TimeUnixNano = 1e18; return r }()},
		{"unicode strings", func() *Receipt {
			r := testReceipt(t)
			r.ChainId, r.Batch.Issuer = "chaîne-\u2028\"<>&", "émetteur\x00\x7f"
			return r
		}()},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := MarshalReceiptJSON(c.r)
			if err != nil {
				t.Fatal(err)
			}
			back, err := UnmarshalReceiptJSON(out)
			if err != nil {
				t.Fatalf("UnmarshalReceiptJSON(MarshalReceiptJSON(r)): %v", err)
			}
			if !proto.Equal(back, c.r) {
				t.Errorf("round trip changed the receipt:\n got %v\nwant %v", back, c.r)
			}
		})
	}
	t.Run("no batch", func(t *testing.T) {
		if _, err := MarshalReceiptJSON(&Receipt{Version: 1}); err == nil {
			t.Error("MarshalReceiptJSON accepted a receipt without a batch record")
		}
	})
}

// jsonLeaves lists the paths of every scalar in a decoded JSON value:
// "batch.issuer", "audit_path[0]", "validators[0].voting_power".
func jsonLeaves(v any, prefix string, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			jsonLeaves(e, p, out)
		}
	case []any:
		for i, e := range x {
			jsonLeaves(e, fmt.Sprintf("%s[%d]", prefix, i), out)
		}
	default:
		*out = append(*out, prefix)
	}
}

// jsonSet replaces the scalar at path (as listed by jsonLeaves) using f.
func jsonSet(tb testing.TB, v any, path string, f func(any) any) {
	tb.Helper()
	head, rest, _ := strings.Cut(path, ".")
	name, idx := head, -1
	if i := strings.IndexByte(head, '['); i >= 0 {
		n, err := strconv.Atoi(head[i+1 : len(head)-1])
		if err != nil {
			tb.Fatal(err)
		}
		name, idx = head[:i], n
	}
	m := v.(map[string]any)
	if idx >= 0 {
		list := m[name].([]any)
		if rest == "" {
			list[idx] = f(list[idx])
			return
		}
		jsonSet(tb, list[idx], rest, f)
		return
	}
	if rest == "" {
		m[name] = f(m[name])
		return
	}
	jsonSet(tb, m[name], rest, f)
}

func decodeJSONTree(tb testing.TB, data []byte) map[string]any {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		tb.Fatal(err)
	}
	return v
}

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// alterBase58 changes one character of a "z…" string at about pos (0 =
// first digit, 1 = last digit, else the middle), keeping it valid base58 of
// the same decoded length and different content.
func alterBase58(tb testing.TB, s string, pos string) string {
	tb.Helper()
	_, orig, err := multibase.Decode(s)
	if err != nil {
		tb.Fatalf("%q is not multibase: %v", s, err)
	}
	i := map[string]int{"first": 1, "middle": len(s) / 2, "last": len(s) - 1}[pos]
	if i == 0 {
		tb.Fatalf("bad position %q", pos)
	}
	for step := 1; step < len(base58Alphabet); step++ {
		c := base58Alphabet[(strings.IndexByte(base58Alphabet, s[i])+step)%len(base58Alphabet)]
		m := s[:i] + string(c) + s[i+1:]
		if _, b, err := multibase.Decode(m); err == nil && len(b) == len(orig) && !bytes.Equal(b, orig) {
			return m
		}
	}
	tb.Fatalf("cannot alter %q at %d", s, i)
	return ""
}

// TestReceiptJSONTamper changes every field of the receipt file, one at a
// time, and checks that the change is caught at the step that covers the
// field. The table must name every field of the file.
func TestReceiptJSONTamper(t *testing.T) {
	file := readTestdata(t, "receipt.json")
	trust := testTrust(t)

	// stepForm: the change is refused by UnmarshalReceiptJSON already.
	const stepForm Step = "(UnmarshalReceiptJSON)"
	// Field (array indexes as [*]) → expected step. Multibase fields are
	// altered at their first, middle and last digit; an entry with a
	// "/position" suffix overrides the field's entry for that position.
	want := map[string]Step{
		"version":                           StepFormat,
		"version/negate":                    stepForm, // unsigned
		"leaf_index/negate":                 stepForm,
		"batch.seq/negate":                  stepForm,
		"batch.leaf_count/negate":           stepForm,
		"chain_id":                          StepChain,
		"credential_hash":                   StepAuditPath,
		"leaf_index":                        StepAuditPath,
		"audit_path[*]":                     StepAuditPath,
		"batch.issuer":                      StepBatchProof,
		"batch.seq":                         StepBatchProof,
		"batch.root":                        StepAuditPath,
		"batch.leaf_count":                  StepBatchProof, // 7 → 8: same path shape for leaf 3, so the proven record catches it
		"batch.signer_key":                  StepBatchProof,
		"batch.height":                      StepHeader, // header must be at batch height + 1
		"batch.time":                        StepBatchProof,
		"batch_proof":                       StepBatchProof,
		"signed_header":                     StepHeader, // decoding, canonical form, or header hash ≠ commit block id
		"signed_header/last":                StepCommit, // last digits are the commit signature
		"validators[*].ed25519_public_key":  StepValidators,
		"validators[*].voting_power":        StepValidators,
		"validators[*].voting_power/negate": StepValidators,
	}

	var leaves []string
	jsonLeaves(decodeJSONTree(t, file), "", &leaves)
	sort.Strings(leaves)
	generic := func(p string) string {
		for {
			i := strings.IndexByte(p, '[')
			if i < 0 || p[i+1] == '*' {
				return p
			}
			p = p[:i] + "[*]" + p[strings.IndexByte(p, ']')+1:]
		}
	}
	covered := map[string]bool{}
	for _, p := range leaves {
		g := generic(p)
		if _, ok := want[g]; !ok {
			t.Errorf("field %s of the receipt file has no tamper case", p)
		}
		covered[g] = true
	}
	for k := range want {
		if base, _, _ := strings.Cut(k, "/"); !covered[base] {
			t.Errorf("tamper case %s names no field of the receipt file", k)
		}
	}

	type mutation struct {
		name string
		f    func(any) any
	}
	for _, path := range leaves {
		var muts []mutation
		tree := decodeJSONTree(t, file)
		var orig any
		jsonSet(t, tree, path, func(v any) any { orig = v; return v })
		switch v := orig.(type) {
		case json.Number:
			n, err := v.Int64()
			if err != nil {
				t.Fatal(err)
			}
			muts = append(muts, mutation{"+1", func(any) any { return json.Number(strconv.FormatInt(n+1, 10)) }})
			if n > 1 {
				muts = append(muts, mutation{"-1", func(any) any { return json.Number(strconv.FormatInt(n-1, 10)) }})
			}
			muts = append(muts, mutation{"negate", func(any) any { return json.Number(strconv.FormatInt(-n, 10)) }})
		case string:
			if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
				muts = append(muts,
					mutation{"+1ns", func(any) any { return ts.Add(1).Format(time.RFC3339Nano) }},
					mutation{"-1s", func(any) any { return ts.Add(-time.Second).Format(time.RFC3339Nano) }})
			} else if _, _, err := multibase.Decode(v); err == nil && v[0] == 'z' && path != "chain_id" && path != "batch.issuer" {
				for _, pos := range []string{"first", "middle", "last"} {
					muts = append(muts, mutation{pos, func(any) any { return alterBase58(t, v, pos) }})
				}
			} else {
				muts = append(muts,
					mutation{"last char", func(any) any { return v[:len(v)-1] + string(v[len(v)-1]^1) }},
					mutation{"empty", func(any) any { return "" }},
					mutation{"upper case", func(any) any { return strings.ToUpper(v) }})
			}
		default:
			t.Fatalf("%s: unexpected JSON value %T", path, orig)
		}
		for _, m := range muts {
			t.Run(path+"/"+m.name, func(t *testing.T) {
				tree := decodeJSONTree(t, file)
				jsonSet(t, tree, path, m.f)
				data, err := json.Marshal(tree)
				if err != nil {
					t.Fatal(err)
				}
				exp, ok := want[generic(path)+"/"+m.name]
				if !ok {
					exp = want[generic(path)]
				}
				r, err := UnmarshalReceiptJSON(data)
				if exp == stepForm {
					if err == nil {
						t.Errorf("UnmarshalReceiptJSON accepted it")
					}
					return
				}
				if err != nil {
					t.Fatalf("UnmarshalReceiptJSON: %v (the mutation should keep the form valid)", err)
				}
				_, p, err := safeVerify(r, trust)
				if p != nil {
					t.Fatalf("Verify panicked: %v", p)
				}
				if got := stepOf(t, err); got != exp {
					t.Errorf("step %q (%v), want %q", got, err, exp)
				}
			})
		}
	}
}

// TestReceiptJSONEquivalentForms: the reader accepts other encodings of the
// same values (documented: multibase or hex; RFC 3339 time), which decode
// to the identical receipt and so verify.
func TestReceiptJSONEquivalentForms(t *testing.T) {
	file := string(readTestdata(t, "receipt.json"))
	want := testReceipt(t)
	const cred = "zBCTJLiDyyhDLb8V82hULYw1TiqAcFFRfHhokfkKvKqMz"
	credBytes := want.CredentialHash
	b64, _ := multibase.Encode(multibase.Base64url, credBytes)
	b16, _ := multibase.Encode(multibase.Base16, credBytes)
	for _, c := range []struct{ name, from, to string }{
		{"credential hash as hex", cred, hex.EncodeToString(credBytes)},
		{"credential hash as 0x-HEX", cred, "0x" + strings.ToUpper(hex.EncodeToString(credBytes))},
		{"credential hash as base64url multibase", cred, b64},
		{"credential hash as base16 multibase", cred, b16},
		{"time with offset", "2026-11-28T12:58:03.14096041Z", "2026-11-28T13:58:03.14096041+01:00"},
		{"compact JSON", "\n", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(file, c.from) {
				t.Fatalf("testdata has no %q", c.from)
			}
			r, err := UnmarshalReceiptJSON([]byte(strings.ReplaceAll(file, c.from, c.to)))
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(r, want) {
				t.Errorf("decodes to %v, want the testdata receipt", r)
			}
			if _, err := Verify(r, testTrust(t)); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestUnmarshalReceiptJSONErrors(t *testing.T) {
	file := string(readTestdata(t, "receipt.json"))
	replace := func(from, to string) string {
		if !strings.Contains(file, from) {
			t.Fatalf("testdata has no %q", from)
		}
		return strings.Replace(file, from, to, 1)
	}
	trimmed := strings.TrimRight(file, "\n")
	for _, c := range []struct {
		name, data string
		msg        string // the error must contain this
	}{
		{"empty", "", "EOF"},
		{"not JSON", "receipt", "invalid character"},
		{"JSON array", "[" + file + "]", "cannot unmarshal array"},
		{"JSON null", "null", "credential_hash: empty value"},
		{"empty object", "{}", "credential_hash: empty value"},
		{"unknown top-level field", replace(`"version": 1,`, `"version": 1, "note": "x",`), `unknown field "note"`},
		{"unknown batch field", replace(`"seq": 2,`, `"seq": 2, "sig": "z1",`), `unknown field "sig"`},
		{"unknown validator field", replace(`"voting_power": 10`, `"voting_power": 10, "name": "m"`), `unknown field "name"`},
		{"trailing garbage", file + "garbage", "trailing data"},
		{"second object", file + "{}", "trailing data"},
		// BUG (reported): json.Decoder.More reports false before '}'
		// and ']', so these two are accepted.
		{"trailing brace", file + "}", "trailing data"},
		{"trailing bracket", trimmed + "]", "trailing data"},
		{"version as string", replace(`"version": 1`, `"version": "1"`), "version"},
		{"negative leaf index", replace(`"leaf_index": 3`, `"leaf_index": -3`), "leaf_index"},
		{"fractional seq", replace(`"seq": 2`, `"seq": 2.5`), "seq"},
		{"leaf count overflow", replace(`"leaf_count": 7`, `"leaf_count": 18446744073709551616`), "leaf_count"},
		{"voting power overflow", replace(`"voting_power": 10`, `"voting_power": 9223372036854775808`), "voting_power"},
		{"audit path not a list", replace(`"audit_path": [`, `"audit_path": "x", "y": [`), "audit_path"},
		{"bad credential hash", replace(`"zBCTJLiDyyhDLb8V82hULYw1TiqAcFFRfHhokfkKvKqMz"`, `"zBCTJLiDyyhDLb8V82hULYw1TiqAcFFRfHhokfkKvKqM0"`), "credential_hash"},
		{"empty credential hash", replace(`"zBCTJLiDyyhDLb8V82hULYw1TiqAcFFRfHhokfkKvKqMz"`, `""`), "credential_hash"},
		{"bad audit path element", replace(`"z5qgLCZEyK4nHZ337kaoi8ZotD51FRsLrCgYstb8LZdtv"`, `"q5qg"`), "audit_path[1]"},
		{"bad batch root", replace(`"zCn9NqgA5GgVmf1d9aHTMdBa8xDCnpMKSnssHrV8JkoGM"`, `"zCn9NqgA5GgVmf1d9aHTMdBa8xDCnpMKSnssHrV8JkoGl"`), "batch.root"},
		{"bad signer key", replace(`"zeZPQRY5LgtaiC19i65DGu4J7KV9RsyqNNEKk7PfuHwA"`, `"0xZZ"`), "batch.signer_key"},
		{"bad batch proof", replace(`"batch_proof": "zS9`, `"batch_proof": "uS9*`), "batch_proof"},
		{"bad signed header", replace(`"signed_header": "z4e`, `"signed_header": "z4e_`), "signed_header"},
		{"bad validator key", replace(`"z52heTyPAyTwqw1khHC65BtcuGyAYjUQmj2UBqpS5LYKo"`, `"fzz"`), "validators[0].ed25519_public_key"},
		{"time without zone", replace(`"2026-11-28T12:58:03.14096041Z"`, `"2026-11-28T12:58:03.14096041"`), "batch.time"},
		{"time as number", replace(`"2026-11-28T12:58:03.14096041Z"`, `1795870683140960410`), "time"},
		{"time empty", replace(`"2026-11-28T12:58:03.14096041Z"`, `""`), "batch.time"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := UnmarshalReceiptJSON([]byte(c.data))
			if err == nil {
				t.Fatal("accepted")
			}
			if r != nil {
				t.Errorf("returned a receipt with error %v", err)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not mention %q", err, c.msg)
			}
			if !strings.HasPrefix(err.Error(), "receipt JSON") {
				t.Errorf("error %q does not say it is about the receipt JSON", err)
			}
		})
	}
}

// TestUnmarshalReceiptJSONTruncated cuts the file at every byte: each
// prefix must be refused with an error saying the input ended early.
func TestUnmarshalReceiptJSONTruncated(t *testing.T) {
	file := bytes.TrimRight(readTestdata(t, "receipt.json"), "\n")
	for n := range len(file) {
		r, err := UnmarshalReceiptJSON(file[:n])
		if err == nil {
			t.Errorf("prefix of %d bytes accepted: %v", n, r)
			continue
		}
		want := io.ErrUnexpectedEOF
		if len(bytes.TrimSpace(file[:n])) == 0 {
			want = io.EOF
		}
		if !errors.Is(err, want) {
			t.Errorf("prefix of %d bytes: error %q, want %v", n, err, want)
		}
	}
	if _, err := UnmarshalReceiptJSON(file); err != nil {
		t.Errorf("whole file: %v", err)
	}
}

func TestParseBinary(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     string // hex; ignored when err is set
		err      string // substring of the error; "" for success
	}{
		{"base58btc", "zBCTJLiDyyhDLb8V82hULYw1TiqAcFFRfHhokfkKvKqMz", "9783fe973f5ac9a573847303e80f03a09502687c65f59d0a8079427ef7b95ea1", ""},
		{"base58btc leading zeros", "z11zzzz", "0000acad0f", ""},
		{"base64url", "uAQL_", "0102ff", ""},
		{"base64 pad", "MAQL/", "0102ff", ""},
		{"base16", "f0102ff", "0102ff", ""},
		{"base16 upper", "F0102FF", "0102ff", ""},
		{"base32", "baebp6", "0102ff", ""},
		{"hex", "0102ff", "0102ff", ""},
		{"hex upper", "0102FF", "0102ff", ""},
		{"0x hex", "0x0102ff", "0102ff", ""},
		{"0X hex", "0X0102FF", "0102ff", ""},
		{"surrounding space", " \t0102ff\n", "0102ff", ""},
		{"multibase with surrounding space", "  f0102ff ", "0102ff", ""},
		// An even-length string of hex digits is hex, by the documented
		// rule, even where it is also a valid multibase string:
		// "baaaaa" is base32 multibase for 000000 but is read as hex.
		{"hex wins over base32", "baaaaa", "baaaaa", ""},
		{"hex wins over base2", "00000001", "00000001", ""},
		{"hex wins over base16 with odd digits", "f012", "f012", ""},
		{"base16 empty", "f", "", ""},
		{"empty", "", "", "empty value"},
		{"only space", " \n\t", "", "empty value"},
		{"bare 0x", "0x", "", "not multibase or hex"},
		{"odd hex", "abc", "", "not multibase or hex"},
		{"0x odd hex", "0xabc", "", "not multibase or hex"},
		{"0x non-hex", "0xZZ", "", "not multibase or hex"},
		{"unknown multibase prefix", "q1234", "", "not multibase or hex"},
		{"bad base58 digit 0", "z0OIl", "", "not multibase or hex"},
		{"bad base58 digit l", "zBCTJLiDyyhDLb8V82hULYw1TiqAcFFRfHhokfkKvKqMl", "", "not multibase or hex"},
		{"bad base64url", "u+/==", "", "not multibase or hex"},
		{"bad base16", "f0g", "", "not multibase or hex"},
		{"long malformed is truncated", "z" + strings.Repeat("0", 200), "", "..."},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseBinary(c.in)
			if c.err != "" {
				if err == nil {
					t.Fatalf("ParseBinary(%q) = %x, want an error", c.in, got)
				}
				if !errors.Is(err, ErrBadEncoding) {
					t.Errorf("error %v does not wrap ErrBadEncoding", err)
				}
				if !strings.Contains(err.Error(), c.err) {
					t.Errorf("error %q does not contain %q", err, c.err)
				}
				if len(err.Error()) > 300 {
					t.Errorf("error is %d characters long", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBinary(%q): %v", c.in, err)
			}
			if hex.EncodeToString(got) != c.want {
				t.Errorf("ParseBinary(%q) = %x, want %s", c.in, got, c.want)
			}
		})
	}
}

func TestFormatBinaryRoundTrip(t *testing.T) {
	for _, b := range [][]byte{
		{0}, {0, 0, 1}, {0xff}, bytes.Repeat([]byte{0xab}, 32), bytes.Repeat([]byte{0}, 32),
		testReceipt(t).SignedHeader,
	} {
		t.Run(fmt.Sprintf("%d bytes %x", len(b), b[:min(len(b), 4)]), func(t *testing.T) {
			s := FormatBinary(b)
			if s[0] != 'z' {
				t.Errorf("FormatBinary = %q, want base58btc multibase", s)
			}
			got, err := ParseBinary(s)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, b) {
				t.Errorf("ParseBinary(FormatBinary(%x)) = %x", b, got)
			}
		})
	}
}

func TestParseHash(t *testing.T) {
	h := bytes.Repeat([]byte{0x5a}, HashSize)
	hx := hex.EncodeToString(h)
	for _, c := range []struct {
		name, in string
		err      string // "" for success
	}{
		{"base58btc", FormatBinary(h), ""},
		{"hex", hx, ""},
		{"0x hex", "0x" + hx, ""},
		{"base16 multibase", "f" + hx, ""},
		{"31 bytes", hx[2:], "is 31 bytes, want 32"},
		{"33 bytes", hx + "00", "is 33 bytes, want 32"},
		{"64 bytes", hx + hx, "is 64 bytes, want 32"},
		{"1 byte base58", FormatBinary([]byte{1}), "is 1 bytes, want 32"},
		{"base16 empty", "f", "is 0 bytes, want 32"},
		{"empty", "", "empty value"},
		{"malformed", "z" + hx[:40] + "0", "not multibase or hex"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseHash(c.in)
			if c.err == "" {
				if err != nil {
					t.Fatalf("ParseHash(%q): %v", c.in, err)
				}
				if !bytes.Equal(got, h) {
					t.Errorf("ParseHash(%q) = %x, want %x", c.in, got, h)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseHash(%q) = %x, want an error", c.in, got)
			}
			if !strings.Contains(err.Error(), c.err) {
				t.Errorf("error %q does not contain %q", err, c.err)
			}
		})
	}
}
