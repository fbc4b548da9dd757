package proof

// The SignedHeader's wire form: strict decoding (known fields, wire types,
// limits) that accepts only the canonical encoding, and that encoding, which
// the header hash and the vote sign-bytes are computed over.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// ---- decoding ----

// wireReader walks the fields of one protobuf message.
type wireReader struct {
	b   []byte
	err error
}

// next returns the next field's number and type, or false at the end or on
// a malformed tag.
func (r *wireReader) next() (protowire.Number, protowire.Type, bool) {
	if r.err != nil || len(r.b) == 0 {
		return 0, 0, false
	}
	num, typ, n := protowire.ConsumeTag(r.b)
	if n < 0 {
		r.err = protowire.ParseError(n)
		return 0, 0, false
	}
	r.b = r.b[n:]
	return num, typ, true
}

func (r *wireReader) want(typ, got protowire.Type, num protowire.Number) bool {
	if r.err == nil && typ != got {
		r.err = fmt.Errorf("field %d has wire type %d, want %d", num, got, typ)
	}
	return r.err == nil
}

func (r *wireReader) varint(num protowire.Number, typ protowire.Type) uint64 {
	if !r.want(protowire.VarintType, typ, num) {
		return 0
	}
	v, n := protowire.ConsumeVarint(r.b)
	if n < 0 {
		r.err = protowire.ParseError(n)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) bytes(num protowire.Number, typ protowire.Type) []byte {
	if !r.want(protowire.BytesType, typ, num) {
		return nil
	}
	v, n := protowire.ConsumeBytes(r.b)
	if n < 0 {
		r.err = protowire.ParseError(n)
		return nil
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) unknown(num protowire.Number) {
	if r.err == nil {
		r.err = fmt.Errorf("unknown field %d", num)
	}
}

func decodeTimestamp(b []byte) (timestamp, error) {
	var t timestamp
	r := wireReader{b: b}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			t.seconds = int64(r.varint(num, typ))
		case 2:
			t.nanos = int32(r.varint(num, typ))
		default:
			r.unknown(num)
		}
	}
	return t, r.err
}

func decodePartSetHeader(b []byte) (partSetHeader, error) {
	var p partSetHeader
	r := wireReader{b: b}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			p.total = uint32(r.varint(num, typ))
		case 2:
			p.hash = r.bytes(num, typ)
		default:
			r.unknown(num)
		}
	}
	return p, r.err
}

func decodeBlockID(b []byte) (blockID, error) {
	var id blockID
	r := wireReader{b: b}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			id.hash = r.bytes(num, typ)
		case 2:
			if p := r.bytes(num, typ); r.err == nil {
				id.parts, r.err = decodePartSetHeader(p)
			}
		default:
			r.unknown(num)
		}
	}
	return id, r.err
}

func decodeHeader(b []byte) (header, error) {
	var h header
	r := wireReader{b: b}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			v := wireReader{b: r.bytes(num, typ)}
			for vn, vt, ok := v.next(); ok; vn, vt, ok = v.next() {
				switch vn {
				case 1:
					h.versionBlock = v.varint(vn, vt)
				case 2:
					h.versionApp = v.varint(vn, vt)
				default:
					v.unknown(vn)
				}
			}
			if r.err == nil {
				r.err = v.err
			}
		case 2:
			h.chainID = string(r.bytes(num, typ))
		case 3:
			h.height = int64(r.varint(num, typ))
		case 4:
			if t := r.bytes(num, typ); r.err == nil {
				h.time, r.err = decodeTimestamp(t)
			}
		case 5:
			if id := r.bytes(num, typ); r.err == nil {
				h.lastBlockID, r.err = decodeBlockID(id)
			}
		case 6:
			h.lastCommitHash = r.bytes(num, typ)
		case 7:
			h.dataHash = r.bytes(num, typ)
		case 8:
			h.validatorsHash = r.bytes(num, typ)
		case 9:
			h.nextValidatorsHash = r.bytes(num, typ)
		case 10:
			h.consensusHash = r.bytes(num, typ)
		case 11:
			h.appHash = r.bytes(num, typ)
		case 12:
			h.lastResultsHash = r.bytes(num, typ)
		case 13:
			h.evidenceHash = r.bytes(num, typ)
		case 14:
			h.proposerAddress = r.bytes(num, typ)
		default:
			r.unknown(num)
		}
	}
	return h, r.err
}

func decodeCommitSig(b []byte) (commitSig, error) {
	var s commitSig
	r := wireReader{b: b}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			s.flag = r.varint(num, typ)
		case 2:
			s.address = r.bytes(num, typ)
		case 3:
			if t := r.bytes(num, typ); r.err == nil {
				s.time, r.err = decodeTimestamp(t)
			}
		case 4:
			s.signature = r.bytes(num, typ)
		default:
			r.unknown(num)
		}
	}
	return s, r.err
}

