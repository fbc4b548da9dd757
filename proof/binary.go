package proof

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/multiformats/go-multibase"
)

// ErrBadEncoding is returned for a binary value that is neither multibase nor hex.
var ErrBadEncoding = errors.New("not multibase or hex")

// FormatBinary renders a binary value for people: multibase base58btc ("z…").
func FormatBinary(b []byte) string {
	s, err := multibase.Encode(multibase.Base58BTC, b)
	if err != nil {
		// Base58BTC is always a known encoding; this cannot happen.
		panic(err)
	}
	return s
}

// ParseBinary accepts multibase, or plain hex (optionally 0x-prefixed).
// An even-length string of hex digits is read as hex. That can never
// misread what Credence writes (base58btc "z…" and base64url "u…" are not
// hex digits, base16 multibase "f…" has odd length), but a base32 multibase
// value made only of the letters a-f and digits 2-7 would be taken as hex.
func ParseBinary(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty value: %w", ErrBadEncoding)
	}
	if s == "z" {
		// The base58btc rendering of no bytes, which go-multibase will
		// write but not read.
		return []byte{}, nil
	}
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(h)%2 == 0 && isHex(h) {
		return hex.DecodeString(h)
	}
	_, b, err := multibase.Decode(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w (%v)", truncate(s), ErrBadEncoding, err)
	}
	return b, nil
}

// ParseHash is ParseBinary that also requires a 32-byte SHA-256 value.
func ParseHash(s string) ([]byte, error) {
	b, err := ParseBinary(s)
	if err != nil {
		return nil, err
	}
	if len(b) != HashSize {
		return nil, fmt.Errorf("hash %q is %d bytes, want %d", truncate(s), len(b), HashSize)
	}
	return b, nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
