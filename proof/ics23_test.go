package proof

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cosmos/iavl"
	iavldb "github.com/cosmos/iavl/db"
	ics23 "github.com/cosmos/ics23/go"
)

// ics23Check is what the verifier did before ics23.go: the gogoproto
// decoding of github.com/cosmos/ics23/go, its canonical re-encoding, the
// plain exist or nonexist form, and ics23's own verification.
func ics23Check(root, proofBytes, key, value []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false // ics23 panics on some malformed neighbour paths
		}
	}()
	var cp ics23.CommitmentProof
	if len(proofBytes) > maxProofBytes || cp.Unmarshal(proofBytes) != nil {
		return false
	}
	if canon, err := cp.Marshal(); err != nil || !bytes.Equal(canon, proofBytes) {
		return false
	}
	if value != nil {
		return cp.GetExist() != nil && ics23.VerifyMembership(ics23.IavlSpec, root, &cp, key, value)
	}
	return cp.GetNonexist() != nil && ics23.VerifyNonMembership(ics23.IavlSpec, root, &cp, key)
}

func ours(root, proofBytes, key, value []byte) bool {
	if value != nil {
		return membership(root, proofBytes, key, value) == nil
	}
	return nonMembership(root, proofBytes, key) == nil
}

type treeProof struct {
	name              string
	root, proof       []byte
	key, value        []byte // value nil: a non-membership proof
	nonexistKeyOffset int    // where a non-existence proof's own key is, else -1
}

// iavlProofs builds IAVL trees of several sizes over several versions
// (so that node versions and heights vary) and proves present and absent
// keys, the first and last included.
func iavlProofs(t *testing.T, rng *rand.Rand) []treeProof {
	t.Helper()
	var out []treeProof
	for _, size := range []int{1, 2, 3, 7, 64, 301} {
		tree := iavl.NewMutableTree(iavldb.NewMemDB(), 0, true, iavl.NewNopLogger())
		var keys [][]byte
		for v := 0; v < 3; v++ {
			for i := 0; i < size/3+1; i++ {
				k := make([]byte, 2+rng.IntN(6))
				binary.BigEndian.PutUint16(k, uint16(rng.IntN(60000)+1000))
				for j := 2; j < len(k); j++ {
					k[j] = byte(rng.Uint32())
				}
				val := make([]byte, 1+rng.IntN(40))
				for j := range val {
					val[j] = byte(rng.Uint32())
				}
				if _, err := tree.Set(k, val); err != nil {
					t.Fatal(err)
				}
				keys = append(keys, k)
			}
			if _, _, err := tree.SaveVersion(); err != nil {
				t.Fatal(err)
			}
		}
		it, err := tree.GetImmutable(tree.Version())
		if err != nil {
			t.Fatal(err)
		}
		root := it.Hash()
		for i, k := range keys {
			if i%max(1, len(keys)/8) != 0 && i != len(keys)-1 {
				continue
			}
			val, err := it.Get(k)
			if err != nil || val == nil {
				t.Fatalf("get %x: %v", k, err)
			}
			cp, err := it.GetMembershipProof(k)
			if err != nil {
				t.Fatal(err)
			}
			b, err := cp.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, treeProof{name: fmt.Sprintf("size %d: key %x", size, k), root: root, proof: b, key: k, value: val, nonexistKeyOffset: -1})
		}
		// Absent keys: before every key (2 bytes under 1000), after every
		// key, and between keys.
		absent := [][]byte{{0x00, 0x01}, {0xff, 0xff, 0xff}}
		for i := 0; i < 6; i++ {
			k := append(append([]byte(nil), keys[rng.IntN(len(keys))]...), 0x00, byte(i))
			absent = append(absent, k)
		}
		for _, k := range absent {
			if has, _ := it.Has(k); has {
				continue
			}
			cp, err := it.GetNonMembershipProof(k)
			if err != nil {
				t.Fatal(err)
			}
			b, err := cp.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			// CommitmentProof{2: NonExistenceProof{1: key, ...}}: the key
			// follows two tags and two lengths.
			off := bytes.Index(b, k)
			out = append(out, treeProof{name: fmt.Sprintf("size %d: absent %x", size, k), root: root, proof: b, key: k, nonexistKeyOffset: off})
		}
	}
	return out
}

