package proof

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	tdproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

// merkleTestHashes returns n deterministic credential hashes, concatenated.
func merkleTestHashes(n int) []byte {
	out := make([]byte, 0, n*HashSize)
	var idx [8]byte
	for i := range n {
		binary.BigEndian.PutUint64(idx[:], uint64(i))
		h := sha256.Sum256(idx[:])
		out = append(out, h[:]...)
	}
	return out
}

func merkleHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// merkleTreeFromLeafHashes builds a Tree over already-hashed leaves, so the
// level builder can be checked against vectors whose leaves are not 32 bytes.
func merkleTreeFromLeafHashes(leafHashes [][HashSize]byte) *Tree {
	t := merkleAllocTree(uint64(len(leafHashes)))
	for i, h := range leafHashes {
		copy(t.levels[0][i*HashSize:], h[:])
	}
	t.merkleBuild()
	return t
}

func TestMerkleLeafHashEmpty(t *testing.T) {
	// RFC 6962 leaf hash of the empty string: SHA-256(0x00).
	want := merkleHex(t, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
	if got := merkleLeafHashData(nil); !bytes.Equal(got[:], want) {
		t.Errorf("leaf hash of empty = %x, want %x", got, want)
	}
	if got := LeafHash([]byte{}); !bytes.Equal(got[:], want) {
		t.Errorf("LeafHash(empty) = %x, want %x", got, want)
	}
}

func TestMerkleLeafHashLongData(t *testing.T) {
	// Data longer than the stack buffer takes the streaming path.
	data := bytes.Repeat([]byte{0xab}, 200)
	got := merkleLeafHashData(data)
	if want := rfc6962.DefaultHasher.HashLeaf(data); !bytes.Equal(got[:], want) {
		t.Errorf("leaf hash of 200 bytes = %x, want %x", got, want)
	}
}

// TestMerkleKnownVectors checks the classic certificate-transparency 8-leaf
// vectors (transparency-dev/merkle testonly) at every level and every prefix size.
func TestMerkleKnownVectors(t *testing.T) {
	inputs := testonly.LeafInputs()
	nodes := testonly.NodeHashes()
	roots := testonly.RootHashes()

	leaves := make([][HashSize]byte, len(inputs))
	for i, in := range inputs {
		leaves[i] = merkleLeafHashData(in)
		if !bytes.Equal(leaves[i][:], nodes[0][i]) {
			t.Errorf("leaf %d (%x): hash %x, want %x", i, in, leaves[i], nodes[0][i])
		}
	}
	for l := 1; l < len(nodes); l++ {
		for j, want := range nodes[l] {
			got := merkleNodeHash(nodes[l-1][2*j], nodes[l-1][2*j+1])
			if !bytes.Equal(got[:], want) {
				t.Errorf("node (%d,%d) = %x, want %x", l, j, got, want)
			}
		}
	}

	full := merkleTreeFromLeafHashes(leaves)
	for l, level := range full.levels {
		if want := bytes.Join(nodes[l], nil); !bytes.Equal(level, want) {
			t.Errorf("tree level %d = %x, want %x", l, level, want)
		}
	}
	if got := full.Root(); hex.EncodeToString(got[:]) != "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328" {
		t.Errorf("8-leaf root = %x", got)
	}

	for size := 1; size <= len(inputs); size++ {
		var s merkleStack
		for _, h := range leaves[:size] {
			s.push(h)
		}
		if got := s.root(); !bytes.Equal(got[:], roots[size]) {
			t.Errorf("stack root of %d leaves = %x, want %x", size, got, roots[size])
		}
		tr := merkleTreeFromLeafHashes(leaves[:size])
		if got := tr.Root(); !bytes.Equal(got[:], roots[size]) {
			t.Errorf("tree root of %d leaves = %x, want %x", size, got, roots[size])
		}
		var want [HashSize]byte
		copy(want[:], roots[size])
		for i := range uint64(size) {
			path, err := tr.AuditPath(i)
			if err != nil {
				t.Fatalf("AuditPath(%d) of %d: %v", i, size, err)
			}
			if got, err := RootFromAuditPath(leaves[i], i, uint64(size), path); err != nil || got != want {
				t.Errorf("RootFromAuditPath(%d) of %d = %x, %v; want %x", i, size, got, err, want)
			}
		}
	}
}

// TestMerkleAgainstTransparencyDev cross-checks every tree size 1..300 and
// every leaf index against transparency-dev/merkle.
func TestMerkleAgainstTransparencyDev(t *testing.T) {
	const maxSize = 300
	hasher := rfc6962.DefaultHasher
	all := merkleTestHashes(maxSize)
	ref := testonly.New(hasher)
	rf := &compact.RangeFactory{Hash: hasher.HashChildren}
	cr := rf.NewEmptyRange(0)

	for size := uint64(1); size <= maxSize; size++ {
		cred := all[(size-1)*HashSize : size*HashSize]
		leaf := LeafHash(cred)
		if want := hasher.HashLeaf(cred); !bytes.Equal(leaf[:], want) {
			t.Fatalf("LeafHash(leaf %d) = %x, want %x", size-1, leaf, want)
		}
		ref.Append(leaf[:])
		if err := cr.Append(leaf[:], nil); err != nil {
			t.Fatal(err)
		}
		compactRoot, err := cr.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		wantRoot := ref.Hash()
		if !bytes.Equal(compactRoot, wantRoot) {
			t.Fatalf("size %d: reference disagreement %x vs %x", size, compactRoot, wantRoot)
		}

		hashes := all[:size*HashSize]
		root, err := Root(hashes)
		if err != nil {
			t.Fatalf("Root(%d): %v", size, err)
		}
		if !bytes.Equal(root[:], wantRoot) {
			t.Fatalf("Root(%d) = %x, want %x", size, root, wantRoot)
		}
		tr, err := NewTree(hashes)
		if err != nil {
			t.Fatalf("NewTree(%d): %v", size, err)
		}
		if tr.Size() != size {
			t.Fatalf("Size() = %d, want %d", tr.Size(), size)
		}
		if got := tr.Root(); got != root {
			t.Fatalf("Tree(%d).Root() = %x, want %x", size, got, root)
		}

		for i := range size {
			path, err := tr.AuditPath(i)
			if err != nil {
				t.Fatalf("AuditPath(%d) of %d: %v", i, size, err)
			}
			wantPath, err := ref.InclusionProof(i, size)
			if err != nil {
				t.Fatal(err)
			}
			if len(path) != len(wantPath) {
				t.Fatalf("AuditPath(%d) of %d: %d elements, want %d", i, size, len(path), len(wantPath))
			}
			for k := range path {
				if !bytes.Equal(path[k], wantPath[k]) {
					t.Fatalf("AuditPath(%d) of %d: element %d = %x, want %x", i, size, k, path[k], wantPath[k])
				}
			}
			li := [HashSize]byte(tr.levels[0][i*HashSize : (i+1)*HashSize])
			got, err := RootFromAuditPath(li, i, size, path)
			if err != nil || got != root {
				t.Fatalf("RootFromAuditPath(%d, %d) = %x, %v; want %x", i, size, got, err, root)
			}
			if err := tdproof.VerifyInclusion(hasher, i, size, li[:], path, root[:]); err != nil {
				t.Fatalf("transparency-dev rejects our path for leaf %d of %d: %v", i, size, err)
			}
		}
	}
}

func TestMerkleBadHashes(t *testing.T) {
	for _, n := range []int{0, 1, 31, 33, 63, 65} {
		in := make([]byte, n)
		if _, err := Root(in); !errors.Is(err, ErrBadHashes) {
			t.Errorf("Root(len %d) error = %v, want ErrBadHashes", n, err)
		}
		if tr, err := NewTree(in); !errors.Is(err, ErrBadHashes) || tr != nil {
			t.Errorf("NewTree(len %d) = %v, %v; want nil, ErrBadHashes", n, tr, err)
		}
	}
	if _, err := Root(nil); !errors.Is(err, ErrBadHashes) {
		t.Errorf("Root(nil) error = %v, want ErrBadHashes", err)
	}
}

func TestMerkleAuditPathIndexOutOfRange(t *testing.T) {
	tr, err := NewTree(merkleTestHashes(5))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{5, 6, 1 << 63} {
		if p, err := tr.AuditPath(i); !errors.Is(err, ErrBadAuditPath) || p != nil {
			t.Errorf("AuditPath(%d) = %v, %v; want nil, ErrBadAuditPath", i, p, err)
		}
	}
}

func TestMerkleHasLeaf(t *testing.T) {
	hashes := merkleTestHashes(5)
	tr, err := NewTree(hashes)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(i int) []byte { return hashes[i*HashSize : (i+1)*HashSize] }
	for i := 0; i < 5; i++ {
		for j := 0; j < 5; j++ {
			if got := tr.HasLeaf(uint64(i), leaf(j)); got != (i == j) {
				t.Errorf("HasLeaf(%d, leaf %d) = %v", i, j, got)
			}
		}
	}
	for _, i := range []uint64{5, 1 << 63} {
		if tr.HasLeaf(i, leaf(0)) {
			t.Errorf("HasLeaf(%d) past the last leaf = true", i)
		}
	}
}

func TestMerkleAuditPathIsFresh(t *testing.T) {
	tr, err := NewTree(merkleTestHashes(7))
	if err != nil {
		t.Fatal(err)
	}
	root := tr.Root()
	p, err := tr.AuditPath(2)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range p {
		for k := range e {
			e[k] ^= 0xff
		}
		// Appending to one element must not spill into the next.
		_ = append(e, 1)
	}
	if tr.Root() != root {
		t.Fatal("mutating an audit path changed the tree root")
	}
	q, err := tr.AuditPath(2)
	if err != nil {
		t.Fatal(err)
	}
	for k := range q {
		if bytes.Equal(p[k], q[k]) {
			t.Fatalf("element %d still shared with the tree", k)
		}
	}
}

func TestMerkleRootFromAuditPathErrors(t *testing.T) {
	const size = 11
	tr, err := NewTree(merkleTestHashes(size))
	if err != nil {
		t.Fatal(err)
	}
	const index = 5
	leaf := [HashSize]byte(tr.levels[0][index*HashSize:])
	path, err := tr.AuditPath(index)
	if err != nil {
		t.Fatal(err)
	}
	extra := make([]byte, HashSize)
	cases := []struct {
		name        string
		index, size uint64
		path        [][]byte
	}{
		{"index equals size", size, size, path},
		{"index beyond size", size + 3, size, path},
		{"empty tree", 0, 0, nil},
		{"path too short", index, size, path[:len(path)-1]},
		{"path too long", index, size, append(append([][]byte{}, path...), extra)},
		{"nil path", index, size, nil},
		{"short element", index, size, append([][]byte{path[0][:HashSize-1]}, path[1:]...)},
		{"long element", index, size, append([][]byte{append(append([]byte{}, path[0]...), 0)}, path[1:]...)},
		{"size for another shape", index, 8, path}, // 8 leaves need 3 elements, this path has 4
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := RootFromAuditPath(leaf, c.index, c.size, c.path); !errors.Is(err, ErrBadAuditPath) {
				t.Errorf("error = %v, want ErrBadAuditPath", err)
			}
		})
	}
}

