package positions

import "slices"

// radixSortMin is the fewest entries sortEntries radix sorts: below it,
// zeroing the digit counts costs more than comparing.
const radixSortMin = 256

// sortEntries orders es as cmpEntry does, given es in ascending order of
// at (a batch's entries are made in leaf order): a stable least-significant
// digit radix sort on the tag then leaves equal tags in at order. It is
// linear whatever the tags, where a comparison sort was a validator's
// largest cost of indexing a batch; tags are SHA-256 of hashes an issuer
// chooses, so no sort whose speed depends on their spread is safe.
func sortEntries(es []entry) {
	const (
		digitBits = 11
		buckets   = 1 << digitBits
		passes    = (64 + digitBits - 1) / digitBits
	)
	if len(es) < radixSortMin {
		slices.SortFunc(es, cmpEntry)
		return
	}
	var counts [passes][buckets]int
	for _, e := range es {
		for p := range passes {
			counts[p][(e.tag>>(p*digitBits))&(buckets-1)]++
		}
	}
	src, dst := es, make([]entry, len(es))
	for p := range passes {
		c := &counts[p]
		// A digit all tags share moves nothing.
		if c[(src[0].tag>>(p*digitBits))&(buckets-1)] == len(src) {
			continue
		}
		sum := 0
		for b := range c {
			c[b], sum = sum, sum+c[b]
		}
		for _, e := range src {
			d := (e.tag >> (p * digitBits)) & (buckets - 1)
			dst[c[d]] = e
			c[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &es[0] {
		copy(es, src)
	}
}