func decodeCommit(b []byte, maxSignatures int) (commit, error) {
	var c commit
	r := wireReader{b: b}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			c.height = int64(r.varint(num, typ))
		case 2:
			c.round = int32(r.varint(num, typ))
		case 3:
			if id := r.bytes(num, typ); r.err == nil {
				c.blockID, r.err = decodeBlockID(id)
			}
		case 4:
			if len(c.sigs) == maxSignatures {
				return c, fmt.Errorf("more than %d signatures", maxSignatures)
			}
			if s := r.bytes(num, typ); r.err == nil {
				var sig commitSig
				sig, r.err = decodeCommitSig(s)
				c.sigs = append(c.sigs, sig)
			}
		default:
			r.unknown(num)
		}
	}
	return c, r.err
}

// decodeSignedHeader reads a tendermint.types.SignedHeader and accepts only
// its canonical encoding (docs/receipt.md, "Canonical protobuf"): the
// decoded value is encoded again and must give back the same bytes, so no
// byte of it goes unchecked.
func decodeSignedHeader(raw []byte, maxSignatures int) (*signedHeader, error) {
	var sh signedHeader
	var haveHeader, haveCommit bool
	r := wireReader{b: raw}
	for num, typ, ok := r.next(); ok; num, typ, ok = r.next() {
		switch num {
		case 1:
			if h := r.bytes(num, typ); r.err == nil {
				sh.header, r.err = decodeHeader(h)
				haveHeader = true
			}
		case 2:
			if c := r.bytes(num, typ); r.err == nil {
				sh.commit, r.err = decodeCommit(c, maxSignatures)
				haveCommit = true
			}
		default:
			r.unknown(num)
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode: %w", r.err)
	}
	if !haveHeader || !haveCommit {
		return nil, errors.New("decode: header and commit are required")
	}
	if !bytes.Equal(sh.encode(), raw) {
		return nil, errors.New("not the canonical encoding")
	}
	return &sh, nil
}

// ---- canonical encoding ----

// Proto3 rules: a scalar field at its zero value is left out. Embedded
// messages that CometBFT declares non-nullable are always written, even
// when empty.

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return appendMessageField(b, num, v)
}

func appendMessageField(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// The encoders below start from a buffer of about the message's size: a
// receipt's verification encodes two signed headers and their parts, and
// growing each from nothing was a third of its allocations.

// int32 fields are varints of the value sign-extended to 64 bits.
func int32Varint(v int32) uint64 { return uint64(int64(v)) }

func (t timestamp) encode() []byte {
	b := appendVarintField(make([]byte, 0, 2+2*binary.MaxVarintLen64), 1, uint64(t.seconds))
	return appendVarintField(b, 2, int32Varint(t.nanos))
}

func (p partSetHeader) encode() []byte {
	b := appendVarintField(make([]byte, 0, 8+2+len(p.hash)), 1, uint64(p.total))
	return appendBytesField(b, 2, p.hash)
}

func (id blockID) encode() []byte {
	parts := id.parts.encode()
	b := appendBytesField(make([]byte, 0, 4+len(id.hash)+len(parts)), 1, id.hash)
	return appendMessageField(b, 2, parts)
}

func (h *header) encodeVersion() []byte {
	b := appendVarintField(nil, 1, h.versionBlock)
	return appendVarintField(b, 2, h.versionApp)
}

func (h *header) encode() []byte {
	b := appendMessageField(make([]byte, 0, 512), 1, h.encodeVersion())
	b = appendBytesField(b, 2, []byte(h.chainID))
	b = appendVarintField(b, 3, uint64(h.height))
	b = appendMessageField(b, 4, h.time.encode())
	b = appendMessageField(b, 5, h.lastBlockID.encode())
	for i, f := range h.hashFields() {
		b = appendBytesField(b, protowire.Number(6+i), f)
	}
	return b
}

// hashFields are fields 6 to 14 of the header, in order.
func (h *header) hashFields() [9][]byte {
	return [9][]byte{h.lastCommitHash, h.dataHash, h.validatorsHash, h.nextValidatorsHash,
		h.consensusHash, h.appHash, h.lastResultsHash, h.evidenceHash, h.proposerAddress}
}

func (s *commitSig) encode() []byte {
	b := appendVarintField(make([]byte, 0, 128), 1, s.flag)
	b = appendBytesField(b, 2, s.address)
	b = appendMessageField(b, 3, s.time.encode())
	return appendBytesField(b, 4, s.signature)
}

func (c *commit) encode() []byte {
	b := appendVarintField(make([]byte, 0, 128+128*len(c.sigs)), 1, uint64(c.height))
	b = appendVarintField(b, 2, int32Varint(c.round))
	b = appendMessageField(b, 3, c.blockID.encode())
	for i := range c.sigs {
		b = appendMessageField(b, 4, c.sigs[i].encode())
	}
	return b
}

func (sh *signedHeader) encode() []byte {
	h, c := sh.header.encode(), sh.commit.encode()
	b := appendMessageField(make([]byte, 0, 2*binary.MaxVarintLen64+2+len(h)+len(c)), 1, h)
	return appendMessageField(b, 2, c)
}
