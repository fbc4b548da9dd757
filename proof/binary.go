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

// ParseBinary reads a value typed by a person (a hash on the command
// line): multibase, or plain hex (optionally 0x-prefixed), surrounding
// space ignored. Receipt files are read by the stricter rules of
// docs/receipt.md, not by this.
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

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

var base58Digit = func() (d [256]int8) {
	for i := range d {
		d[i] = -1
	}
	for i := 0; i < len(base58Alphabet); i++ {
		d[base58Alphabet[i]] = int8(i)
	}
	return d
}()

// parseBase58 reads a receipt file's binary value: "z" then base58btc
// (Bitcoin alphabet), nothing else, decoding to at most maxLen bytes.
// Base58btc is a bijection between byte strings and digit strings (each
// leading zero byte is one leading "1"), so every value has one spelling.
// The length is checked before decoding, whose cost grows with its
// square.
func parseBase58(s string, maxLen int) ([]byte, error) {
	if len(s) < 2 || s[0] != 'z' {
		return nil, errors.New(`a non-empty base58btc multibase value ("z…") is required`)
	}
	digits := s[1:]
	// Each base58 digit carries log2(58) ≈ 5.86 bits; a leading "1" is a
	// whole zero byte.
	if len(digits) > maxLen*138/100+1 {
		return nil, fmt.Errorf("%d digits, longer than %d bytes can be", len(digits), maxLen)
	}
	zeros := 0
	for zeros < len(digits) && digits[zeros] == '1' {
		zeros++
	}
	// The value, little-endian in 32-bit limbs; five digits are taken at
	// once (58^5 < 2^32).
	limbs := make([]uint32, 0, (len(digits)*733/1000+1)/4+1)
	rest := digits[zeros:]
	for len(rest) > 0 {
		n := min(5, len(rest))
		var mul, add uint64 = 1, 0
		for i := 0; i < n; i++ {
			d := base58Digit[rest[i]]
			if d < 0 {
				return nil, fmt.Errorf("%q is not a base58btc digit", rest[i])
			}
			mul *= 58
			add = add*58 + uint64(d)
		}
		rest = rest[n:]
		carry := add
		for i := range limbs {
			v := uint64(limbs[i])*mul + carry
			limbs[i] = uint32(v)
			carry = v >> 32
		}
		if carry > 0 {
			limbs = append(limbs, uint32(carry))
		}
	}
	out := make([]byte, 0, zeros+4*len(limbs))
	out = append(out, make([]byte, zeros)...)
	started := false
	for i := len(limbs) - 1; i >= 0; i-- {
		for shift := 24; shift >= 0; shift -= 8 {
			c := byte(limbs[i] >> shift)
			if c == 0 && !started {
				continue
			}
			started = true
			out = append(out, c)
		}
	}
	if len(out) > maxLen {
		return nil, fmt.Errorf("%d bytes, at most %d", len(out), maxLen)
	}
	return out, nil
}