func TestMerkleRootFromAuditPathTampered(t *testing.T) {
	hasher := rfc6962.DefaultHasher
	for _, size := range []uint64{2, 3, 7, 8, 13, 64, 100} {
		tr, err := NewTree(merkleTestHashes(int(size)))
		if err != nil {
			t.Fatal(err)
		}
		root := tr.Root()
		for i := range size {
			leaf := [HashSize]byte(tr.levels[0][i*HashSize:])
			path, err := tr.AuditPath(i)
			if err != nil {
				t.Fatal(err)
			}
			for k := range path {
				path[k][k%HashSize] ^= 0x01
				got, err := RootFromAuditPath(leaf, i, size, path)
				if err != nil {
					t.Fatalf("size %d leaf %d element %d: %v", size, i, k, err)
				}
				if got == root {
					t.Errorf("size %d leaf %d: tampered element %d still yields the root", size, i, k)
				}
				if tdproof.VerifyInclusion(hasher, i, size, leaf[:], path, root[:]) == nil {
					t.Errorf("size %d leaf %d: transparency-dev accepts tampered element %d", size, i, k)
				}
				path[k][k%HashSize] ^= 0x01
			}
			bad := leaf
			bad[0] ^= 0x80
			if got, err := RootFromAuditPath(bad, i, size, path); err != nil || got == root {
				t.Errorf("size %d leaf %d: tampered leaf gives %x, %v", size, i, got, err)
			}
			// The same path for a neighbouring index must not verify either
			// (when the length happens to fit).
			if j := i ^ 1; j < size {
				if got, err := RootFromAuditPath(leaf, j, size, path); err == nil && got == root {
					t.Errorf("size %d: path of leaf %d verifies at index %d", size, i, j)
				}
			}
		}
	}
}

func TestMerkleMemoryBytes(t *testing.T) {
	for _, n := range []int{1, 2, 3, 1000} {
		tr, err := NewTree(merkleTestHashes(n))
		if err != nil {
			t.Fatal(err)
		}
		// All levels together hold just under 2n nodes.
		lo, hi := n*HashSize, (2*n+64)*HashSize+1024
		if got := tr.MemoryBytes(); got < lo || got > hi {
			t.Errorf("MemoryBytes() of %d leaves = %d, want in [%d, %d]", n, got, lo, hi)
		}
	}
}

func TestMerkleRootAllocations(t *testing.T) {
	hashes := merkleTestHashes(1000)
	if a := testing.AllocsPerRun(10, func() { _, _ = Root(hashes) }); a != 0 {
		t.Errorf("Root allocates %v times, want 0", a)
	}
	tr, err := NewTree(hashes)
	if err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(10, func() { _, _ = NewTree(hashes) }); a > 3 {
		t.Errorf("NewTree allocates %v times, want <= 3", a)
	}
	if a := testing.AllocsPerRun(10, func() { _, _ = tr.AuditPath(417) }); a > 2 {
		t.Errorf("AuditPath allocates %v times, want <= 2", a)
	}
}
