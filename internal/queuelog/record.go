package queuelog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/credence-ledger/credence/proof"
)

// Entry is one hash queued for an issuer at a queue position.
type Entry struct {
	Issuer string
	Seq    uint64
	Hash   [proof.HashSize]byte
}

// Record framing and limits.
const (
	recordHeader = 8
	// recordMax bounds a record's body, whose length the header holds in
	// 32 bits.
	recordMax = 1 << 31
	// runMax is the most a run adds to its hashes: issuer length, an
	// issuer id of up to 64 bytes (app.ValidID), position and count.
	runMax = 2 + 64 + 8 + 4
)

// bodyLimit is the largest body of a record of up to n hashes, each its
// own run at worst.
func bodyLimit(n int) int64 {
	return min(int64(n)*(proof.HashSize+runMax), recordMax)
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// errRecordLength is a record length over the largest body, which no
// append writes: a torn write leaves the length its append wrote, or
// zeros.
var errRecordLength = errors.New("record length over the largest record this node writes")

// readRecords calls fn for each hash of the records of b, and returns the
// offset after the last good record, with an error when a bad one follows.
func readRecords(b []byte, seg uint64, maxBody int64, fn func(Entry, uint64)) (int64, error) {
	off := 0
	for off < len(b) {
		if len(b)-off < recordHeader {
			return int64(off), errors.New("truncated record header")
		}
		n := binary.BigEndian.Uint32(b[off:])
		sum := binary.BigEndian.Uint32(b[off+4:])
		if n == 0 {
			return int64(off), errors.New("record length 0")
		}
		if int64(n) > maxBody {
			// The limit comes from the node's settings, which the
			// operator reads this error against.
			return int64(off), fmt.Errorf("%w (%d bytes): %d (if max_queued_hashes or batch_max_leaves was lowered "+
				"since it was written, raise it back for a start)", errRecordLength, maxBody, n)
		}
		if int64(n) > int64(len(b)-off-recordHeader) {
			return int64(off), fmt.Errorf("record length %d past the end of the file", n)
		}
		body := b[off+recordHeader : off+recordHeader+int(n)]
		if crc32.Checksum(body, crc32c) != sum {
			return int64(off), errors.New("record checksum mismatch")
		}
		if err := decodeRecord(body, seg, fn); err != nil {
			return int64(off), err
		}
		off += recordHeader + int(n)
	}
	return int64(off), nil
}

// findRecord returns the offset of the first whole, well-formed record
// starting at or after from, or -1. It looks at every byte offset: after
// a bad length, record boundaries are unknown. The body's structure is
// checked before its checksum, which rules out nearly every offset of
// random bytes at once; the bytes checksummed are bounded all the same,
// a few times the file, so no tail makes the scan quadratic.
func findRecord(b []byte, from, maxBody int64) int64 {
	budget := 4*int64(len(b)) + 1<<20
	for at := from; at+recordHeader < int64(len(b)) && budget > 0; at++ {
		n := int64(binary.BigEndian.Uint32(b[at:]))
		if n == 0 || n > maxBody || n > int64(len(b))-at-recordHeader {
			continue
		}
		body := b[at+recordHeader : at+recordHeader+n]
		if decodeRecord(body, 0, func(Entry, uint64) {}) != nil {
			continue
		}
		budget -= n
		if crc32.Checksum(body, crc32c) == binary.BigEndian.Uint32(b[at+4:]) {
			return at
		}
	}
	return -1
}

// isTornTail reports whether the bad record at off can be the one a crash
// interrupted: it runs to the end of the file (cut short, or with pages
// not written), or the rest of the file is zeros (the file grew before its
// data reached the disk). A bad record with data after its end is not:
// every record is synced before the next is written.
func isTornTail(b []byte, off int64) bool {
	rest := b[off:]
	if len(rest) < recordHeader {
		return true
	}
	if n := int64(binary.BigEndian.Uint32(rest)); n >= int64(len(rest)-recordHeader) {
		return true
	}
	for _, c := range rest {
		if c != 0 {
			return false
		}
	}
	return true
}

func decodeRecord(body []byte, seg uint64, fn func(Entry, uint64)) error {
	// Check the whole record before handing out any hash, so a bad record
	// adds nothing.
	type run struct {
		issuer string
		first  uint64
		hashes []byte
	}
	var runs []run
	for len(body) > 0 {
		if len(body) < 2 {
			return errors.New("bad record: short run")
		}
		il := int(binary.BigEndian.Uint16(body))
		if il == 0 || len(body) < 2+il+12 {
			return errors.New("bad record: short run")
		}
		issuer := string(body[2 : 2+il])
		body = body[2+il:]
		first := binary.BigEndian.Uint64(body)
		count := uint64(binary.BigEndian.Uint32(body[8:]))
		body = body[12:]
		if count == 0 || count*proof.HashSize > uint64(len(body)) {
			return errors.New("bad record: run count past its end")
		}
		runs = append(runs, run{issuer, first, body[:count*proof.HashSize]})
		body = body[count*proof.HashSize:]
	}
	for _, r := range runs {
		for j := 0; j*proof.HashSize < len(r.hashes); j++ {
			fn(Entry{Issuer: r.issuer, Seq: r.first + uint64(j), Hash: [proof.HashSize]byte(r.hashes[j*proof.HashSize:])}, seg)
		}
	}
	return nil
}

// encodeRecords frames entries as records of at most maxBody bytes each,
// written and synced together: a group larger than any record (only a
// migrated queue could be) takes more than one. Reading back, a crash
// that tore them keeps the whole ones, never acknowledged: a retry finds
// those hashes pending.
func encodeRecords(entries []Entry, maxBody int64) []byte {
	var out []byte
	for len(entries) > 0 {
		// At worst each hash is a run of its own.
		n, body := 0, int64(0)
		for n < len(entries) {
			cost := int64(proof.HashSize + 2 + len(entries[n].Issuer) + 12)
			if n > 0 && body+cost > maxBody {
				break
			}
			body += cost
			n++
		}
		out = append(out, EncodeRecord(entries[:n])...)
		entries = entries[n:]
	}
	return out
}

// EncodeRecord frames entries as one record, whatever their number: a run
// per stretch of one issuer's consecutive queue positions. It is the
// bytes Append writes for entries that fit one record, for tests that
// tear or forge one.
func EncodeRecord(entries []Entry) []byte {
	b := make([]byte, recordHeader, recordHeader+len(entries)*proof.HashSize+64)
	for i := 0; i < len(entries); {
		j := i + 1
		for j < len(entries) && entries[j].Issuer == entries[i].Issuer && entries[j].Seq == entries[j-1].Seq+1 {
			j++
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(entries[i].Issuer)))
		b = append(b, entries[i].Issuer...)
		b = binary.BigEndian.AppendUint64(b, entries[i].Seq)
		b = binary.BigEndian.AppendUint32(b, uint32(j-i))
		for _, e := range entries[i:j] {
			b = append(b, e.Hash[:]...)
		}
		i = j
	}
	body := b[recordHeader:]
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(body, crc32c))
	return b
}
