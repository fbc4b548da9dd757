package vc

// The JSON the package reads and writes, shared by the proofs and the
// anchor: objects as ordered member lists (so a signed document keeps the
// caller's layout) with duplicate names refused, and the checks before any
// parsing: size, UTF-8, nesting, and numbers a double holds exactly.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// member is one name/value pair of a JSON object; objects are kept as
// ordered member lists so that signing preserves the caller's layout.
type member struct {
	key string
	val json.RawMessage
}

type object []member

func (o object) get(key string) (json.RawMessage, bool) {
	for _, m := range o {
		if m.key == key {
			return m.val, true
		}
	}
	return nil, false
}

func (o object) without(key string) object {
	out := make(object, 0, len(o))
	for _, m := range o {
		if m.key != key {
			out = append(out, m)
		}
	}
	return out
}

// with returns o with key set to val, in place if present, else appended.
func (o object) with(key string, val json.RawMessage) object {
	out := make(object, 0, len(o)+1)
	found := false
	for _, m := range o {
		if m.key == key {
			m.val, found = val, true
		}
		out = append(out, m)
	}
	if !found {
		out = append(out, member{key, val})
	}
	return out
}

// marshal writes o as compact JSON. Values are compacted, not re-encoded, so
// their escapes stay as the caller wrote them.
func (o object) marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(marshalString(m.key))
		b.WriteByte(':')
		if err := json.Compact(&b, m.val); err != nil {
			return nil, fmt.Errorf("%w: member %q: %v", ErrMalformed, m.key, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshalArray is marshal for a proof set.
func marshalArray(items []json.RawMessage) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := json.Compact(&b, it); err != nil {
			return nil, fmt.Errorf("%w: proof %d: %v", ErrMalformed, i, err)
		}
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

func marshalString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimRight(b.Bytes(), "\n")
}

// parseObject reads a JSON object into its ordered members, refusing
// duplicate names: JSON parsers disagree on which duplicate wins, and a
// signature must mean one thing.
func parseObject(raw []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	var o object
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		key := tok.(string) // the decoder only yields string names here
		if seen[key] {
			return nil, fmt.Errorf("%w: duplicate member %q", ErrMalformed, key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: member %q: %v", ErrMalformed, key, err)
		}
		o = append(o, member{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the top-level object", ErrMalformed)
	}
	return o, nil
}

// checkInput applies the limits before any JSON or JSON-LD processing.
func checkInput(doc []byte, c *config) error {
	if len(doc) > c.maxBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(doc), c.maxBytes)
	}
	if !utf8.Valid(doc) {
		return fmt.Errorf("%w: not valid UTF-8", ErrMalformed)
	}
	if !json.Valid(doc) {
		return fmt.Errorf("%w: not valid JSON", ErrMalformed)
	}
	depth, inString, escaped := 0, false, false
	for _, ch := range doc {
		switch {
		case escaped:
			escaped = false
		case inString:
			if ch == '\\' {
				escaped = true
			} else if ch == '"' {
				inString = false
			}
		case ch == '"':
			inString = true
		case ch == '{' || ch == '[':
			depth++
			if depth > c.maxDepth {
				return fmt.Errorf("%w: nesting deeper than %d", ErrTooLarge, c.maxDepth)
			}
		case ch == '}' || ch == ']':
			depth--
		}
	}
	return checkNumbers(doc)
}

// checkNumbers refuses numbers a double cannot hold exactly. Both
// canonicalizations (JCS by RFC 8785, JSON-LD to RDF) read numbers as IEEE
// doubles, so 12345678901234567890 would be signed as 12345678901234567000:
// a signature over a number other than the one the document shows.
func checkNumbers(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		n, ok := tok.(json.Number)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || !sameDecimal(string(n), strconv.FormatFloat(f, 'g', -1, 64)) {
			return fmt.Errorf("%w: number %.40s is not exactly representable as a double", ErrMalformed, n)
		}
	}
}

// sameDecimal reports whether two JSON-syntax decimals have the same value,
// comparing digit strings (no big arithmetic: an exponent of 1e-99999999
// must not cost memory).
func sameDecimal(a, b string) bool {
	da, ea, na, oka := decimalParts(a)
	db, eb, nb, okb := decimalParts(b)
	if !oka || !okb {
		return false
	}
	if da == "" || db == "" { // zero; -0 and 0 are the same number here
		return da == db
	}
	return da == db && ea == eb && na == nb
}

// decimalParts returns s as 0.digits × 10^exp with no leading or trailing
// zeros in digits ("" for zero).
func decimalParts(s string) (digits string, exp int, neg, ok bool) {
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	mant, e, hasExp := strings.Cut(strings.ToLower(s), "e")
	if hasExp {
		var err error
		if exp, err = strconv.Atoi(e); err != nil || exp > 1000 || exp < -1000 {
			return "", 0, false, false
		}
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits = intPart + frac
	point := len(intPart)
	trimmed := strings.TrimLeft(digits, "0")
	point -= len(digits) - len(trimmed)
	digits = strings.TrimRight(trimmed, "0")
	return digits, point + exp, neg, true
}
