package app

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

// TestDecodedCache: an entry is found by equal bytes only, a collision
// replaces the entry it meets, and the cache's count of bytes follows
// adds, replacements, forgets and the bound.
func TestDecodedCache(t *testing.T) {
	c := newDecodedCache(100)
	raw := []byte("transaction one")
	if tx, _ := c.get(raw); tx != nil {
		t.Fatal("an empty cache holds a transaction")
	}
	one := &decodedTx{}
	_, key := c.get(raw)
	c.add(key, raw, one)
	raw[0] = 'T' // the caller reuses its buffer
	if tx, _ := c.get(raw); tx != nil {
		t.Fatal("other bytes found the entry of the bytes it was decoded from")
	}
	raw[0] = 't'
	if tx, _ := c.get(bytes.Clone(raw)); tx != one {
		t.Fatal("equal bytes did not find their entry")
	}
	// Other bytes under the same key, as a collision would put them.
	other := []byte("transaction two, longer")
	two := &decodedTx{}
	c.add(key, other, two)
	if tx, _ := c.get(raw); tx != nil {
		t.Fatal("a replaced entry is still found")
	}
	if c.bytes != 2*len(other) {
		t.Fatalf("bytes %d after a replacement, want %d", c.bytes, 2*len(other))
	}
	c.forget(one) // no longer held: changes nothing
	if c.bytes != 2*len(other) || len(c.txs) != 1 {
		t.Fatalf("forgetting a replaced entry changed the cache: %d bytes, %d entries", c.bytes, len(c.txs))
	}
	c.forget(two)
	if c.bytes != 0 || len(c.txs) != 0 {
		t.Fatalf("after forget: %d bytes, %d entries", c.bytes, len(c.txs))
	}
	big := make([]byte, 30) // counted 60: its copy and its decoded form
	for i := range 3 {
		big[0] = byte(i)
		tx, k := c.get(big)
		if tx != nil {
			t.Fatal("new bytes found an entry")
		}
		c.add(k, big, &decodedTx{})
		if c.bytes > 100 && len(c.txs) > 1 {
			t.Fatalf("%d bytes in %d entries, bound 100", c.bytes, len(c.txs))
		}
	}
}

// BenchmarkDecodedCacheKey is finding a batch transaction of 800 KB (a
// 25,000-hash batch) in the decoded cache, against the SHA-256 of its
// bytes, the key before.
func BenchmarkDecodedCacheKey(b *testing.B) {
	raw := make([]byte, 800<<10)
	if _, err := rand.Read(raw); err != nil {
		b.Fatal(err)
	}
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			sha256.Sum256(raw)
		}
	})
	b.Run("maphash-equal", func(b *testing.B) {
		c := newDecodedCache(DefaultTxCacheBytes)
		_, key := c.get(raw)
		c.add(key, raw, &decodedTx{})
		query := bytes.Clone(raw)
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if tx, _ := c.get(query); tx == nil {
				b.Fatal("not found")
			}
		}
	})
}
