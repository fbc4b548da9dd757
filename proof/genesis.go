package proof

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// errBadJSON is wrapped by every refusal of a JSON document's form.
var errBadJSON = errors.New("malformed JSON")

// checkJSON enforces what encoding/json lets pass: the document is valid
// UTF-8, one JSON value with nothing after it, and no object names a key
// twice. With known set, every key must be one of its names exactly
// (encoding/json would match keys without regard to case).
func checkJSON(data []byte, known map[string]bool) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: not valid UTF-8", errBadJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// Each open object has the set of its keys seen so far; an array has nil.
	var stack []map[string]bool
	expectKey := func() bool { return len(stack) > 0 && stack[len(stack)-1] != nil }
	inKeyPosition := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errBadJSON, err)
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, map[string]bool{})
				inKeyPosition = true
				continue
			case '[':
				stack = append(stack, nil)
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
			inKeyPosition = expectKey()
			if len(stack) == 0 && dec.More() {
				return fmt.Errorf("%w: data after the document", errBadJSON)
			}
			continue
		case string:
			if expectKey() && inKeyPosition {
				keys := stack[len(stack)-1]
				if keys[t] {
					return fmt.Errorf("%w: key %q appears twice in one object", errBadJSON, t)
				}
				if known != nil && !known[t] {
					return fmt.Errorf("%w: unknown key %q", errBadJSON, t)
				}
				keys[t] = true
				inKeyPosition = false
				continue
			}
		}
		// A value: in an object, a key comes next.
		inKeyPosition = expectKey()
		if len(stack) == 0 && dec.More() {
			return fmt.Errorf("%w: data after the document", errBadJSON)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the document", errBadJSON)
	}
	return nil
}

// cometbft's JSON names of a genesis validator; anything else in a
// validator entry is refused, so a key spelled in another case (Pub_Key)
// is an error here rather than a nil key inside CometBFT.
var genesisValidatorKeys = map[string]bool{"address": true, "pub_key": true, "power": true, "name": true}

// TrustRootFromGenesis reads a trust root from a CometBFT genesis file's
// JSON (docs/receipt.md, "Trust root"). It reads chain_id and validators
// only, and is strict about both.
func TrustRootFromGenesis(genesisJSON []byte) (*TrustRoot, error) {
	tr, err := trustRootFromGenesis(genesisJSON)
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	return tr, nil
}

func trustRootFromGenesis(data []byte) (*TrustRoot, error) {
	if err := checkJSON(data, nil); err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadJSON, err)
	}
	var chainID string
	if err := json.Unmarshal(top["chain_id"], &chainID); err != nil || chainID == "" {
		return nil, errors.New("chain_id: a non-empty string is required")
	}
	if len(chainID) > maxChainIDLen {
		return nil, fmt.Errorf("chain_id: %d bytes, at most %d", len(chainID), maxChainIDLen)
	}
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal(top["validators"], &entries); err != nil || len(entries) == 0 {
		return nil, errors.New("validators: a non-empty array of validators is required")
	}
	vals := make([]*Validator, len(entries))
	for i, e := range entries {
		v, err := genesisValidator(e)
		if err != nil {
			return nil, fmt.Errorf("validators[%d]: %w", i, err)
		}
		vals[i] = v
	}
	sortValidators(vals)
	if _, err := newValidatorSet(vals, len(vals)); err != nil {
		return nil, fmt.Errorf("validators: %w", err)
	}
	return &TrustRoot{ChainID: chainID, Validators: vals}, nil
}

func genesisValidator(e map[string]json.RawMessage) (*Validator, error) {
	for k := range e {
		if !genesisValidatorKeys[k] {
			return nil, fmt.Errorf("unknown key %q (keys are address, pub_key, power, name)", k)
		}
	}
	var pk map[string]json.RawMessage
	if err := json.Unmarshal(e["pub_key"], &pk); err != nil || pk == nil {
		return nil, errors.New("pub_key: an object is required")
	}
	var typ, value string
	if len(pk) != 2 || json.Unmarshal(pk["type"], &typ) != nil || json.Unmarshal(pk["value"], &value) != nil {
		return nil, errors.New(`pub_key: exactly "type" and "value" strings are required`)
	}
	if typ != "tendermint/PubKeyEd25519" {
		return nil, fmt.Errorf("pub_key.type %q: only tendermint/PubKeyEd25519 is accepted", typ)
	}
	pub, err := base64.StdEncoding.Strict().DecodeString(value)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("pub_key.value: standard base64 of %d bytes is required", ed25519.PublicKeySize)
	}
	// CometBFT writes int64 as a decimal string.
	var powerText string
	if err := json.Unmarshal(e["power"], &powerText); err != nil {
		return nil, errors.New(`power: a decimal string ("10") is required`)
	}
	power, err := strconv.ParseInt(powerText, 10, 64)
	if err != nil || power <= 0 || strconv.FormatInt(power, 10) != powerText {
		return nil, fmt.Errorf("power %q: a positive decimal integer is required", powerText)
	}
	if raw, ok := e["address"]; ok {
		var addr string
		if err := json.Unmarshal(raw, &addr); err != nil {
			return nil, errors.New("address: a hex string is required")
		}
		if want := fmt.Sprintf("%X", validatorAddress(pub)); addr != "" && addr != want {
			if b, err := hex.DecodeString(addr); err != nil || !bytes.Equal(b, validatorAddress(pub)) {
				return nil, fmt.Errorf("address %s is not the key's address %s", addr, want)
			}
		}
	}
	if raw, ok := e["name"]; ok {
		var name string
		if err := json.Unmarshal(raw, &name); err != nil {
			return nil, errors.New("name: a string is required")
		}
	}
	return &Validator{Ed25519PublicKey: pub, VotingPower: power}, nil
}
