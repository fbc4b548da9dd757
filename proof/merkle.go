package proof

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
)

// HashSize is the size of a credential hash and of every tree node (SHA-256).
const HashSize = 32

// Domain-separation prefixes of RFC 6962 §2.1: they stop a leaf from being
// passed off as an interior node (second-preimage attack).
const (
	merkleLeafPrefix = 0x00
	merkleNodePrefix = 0x01
)

var (
	// ErrBadHashes reports a hashes argument that is not a non-empty
	// concatenation of HashSize-byte credential hashes.
	ErrBadHashes = errors.New("proof: bad credential hashes")
	// ErrBadAuditPath reports an audit path (or leaf index) that cannot
	// belong to a tree of the stated size.
	ErrBadAuditPath = errors.New("proof: bad audit path")
	// ErrTrimmed reports an AuditPath asked of a trimmed tree, which needs
	// the leaf's group (AuditPathFrom).
	ErrTrimmed = errors.New("proof: tree is trimmed")
	// ErrGroupMismatch reports leaves given to AuditPathFrom that do not
	// hash to the node the trimmed tree kept for them.
	ErrGroupMismatch = errors.New("proof: leaves do not match the tree")
)

// LeafHash returns SHA-256(0x00 || credentialHash).
func LeafHash(credentialHash []byte) [HashSize]byte {
	return merkleLeafHashData(credentialHash)
}

// merkleLeafHashData hashes leaf data of any length; the exported API only
// ever sees 32-byte credential hashes, but the RFC 6962 test vectors do not.
func merkleLeafHashData(data []byte) [HashSize]byte {
	// A stack buffer keeps the per-leaf path free of allocations and of the
	// hash.Hash interface overhead.
	var buf [1 + 2*HashSize]byte
	buf[0] = merkleLeafPrefix
	if len(data) <= len(buf)-1 {
		copy(buf[1:], data)
		return sha256.Sum256(buf[:1+len(data)])
	}
	h := sha256.New()
	h.Write(buf[:1])
	h.Write(data)
	var out [HashSize]byte
	h.Sum(out[:0])
	return out
}

// merkleNodeHash returns SHA-256(0x01 || l || r) for HashSize-byte l and r.
func merkleNodeHash(l, r []byte) [HashSize]byte {
	var buf [1 + 2*HashSize]byte
	buf[0] = merkleNodePrefix
	copy(buf[1:1+HashSize], l)
	copy(buf[1+HashSize:], r)
	return sha256.Sum256(buf[:])
}

func merkleCheckHashes(hashes []byte) (uint64, error) {
	if len(hashes) == 0 || len(hashes)%HashSize != 0 {
		return 0, fmt.Errorf("%w: length %d is not a non-zero multiple of %d", ErrBadHashes, len(hashes), HashSize)
	}
	return uint64(len(hashes) / HashSize), nil
}

// merkleStack is a compact range [0, n): the roots of the perfect subtrees
// whose sizes are the set bits of n, indexed by level. Appending leaves to it
// computes the RFC 6962 root with O(log n) memory and no allocation.
type merkleStack struct {
	h [64][HashSize]byte
	n uint64
}

func (s *merkleStack) push(h [HashSize]byte) {
	level := 0
	for i := s.n; i&1 == 1; i >>= 1 {
		h = merkleNodeHash(s.h[level][:], h[:])
		level++
	}
	s.h[level] = h
	s.n++
}

// root folds the perfect subtrees right to left, which is exactly RFC 6962's
// split at the largest power of two below the size. Requires n > 0.
func (s *merkleStack) root() [HashSize]byte {
	level := bits.TrailingZeros64(s.n)
	r := s.h[level]
	for level++; level < 64; level++ {
		if s.n>>level&1 == 1 {
			r = merkleNodeHash(s.h[level][:], r[:])
		}
	}
	return r
}

// Root returns the RFC 6962 root of the tree whose leaves are the LeafHash of
// each HashSize-byte credential hash concatenated in hashes.
func Root(hashes []byte) ([HashSize]byte, error) {
	if _, err := merkleCheckHashes(hashes); err != nil {
		return [HashSize]byte{}, err
	}
	var s merkleStack
	for off := 0; off < len(hashes); off += HashSize {
		s.push(merkleLeafHashData(hashes[off : off+HashSize]))
	}
	return s.root(), nil
}