// TestICS23AgainstCosmos: the IAVL proof check written here from the
// ICS23 specification agrees with github.com/cosmos/ics23/go (as the
// verifier used it) on real IAVL proofs, on every single-byte change of
// them, on the wrong key or value, and on a proof of one kind presented
// as the other. The one difference: a non-existence proof must carry the
// key it is about (ics23 ignores that field).
func TestICS23AgainstCosmos(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	proofs := iavlProofs(t, rng)
	if len(proofs) < 40 {
		t.Fatalf("only %d proofs", len(proofs))
	}
	var mutations, refused int
	for _, p := range proofs {
		if !ics23Check(p.root, p.proof, p.key, p.value) {
			t.Fatalf("%s: ics23 refuses the tree's own proof", p.name)
		}
		if err := func() error {
			if p.value != nil {
				return membership(p.root, p.proof, p.key, p.value)
			}
			return nonMembership(p.root, p.proof, p.key)
		}(); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		// The other kind, another key, another value, another root.
		other := append(append([]byte(nil), p.key...), 1)
		cases := []struct {
			name             string
			root, key, value []byte
		}{
			{"other key", p.root, other, p.value},
			{"other root", append([]byte{1}, p.root[1:]...), p.key, p.value},
		}
		if p.value != nil {
			cases = append(cases, struct {
				name             string
				root, key, value []byte
			}{"other value", p.root, p.key, append([]byte{p.value[0] ^ 1}, p.value[1:]...)},
				struct {
					name             string
					root, key, value []byte
				}{"as absence", p.root, p.key, nil})
		} else {
			cases = append(cases, struct {
				name             string
				root, key, value []byte
			}{"as presence", p.root, p.key, []byte{1}})
		}
		for _, c := range cases {
			got, want := ours(c.root, p.proof, c.key, c.value), ics23Check(c.root, p.proof, c.key, c.value)
			// ics23 takes a non-existence proof for any key between the
			// same neighbours; here it is only for the key it names.
			if got || got != want && !(p.value == nil && c.name == "other key") {
				t.Errorf("%s, %s: ours %v, ics23 %v", p.name, c.name, got, want)
			}
		}
		for i := range p.proof {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				m := append([]byte(nil), p.proof...)
				m[i] ^= x
				got, want := ours(p.root, m, p.key, p.value), ics23Check(p.root, m, p.key, p.value)
				mutations++
				inKey := p.nonexistKeyOffset >= 0 && i >= p.nonexistKeyOffset && i < p.nonexistKeyOffset+len(p.key)
				if got != want && !(inKey && !got) {
					t.Errorf("%s, byte %d ^ %#x: ours %v, ics23 %v", p.name, i, x, got, want)
				}
				if !got {
					refused++
				}
			}
		}
		// Truncated and extended.
		for _, m := range [][]byte{p.proof[:len(p.proof)-1], append(append([]byte(nil), p.proof...), 0)} {
			if got, want := ours(p.root, m, p.key, p.value), ics23Check(p.root, m, p.key, p.value); got != want || got {
				t.Errorf("%s, length %d: ours %v, ics23 %v", p.name, len(m), got, want)
			}
		}
	}
	t.Logf("%d proofs, %d single-byte mutations (%d refused)", len(proofs), mutations, refused)
}

// The receipts' batch proofs, from real chains, verify here as before.
func TestICS23Vectors(t *testing.T) {
	for _, v := range validVectors(t) {
		r := v.receipt(t)
		sh, err := stateHeader(r.Batch.Height, r.SignedHeader, v.trust)
		if err != nil {
			t.Fatal(err)
		}
		value, err := deterministic.Marshal(r.Batch)
		if err != nil {
			t.Fatal(err)
		}
		key := BatchKey(r.Batch.Issuer, r.Batch.Seq)
		if !ics23Check(sh.header.appHash, r.BatchProof, key, value) || !ours(sh.header.appHash, r.BatchProof, key, value) {
			t.Errorf("%s: batch proof", v.name)
		}
	}
}

// TestICS23NeighboursMustBeAdjacent: a non-existence proof built from
// genuine existence proofs of keys that are not neighbours (a key lies
// between them) is refused by both, and the true neighbours accepted.
func TestICS23NeighboursMustBeAdjacent(t *testing.T) {
	tree := iavl.NewMutableTree(iavldb.NewMemDB(), 0, true, iavl.NewNopLogger())
	var keys [][]byte
	for i := 0; i < 50; i++ {
		k := []byte{byte(10 + 4*i)}
		keys = append(keys, k)
		if _, err := tree.Set(k, []byte{byte(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := tree.SaveVersion(); err != nil {
		t.Fatal(err)
	}
	it, err := tree.GetImmutable(tree.Version())
	if err != nil {
		t.Fatal(err)
	}
	root := it.Hash()
	exist := func(k []byte) *ics23.ExistenceProof {
		cp, err := it.GetMembershipProof(k)
		if err != nil {
			t.Fatal(err)
		}
		return cp.GetExist()
	}
	absent := func(key []byte, left, right *ics23.ExistenceProof) []byte {
		cp := &ics23.CommitmentProof{Proof: &ics23.CommitmentProof_Nonexist{Nonexist: &ics23.NonExistenceProof{Key: key, Left: left, Right: right}}}
		b, err := cp.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for i := 1; i+2 < len(keys); i += 7 {
		k := []byte{keys[i][0] + 1} // between keys[i] and keys[i+1]
		cases := []struct {
			name  string
			proof []byte
			want  bool
		}{
			{"neighbours", absent(k, exist(keys[i]), exist(keys[i+1])), true},
			{"left too far", absent(k, exist(keys[i-1]), exist(keys[i+1])), false},
			{"right too far", absent(k, exist(keys[i]), exist(keys[i+2])), false},
			{"left only", absent(k, exist(keys[i]), nil), false},
			{"right only", absent(k, nil, exist(keys[i+1])), false},
			{"swapped", absent(k, exist(keys[i+1]), exist(keys[i])), false},
		}
		for _, c := range cases {
			got, ref := ours(root, c.proof, k, nil), ics23Check(root, c.proof, k, nil)
			if got != c.want || ref != c.want {
				t.Errorf("key %x, %s: ours %v, ics23 %v, want %v", k, c.name, got, ref, c.want)
			}
		}
	}
	// Before the first key and after the last, one neighbour suffices.
	if !ours(root, absent([]byte{0}, nil, exist(keys[0])), []byte{0}, nil) ||
		!ours(root, absent([]byte{255}, exist(keys[len(keys)-1]), nil), []byte{255}, nil) {
		t.Error("absence at the edges refused")
	}
	if ours(root, absent([]byte{0}, nil, exist(keys[1])), []byte{0}, nil) {
		t.Error("absence before the first key proven with the second")
	}
}
