package positions

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"
)

func randomTags(t *testing.T, n int) []Tag {
	t.Helper()
	b := make([]byte, n*8)
	if _, err := crand.Read(b); err != nil {
		t.Fatal(err)
	}
	tags := make([]Tag, n)
	for i := range tags {
		tags[i] = Tag(binary.BigEndian.Uint64(b[i*8:]))
	}
	return tags
}

// TestFilterNoFalseNegatives fills a filter to its capacity (10 bits a
// hash): every tag added is held, and new tags are held (looked up for
// nothing) at about 1 %, as operations.md says.
func TestFilterNoFalseNegatives(t *testing.T) {
	t.Parallel()
	f := NewFilter(1)
	capacity := len(f.words) * 64 / 10
	added := randomTags(t, capacity)
	for _, tag := range added {
		f.Add(tag)
	}
	for i, tag := range added {
		if !f.MayHold(tag) {
			t.Fatalf("tag %d of %d added is not held", i, len(added))
		}
	}
	fresh := randomTags(t, 200_000)
	held := 0
	for _, tag := range fresh {
		if f.MayHold(tag) {
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

// TestFilterAddEntries: adding a batch's entries sets the same bits as
// adding their tags one by one, whatever the batch's length against the
// group the loads are made in.
func TestFilterAddEntries(t *testing.T) {
	t.Parallel()
	one, grouped := NewFilter(1), NewFilter(1)
	tags := randomTags(t, 20_000)
	for _, n := range []int{0, 1, 15, 16, 17, 9_375, 10_576} {
		es := make([]entry, n)
		for i := range es {
			es[i] = entry{tag: uint64(tags[i]), at: uint64(i)}
			one.Add(tags[i])
		}
		grouped.addEntries(es)
		tags = tags[n:]
	}
	for i := range one.words {
		if a, b := one.words[i].Load(), grouped.words[i].Load(); a != b {
			t.Fatalf("word %d: %x one by one, %x by entries", i, a, b)
		}
	}
	var nilFilter *Filter
	nilFilter.addEntries([]entry{{tag: 1}})
}

// TestFilterConcurrent: the index writer adds while lookups check; a tag
// added before a check began is held (run with -race).
func TestFilterConcurrent(t *testing.T) {
	t.Parallel()
	f := NewFilter(1)
	tags := randomTags(t, 100_000)
	var wg sync.WaitGroup
	done := make(chan int, len(tags))
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i, tag := range tags {
			f.Add(tag)
			done <- i
		}
	}()
	for i := range done {
		if !f.MayHold(tags[i]) {
			t.Fatalf("tag %d added but not held", i)
		}
	}
	wg.Wait()
}

// TestFilterOff: with no filter every tag may be held, so every hash is
// looked up.
func TestFilterOff(t *testing.T) {
	t.Parallel()
	f := NewFilter(0)
	if f != nil {
		t.Fatal("a filter of 0 MiB is not off")
	}
	f.Add(1)
	if !f.MayHold(42) {
		t.Fatal("no filter answered no")
	}
}

// TestAttachFilter: an attached filter holds the tag of every entry the
// index held when it was attached and of every entry added after, each
// before a lookup can find it.
func TestAttachFilter(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 8))
	pool := hashPool(rng, 500)
	ti := openTestIndex(t, 64, nil)
	ti.opts.Tag = SHA256Tag
	ti.reopen()
	ti.add(randomBatches(rng, pool, 20), true)
	if err := ti.ix.Flush(); err != nil {
		t.Fatal(err)
	}
	ti.add(randomBatches(rng, pool, 3), true)
	var entries int
	for _, hs := range ti.batches {
		entries += len(hs) / hashSize
	}
	f := NewFilter(1)
	held, err := ti.ix.AttachFilter(f)
	if err != nil || held != entries {
		t.Fatalf("filter filled with %d tags (%v), want %d", held, err, entries)
	}
	fresh := hashPool(rng, 50)
	hs := make([]byte, 0, len(fresh)*hashSize)
	for _, h := range fresh {
		hs = append(hs, h[:]...)
	}
	ti.add([][]byte{hs}, true)
	if err := ti.ix.Each(func(tag Tag) {
		if !f.MayHold(tag) {
			t.Errorf("entry under tag %016x is held but not in the filter", tag)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if held, err := ti.ix.AttachFilter(nil); err != nil || held != 0 {
		t.Fatalf("no filter filled with %d tags (%v)", held, err)
	}
}