// Tree keeps every level of a batch's tree so audit paths cost O(log n) after
// building once.
type Tree struct {
	// levels[0] holds the leaf hashes and the last level the root, each
	// level a flat slice of HashSize-byte nodes. An odd last node is copied
	// up unchanged: level-by-level pairing with that promotion yields the
	// same nodes as RFC 6962's recursive split, and keeps AuditPath a plain
	// sibling walk.
	levels [][]byte
	size   uint64
	// bottom is how many levels below levels[0] Trim dropped: levels[0]
	// holds the nodes of groups of 2^bottom leaves.
	bottom int
}

// NewTree builds the tree over the credential hashes concatenated in hashes.
func NewTree(hashes []byte) (*Tree, error) {
	n, err := merkleCheckHashes(hashes)
	if err != nil {
		return nil, err
	}
	t := merkleAllocTree(n)
	for off := 0; off < len(hashes); off += HashSize {
		h := merkleLeafHashData(hashes[off : off+HashSize])
		copy(t.levels[0][off:], h[:])
	}
	t.merkleBuild()
	return t, nil
}

// merkleAllocTree lays out every level of an n-leaf tree in one backing
// array, so a tree costs 3 allocations whatever n.
func merkleAllocTree(n uint64) *Tree {
	total, depth := uint64(0), 0
	for m := n; ; m = (m + 1) / 2 {
		total += m
		depth++
		if m == 1 {
			break
		}
	}
	buf := make([]byte, total*HashSize)
	levels := make([][]byte, depth)
	for l, m := 0, n; l < depth; l, m = l+1, (m+1)/2 {
		levels[l], buf = buf[:m*HashSize], buf[m*HashSize:]
	}
	return &Tree{levels: levels, size: n}
}

// merkleBuild fills the upper levels from the leaf hashes in levels[0].
func (t *Tree) merkleBuild() {
	for l := 1; l < len(t.levels); l++ {
		cur, next := t.levels[l-1], t.levels[l]
		m := len(cur) / HashSize
		for j := 0; j+1 < m; j += 2 {
			h := merkleNodeHash(cur[j*HashSize:(j+1)*HashSize], cur[(j+1)*HashSize:(j+2)*HashSize])
			copy(next[j/2*HashSize:], h[:])
		}
		if m%2 == 1 {
			copy(next[len(next)-HashSize:], cur[len(cur)-HashSize:])
		}
	}
}

// Trim returns the tree without its bottom levels: the nodes it keeps
// are those of groups of 2^bottom leaves, so it holds about 2/2^bottom of
// the tree's memory. A trimmed tree proves a leaf with the leaves of its
// group (GroupOf, AuditPathFrom). At most the levels below the root are
// dropped, and no more than make groups of 2^maxTrimBits leaves; t itself
// is unchanged.
func (t *Tree) Trim(bottom int) *Tree {
	bottom = min(max(bottom, 0), len(t.levels)-1, maxTrimBits-t.bottom)
	kept := t.levels[bottom:]
	total := 0
	for _, l := range kept {
		total += len(l)
	}
	buf := make([]byte, total)
	levels := make([][]byte, len(kept))
	for i, l := range kept {
		// levels[0]'s capacity is the whole buffer, as MemoryBytes counts.
		levels[i], buf = buf[:len(l)], buf[len(l):]
		copy(levels[i], l)
	}
	return &Tree{levels: levels, size: t.size, bottom: t.bottom + bottom}
}

// GroupOf is the leaves AuditPathFrom needs for leaf i: count leaves from
// first. For an untrimmed tree, leaf i alone.
func (t *Tree) GroupOf(i uint64) (first, count uint64) {
	first = i &^ (1<<t.bottom - 1)
	return first, min(1<<t.bottom, t.size-first)
}

// Size returns the number of leaves.
func (t *Tree) Size() uint64 { return t.size }

// HasLeaf reports whether leaf i is credentialHash: whether its leaf hash
// is LeafHash(credentialHash). A trimmed tree holds no leaf: false.
func (t *Tree) HasLeaf(i uint64, credentialHash []byte) bool {
	if i >= t.size || t.bottom > 0 {
		return false
	}
	return [HashSize]byte(t.levels[0][i*HashSize:(i+1)*HashSize]) == LeafHash(credentialHash)
}

// Root returns the RFC 6962 root hash.
func (t *Tree) Root() [HashSize]byte {
	return [HashSize]byte(t.levels[len(t.levels)-1])
}

