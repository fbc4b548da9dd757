package consensus

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	dbm "github.com/cometbft/cometbft-db"

	"github.com/credence-ledger/credence/internal/store"
)

var (
	dbSeed = flag.Uint64("dbseed", 0, "seed of TestBadgerDBMatchesMemDB (0: from the clock)")
	dbOps  = flag.Int("dbops", 4000, "operations of TestBadgerDBMatchesMemDB")
)

// dbPair runs each operation on the adapter and on cometbft-db's MemDB,
// the interface's reference, and fails on the first answer that differs.
type dbPair struct {
	t    *testing.T
	rng  *rand.Rand
	seed uint64
	step int
	got  dbm.DB // the adapter
	want dbm.DB // MemDB
}

func (p *dbPair) fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("seed %d (rerun with -dbseed %d), operation %d: %s", p.seed, p.seed, p.step, fmt.Sprintf(format, args...))
}

func (p *dbPair) sameErr(what string, got, want error) {
	p.t.Helper()
	if (got == nil) != (want == nil) {
		p.fatalf("%s: adapter error %v, MemDB error %v", what, got, want)
	}
}

// sameBytes tells an absent value (nil) from an empty one.
func (p *dbPair) sameBytes(what string, got, want []byte) {
	p.t.Helper()
	if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
		p.fatalf("%s: adapter %q (nil %t), MemDB %q (nil %t)", what, got, got == nil, want, want == nil)
	}
}

// key draws from a small alphabet that includes the lowest and highest
// bytes, so keys often share prefixes, collide, and sit at bound edges;
// now and then it is empty or nil, which every method must refuse.
func (p *dbPair) key() []byte {
	switch p.rng.IntN(60) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	return p.boundKey()
}

func (p *dbPair) boundKey() []byte {
	const alphabet = "\x00ab\xff"
	k := make([]byte, 1+p.rng.IntN(4))
	for i := range k {
		k[i] = alphabet[p.rng.IntN(len(alphabet))]
	}
	return k
}

// value is sometimes empty, sometimes nil (refused), and sometimes above
// the block store's value threshold, so that it lives in the value log.
func (p *dbPair) value() []byte {
	switch n := p.rng.IntN(40); {
	case n == 0:
		return nil
	case n == 1:
		return []byte{}
	case n < 5:
		v := make([]byte, blockStoreValueThreshold+p.rng.IntN(4<<10))
		fillRand(p.rng, v)
		return v
	default:
		v := make([]byte, 1+p.rng.IntN(40))
		fillRand(p.rng, v)
		return v
	}
}

