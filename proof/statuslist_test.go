package proof

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The example list of the W3C Bitstring Status List v1.0 specification
// (testdata/w3c-example-encodedlist.txt): 131,072 entries, none set.
func TestDecodeW3CExample(t *testing.T) {
	b, err := os.ReadFile("testdata/w3c-example-encodedlist.txt")
	if err != nil {
		t.Fatal(err)
	}
	bits, err := DecodeStatusList(strings.TrimSpace(string(b)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(bits)*8 != 131072 {
		t.Fatalf("%d entries, want 131072", len(bits)*8)
	}
	for i, x := range bits {
		if x != 0 {
			t.Fatalf("byte %d is %#x, want all zeros", i, x)
		}
	}
}

// pythonDecode decodes an encodedList with Python's base64 and gzip: an
// implementation independent of ours.
func pythonDecode(t *testing.T, encoded string) []byte {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("this test needs python3 as the independent decoder: %v", err)
	}
	cmd := exec.Command(py, "-c", `import sys,base64,gzip
s=sys.stdin.read().strip()
assert s[0]=='u'
s=s[1:]
sys.stdout.buffer.write(gzip.decompress(base64.urlsafe_b64decode(s+'='*(-len(s)%4))))`)
	cmd.Stdin = strings.NewReader(encoded)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 decode: %v", err)
	}
	return out
}

func TestEncodeStatusListIndependentDecode(t *testing.T) {
	bits := make([]byte, 131072/8)
	set := []uint64{0, 1, 7, 8, 4242, 131071}
	for _, i := range set {
		bits[i/8] |= 0x80 >> (i % 8)
	}
	enc, err := EncodeStatusList(bits)
	if err != nil {
		t.Fatal(err)
	}
	if enc[0] != 'u' || strings.ContainsAny(enc, "=+/") {
		t.Fatalf("not multibase base64url without padding: %.20s…", enc)
	}
	got := pythonDecode(t, enc)
	if !bytes.Equal(got, bits) {
		t.Fatal("an independent decoder reads other bits")
	}
	// The first index is the most significant bit of the first byte.
	if got[0] != 0xC1 || !BitSet(got, 131071) || BitSet(got, 2) {
		t.Fatalf("bit order: first byte %#x", got[0])
	}
	for _, i := range set {
		if !BitSet(got, i) {
			t.Fatalf("index %d not set", i)
		}
	}
}

func TestDecodeStatusListErrors(t *testing.T) {
	big, _ := EncodeStatusList(make([]byte, 4096))
	for name, in := range map[string]string{
		"no prefix":      "H4sIAAAA",
		"base58 prefix":  "zH4sIAAAA",
		"not base64url":  "u***",
		"not gzip":       "uAAAA",
		"over the limit": big,
		"empty":          "",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeStatusList(in, 1024); err == nil {
				t.Fatal("decoded")
			}
		})
	}
}