// AuditPath returns the RFC 6962 inclusion proof of leaf i, bottom-up. The
// result shares no memory with the tree, so callers may keep or modify it.
func (t *Tree) AuditPath(i uint64) ([][]byte, error) {
	if t.bottom > 0 {
		return nil, ErrTrimmed
	}
	if i >= t.size {
		return nil, fmt.Errorf("%w: leaf index %d out of range for tree size %d", ErrBadAuditPath, i, t.size)
	}
	maxLen := len(t.levels) - 1
	return t.pathAbove(i, make([][]byte, 0, maxLen), make([]byte, maxLen*HashSize)), nil
}

// AuditPathFrom is AuditPath for a tree trimmed or not, given group: the
// credential hashes of leaf i's group (GroupOf), which it hashes again up
// to the node the tree kept for them. Leaves that do not make that node
// are refused with ErrGroupMismatch: a path is never built from leaves
// the tree was not built from.
func (t *Tree) AuditPathFrom(i uint64, group []byte) ([][]byte, error) {
	if i >= t.size {
		return nil, fmt.Errorf("%w: leaf index %d out of range for tree size %d", ErrBadAuditPath, i, t.size)
	}
	first, count := t.GroupOf(i)
	if uint64(len(group)) != count*HashSize {
		return nil, fmt.Errorf("%w: %d bytes of leaves, want the %d of leaves %d to %d", ErrBadHashes, len(group), count*HashSize, first, first+count-1)
	}
	// The group's own tree: the group starts at a multiple of 2^bottom, so
	// its nodes, promotions included, are the tree's, and its root is the
	// node the tree kept for the group.
	sub, err := NewTree(group)
	if err != nil {
		return nil, err
	}
	g := i >> t.bottom
	if sub.Root() != [HashSize]byte(t.levels[0][g*HashSize:(g+1)*HashSize]) {
		return nil, fmt.Errorf("%w: leaves %d to %d", ErrGroupMismatch, first, first+count-1)
	}
	maxLen := t.bottom + len(t.levels) - 1
	buf := make([]byte, maxLen*HashSize)
	path := sub.pathAbove(i-first, make([][]byte, 0, maxLen), buf)
	return t.pathAbove(g, path, buf), nil
}

// maxTrimBits bounds the groups of a trimmed tree: a proof from it reads
// and hashes its leaf's whole group.
const maxTrimBits = 6

// pathAbove appends to path the siblings of node i of levels[0] up to
// the root, each in its own HashSize bytes of buf after path's.
func (t *Tree) pathAbove(i uint64, path [][]byte, buf []byte) [][]byte {
	for _, level := range t.levels[:len(t.levels)-1] {
		// A promoted last node has no sibling on this level and so no
		// proof element, matching the RFC's shorter right-edge paths.
		if sib := (i ^ 1) * HashSize; sib < uint64(len(level)) {
			k := len(path)
			e := buf[k*HashSize : (k+1)*HashSize : (k+1)*HashSize]
			copy(e, level[sib:sib+HashSize])
			path = append(path, e)
		}
		i >>= 1
	}
	return path
}

// MemoryBytes approximates the tree's retained size, for byte-bounded caches.
func (t *Tree) MemoryBytes() int {
	const sliceHeader, structSize = 24, 32
	n := structSize + cap(t.levels)*sliceHeader
	// All levels share one backing array that starts at levels[0].
	n += cap(t.levels[0])
	return n
}

// RootFromAuditPath recomputes the root from a leaf hash (already LeafHash'ed),
// its index, the tree size and the bottom-up audit path.
func RootFromAuditPath(leafHash [HashSize]byte, index, size uint64, path [][]byte) ([HashSize]byte, error) {
	if index >= size {
		return [HashSize]byte{}, fmt.Errorf("%w: leaf index %d out of range for tree size %d", ErrBadAuditPath, index, size)
	}
	// Below the level where the paths to index and size-1 diverge, the
	// subtree is perfect and every level has a sibling ("inner"); above it,
	// index lies on the left edge of the remaining right-border subtrees and
	// only its left siblings, one per set bit, are in the path ("border").
	inner := bits.Len64(index ^ (size - 1))
	border := bits.OnesCount64(index >> inner)
	if len(path) != inner+border {
		return [HashSize]byte{}, fmt.Errorf("%w: length %d, want %d for leaf %d of %d", ErrBadAuditPath, len(path), inner+border, index, size)
	}
	h := leafHash
	for k, p := range path {
		if len(p) != HashSize {
			return [HashSize]byte{}, fmt.Errorf("%w: element %d has %d bytes, want %d", ErrBadAuditPath, k, len(p), HashSize)
		}
		if k < inner && index>>k&1 == 0 {
			h = merkleNodeHash(h[:], p)
		} else {
			h = merkleNodeHash(p, h[:])
		}
	}
	return h, nil
}
