package node

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"testing"
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
