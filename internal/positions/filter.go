package positions

import (
	"math/bits"
	"sync/atomic"
)

// Filter is a blocked Bloom filter over the tags of every entry an index
// holds (see the package doc): MayHold is false only for a tag never
// added. The words are atomic: the index's writer adds while lookups
// check, without a lock. A nil *Filter is no filter: it holds nothing and
// answers "maybe" to everything.
type Filter struct {
	words  []atomic.Uint64
	blocks uint64
}

const (
	filterBlockWords = 8 // 512 bits, a cache line
	filterProbes     = 7 // optimal at 10 bits per hash
)

// NewFilter is an empty filter of mb MiB; nil (no filter) when mb is 0 or
// less.
func NewFilter(mb int) *Filter {
	if mb <= 0 {
		return nil
	}
	blocks := uint64(mb) << 20 / (filterBlockWords * 8)
	return &Filter{words: make([]atomic.Uint64, blocks*filterBlockWords), blocks: blocks}
}

// blockOf is the tag's block and the two halves of its double hashing.
// The tag is already hash output, so its bits serve as the hash
// functions: the block from its high bits (multiply-shift), the bits
// within the block from its low 32 bits and from bits 32..40.
func (f *Filter) blockOf(x uint64) (words []atomic.Uint64, h1, h2 uint32) {
	b, _ := bits.Mul64(x, f.blocks)
	return f.words[b*filterBlockWords : (b+1)*filterBlockWords], uint32(x), uint32(x>>32) | 1
}

// Add records that an entry under tag is held. An attached filter is
// given every tag by its index; a test adds others to play a false
// positive.
func (f *Filter) Add(tag Tag) {
	if f == nil {
		return
	}
	words, h1, h2 := f.blockOf(uint64(tag))
	for i := range uint32(filterProbes) {
		b := (h1 + i*h2) % (filterBlockWords * 64)
		// Most bits are set already once the filter fills: skip the write.
		if w := &words[b/64]; w.Load()&(1<<(b%64)) == 0 {
			w.Or(1 << (b % 64))
		}
	}
}

// addEntries adds the tags of a batch's entries. Each tag's block is
// most likely a miss of main memory (and of the TLB), and Add's atomic
// OR is a locked instruction that no later load passes: one by one, the
// misses are paid in series. Loading the blocks of a group first lets
// the group's misses overlap; Add then finds its block in the cache
// (BenchmarkFilterAdd: 105 ns a tag one by one, 69 in groups of 16).
func (f *Filter) addEntries(es []entry) {
	if f == nil {
		return
	}
	const group = 16
	for len(es) > 0 {
		n := min(group, len(es))
		for _, e := range es[:n] {
			words, _, _ := f.blockOf(e.tag)
			words[0].Load()
		}
		for _, e := range es[:n] {
			f.Add(Tag(e.tag))
		}
		es = es[n:]
	}
}

// MayHold is false only when no entry under tag was added.
func (f *Filter) MayHold(tag Tag) bool {
	if f == nil {
		return true
	}
	words, h1, h2 := f.blockOf(uint64(tag))
	for i := range uint32(filterProbes) {
		b := (h1 + i*h2) % (filterBlockWords * 64)
		if words[b/64].Load()&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}
