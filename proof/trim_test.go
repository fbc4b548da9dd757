package proof

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func testHashes(n int) []byte {
	hs := make([]byte, 0, n*HashSize)
	for i := range n {
		h := LeafHash(fmt.Appendf(nil, "credential %d", i))
		hs = append(hs, h[:]...)
	}
	return hs
}

// TestTrimmedAuditPathsAreTheFullTrees: for every size up to 300 and
// every leaf, a trimmed tree given the leaf's group proves exactly what
// the full tree proves, and the path verifies against the root.
func TestTrimmedAuditPathsAreTheFullTrees(t *testing.T) {
	for n := 1; n <= 300; n++ {
		hs := testHashes(n)
		full, err := NewTree(hs)
		if err != nil {
			t.Fatal(err)
		}
		for _, bottom := range []int{0, 1, 3, 4, maxTrimBits, maxTrimBits + 3} {
			tr := full.Trim(bottom)
			if tr.Root() != full.Root() {
				t.Fatalf("n=%d bottom=%d: trimmed root differs", n, bottom)
			}
			for i := range uint64(n) {
				first, count := tr.GroupOf(i)
				if i < first || i >= first+count || count > 1<<maxTrimBits {
					t.Fatalf("n=%d bottom=%d: group of %d is %d+%d", n, bottom, i, first, count)
				}
				got, err := tr.AuditPathFrom(i, hs[first*HashSize:(first+count)*HashSize])
				if err != nil {
					t.Fatalf("n=%d bottom=%d leaf %d: %v", n, bottom, i, err)
				}
				want, _ := full.AuditPath(i)
				if !slices.EqualFunc(got, want, bytes.Equal) {
					t.Fatalf("n=%d bottom=%d leaf %d: path differs from the full tree's", n, bottom, i)
				}
				root, err := RootFromAuditPath(LeafHash(hs[i*HashSize:(i+1)*HashSize]), i, uint64(n), got)
				if err != nil || root != full.Root() {
					t.Fatalf("n=%d bottom=%d leaf %d: path does not verify: %v", n, bottom, i, err)
				}
			}
		}
	}
}

// TestTrimmedTreeRefusesOtherLeaves: a group with any leaf changed, or of
// the wrong length, gives no path.
func TestTrimmedTreeRefusesOtherLeaves(t *testing.T) {
	hs := testHashes(1000)
	full, _ := NewTree(hs)
	tr := full.Trim(4)
	if _, err := tr.AuditPath(3); !errors.Is(err, ErrTrimmed) {
		t.Fatalf("AuditPath of a trimmed tree: %v, want ErrTrimmed", err)
	}
	if tr.HasLeaf(3, hs[3*HashSize:4*HashSize]) {
		t.Fatal("a trimmed tree claims to hold a leaf")
	}
	for _, i := range []uint64{0, 5, 17, 999} {
		first, count := tr.GroupOf(i)
		for k := range count {
			group := bytes.Clone(hs[first*HashSize : (first+count)*HashSize])
			group[k*HashSize+7] ^= 1
			if _, err := tr.AuditPathFrom(i, group); !errors.Is(err, ErrGroupMismatch) {
				t.Fatalf("leaf %d, group leaf %d changed: %v, want ErrGroupMismatch", i, k, err)
			}
		}
		if _, err := tr.AuditPathFrom(i, hs[first*HashSize:(first+count-1)*HashSize]); !errors.Is(err, ErrBadHashes) {
			t.Fatalf("leaf %d, short group: %v, want ErrBadHashes", i, err)
		}
	}
	if _, err := tr.AuditPathFrom(1000, nil); !errors.Is(err, ErrBadAuditPath) {
		t.Fatalf("leaf out of range: %v, want ErrBadAuditPath", err)
	}
	if f, tm := full.MemoryBytes(), tr.MemoryBytes(); tm*8 > f {
		t.Fatalf("trimmed to groups of 16, the tree holds %d bytes of the full %d", tm, f)
	}
}

func BenchmarkTrimmedAuditPath(b *testing.B) {
	hs := testHashes(9375)
	full, _ := NewTree(hs)
	tr := full.Trim(4)
	b.Run("full", func(b *testing.B) {
		for i := uint64(0); b.Loop(); i++ {
			if _, err := full.AuditPath(i % 9375); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("trimmed-4", func(b *testing.B) {
		for i := uint64(0); b.Loop(); i++ {
			j := i % 9375
			first, count := tr.GroupOf(j)
			if _, err := tr.AuditPathFrom(j, hs[first*HashSize:(first+count)*HashSize]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
