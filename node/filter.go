package node

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"
)

// anchoredFilter is a Bloom filter over the leaf tags of every hash the
// index holds, in front of Submit's duplicate check: nearly every submitted
// hash is new, and proving it absent from badger costs an iterator seek
// through every level (iterators consult no bloom filter). A "no" here is
// certain, so the seek is skipped; a "maybe" falls through to the lookup,
// so answers never depend on the filter, only their cost does.
//
// Blocked: each tag sets its bits in one 64-byte block (one cache line), so
// a check costs one memory access, for a slightly higher false positive
// rate than bits spread over the whole array. The words are atomic: the
// index writer adds while group commits check, without a lock.
//
// Nothing is ever removed (a batch indexed again after a crash, or an index
// wiped after a rejected snapshot, leaves bits set): a stale bit is only a
// false positive. Past its capacity (about one hash per 10 bits) the false
// positive rate rises and Submit does more lookups.
type anchoredFilter struct {
	words  []atomic.Uint64
	blocks uint64
}

const (
	filterBlockWords = 8 // 512 bits, a cache line
	filterProbes     = 7 // optimal at 10 bits per hash
)

// newAnchoredFilter is an empty filter of mb MiB; nil (no filter: every
// check is "maybe") when mb is 0.
func newAnchoredFilter(mb int) *anchoredFilter {
	if mb <= 0 {
		return nil
	}
	blocks := uint64(mb) << 20 / (filterBlockWords * 8)
	return &anchoredFilter{words: make([]atomic.Uint64, blocks*filterBlockWords), blocks: blocks}
}

// block is the tag's block and the two halves of its double hashing. The
// tag is already SHA-256 output, so its bits serve as the hash functions:
// the block from its high bits (multiply-shift), the bits within the block
// from its low 32 bits and from bits 32..40.
func (f *anchoredFilter) block(tag [tagSize]byte) (words []atomic.Uint64, h1, h2 uint32) {
	return f.blockOf(binary.BigEndian.Uint64(tag[:]))
}

func (f *anchoredFilter) blockOf(x uint64) (words []atomic.Uint64, h1, h2 uint32) {
	b, _ := bits.Mul64(x, f.blocks)
	return f.words[b*filterBlockWords : (b+1)*filterBlockWords], uint32(x), uint32(x>>32) | 1
}

// add records that a hash with this tag is anchored.
func (f *anchoredFilter) add(tag [tagSize]byte) {
	f.addTag(binary.BigEndian.Uint64(tag[:]))
}

// addTag is add given the tag as the leaf index holds it (big-endian).
func (f *anchoredFilter) addTag(x uint64) {
	if f == nil {
		return
	}
	words, h1, h2 := f.blockOf(x)
	for i := range uint32(filterProbes) {
		b := (h1 + i*h2) % (filterBlockWords * 64)
		// Most bits are set already once the filter fills: skip the write.
		if w := &words[b/64]; w.Load()&(1<<(b%64)) == 0 {
			w.Or(1 << (b % 64))
		}
	}
}

// mayHold is false only when no hash with this tag was added.
func (f *anchoredFilter) mayHold(tag [tagSize]byte) bool {
	if f == nil {
		return true
	}
	words, h1, h2 := f.block(tag)
	for i := range uint32(filterProbes) {
		b := (h1 + i*h2) % (filterBlockWords * 64)
		if words[b/64].Load()&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// fill adds the tag of every position the leaf index holds, reading each
// run once. The node calls it at start, before the index writer or Submit
// runs.
func (f *anchoredFilter) fill(li *leafIndex) (n int, err error) {
	if f == nil {
		return 0, nil
	}
	err = li.each(func(tag uint64) {
		f.addTag(tag)
		n++
	})
	return n, err
}

// openFilter gives the indexer a filter of mb MiB holding every position
// already written; it reports how many.
func (ix *indexer) openFilter(mb int) (int, error) {
	ix.anchored = newAnchoredFilter(mb)
	return ix.anchored.fill(ix.leaves)
}
