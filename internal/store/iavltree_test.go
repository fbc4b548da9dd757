package store

// IAVL trees (cosmos/iavl MutableTree) on the adapter: saved versions kept
// across a reopen (an empty one too), ICS23 proofs against them, and two
// trees under different prefixes of one database.

import (
	"bytes"
	"fmt"
	"maps"
	"testing"

	"github.com/cosmos/iavl"
	ics23 "github.com/cosmos/ics23/go"
)

func TestIAVLTreeOverBadger(t *testing.T) {
	dir := t.TempDir()
	bdb := openTestBadger(t, dir)
	tree := iavl.NewMutableTree(NewIAVLDB(bdb, []byte("s/")), 1000, false, iavl.NewNopLogger())
	// A second tree in the same badger DB must neither see nor disturb the first.
	neighbour := iavl.NewMutableTree(NewIAVLDB(bdb, []byte("t/")), 1000, false, iavl.NewNopLogger())

	const versions, perVersion = 5, 200
	key := func(i int) []byte { return fmt.Appendf(nil, "key-%05d", i) }
	hashes := map[int64][]byte{}
	snapshots := map[int64]map[string]string{}
	state := map[string]string{}
	for v := 1; v <= versions; v++ {
		for i := (v - 1) * perVersion; i < v*perVersion; i++ {
			val := fmt.Sprintf("val-%d-v%d", i, v)
			if _, err := tree.Set(key(i), []byte(val)); err != nil {
				t.Fatal(err)
			}
			state[string(key(i))] = val
		}
		if v > 1 { // rewrite and delete a few older keys, so old versions differ from new ones
			i := (v - 2) * perVersion
			val := fmt.Sprintf("rewritten-v%d", v)
			if _, err := tree.Set(key(i), []byte(val)); err != nil {
				t.Fatal(err)
			}
			state[string(key(i))] = val
			if _, _, err := tree.Remove(key(i + 1)); err != nil {
				t.Fatal(err)
			}
			delete(state, string(key(i+1)))
		}
		hash, version, err := tree.SaveVersion()
		if err != nil {
			t.Fatal(err)
		}
		if version != int64(v) {
			t.Fatalf("SaveVersion version = %d, want %d", version, v)
		}
		hashes[version] = hash
		snapshots[version] = maps.Clone(state)

		if _, err := neighbour.Set(key(v), []byte("neighbour")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := neighbour.SaveVersion(); err != nil {
			t.Fatal(err)
		}
	}
	latestHash := tree.Hash()
	must(t, tree.Close())
	must(t, neighbour.Close())
	must(t, bdb.Close())

	bdb = openTestBadger(t, dir)
	tree = iavl.NewMutableTree(NewIAVLDB(bdb, []byte("s/")), 1000, false, iavl.NewNopLogger())
	latest, err := tree.LoadVersion(0)
	if err != nil {
		t.Fatal(err)
	}
	if latest != versions {
		t.Fatalf("LoadVersion = %d, want %d", latest, versions)
	}
	if !bytes.Equal(tree.Hash(), latestHash) || !bytes.Equal(latestHash, hashes[versions]) {
		t.Fatalf("hash after reopen %X, before %X", tree.Hash(), latestHash)
	}
	if n := tree.Size(); n != int64(len(state)) {
		t.Fatalf("tree size %d, want %d", n, len(state))
	}

	// Fast-node range queries go through the adapter's iterators; an inverted
	// range is empty rather than an error.
	itr, err := tree.Iterator(key(10), key(20), false)
	if err != nil {
		t.Fatal(err)
	}
	var desc []string
	for ; itr.Valid(); itr.Next() {
		desc = append(desc, string(itr.Key()))
	}
	_ = itr.Close()
	if len(desc) != 10 || desc[0] != string(key(19)) || desc[9] != string(key(10)) {
		t.Fatalf("descending range = %q", desc)
	}
	itr, err = tree.Iterator(key(20), key(10), true)
	if err != nil {
		t.Fatalf("inverted range: %v", err)
	}
	if itr.Valid() {
		t.Fatal("inverted range not empty")
	}
	_ = itr.Close()

	for v := int64(1); v <= versions; v++ {
		imm, err := tree.GetImmutable(v)
		if err != nil {
			t.Fatalf("GetImmutable(%d): %v", v, err)
		}
		root := imm.Hash()
		if !bytes.Equal(root, hashes[v]) {
			t.Fatalf("version %d hash %X, saved %X", v, root, hashes[v])
		}
		for _, i := range []int{0, 1, int(v)*perVersion - 1} {
			k := key(i)
			want, present := snapshots[v][string(k)]
			got, err := imm.Get(k)
			if err != nil {
				t.Fatal(err)
			}
			if !present {
				if got != nil {
					t.Fatalf("v%d %s = %q, want absent", v, k, got)
				}
				proof, err := imm.GetNonMembershipProof(k)
				if err != nil {
					t.Fatal(err)
				}
				if !ics23.VerifyNonMembership(ics23.IavlSpec, root, proof, k) {
					t.Fatalf("v%d non-membership proof of %s does not verify", v, k)
				}
				continue
			}
			if string(got) != want {
				t.Fatalf("v%d %s = %q, want %q", v, k, got, want)
			}
			proof, err := imm.GetMembershipProof(k)
			if err != nil {
				t.Fatal(err)
			}
			if !ics23.VerifyMembership(ics23.IavlSpec, root, proof, k, []byte(want)) {
				t.Fatalf("v%d membership proof of %s does not verify", v, k)
			}
			if ics23.VerifyMembership(ics23.IavlSpec, root, proof, k, []byte(want+"x")) {
				t.Fatalf("v%d membership proof of %s verifies a wrong value", v, k)
			}
		}
		// A key only added in a later version is absent here.
		absent := key(versions * perVersion)
		if v < versions {
			absent = key(int(v) * perVersion)
		}
		proof, err := imm.GetNonMembershipProof(absent)
		if err != nil {
			t.Fatal(err)
		}
		if !ics23.VerifyNonMembership(ics23.IavlSpec, root, proof, absent) {
			t.Fatalf("v%d non-membership proof of %s does not verify", v, absent)
		}
	}

	neighbour = iavl.NewMutableTree(NewIAVLDB(bdb, []byte("t/")), 1000, false, iavl.NewNopLogger())
	if n, err := neighbour.LoadVersion(0); err != nil || n != versions {
		t.Fatalf("neighbour LoadVersion = %d, %v", n, err)
	}
	if neighbour.Size() != versions {
		t.Fatalf("neighbour size %d, want %d", neighbour.Size(), versions)
	}
}

// IAVL marks an empty tree's root with an empty value and needs it back as
// non-nil after a reopen.
func TestIAVLEmptyVersionSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	bdb := openTestBadger(t, dir)
	tree := iavl.NewMutableTree(NewIAVLDB(bdb, []byte("s/")), 100, false, iavl.NewNopLogger())
	for range 2 {
		if _, _, err := tree.SaveVersion(); err != nil {
			t.Fatal(err)
		}
	}
	must(t, tree.Close())
	must(t, bdb.Close())

	bdb = openTestBadger(t, dir)
	tree = iavl.NewMutableTree(NewIAVLDB(bdb, []byte("s/")), 100, false, iavl.NewNopLogger())
	if _, err := tree.LoadVersion(0); err != nil {
		t.Fatal(err)
	}
	if !tree.VersionExists(2) {
		t.Fatal("version 2 missing")
	}
	imm, err := tree.GetImmutable(1)
	if err != nil {
		t.Fatal(err)
	}
	if imm.Size() != 0 {
		t.Fatalf("empty version has size %d", imm.Size())
	}
}
