package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/leafstore"
	"github.com/credence-ledger/credence/proof"
)

// leafIndex is where every anchored hash is: one 16-byte entry per leaf
// (its tag, its batch's number, its index in the batch), kept in sorted run
// files under data/index and, for the batches indexed since the last run
// was written, in memory. A badger key per leaf cost most of the indexer's
// time (the memtable insert of 10^7–10^9 tiny keys written once and never
// changed); the entries are derived from the batches' leaves (the leaf
// store, internal/leafstore) and numbers (xn, in badger), so a run lost
// or damaged is rebuilt from them, never refused.
//
// A run file <lo>-<hi>.run holds the entries of batches [lo, hi), sorted by
// bytes, then a footer (runFooterSize). The runs and the memory cover
// [0, next batch) without gap or overlap: memory ("recent") holds the
// batches from the last run's hi on. When recent passes maxRecent entries
// it is frozen (still searched) and a background goroutine writes it as a
// run, then merges adjacent runs while the older is at most twice the
// newer, so there are O(log n) runs. Files are written to a .tmp, synced,
// renamed and the directory synced; a file replaced by a merge is removed
// only once the merged one is installed, and a reader never sees a closed
// file: the run list changes under mu's write lock, and readers read runs
// under its read lock.
//
// Memory: recent costs 16 bytes an entry, up to twice that while two of
// its sorted parts merge, and up to two frozen sets wait for their write
// (the writer waits beyond), so about 5 × maxRecent × 16 bytes at worst.
// Each run keeps the first tag of every 4 KiB block: 8 bytes per 256
// entries, 312 KiB per 10^7 hashes. A lookup reads one or two blocks of
// each run (pread) and searches each sorted part of recent.
type leafIndex struct {
	dir       string
	db        *badger.DB
	leafStore *leafstore.Store // the leaves themselves
	checks    *leafChecks
	log       *slog.Logger
	maxRecent int

	mu sync.RWMutex
	// runs are ordered by lo; each starts where the previous ends.
	runs []*run
	// frozen are sets of recent waiting to be written, oldest first.
	frozen []*recentSet
	// recent holds batches [recent.lo, recent.hi) in sorted parts whose
	// sizes shrink at least twofold from the first.
	recent *recentSet

	cond    *sync.Cond // on mu: the background writer's work and its progress
	running bool       // the background writer runs
	closing bool
	closed  bool        // lookups fail rather than answer from nothing
	abort   atomic.Bool // ends a merge under way
	err     error       // the background writer's failure; writes stop
}

// entry is a position: the tag (big-endian) in tag, the batch number in
// the high 40 bits of at and the leaf index in the low 24. Comparing the
// two words compares the encoded bytes.
type entry struct{ tag, at uint64 }

