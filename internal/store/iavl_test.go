package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	iavldb "github.com/cosmos/iavl/db"
	"github.com/dgraph-io/badger/v4"
)

func openTestBadger(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := OpenBadger(dir, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("OpenBadger: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() }) // second Close after an explicit one is harmless
	return db
}

// write applies kvs through a fresh batch; a nil value deletes.
func write(t *testing.T, db iavldb.DB, kvs map[string][]byte) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	for k, v := range kvs {
		var err error
		if v == nil {
			err = b.Delete([]byte(k))
		} else {
			err = b.Set([]byte(k), v)
		}
		if err != nil {
			t.Fatalf("batch op %q: %v", k, err)
		}
	}
	if err := b.Write(); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

type kv struct{ k, v string }

func collect(t *testing.T, db iavldb.DB, start, end []byte, reverse bool) []kv {
	t.Helper()
	open := db.Iterator
	if reverse {
		open = db.ReverseIterator
	}
	it, err := open(start, end)
	if err != nil {
		t.Fatalf("iterator(%q, %q): %v", start, end, err)
	}
	if s, e := it.Domain(); !bytes.Equal(s, start) || !bytes.Equal(e, end) {
		t.Errorf("Domain() = %q, %q; want %q, %q", s, e, start, end)
	}
	var got []kv
	for ; it.Valid(); it.Next() {
		got = append(got, kv{string(it.Key()), string(it.Value())})
	}
	if err := it.Error(); err != nil {
		t.Fatalf("iterator error: %v", err)
	}
	if err := it.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return got
}

func kvsOf(keys ...string) []kv {
	out := make([]kv, 0, len(keys))
	for _, k := range keys {
		out = append(out, kv{k, "v" + k})
	}
	return out
}

func valuesFor(keys ...string) map[string][]byte {
	m := make(map[string][]byte, len(keys))
	for _, k := range keys {
		m[k] = []byte("v" + k)
	}
	return m
}

func TestIteratorRanges(t *testing.T) {
	bdb := openTestBadger(t, t.TempDir())
	root := NewIAVLDB(bdb, nil) // whole keyspace, to plant raw neighbour keys
	nsA := NewIAVLDB(bdb, []byte("a"))
	nsB := NewIAVLDB(bdb, []byte("b"))
	nsFF := NewIAVLDB(bdb, []byte("c\xff"))
	nsEmpty := NewIAVLDB(bdb, []byte("e"))
	nsAllFF := NewIAVLDB(bdb, []byte("\xff\xff"))

	write(t, nsA, valuesFor("k1", "k2", "k3", "k5"))
	write(t, nsB, valuesFor("k0", "k9", "a"))
	write(t, nsFF, valuesFor("x", "\xff", "\xff\xff"))
	write(t, nsAllFF, valuesFor("a", "\xff"))
	write(t, root, map[string][]byte{
		"`z":    []byte("below a"),
		"a":     []byte("the prefix itself: an empty key of namespace a"),
		"b":     []byte("successor of prefix a"),
		"c\xfe": []byte("below c\xff"),
		"c\xff": []byte("the prefix itself"),
		"d":     []byte("successor of c\xff; iavl's CpIncr would give d\\x00 and admit it"),
		"d\x00": []byte("after d"),
		"d\xff": []byte("below e"),
		"e":     []byte("the prefix itself: namespace e holds nothing else"),
		"f":     []byte("after e"),
		// Below \xff\xff, whose keys stay the greatest in the DB so that
		// nil-end reverse iteration starts at the very end of the keyspace.
		"\xff": []byte("below \xff\xff"),
	})

	tests := []struct {
		name       string
		db         iavldb.DB
		start, end []byte
		want       []kv // ascending
	}{
		{"nil/nil", nsA, nil, nil, kvsOf("k1", "k2", "k3", "k5")},
		{"start only", nsA, []byte("k2"), nil, kvsOf("k2", "k3", "k5")},
		{"start between keys", nsA, []byte("k4"), nil, kvsOf("k5")},
		{"end only, exact key excluded", nsA, nil, []byte("k3"), kvsOf("k1", "k2")},
		{"end between keys", nsA, nil, []byte("k4"), kvsOf("k1", "k2", "k3")},
		{"start is first key, end is last key", nsA, []byte("k1"), []byte("k5"), kvsOf("k1", "k2", "k3")},
		{"bounds outside keys", nsA, []byte("k0"), []byte("k9"), kvsOf("k1", "k2", "k3", "k5")},
		{"single key range", nsA, []byte("k2"), []byte("k2\x00"), kvsOf("k2")},
		{"start past all keys", nsA, []byte("k6"), nil, nil},
		{"end before all keys", nsA, nil, []byte("k0"), nil},
		{"start == end", nsA, []byte("k2"), []byte("k2"), nil},
		{"start > end", nsA, []byte("k5"), []byte("k1"), nil},
		{"end beyond namespace bytes", nsA, []byte("k3"), []byte("\xff\xff"), kvsOf("k3", "k5")},
		{"other namespace sees only its keys", nsB, nil, nil, kvsOf("a", "k0", "k9")},
		{"empty namespace between populated ones", nsEmpty, nil, nil, nil},
		{"empty namespace with bounds", nsEmpty, []byte("a"), []byte("zz"), nil},
		{"prefix ending in 0xff", nsFF, nil, nil, kvsOf("x", "\xff", "\xff\xff")},
		{"prefix ending in 0xff, start 0xff", nsFF, []byte("\xff"), nil, kvsOf("\xff", "\xff\xff")},
		{"prefix ending in 0xff, end 0xff", nsFF, nil, []byte("\xff"), kvsOf("x")},
		{"all-0xff prefix", nsAllFF, nil, nil, kvsOf("a", "\xff")},
		{"all-0xff prefix, start", nsAllFF, []byte("b"), nil, kvsOf("\xff")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := collect(t, tc.db, tc.start, tc.end, false); !slices.Equal(got, tc.want) {
				t.Errorf("forward = %q, want %q", got, tc.want)
			}
			want := slices.Clone(tc.want)
			slices.Reverse(want)
			if got := collect(t, tc.db, tc.start, tc.end, true); !slices.Equal(got, want) {
				t.Errorf("reverse = %q, want %q", got, want)
			}
		})
	}
}

func TestIteratorRejectsEmptyBounds(t *testing.T) {
	db := NewIAVLDB(openTestBadger(t, t.TempDir()), []byte("p"))
	for _, b := range [][2][]byte{{{}, nil}, {nil, {}}, {{}, {}}} {
		if _, err := db.Iterator(b[0], b[1]); err == nil {
			t.Errorf("Iterator(%q, %q): want error", b[0], b[1])
		}
		if _, err := db.ReverseIterator(b[0], b[1]); err == nil {
			t.Errorf("ReverseIterator(%q, %q): want error", b[0], b[1])
		}
	}
}

func TestIteratorKeysAndValuesOutliveNext(t *testing.T) {
	db := NewIAVLDB(openTestBadger(t, t.TempDir()), []byte("p"))
	keys := make([]string, 300) // more than badger's prefetch window
	for i := range keys {
		keys[i] = fmt.Sprintf("key%04d", i)
	}
	write(t, db, valuesFor(keys...))

	it, err := db.Iterator(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ks, vs [][]byte
	for ; it.Valid(); it.Next() {
		ks = append(ks, it.Key())
		vs = append(vs, it.Value())
	}
	_ = it.Close()
	if len(ks) != len(keys) {
		t.Fatalf("got %d keys, want %d", len(ks), len(keys))
	}
	for i, k := range keys {
		if string(ks[i]) != k || string(vs[i]) != "v"+k {
			t.Fatalf("entry %d = %q/%q after iteration, want %q/%q", i, ks[i], vs[i], k, "v"+k)
		}
	}
	ks[0][0] = 'X' // the slices are the caller's
	if v, _ := db.Get([]byte(keys[0])); string(v) != "v"+keys[0] {
		t.Fatalf("mutating an iterator key changed the store: %q", v)
	}
}

func TestIteratorLifecycle(t *testing.T) {
	db := NewIAVLDB(openTestBadger(t, t.TempDir()), []byte("p"))
	write(t, db, valuesFor("a", "b"))

	it, err := db.Iterator(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The iterator reads one snapshot: later writes are not seen.
	write(t, db, valuesFor("c"))
	var got []kv
	for ; it.Valid(); it.Next() {
		got = append(got, kv{string(it.Key()), string(it.Value())})
	}
	if want := kvsOf("a", "b"); !slices.Equal(got, want) {
		t.Errorf("snapshot = %q, want %q", got, want)
	}
	mustPanic(t, "Next on exhausted iterator", it.Next)
	mustPanic(t, "Key on exhausted iterator", func() { it.Key() })
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if err := it.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	it, _ = db.ReverseIterator(nil, nil)
	if !it.Valid() {
		t.Fatal("fresh reverse iterator invalid")
	}
	_ = it.Close()
	if it.Valid() {
		t.Fatal("closed iterator still valid")
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}

func TestGetHasDelete(t *testing.T) {
	bdb := openTestBadger(t, t.TempDir())
	db := NewIAVLDB(bdb, []byte("p/"))
	other := NewIAVLDB(bdb, []byte("q/"))

	v, err := db.Get([]byte("missing"))
	if v != nil || err != nil {
		t.Fatalf("Get(missing) = %v, %v; want nil, nil", v, err)
	}
	if ok, err := db.Has([]byte("missing")); ok || err != nil {
		t.Fatalf("Has(missing) = %v, %v", ok, err)
	}
	if _, err := db.Get(nil); err == nil {
		t.Error("Get(nil): want error")
	}
	if _, err := db.Get([]byte{}); err == nil {
		t.Error("Get(empty): want error")
	}
	if _, err := db.Has(nil); err == nil {
		t.Error("Has(nil): want error")
	}

	write(t, db, map[string][]byte{"k": []byte("v"), "empty": {}})
	if v, err := db.Get([]byte("k")); string(v) != "v" || err != nil {
		t.Fatalf("Get(k) = %q, %v", v, err)
	}
	// IAVL stores empty roots as empty values and tells them from missing
	// ones by nil-ness.
	if v, err := db.Get([]byte("empty")); v == nil || len(v) != 0 || err != nil {
		t.Fatalf("Get(empty value) = %#v, %v; want non-nil empty", v, err)
	}
	if got := collect(t, db, []byte("empty"), []byte("empty\x00"), false); len(got) != 1 {
		t.Fatalf("iterating empty value: %q", got)
	}
	if ok, err := db.Has([]byte("k")); !ok || err != nil {
		t.Fatalf("Has(k) = %v, %v", ok, err)
	}
	if v, _ := other.Get([]byte("k")); v != nil {
		t.Fatalf("other namespace sees k: %q", v)
	}
	if ok, _ := other.Has([]byte("k")); ok {
		t.Fatal("other namespace Has(k)")
	}

	write(t, db, map[string][]byte{"k": nil})
	if v, err := db.Get([]byte("k")); v != nil || err != nil {
		t.Fatalf("Get(deleted) = %q, %v", v, err)
	}
	if ok, _ := db.Has([]byte("k")); ok {
		t.Fatal("Has(deleted)")
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if v, err := other.Get([]byte("missing")); v != nil || err != nil {
		t.Fatalf("closing one namespace affected the shared badger DB: %v", err)
	}
}

func TestBatchLifecycle(t *testing.T) {
	db := NewIAVLDB(openTestBadger(t, t.TempDir()), []byte("p"))

	b := db.NewBatchWithSize(1 << 20)
	if err := b.Set(nil, []byte("v")); err == nil {
		t.Error("Set(nil key): want error")
	}
	if err := b.Set([]byte{}, []byte("v")); err == nil {
		t.Error("Set(empty key): want error")
	}
	if err := b.Set([]byte("k"), nil); err == nil {
		t.Error("Set(nil value): want error")
	}
	if err := b.Delete(nil); err == nil {
		t.Error("Delete(nil key): want error")
	}
	if n, err := b.GetByteSize(); n != 0 || err != nil {
		t.Fatalf("empty GetByteSize = %d, %v", n, err)
	}
	for _, k := range []string{"k1", "k2"} {
		if err := b.Set([]byte(k), []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := b.GetByteSize(); n < 2*len("pk1value") || err != nil {
		t.Fatalf("GetByteSize = %d, %v", n, err)
	}
	if v, _ := db.Get([]byte("k1")); v != nil {
		t.Fatal("batch visible before Write")
	}
	if err := b.Write(); err != nil {
		t.Fatal(err)
	}
	if v, _ := db.Get([]byte("k1")); string(v) != "value" {
		t.Fatalf("after Write Get(k1) = %q", v)
	}

	checkClosed := func(b interface {
		Set(k, v []byte) error
		Delete(k []byte) error
		Write() error
		WriteSync() error
		GetByteSize() (int, error)
	}) {
		t.Helper()
		_, sizeErr := b.GetByteSize()
		for name, err := range map[string]error{
			"Set":         b.Set([]byte("x"), []byte("y")),
			"Delete":      b.Delete([]byte("x")),
			"Write":       b.Write(),
			"WriteSync":   b.WriteSync(),
			"GetByteSize": sizeErr,
		} {
			if err == nil || err.Error() != errBatchClosed.Error() {
				t.Errorf("%s after Write/Close: err = %v, want %q", name, err, errBatchClosed)
			}
		}
	}
	checkClosed(b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if v, _ := db.Get([]byte("x")); v != nil {
		t.Fatal("operations after Write reached the store")
	}

	// Close without Write discards.
	b = db.NewBatch()
	_ = b.Set([]byte("discarded"), []byte("v"))
	_ = b.Close()
	checkClosed(b)
	if v, _ := db.Get([]byte("discarded")); v != nil {
		t.Fatal("closed batch was written")
	}
}

func TestBatchAppliesOperationsInOrder(t *testing.T) {
	bdb := openTestBadger(t, t.TempDir())
	db := NewIAVLDB(bdb, []byte("p"))
	write(t, db, valuesFor("pre"))

	b := db.NewBatch()
	defer b.Close()
	must(t, b.Set([]byte("set-then-delete"), []byte("v")))
	must(t, b.Delete([]byte("set-then-delete")))
	must(t, b.Delete([]byte("pre")))
	must(t, b.Set([]byte("pre"), []byte("again")))
	must(t, b.Set([]byte("far"), []byte("first")))
	// Push the last operations into a later badger transaction than the first.
	filler := int(bdb.MaxBatchCount()) + 10
	for i := range filler {
		must(t, b.Set(fmt.Appendf(nil, "filler%07d", i), []byte("f")))
	}
	must(t, b.Set([]byte("far"), []byte("last")))
	must(t, b.Set([]byte("far-deleted"), []byte("v")))
	for i := range filler {
		must(t, b.Set(fmt.Appendf(nil, "filler2%07d", i), []byte("f")))
	}
	must(t, b.Delete([]byte("far-deleted")))
	must(t, b.Write())

	for k, want := range map[string][]byte{"set-then-delete": nil, "pre": []byte("again"), "far": []byte("last"), "far-deleted": nil} {
		if v, err := db.Get([]byte(k)); !bytes.Equal(v, want) || err != nil {
			t.Errorf("Get(%q) = %q, %v; want %q", k, v, err, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestLargeBatch(t *testing.T) {
	const n = 200_000
	bdb := openTestBadger(t, t.TempDir())
	if bdb.MaxBatchCount() >= n {
		t.Fatalf("badger MaxBatchCount %d >= %d: the test no longer exceeds one transaction", bdb.MaxBatchCount(), n)
	}
	db := NewIAVLDB(bdb, []byte("big/"))
	value := bytes.Repeat([]byte{0xab}, 100)
	b := db.NewBatch()
	defer b.Close()
	for i := range n {
		must(t, b.Set(fmt.Appendf(nil, "%08d", i), value))
	}
	if size, _ := b.GetByteSize(); int64(size) <= bdb.MaxBatchSize() {
		t.Fatalf("batch size %d does not exceed badger's MaxBatchSize %d", size, bdb.MaxBatchSize())
	}
	must(t, b.Write())

	it, err := db.Iterator(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	count := 0
	for ; it.Valid(); it.Next() {
		if want := fmt.Sprintf("%08d", count); string(it.Key()) != want {
			t.Fatalf("key %d = %q, want %q", count, it.Key(), want)
		}
		count++
	}
	if count != n {
		t.Fatalf("iterated %d keys, want %d", count, n)
	}
}

func TestWriteSyncSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	bdb := openTestBadger(t, dir)
	b := NewIAVLDB(bdb, []byte("p")).NewBatch()
	must(t, b.Set([]byte("k"), []byte("v")))
	must(t, b.WriteSync())
	must(t, b.Close())
	must(t, bdb.Close())

	db := NewIAVLDB(openTestBadger(t, dir), []byte("p"))
	if v, err := db.Get([]byte("k")); string(v) != "v" || err != nil {
		t.Fatalf("after reopen Get(k) = %q, %v", v, err)
	}
}
