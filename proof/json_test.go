package proof

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestReceiptJSONAccepts: the spellings the file form allows besides the
// one MarshalReceiptJSON writes (JSON whitespace and string escapes; key
// order; validator_links absent or empty) read as the same receipt.
func TestReceiptJSONAccepts(t *testing.T) {
	v := vectorNamed(t, "four-validators/full-commit")
	want := v.wire(t)
	file := string(v.file)
	for name, f := range map[string]string{
		"compact":            strings.NewReplacer("\n", "", "  ", "").Replace(file),
		"escaped key letter": replaceOnce(file, `"chain_id"`, `"chain\u005fid"`),
		"keys reordered":     replaceOnce(replaceOnce(file, `"version": 2,`, ``), `"chain_id"`, `"version": 2, "chain_id"`),
		"empty links":        replaceOnce(file, `"version": 2,`, `"version": 2, "validator_links": [],`),
	} {
		r, err := UnmarshalReceiptJSON([]byte(f), Limits{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := (&vector{file: nil}).wireOf(t, r)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: reads as another receipt", name)
		}
	}
}

func (*vector) wireOf(tb testing.TB, r *Receipt) []byte {
	tb.Helper()
	b, err := deterministic.Marshal(r)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestReceiptJSONRefuses: what the rules refuse, each with the field named.
func TestReceiptJSONRefuses(t *testing.T) {
	file := string(vectorNamed(t, "four-validators/full-commit").file)
	for _, c := range []struct {
		name, file, says string
	}{
		{"not UTF-8", replaceOnce(file, `"e2e"`, "\"e2\xffe\""), "UTF-8"},
		{"duplicate key in batch", replaceOnce(file, `"seq":`, `"seq": 1, "seq":`), "twice"},
		{"key in another case", replaceOnce(file, `"batch":`, `"Batch":`), `"Batch"`},
		{"unknown key", replaceOnce(file, `"batch": {`, `"batch": {"x": 1,`), `"x"`},
		{"null field", replaceOnce(file, `"leaf_index": 0`, `"leaf_index": null`), "leaf_index: missing"},
		{"missing batch field", replaceOnce(file, `"seq":`, `"sequence":`), "sequence"},
		{"0x hex", replaceOnce(file, `"signer_key": "z`, `"signer_key": "0x`), "batch.signer_key"},
		{"plain hex", replaceOnce(file, `"signer_key": "z`, `"signer_key": "f`), "batch.signer_key"},
		{"trailing space in value", replaceOnce(file, "\",\n  \"signed_header\"", " \",\n  \"signed_header\""), "batch_proof"},
		{"empty value", setValue(file, "signer_key", `"z"`), "batch.signer_key"},
		{"no multibase prefix", setValue(file, "signer_key", `"11111111111111111111111111111111"`), "batch.signer_key"},
		{"hash too short", replaceOnce(file, `"credential_hash": "z`, `"credential_hash": "z1`), "credential_hash"},
		{"time with offset", strings.Replace(file, `Z"`, `+01:00"`, 1), "batch.time"},
		{"time lowercase z", strings.Replace(file, `Z"`, `z"`, 1), "batch.time"},
		{"negative seq", replaceOnce(file, `"seq": `, `"seq": -`), ""},
		{"leaf index as string", replaceOnce(file, `"leaf_index": 0`, `"leaf_index": "0"`), ""},
		{"second document", file + "{}", "after the document"},
		{"truncated", file[:len(file)/2], ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := UnmarshalReceiptJSON([]byte(c.file), Limits{})
			if err == nil {
				t.Fatalf("accepted: %v", r)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("error %q does not say %q", err, c.says)
			}
		})
	}
}

// TestParseBase58: the decoder agrees with FormatBinary's encoder on every
// length, one spelling per value, and refuses before decoding a value
// longer than its field allows.
func TestParseBase58(t *testing.T) {
	for n := 1; n <= 80; n++ {
		for _, b := range [][]byte{bytes.Repeat([]byte{0}, n), bytes.Repeat([]byte{0xff}, n), append(make([]byte, n/3), bytes.Repeat([]byte{7}, n-n/3)...)} {
			got, err := parseBase58(FormatBinary(b), n)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("parseBase58(FormatBinary(%x)) = %x, %v", b, got, err)
			}
			if _, err := parseBase58(FormatBinary(b), n-1); err == nil {
				t.Fatalf("%d bytes accepted under a limit of %d", n, n-1)
			}
		}
	}
	for _, s := range []string{"", "z", "Z2", "z0", "zO", "zI", "zl", " z2", "z2 "} {
		if _, err := parseBase58(s, 32); err == nil {
			t.Errorf("parseBase58(%q) accepted", s)
		}
	}
	// A megabyte of digits is refused by its length, at once.
	long := "z" + strings.Repeat("2", 1<<20)
	start := time.Now()
	if _, err := parseBase58(long, maxSignedHeaderBytes(DefaultMaxValidators)); err == nil {
		t.Fatal("1 MiB of digits accepted")
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("refusing 1 MiB of digits took %v", d)
	}
}

// TestReceiptFileTooLarge: an oversized file is refused before parsing,
// with errBadJSON not involved.
func TestReceiptFileTooLarge(t *testing.T) {
	big := make([]byte, DefaultMaxReceiptBytes+1)
	_, err := UnmarshalReceiptJSON(big, Limits{})
	if err == nil || errors.Is(err, errBadJSON) || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("UnmarshalReceiptJSON(%d bytes) = %v", len(big), err)
	}
}

// setValue replaces the value of the first key named key in a JSON file.
func setValue(file, key, value string) string {
	i := strings.Index(file, `"`+key+`": `)
	if i < 0 {
		panic("no " + key)
	}
	i += len(key) + 4
	j := i + 1 + strings.IndexAny(file[i+1:], `",}`)
	if file[i] == '"' {
		j++
	}
	return file[:i] + value + file[j:]
}

// TestReceiptJSONByteFlips changes each byte of a 4-validator receipt file
// with a link and an absent signature (xor 0x01, 0x20): none is both read
// and verified.
func TestReceiptJSONByteFlips(t *testing.T) {
	v := vectorNamed(t, "four-validators/validator-link-partial-commit")
	refusedForm, refusedVerify := 0, 0
	for i := range v.file {
		for _, x := range []byte{0x01, 0x20} {
			m := bytes.Clone(v.file)
			m[i] ^= x
			r, err := UnmarshalReceiptJSON(m, Limits{})
			if err != nil {
				refusedForm++
				continue
			}
			if _, err := Verify(r, v.trust); err == nil {
				t.Errorf("byte %d (%q) ^ %#02x: still verifies", i, v.file[i], x)
				continue
			}
			refusedVerify++
		}
	}
	t.Logf("%d bytes x 2: %d refused by the file form, %d by Verify", len(v.file), refusedForm, refusedVerify)
}
