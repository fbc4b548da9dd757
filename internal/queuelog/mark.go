package queuelog

import (
	"encoding/binary"
	"fmt"
)

// Mark is the durable mark of a log (see the package doc): the segments
// that must be on disk with at least so many synced bytes, and the highest
// segment number created, above which a segment is newer than the mark.
type Mark struct {
	top  uint64
	segs []segMark
}

type segMark struct {
	seg  uint64
	size int64
}

const markVersion = 1

func (m *Mark) encode() []byte {
	b := []byte{markVersion}
	b = binary.BigEndian.AppendUint64(b, m.top)
	for _, s := range m.segs {
		b = binary.BigEndian.AppendUint64(b, s.seg)
		b = binary.BigEndian.AppendUint64(b, uint64(s.size))
	}
	return b
}

// DecodeMark reads a mark Options.SaveMark was given.
func DecodeMark(b []byte) (*Mark, error) {
	if len(b) < 9 || b[0] != markVersion || (len(b)-9)%16 != 0 {
		return nil, fmt.Errorf("queue log mark of %d bytes", len(b))
	}
	m := &Mark{top: binary.BigEndian.Uint64(b[1:])}
	for r := b[9:]; len(r) > 0; r = r[16:] {
		s := segMark{seg: binary.BigEndian.Uint64(r), size: int64(binary.BigEndian.Uint64(r[8:]))}
		if s.seg == 0 || s.seg > m.top || s.size < 0 {
			return nil, fmt.Errorf("queue log mark lists segment %d (%d bytes) of %d", s.seg, s.size, m.top)
		}
		m.segs = append(m.segs, s)
	}
	return m, nil
}
