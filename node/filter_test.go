package node

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"path/filepath"
	"sync"
	"testing"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

func randomTags(t *testing.T, n int) [][tagSize]byte {
	t.Helper()
	b := make([]byte, n*tagSize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	tags := make([][tagSize]byte, n)
	for i := range tags {
		tags[i] = [tagSize]byte(b[i*tagSize:])
	}
	return tags
}

// TestAnchoredFilterNoFalseNegatives fills a filter to its capacity (10 bits
// a hash): every tag added is held, and new tags are held (looked up for
// nothing) at about 1 %, as operations.md says.
func TestAnchoredFilterNoFalseNegatives(t *testing.T) {
	f := newAnchoredFilter(1)
	capacity := len(f.words) * 64 / 10
	added := randomTags(t, capacity)
	for _, tag := range added {
		f.add(tag)
	}
	for i, tag := range added {
		if !f.mayHold(tag) {
			t.Fatalf("tag %d of %d added is not held", i, len(added))
		}
	}
	fresh := randomTags(t, 200_000)
	held := 0
	for _, tag := range fresh {
		if f.mayHold(tag) {
			held++
		}
	}
	// A blocked filter of 7 bits a tag holds about 1 % at 10 bits a tag
	// (0.8 % unblocked); 2 % would mean the bits are not independent.
	rate := float64(held) / float64(len(fresh))
	t.Logf("false positive rate at capacity (%d tags in %d bits): %.3f %%", capacity, len(f.words)*64, 100*rate)
	if rate > 0.02 {
		t.Fatalf("false positive rate %.3f %% at capacity, want at most 2 %%", 100*rate)
	}
	if rate == 0 {
		t.Fatal("no false positive at capacity: the filter holds nothing of what it was given")
	}
}

// TestAnchoredFilterConcurrent: the index writer adds while group commits
// check; a tag added before a check began is held (run with -race).
func TestAnchoredFilterConcurrent(t *testing.T) {
	f := newAnchoredFilter(1)
	tags := randomTags(t, 100_000)
	var wg sync.WaitGroup
	done := make(chan int, len(tags))
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i, tag := range tags {
			f.add(tag)
			done <- i
		}
	}()
	for i := range done {
		if !f.mayHold(tags[i]) {
			t.Fatalf("tag %d added but not held", i)
		}
	}
	wg.Wait()
}

// TestAnchoredFilterOff: with no filter every tag may be held, so every
// hash is looked up.
func TestAnchoredFilterOff(t *testing.T) {
	f := newAnchoredFilter(0)
	if f != nil {
		t.Fatal("a filter of 0 MiB is not off")
	}
	f.add([tagSize]byte{1})
	if !f.mayHold([tagSize]byte(binary.BigEndian.AppendUint64(nil, 42))) {
		t.Fatal("no filter answered no")
	}
}

// TestSeparateAnchoredKeepsOrder: hashes the filter lets through and the
// index does not hold stay in the order submitted, among those it stopped,
// and a hash anchored is still answered anchored.
func TestSeparateAnchoredKeepsOrder(t *testing.T) {
	db, err := store.OpenBadger(filepath.Join(t.TempDir(), "credence"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ix, err := newIndexer(db, nil, testLogger(t), 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.leaves.close()
	ix.anchored = newAnchoredFilter(1)
	var hs [4]hash
	for i := range hs {
		hs[i] = hash(sha256.Sum256([]byte{byte(i)}))
	}
	// hs[3] is anchored; hs[0] passes the filter as a false positive would.
	if err := ix.writePositions([]app.CommittedBatch{{Record: &proof.BatchRecord{Issuer: "uni-a", Seq: 1, Height: 1}, Hashes: hs[3][:]}}); err != nil {
		t.Fatal(err)
	}
	ix.anchored.add(leafTag(hs[0][:]))
	p := &pipeline{db: db, waiting: map[string]map[hash]struct{}{"uni-a": {}}, anchored: ix.anchored, leaves: ix.leaves}
	var claimed []candidate
	for i, h := range hs {
		p.waiting["uni-a"][h] = struct{}{}
		claimed = append(claimed, candidate{issuer: "uni-a", idx: uint64(i), hash: h})
	}
	results := make([]submitResult, 1)
	fresh, err := p.separateAnchored(claimed, results)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 3 || fresh[0].idx != 0 || fresh[1].idx != 1 || fresh[2].idx != 2 {
		t.Fatalf("fresh hashes %v, want indexes 0, 1, 2 in order", fresh)
	}
	if k := results[0].known; len(k) != 1 || k[0].Index != 3 || k[0].State != pb.HashState_HASH_STATE_ANCHORED {
		t.Fatalf("known %v, want index 3 anchored", k)
	}
	if _, ok := p.waiting["uni-a"][hs[3]]; ok {
		t.Fatal("the anchored hash is still claimed")
	}
}