func fillRand(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// bound is nil (unbounded), empty (refused), or a key.
func (p *dbPair) bound() []byte {
	switch p.rng.IntN(12) {
	case 0, 1, 2:
		return nil
	case 3:
		return []byte{}
	}
	return p.boundKey()
}

func (p *dbPair) write() {
	k, v := p.key(), p.value()
	switch p.rng.IntN(4) {
	case 0:
		p.sameErr(fmt.Sprintf("Set(%q)", k), p.got.Set(k, v), p.want.Set(k, v))
	case 1:
		p.sameErr(fmt.Sprintf("SetSync(%q)", k), p.got.SetSync(k, v), p.want.SetSync(k, v))
	case 2:
		p.sameErr(fmt.Sprintf("Delete(%q)", k), p.got.Delete(k), p.want.Delete(k))
	case 3:
		p.sameErr(fmt.Sprintf("DeleteSync(%q)", k), p.got.DeleteSync(k), p.want.DeleteSync(k))
	}
}

func (p *dbPair) read() {
	k := p.key()
	gv, gerr := p.got.Get(k)
	wv, werr := p.want.Get(k)
	p.sameErr(fmt.Sprintf("Get(%q)", k), gerr, werr)
	p.sameBytes(fmt.Sprintf("Get(%q)", k), gv, wv)
	gh, gerr := p.got.Has(k)
	wh, werr := p.want.Has(k)
	p.sameErr(fmt.Sprintf("Has(%q)", k), gerr, werr)
	if gh != wh {
		p.fatalf("Has(%q): adapter %t, MemDB %t", k, gh, wh)
	}
}

func (p *dbPair) batch() {
	gb, wb := p.got.NewBatch(), p.want.NewBatch()
	// Large enough now and then to fill badger's transaction.
	n, big := p.rng.IntN(20), p.rng.IntN(50) == 0
	if big {
		n = 1000
	}
	for range n {
		k := p.key()
		if p.rng.IntN(3) == 0 {
			p.sameErr(fmt.Sprintf("batch Delete(%q)", k), gb.Delete(k), wb.Delete(k))
			continue
		}
		v := p.value()
		if big {
			v = make([]byte, 4<<10+p.rng.IntN(4<<10))
			fillRand(p.rng, v)
		}
		p.sameErr(fmt.Sprintf("batch Set(%q)", k), gb.Set(k, v), wb.Set(k, v))
	}
	switch p.rng.IntN(4) {
	case 0:
		p.sameErr("batch Write", gb.Write(), wb.Write())
	case 1:
		p.sameErr("batch WriteSync", gb.WriteSync(), wb.WriteSync())
	case 2:
		// Closed unwritten: nothing of it may land.
		p.sameErr("batch Close", gb.Close(), wb.Close())
	case 3:
		p.sameErr("batch Close", gb.Close(), wb.Close())
		p.sameErr("batch Write after Close", gb.Write(), wb.Write())
	}
	// Only Close may follow Write or Close.
	if err := gb.Write(); err == nil {
		p.fatalf("a second batch Write did not fail")
	}
	if err := gb.WriteSync(); err == nil {
		p.fatalf("a second batch WriteSync did not fail")
	}
	p.sameErr("batch Write again", gb.Write(), wb.Write())
	k, v := p.boundKey(), []byte("v")
	p.sameErr("batch Set after Write", gb.Set(k, v), wb.Set(k, v))
	p.sameErr("batch Delete after Write", gb.Delete(k), wb.Delete(k))
	for range 2 {
		p.sameErr("batch Close", gb.Close(), wb.Close())
	}
}

func (p *dbPair) iterate() {
	start, end := p.bound(), p.bound()
	reverse := p.rng.IntN(2) == 0
	what := fmt.Sprintf("iterator [%q, %q) reverse %t", start, end, reverse)
	gi, gerr := rangeOf(p.got, start, end, reverse)
	wi, werr := rangeOf(p.want, start, end, reverse)
	p.sameErr(what, gerr, werr)
	if gerr != nil {
		return
	}
	// MemDB's iterator holds its lock until closed; close it whatever
	// happens, or the next write waits forever.
	defer wi.Close()
	defer gi.Close()
	gs, ge := gi.Domain()
	ws, we := wi.Domain()
	p.sameBytes(what+" Domain start", gs, ws)
	p.sameBytes(what+" Domain end", ge, we)
	// Sometimes stop early: Close must do for a half-read iterator.
	limit := -1
	if p.rng.IntN(4) == 0 {
		limit = p.rng.IntN(10)
	}
	for i := 0; limit < 0 || i < limit; i++ {
		gv, wv := gi.Valid(), wi.Valid()
		if gv != wv {
			p.fatalf("%s: item %d: adapter valid %t, MemDB valid %t", what, i, gv, wv)
		}
		if !gv {
			if !panics(gi.Next) || !panics(func() { gi.Key() }) || !panics(func() { gi.Value() }) {
				p.fatalf("%s: an invalid iterator did not panic", what)
			}
			break
		}
		p.sameBytes(fmt.Sprintf("%s: item %d key", what, i), gi.Key(), wi.Key())
		p.sameBytes(fmt.Sprintf("%s: item %d value of %q", what, i, wi.Key()), gi.Value(), wi.Value())
		gi.Next()
		wi.Next()
	}
	p.sameErr(what+" Error", gi.Error(), wi.Error())
	p.sameErr(what+" Close", gi.Close(), wi.Close())
}

func panics(f func()) (did bool) {
	defer func() { did = recover() != nil }()
	f()
	return false
}

// TestBadgerDBMatchesMemDB applies one seeded random sequence of
// operations to the adapter over a real badger and to MemDB and compares
// every answer, then reopens badger and compares what it kept. Once with
// the block store's value threshold (values in the value log), once with
// badger's (values in the LSM tree, where a big batch outgrows a
// transaction).
func TestBadgerDBMatchesMemDB(t *testing.T) {
	seed := *dbSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	for _, threshold := range []int64{blockStoreValueThreshold, store.DefaultValueThreshold} {
		t.Run(fmt.Sprintf("threshold=%d", threshold), func(t *testing.T) { matchMemDB(t, seed, threshold) })
	}
}

func matchMemDB(t *testing.T, seed uint64, threshold int64) {
	dir := t.TempDir()
	open := func() dbm.DB {
		// A small value log, so that values above the threshold span files.
		db, err := store.OpenBadger(dir, store.WithMemory(DefaultDBMemory), store.WithLogger(slog.New(slog.DiscardHandler)),
			store.WithValueThreshold(threshold), store.WithValueLogFileSize(1<<20))
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		return newBadgerDB(db, 0, slog.New(slog.DiscardHandler))
	}
	p := &dbPair{t: t, rng: rand.New(rand.NewPCG(seed, seed>>1)), seed: seed, got: open(), want: dbm.NewMemDB()}
	defer func() { p.got.Close() }()
	for p.step = 0; p.step < *dbOps; p.step++ {
		switch n := p.rng.IntN(100); {
		case n < 40:
			p.write()
		case n < 65:
			p.read()
		case n < 75:
			p.batch()
		default:
			p.iterate()
		}
	}
	if err := p.got.Close(); err != nil {
		t.Fatalf("seed %d: close: %v", seed, err)
	}
	p.got = open()
	for range 20 {
		p.iterate()
	}
	p.compareAll()
}

// compareAll compares the whole contents, both ways round.
// rangeOf is db's iterator over [start, end), reversed or not.
func rangeOf(db dbm.DB, start, end []byte, reverse bool) (dbm.Iterator, error) {
	if reverse {
		return db.ReverseIterator(start, end)
	}
	return db.Iterator(start, end)
}

func (p *dbPair) compareAll() {
	p.t.Helper()
	for _, reverse := range []bool{false, true} {
		gi, gerr := rangeOf(p.got, nil, nil, reverse)
		wi, werr := rangeOf(p.want, nil, nil, reverse)
		if gerr != nil || werr != nil {
			p.t.Fatalf("whole range, reverse %t: %v; MemDB: %v", reverse, gerr, werr)
		}
		n := 0
		for ; wi.Valid(); wi.Next() {
			if !gi.Valid() {
				p.fatalf("full scan (reverse %t): adapter ends after %d keys, MemDB has %q next", reverse, n, wi.Key())
			}
			p.sameBytes("full scan key", gi.Key(), wi.Key())
			p.sameBytes("full scan value", gi.Value(), wi.Value())
			gi.Next()
			n++
		}
		if gi.Valid() {
			p.fatalf("full scan (reverse %t): adapter has %q after MemDB's %d keys", reverse, gi.Key(), n)
		}
		if n == 0 {
			p.fatalf("full scan found nothing: the sequence tested little")
		}
		gi.Close()
		wi.Close()
	}
}

// TestBadgerDBReadAfterClose: a read of a closed store answers "absent"
// (CometBFT's reactors read the block store while its node closes it, and
// it panics on a store error); a write is still an error.
func TestBadgerDBReadAfterClose(t *testing.T) {
	t.Parallel()
	bdb, err := store.OpenBadger(t.TempDir(), store.WithMemory(DefaultDBMemory), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	db := newBadgerDB(bdb, 0, slog.New(slog.DiscardHandler))
	if err := db.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if v, err := db.Get([]byte("k")); v != nil || err != nil {
		t.Fatalf("Get after Close: %q, %v; want absent", v, err)
	}
	if ok, err := db.Has([]byte("k")); ok || err != nil {
		t.Fatalf("Has after Close: %t, %v; want absent", ok, err)
	}
	if err := db.Set([]byte("k"), []byte("w")); err == nil {
		t.Fatal("Set after Close: no error")
	}
}