const (
	entrySize       = 16
	leafIndexBits   = 24 // a batch holds at most 4 MiB / 32 = 131,072 leaves (app.MaxTxBytes)
	maxLeafIndex    = 1<<leafIndexBits - 1
	maxBatchNum     = 1<<40 - 1
	runBlockEntries = 256 // 4 KiB: what one pread of a lookup reads
	runBlockBytes   = runBlockEntries * entrySize
	// The footer: magic (8), count (8), lo (8), hi (8), CRC32C (4) of the
	// entries and the footer's fields before it, zero (4).
	runFooterSize = 40
	runMagic      = "CRDXRUN1"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func makeEntry(tag [tagSize]byte, num, index uint64) entry {
	return entry{tag: binary.BigEndian.Uint64(tag[:]), at: num<<leafIndexBits | index}
}

func (e entry) num() uint64   { return e.at >> leafIndexBits }
func (e entry) index() uint64 { return e.at & maxLeafIndex }

func cmpEntry(a, b entry) int {
	switch {
	case a.tag < b.tag:
		return -1
	case a.tag > b.tag:
		return 1
	case a.at < b.at:
		return -1
	case a.at > b.at:
		return 1
	}
	return 0
}

// recentSet is the entries of batches [lo, hi) in sorted parts.
type recentSet struct {
	lo, hi uint64
	parts  [][]entry
	n      int
}

// run is one run file, open for reading.
type run struct {
	lo, hi uint64
	count  uint64
	f      *os.File
	path   string
	// firsts is the tag of the first entry of each block.
	firsts []uint64
}

func runName(lo, hi uint64) string { return fmt.Sprintf("%016x-%016x.run", lo, hi) }

func parseRunName(name string) (lo, hi uint64, ok bool) {
	if len(name) != 16+1+16+4 || !strings.HasSuffix(name, ".run") || name[16] != '-' {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(name[:33], "%016x-%016x", &lo, &hi); err != nil || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

// leavesEntries is the sorted entries of batch num's leaves.
func leavesEntries(num uint64, hashes []byte) ([]entry, error) {
	n := len(hashes) / proof.HashSize
	if n > maxLeafIndex+1 || num > maxBatchNum {
		return nil, fmt.Errorf("batch %d of %d leaves is beyond what the index holds", num, n)
	}
	es := make([]entry, n)
	for i, h := range leaves(hashes) {
		es[i] = makeEntry(leafTag(h[:]), num, uint64(i))
	}
	slices.SortFunc(es, cmpEntry)
	return es, nil
}

// openLeafIndex opens the runs in dir, checks each, and rebuilds from the
// batches in db whatever of [0, next) they do not cover: a run damaged or
// cut short, a run reaching past next (a crash can give those numbers to
// other batches), and the batches indexed after the last run (recent).
// Positions left as badger keys (xl) by an earlier version are dropped and
// rebuilt the same way.
func openLeafIndex(dir string, db *badger.DB, next uint64, maxRecent int, log *slog.Logger) (*leafIndex, error) {
	li := &leafIndex{dir: dir, db: db, log: log, maxRecent: max(maxRecent, 1), recent: &recentSet{},
		checks: newLeafChecks(defaultLeavesCheckedBatches)}
	li.cond = sync.NewCond(&li.mu)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := li.dropOldPositions(); err != nil {
		return nil, err
	}
	leafStore, err := openLeafStore(filepath.Join(filepath.Dir(dir), "leaves"), db, next)
	if err != nil {
		return nil, fmt.Errorf("leaves log: %w", err)
	}
	li.leafStore = leafStore
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var runs []*run
	for _, d := range names {
		name := d.Name()
		path := filepath.Join(dir, name)
		if strings.HasSuffix(name, ".tmp") {
			// A write cut short: never installed.
			if err := os.Remove(path); err != nil {
				return nil, err
			}
			continue
		}
		lo, hi, ok := parseRunName(name)
		if !ok {
			continue
		}
		if hi > next {
			log.Warn("index run reaches past the batches indexed (a crash before the index height was stored); removed it, its batches are indexed again",
				"file", name, "next_batch", next)
			if err := os.Remove(path); err != nil {
				return nil, err
			}
			continue
		}
		r, err := openRun(path, lo, hi)
		if err != nil {
			log.Warn("index run damaged; removed it and rebuilding its batches from their leaves", "file", name, "err", err)
			if err := os.Remove(path); err != nil {
				return nil, err
			}
			continue
		}
		runs = append(runs, r)
	}
	// Widest first among those starting together: a narrower run inside a
	// wider one is left by a merge cut short after the merged run was
	// installed.
	sort.Slice(runs, func(i, j int) bool {
		if runs[i].lo != runs[j].lo {
			return runs[i].lo < runs[j].lo
		}
		return runs[i].hi > runs[j].hi
	})
	var at uint64
	for _, r := range runs {
		if r.lo < at {
			r.f.Close()
			if err := os.Remove(r.path); err != nil {
				return nil, err
			}
			continue
		}
		if r.lo > at {
			if err := li.rebuildRuns(at, r.lo); err != nil {
				return nil, err
			}
		}
		li.runs = append(li.runs, r)
		at = r.hi
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	// The batches after the last run: back into memory, flushed as they pass
	// the bound.
	li.recent = &recentSet{lo: at, hi: at}
	if err := li.rebuild(at, next, func(num uint64, es []entry) error { return li.add(num, es) }); err != nil {
		return nil, err
	}
	if next > at {
		log.Debug("index: batches after the last run read back into memory", "from", at, "to", next)
	}
	li.mu.Lock()
	li.startMergesLocked()
	li.mu.Unlock()
	return li, nil
}

// dropOldPositions deletes the position keys (xl) an earlier version kept
// in badger; the runs are then rebuilt from the batches.
func (li *leafIndex) dropOldPositions() error {
	prefix := []byte("xl")
	var n int
	if err := li.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	}); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	li.log.Info("index positions kept in the database by an earlier version; dropping them and rebuilding the index as run files from the batches' leaves", "positions", n)
	if err := li.db.DropPrefix(prefix); err != nil {
		return err
	}
	// Runs written before those keys (none, by any released version) could
	// not be trusted to match them: start from the batches alone.
	names, err := os.ReadDir(li.dir)
	if err != nil {
		return err
	}
	for _, d := range names {
		if err := os.Remove(filepath.Join(li.dir, d.Name())); err != nil {
			return err
		}
	}
	return nil
}

// rebuild hands each batch of [lo, hi) with its sorted entries to use, in
// order, reading the batches from badger. A number with no batch (xn) is
// skipped: its batch went with a wiped index.
func (li *leafIndex) rebuild(lo, hi uint64, use func(num uint64, es []entry) error) error {
	// Leaves read per transaction: a batch holds up to 4 MiB of them.
	const chunkBytes = 16 << 20
	for from := lo; from < hi; {
		to := hi
		type batch struct {
			num    uint64
			hashes []byte
		}
		var got []batch
		var size int
		if err := li.db.View(func(txn *badger.Txn) error {
			for num := from; num < to; num++ {
				if size >= chunkBytes {
					to = num
					break
				}
				ref, err := batchNumbered(txn, num)
				if errors.Is(err, errNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				hashes, err := li.leavesOf(txn, ref.issuer, ref.seq)
				if errors.Is(err, errNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				got = append(got, batch{num, hashes})
				size += len(hashes)
			}
			return nil
		}); err != nil {
			return err
		}
		have := from
		for _, b := range got {
			for ; have < b.num; have++ {
				if err := use(have, nil); err != nil {
					return err
				}
			}
			es, err := leavesEntries(b.num, b.hashes)
			if err != nil {
				return err
			}
			if err := use(b.num, es); err != nil {
				return err
			}
			have++
		}
		for ; have < to; have++ {
			if err := use(have, nil); err != nil {
				return err
			}
		}
		from = to
	}
	return nil
}

// rebuildRuns writes runs for batches [lo, hi) from their leaves, each of
// at most about maxRecent entries; the merges join them later.
func (li *leafIndex) rebuildRuns(lo, hi uint64) error {
	li.log.Warn("index runs missing for some batches; rebuilding them from their leaves", "from", lo, "to", hi)
	set := &recentSet{lo: lo, hi: lo}
	flush := func() error {
		r, err := li.writeRun(set)
		if err != nil {
			return err
		}
		li.runs = append(li.runs, r)
		set = &recentSet{lo: set.hi, hi: set.hi}
		return nil
	}
	if err := li.rebuild(lo, hi, func(num uint64, es []entry) error {
		set.hi = num + 1
		if len(es) > 0 {
			set.parts = append(set.parts, es)
			set.n += len(es)
		}
		if set.n >= li.maxRecent {
			return flush()
		}
		return nil
	}); err != nil {
		return err
	}
	if set.hi > set.lo {
		return flush()
	}
	return nil
}

// add takes batch num's sorted entries into recent; num must be the next
// number. It is called by one writer at a time (the indexer).
func (li *leafIndex) add(num uint64, es []entry) error {
	rs := li.recent
	if num != rs.hi {
		return fmt.Errorf("index: batch %d indexed after batch %d", num, rs.hi-1)
	}
	parts := rs.parts
	if len(es) > 0 {
		parts = append(slices.Clip(parts), es)
	}
	// Merge while the part before is no more than twice the last: a
	// lookup searches O(log n) parts, an entry is copied O(log n) times.
	// The old parts are left as they are: readers may hold them.
	for len(parts) >= 2 && len(parts[len(parts)-2]) <= 2*len(parts[len(parts)-1]) {
		a, b := parts[len(parts)-2], parts[len(parts)-1]
		parts = append(parts[:len(parts)-2:len(parts)-2], mergeEntries(a, b))
	}
	next := &recentSet{lo: rs.lo, hi: num + 1, parts: parts, n: rs.n + len(es)}
	li.mu.Lock()
	defer li.mu.Unlock()
	li.recent = next
	if next.n < li.maxRecent {
		return nil
	}
	// Two sets waiting is enough to keep the writer busy: wait, so memory
	// stays bounded when indexing outruns the disk (a snapshot restore).
	for li.err == nil && !li.closing && len(li.frozen) >= 2 {
		li.cond.Wait()
	}
	if li.err != nil {
		return li.err
	}
	li.frozen = append(li.frozen, next)
	li.recent = &recentSet{lo: next.hi, hi: next.hi}
	li.startWriterLocked()
	return nil
}

func mergeEntries(a, b []entry) []entry {
	out := make([]entry, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if cmpEntry(a[i], b[j]) <= 0 {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return append(append(out, a[i:]...), b[j:]...)
}

// mergeNeededLocked is the first of two adjacent runs to merge, or -1.
func (li *leafIndex) mergeNeededLocked() int {
	for i := 0; i+1 < len(li.runs); i++ {
		if li.runs[i].count <= 2*li.runs[i+1].count {
			return i
		}
	}
	return -1
}

func (li *leafIndex) startMergesLocked() {
	if li.mergeNeededLocked() >= 0 {
		li.startWriterLocked()
	}
}

func (li *leafIndex) startWriterLocked() {
	if li.running || li.closing || li.err != nil {
		li.cond.Broadcast()
		return
	}
	li.running = true
	go li.writer()
}

// writer writes the frozen sets as runs, then merges runs, until there is
// nothing to do.
func (li *leafIndex) writer() {
	li.mu.Lock()
	defer func() {
		li.running = false
		li.cond.Broadcast()
		li.mu.Unlock()
	}()
	for !li.closing {
		if len(li.frozen) > 0 {
			set := li.frozen[0]
			li.mu.Unlock()
			r, err := li.writeRun(set)
			li.mu.Lock()
			if err != nil {
				li.failLocked(err)
				return
			}
			li.runs = append(li.runs, r)
			li.frozen = li.frozen[1:]
			li.cond.Broadcast()
			continue
		}
		i := li.mergeNeededLocked()
		if i < 0 {
			return
		}
		a, b := li.runs[i], li.runs[i+1]
		li.mu.Unlock()
		m, err := li.mergeRuns(a, b)
		li.mu.Lock()
		if errors.Is(err, errMergeAborted) {
			return
		}
		if err != nil {
			li.failLocked(err)
			return
		}
		li.runs = slices.Replace(li.runs, i, i+2, m)
		// No reader holds a or b now: readers use runs under the read lock.
		li.mu.Unlock()
		err = errors.Join(a.f.Close(), b.f.Close(), os.Remove(a.path), os.Remove(b.path), syncDir(li.dir))
		li.mu.Lock()
		if err != nil {
			li.failLocked(err)
			return
		}
	}
}

func (li *leafIndex) failLocked(err error) {
	li.err = fmt.Errorf("index run: %w", err)
	li.log.Error("writing the index's runs failed; index writes stop until restart", "err", err)
	li.cond.Broadcast()
}

var errMergeAborted = errors.New("merge aborted")

// runWriter writes a run file's entries and footer, 64 KiB at a time.
type runWriter struct {
	f      *os.File
	tmp    string
	buf    []byte
	crc    uint32
	count  uint64
	firsts []uint64
}

func (li *leafIndex) newRunWriter(lo, hi uint64) (*runWriter, error) {
	tmp := filepath.Join(li.dir, runName(lo, hi)+".tmp")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	return &runWriter{f: f, tmp: tmp, buf: make([]byte, 0, 1<<16)}, nil
}

func (w *runWriter) add(e entry) error {
	if w.count%runBlockEntries == 0 {
		w.firsts = append(w.firsts, e.tag)
	}
	w.count++
	w.buf = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(w.buf, e.tag), e.at)
	if len(w.buf) == cap(w.buf) {
		return w.writeOut()
	}
	return nil
}

func (w *runWriter) writeOut() error {
	w.crc = crc32.Update(w.crc, crcTable, w.buf)
	_, err := w.f.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// finish writes the footer, syncs and installs the file under its name.
func (w *runWriter) finish(dir string, lo, hi uint64) (*run, error) {
	footer := make([]byte, runFooterSize)
	copy(footer, runMagic)
	binary.BigEndian.PutUint64(footer[8:], w.count)
	binary.BigEndian.PutUint64(footer[16:], lo)
	binary.BigEndian.PutUint64(footer[24:], hi)
	path := filepath.Join(dir, runName(lo, hi))
	err := w.writeOut()
	binary.BigEndian.PutUint32(footer[32:], crc32.Update(w.crc, crcTable, footer[:32]))
	if err == nil {
		_, err = w.f.Write(footer)
	}
	if err == nil {
		err = w.f.Sync()
	}
	if err == nil {
		err = os.Rename(w.tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		w.discard()
		return nil, err
	}
	return &run{lo: lo, hi: hi, count: w.count, f: w.f, path: path, firsts: w.firsts}, nil
}

func (w *runWriter) discard() {
	w.f.Close()
	os.Remove(w.tmp)
}

// writeRun writes a set's entries, merging its sorted parts, as a run.
func (li *leafIndex) writeRun(set *recentSet) (*run, error) {
	w, err := li.newRunWriter(set.lo, set.hi)
	if err != nil {
		return nil, err
	}
	heads := make([]int, len(set.parts))
	for {
		best := -1
		for p, part := range set.parts {
			if heads[p] < len(part) && (best < 0 || cmpEntry(part[heads[p]], set.parts[best][heads[best]]) < 0) {
				best = p
			}
		}
		if best < 0 {
			break
		}
		if err := w.add(set.parts[best][heads[best]]); err != nil {
			w.discard()
			return nil, err
		}
		heads[best]++
	}
	return w.finish(li.dir, set.lo, set.hi)
}

// mergeRuns writes runs a and b (adjacent: a.hi == b.lo) as one, reading
// both as streams.
func (li *leafIndex) mergeRuns(a, b *run) (*run, error) {
	if a.hi != b.lo {
		return nil, fmt.Errorf("runs [%d, %d) and [%d, %d) are not adjacent", a.lo, a.hi, b.lo, b.hi)
	}
	w, err := li.newRunWriter(a.lo, b.hi)
	if err != nil {
		return nil, err
	}
	ra, rb := a.reader(), b.reader()
	ea, oka, err := ra.next()
	if err != nil {
		w.discard()
		return nil, err
	}
	eb, okb, err := rb.next()
	if err != nil {
		w.discard()
		return nil, err
	}
	for n := 0; oka || okb; n++ {
		if n%(1<<16) == 0 && li.abort.Load() {
			w.discard()
			return nil, errMergeAborted
		}
		var e entry
		if oka && (!okb || cmpEntry(ea, eb) <= 0) {
			e = ea
			ea, oka, err = ra.next()
		} else {
			e = eb
			eb, okb, err = rb.next()
		}
		if err == nil {
			err = w.add(e)
		}
		if err != nil {
			w.discard()
			return nil, err
		}
	}
	return w.finish(li.dir, a.lo, b.hi)
}

// runReader reads a run's entries in order, 64 KiB at a time.
type runReader struct {
	f     *os.File
	off   int64 // of the next chunk
	left  uint64
	chunk []byte
	pos   int
	// crc, when not nil, is updated with every byte read.
	crc *uint32
}

func (r *run) reader() *runReader {
	return &runReader{f: r.f, left: r.count}
}

func (rr *runReader) next() (entry, bool, error) {
	if rr.pos == len(rr.chunk) {
		if rr.left == 0 {
			return entry{}, false, nil
		}
		n := min(rr.left, 4096)
		if rr.chunk == nil {
			rr.chunk = make([]byte, 4096*entrySize)
		}
		rr.chunk = rr.chunk[:n*entrySize]
		if _, err := rr.f.ReadAt(rr.chunk, rr.off); err != nil {
			return entry{}, false, err
		}
		if rr.crc != nil {
			*rr.crc = crc32.Update(*rr.crc, crcTable, rr.chunk)
		}
		rr.off += int64(len(rr.chunk))
		rr.left -= n
		rr.pos = 0
	}
	b := rr.chunk[rr.pos : rr.pos+entrySize]
	rr.pos += entrySize
	return entry{tag: binary.BigEndian.Uint64(b[:8]), at: binary.BigEndian.Uint64(b[8:])}, true, nil
}

// openRun opens a run file and checks it whole: footer, size, CRC, order
// and batch numbers.
func openRun(path string, lo, hi uint64) (_ *run, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < runFooterSize {
		return nil, fmt.Errorf("%d bytes, shorter than a footer", st.Size())
	}
	footer := make([]byte, runFooterSize)
	if _, err := f.ReadAt(footer, st.Size()-runFooterSize); err != nil {
		return nil, err
	}
	if string(footer[:8]) != runMagic {
		return nil, fmt.Errorf("no run footer")
	}
	count := binary.BigEndian.Uint64(footer[8:])
	if count > uint64(st.Size())/entrySize || uint64(st.Size()) != count*entrySize+runFooterSize {
		return nil, fmt.Errorf("%d bytes for %d entries", st.Size(), count)
	}
	if binary.BigEndian.Uint64(footer[16:]) != lo || binary.BigEndian.Uint64(footer[24:]) != hi {
		return nil, fmt.Errorf("footer names batches [%d, %d), the file's name [%d, %d)",
			binary.BigEndian.Uint64(footer[16:]), binary.BigEndian.Uint64(footer[24:]), lo, hi)
	}
	r := &run{lo: lo, hi: hi, count: count, f: f, path: path}
	rr := r.reader()
	var crc uint32
	rr.crc = &crc
	var prev entry
	for i := uint64(0); i < count; i++ {
		e, _, err := rr.next()
		if err != nil {
			return nil, err
		}
		if i%runBlockEntries == 0 {
			r.firsts = append(r.firsts, e.tag)
		}
		if (i > 0 && cmpEntry(prev, e) > 0) || e.num() < lo || e.num() >= hi {
			return nil, fmt.Errorf("entry %d out of order or of a batch outside the run", i)
		}
		prev = e
	}
	if crc32.Update(crc, crcTable, footer[:32]) != binary.BigEndian.Uint32(footer[32:]) {
		return nil, fmt.Errorf("checksum mismatch")
	}
	return r, nil
}

var blockPool = sync.Pool{New: func() any { return new([runBlockBytes]byte) }}

// candidates appends to buf every entry under tag.
func (li *leafIndex) candidates(tag [tagSize]byte, buf []entry) ([]entry, error) {
	if li == nil {
		return nil, errors.New("index not open")
	}
	t := binary.BigEndian.Uint64(tag[:])
	bp := blockPool.Get().(*[runBlockBytes]byte)
	defer blockPool.Put(bp)
	block := bp[:]
	li.mu.RLock()
	defer li.mu.RUnlock()
	if li.closed {
		return nil, errors.New("index closed")
	}
	for _, r := range li.runs {
		// Entries under t start in the block before the first whose first
		// tag is t or more, and may run on over later blocks.
		b := sort.Search(len(r.firsts), func(i int) bool { return r.firsts[i] >= t })
		if b > 0 {
			b--
		}
		for ; b < len(r.firsts); b++ {
			if r.firsts[b] > t {
				break
			}
			n := min(uint64(runBlockEntries), r.count-uint64(b)*runBlockEntries)
			if _, err := r.f.ReadAt(block[:n*entrySize], int64(b)*runBlockBytes); err != nil {
				return nil, fmt.Errorf("index run %s: %w", filepath.Base(r.path), err)
			}
			past := false
			for i := uint64(0); i < n; i++ {
				et := binary.BigEndian.Uint64(block[i*entrySize:])
				if et > t {
					past = true
					break
				}
				if et == t {
					buf = append(buf, entry{tag: et, at: binary.BigEndian.Uint64(block[i*entrySize+8:])})
				}
			}
			if past {
				break
			}
		}
	}
	for _, set := range li.frozen {
		buf = set.candidates(t, buf)
	}
	return li.recent.candidates(t, buf), nil
}

func (rs *recentSet) candidates(t uint64, buf []entry) []entry {
	for _, part := range rs.parts {
		i, _ := slices.BinarySearchFunc(part, t, func(e entry, t uint64) int {
			if e.tag < t {
				return -1
			}
			if e.tag > t {
				return 1
			}
			return 0
		})
		for ; i < len(part) && part[i].tag == t; i++ {
			buf = append(buf, part[i])
		}
	}
	return buf
}

// each calls fn with the tag of every entry held, reading each run once.
func (li *leafIndex) each(fn func(tag uint64)) error {
	li.mu.RLock()
	defer li.mu.RUnlock()
	for _, r := range li.runs {
		rr := r.reader()
		for {
			e, ok, err := rr.next()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			fn(e.tag)
		}
	}
	for _, set := range append(slices.Clip(li.frozen), li.recent) {
		for _, part := range set.parts {
			for _, e := range part {
				fn(e.tag)
			}
		}
	}
	return nil
}

// flush writes what recent holds as a run and waits until every run is
// written and merged.
func (li *leafIndex) flush() error {
	li.mu.Lock()
	defer li.mu.Unlock()
	if li.recent.hi > li.recent.lo {
		li.frozen = append(li.frozen, li.recent)
		li.recent = &recentSet{lo: li.recent.hi, hi: li.recent.hi}
	}
	li.startWriterLocked()
	for li.running {
		li.cond.Wait()
	}
	return li.err
}

// stopWriter ends the background writer (a merge under way is abandoned,
// its .tmp removed) and waits for it.
func (li *leafIndex) stopWriterLocked() {
	li.closing = true
	li.abort.Store(true)
	li.cond.Broadcast()
	for li.running {
		li.cond.Wait()
	}
}

// close stops the background writer and closes the runs. The sets not
// written are rebuilt from the batches at the next start.
func (li *leafIndex) close() error {
	if li == nil {
		return nil
	}
	li.mu.Lock()
	defer li.mu.Unlock()
	li.stopWriterLocked()
	var errs []error
	for _, r := range li.runs {
		errs = append(errs, r.f.Close())
	}
	li.runs, li.closed = nil, true
	errs = append(errs, li.leafStore.Close())
	return errors.Join(errs...)
}

// reset empties the index, runs and memory, after its batches were wiped
// from badger; the next batch indexed is next.
func (li *leafIndex) reset(next uint64) error {
	li.mu.Lock()
	defer li.mu.Unlock()
	li.stopWriterLocked()
	var errs []error
	for _, r := range li.runs {
		errs = append(errs, r.f.Close(), os.Remove(r.path))
	}
	li.runs, li.frozen, li.recent = nil, nil, &recentSet{lo: next, hi: next}
	li.closing, li.err = false, nil
	li.abort.Store(false)
	li.checks.forget()
	errs = append(errs, li.leafStore.Reset())
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Numbers below next hold no batch any more: an empty run says so, so
	// the next start rebuilds nothing for them.
	if next > 0 {
		r, err := li.writeRun(&recentSet{lo: 0, hi: next})
		if err != nil {
			return err
		}
		li.runs = []*run{r}
	}
	return nil
}
