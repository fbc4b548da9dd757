package positions

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/credence-ledger/credence/internal/vfs"
)

// Tag is the 8 bytes of a hash an entry keeps, read big-endian: entries
// sort by it, and the filter is over it. It is not unique: callers confirm
// every candidate against the hash itself.
type Tag uint64

// SHA256Tag is the default tag: the first 8 bytes of the SHA-256 of the
// hash. Not the hash's own bytes: submitters choose the hashes, and could
// otherwise pile up entries under the tag of another issuer's hash so that
// each lookup of it walked them all.
func SHA256Tag(hash []byte) Tag {
	d := sha256.Sum256(hash)
	return Tag(binary.BigEndian.Uint64(d[:8]))
}

// Position is where one hash is: its batch's number and its index among
// the batch's leaves.
type Position struct {
	Batch uint64
	Index uint64
}

// defaultRecentEntries is Options.RecentEntries when it is 0: the node's
// default index_recent_hashes.
const defaultRecentEntries = 1 << 20

// Options tune an Index; the zero value is the defaults.
type Options struct {
	// FS holds the run files. Default vfs.Default.
	FS vfs.FS
	// RecentEntries is how many entries the index holds in memory before
	// it writes them as a run. Default 1<<20 (defaultRecentEntries); tests use 1
	// (a run per batch) to exercise the merges.
	RecentEntries int
	// Logger receives the repairs made at open and a writer's failure.
	// Default: discarded.
	Logger *slog.Logger
	// Tag is a hash's tag. Default SHA256Tag (see there why not the
	// hash's own bytes); tests make hashes collide with a coarser one.
	// The runs hold tags: a directory is opened with the same Tag every
	// time.
	Tag func(hash []byte) Tag
	// Rebuild is where the index is derived from: it calls yield with the
	// leaves (concatenated 32-byte hashes) of each batch numbered in
	// [lo, hi) that exists, in increasing order of number, and returns
	// yield's error. Numbers it skips hold no batch. Default: no batch
	// exists, so nothing lost can be rebuilt.
	Rebuild func(lo, hi uint64, yield func(num uint64, hashes []byte) error) error
}

// Index is the positions of every anchored hash (see the package doc):
// sorted run files in a directory and, for the batches added since the
// last run was written, memory. Add is called by one writer at a time;
// the rest may be called concurrently.
type Index struct {
	dir       string
	fs        vfs.FS
	log       *slog.Logger
	tag       func(hash []byte) Tag
	source    func(lo, hi uint64, yield func(num uint64, hashes []byte) error) error
	maxRecent int

	mu sync.RWMutex
	// runs are ordered by lo; each starts where the previous ends.
	runs []*run
	// frozen are sets of recent waiting to be written, oldest first.
	frozen []*recentSet
	// recent holds batches [recent.lo, recent.hi) in sorted parts whose
	// sizes shrink at least twofold from the first.
	recent *recentSet
	// filter, when set, is given every tag before it is searchable.
	filter *Filter

	cond    *sync.Cond // on mu: the background writer's work and its progress
	running bool       // the background writer runs
	closing bool
	closed  bool        // lookups fail rather than answer from nothing
	abort   atomic.Bool // ends a merge under way
	err     error       // the background writer's failure; writes stop
}

// recentSet is the entries of batches [lo, hi) in sorted parts.
type recentSet struct {
	lo, hi uint64
	parts  [][]entry
	n      int
}

// Open opens the runs in dir, checks each, and rebuilds through
// opts.Rebuild whatever of [0, next) they do not cover: a run damaged or
// cut short, a run reaching past next (a crash can give those numbers to
// other batches), and the batches added after the last run (memory).
func Open(dir string, next uint64, opts Options) (*Index, error) {
	ix := &Index{dir: dir, fs: opts.FS, log: opts.Logger, tag: opts.Tag, source: opts.Rebuild,
		maxRecent: opts.RecentEntries, recent: &recentSet{}}
	if ix.fs == nil {
		ix.fs = vfs.Default
	}
	if ix.log == nil {
		ix.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if ix.tag == nil {
		ix.tag = SHA256Tag
	}
	if ix.source == nil {
		ix.source = func(uint64, uint64, func(uint64, []byte) error) error { return nil }
	}
	if ix.maxRecent <= 0 {
		ix.maxRecent = defaultRecentEntries
	}
	ix.cond = sync.NewCond(&ix.mu)
	if err := ix.fs.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	names, err := ix.fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var runs []*run
	for _, d := range names {
		name := d.Name()
		path := filepath.Join(dir, name)
		if strings.HasSuffix(name, ".tmp") {
			// A write cut short: never installed.
			if err := ix.fs.Remove(path); err != nil {
				return nil, err
			}
			continue
		}
		lo, hi, ok := RunBatches(name)
		if !ok {
			continue
		}
		if hi > next {
			ix.log.Warn("index run reaches past the batches indexed (a crash before the index height was stored); removed it, its batches are indexed again",
				"file", name, "next_batch", next)
			if err := ix.fs.Remove(path); err != nil {
				return nil, err
			}
			continue
		}
		r, err := openRun(ix.fs, path, lo, hi)
		if err != nil {
			ix.log.Warn("index run damaged; removed it and rebuilding its batches from their leaves", "file", name, "err", err)
			if err := ix.fs.Remove(path); err != nil {
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
			if err := ix.fs.Remove(r.path); err != nil {
				return nil, err
			}
			continue
		}
		if r.lo > at {
			if err := ix.rebuildRuns(at, r.lo); err != nil {
				return nil, err
			}
		}
		ix.runs = append(ix.runs, r)
		at = r.hi
	}
	if err := ix.fs.SyncDir(dir); err != nil {
		return nil, err
	}
	// The batches after the last run: back into memory, flushed as they pass
	// the bound.
	ix.recent = &recentSet{lo: at, hi: at}
	if err := ix.rebuild(at, next, ix.add); err != nil {
		return nil, err
	}
	if next > at {
		ix.log.Debug("index: batches after the last run read back into memory", "from", at, "to", next)
	}
	ix.mu.Lock()
	ix.startMergesLocked()
	ix.mu.Unlock()
	return ix, nil
}

// Tag is hash's tag, by the function the index was opened with.
func (ix *Index) Tag(hash []byte) Tag { return ix.tag(hash) }

// entries is the sorted entries of batch num's leaves.
func (ix *Index) entries(num uint64, hashes []byte) ([]entry, error) {
	n := len(hashes) / hashSize
	if n > maxLeafIndex+1 || num > maxBatchNum {
		return nil, fmt.Errorf("batch %d of %d leaves is beyond what the index holds", num, n)
	}
	es := make([]entry, n)
	for i := range n {
		es[i] = makeEntry(ix.tag(hashes[i*hashSize:(i+1)*hashSize]), num, uint64(i))
	}
	sortEntries(es)
	return es, nil
}

// rebuild hands each batch of [lo, hi) with its sorted entries to use, in
// order, reading the batches from the source. A number with no batch gets
// no entries: its batch went with a wiped index.
func (ix *Index) rebuild(lo, hi uint64, use func(num uint64, es []entry) error) error {
	have := lo
	if err := ix.source(lo, hi, func(num uint64, hashes []byte) error {
		if num < have || num >= hi {
			return fmt.Errorf("index rebuild: batch %d given out of order (want %d to %d)", num, have, hi)
		}
		for ; have < num; have++ {
			if err := use(have, nil); err != nil {
				return err
			}
		}
		es, err := ix.entries(num, hashes)
		if err != nil {
			return err
		}
		have++
		return use(num, es)
	}); err != nil {
		return err
	}
	for ; have < hi; have++ {
		if err := use(have, nil); err != nil {
			return err
		}
	}
	return nil
}

// rebuildRuns writes runs for batches [lo, hi) from their leaves, each of
// at most about maxRecent entries; the merges join them later.
func (ix *Index) rebuildRuns(lo, hi uint64) error {
	ix.log.Warn("index runs missing for some batches; rebuilding them from their leaves", "from", lo, "to", hi)
	set := &recentSet{lo: lo, hi: lo}
	flush := func() error {
		r, err := ix.writeRun(set)
		if err != nil {
			return err
		}
		ix.runs = append(ix.runs, r)
		set = &recentSet{lo: set.hi, hi: set.hi}
		return nil
	}
	if err := ix.rebuild(lo, hi, func(num uint64, es []entry) error {
		set.hi = num + 1
		if len(es) > 0 {
			set.parts = append(set.parts, es)
			set.n += len(es)
		}
		if set.n >= ix.maxRecent {
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

// Next is the number of the next batch Add takes.
func (ix *Index) Next() uint64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.recent.hi
}

// Add takes the positions of batch num's leaves (concatenated 32-byte
// hashes); num must be Next(). Each tag is in the attached filter before
// any lookup can find it. When the background writer has failed, Add
// fails with its error, and so do all later writes until the index is
// opened again: memory would otherwise grow without bound.
func (ix *Index) Add(num uint64, hashes []byte) error {
	es, err := ix.entries(num, hashes)
	if err != nil {
		return err
	}
	ix.mu.RLock()
	f := ix.filter
	ix.mu.RUnlock()
	f.addEntries(es)
	return ix.add(num, es)
}

// add takes batch num's sorted entries into recent.
func (ix *Index) add(num uint64, es []entry) error {
	rs := ix.recent
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
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.recent = next
	if next.n < ix.maxRecent {
		return nil
	}
	// Two sets waiting is enough to keep the writer busy: wait, so memory
	// stays bounded when indexing outruns the disk (a snapshot restore).
	for ix.err == nil && !ix.closing && len(ix.frozen) >= 2 {
		ix.cond.Wait()
	}
	if ix.err != nil {
		return ix.err
	}
	ix.frozen = append(ix.frozen, next)
	ix.recent = &recentSet{lo: next.hi, hi: next.hi}
	ix.startWriterLocked()
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

var blockPool = sync.Pool{New: func() any { return new([runBlockBytes]byte) }}

// Candidates appends to buf the position of every entry under tag: every
// place a hash with this tag may be, to be confirmed against the batch's
// leaves. They come from several runs and parts, in no order.
func (ix *Index) Candidates(tag Tag, buf []Position) ([]Position, error) {
	if ix == nil {
		return nil, errors.New("index not open")
	}
	t := uint64(tag)
	bp := blockPool.Get().(*[runBlockBytes]byte)
	defer blockPool.Put(bp)
	block := bp[:]
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.closed {
		return nil, errors.New("index closed")
	}
	for _, r := range ix.runs {
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
					e := entry{tag: et, at: binary.BigEndian.Uint64(block[i*entrySize+8:])}
					buf = append(buf, Position{Batch: e.num(), Index: e.index()})
				}
			}
			if past {
				break
			}
		}
	}
	for _, set := range ix.frozen {
		buf = set.candidates(t, buf)
	}
	return ix.recent.candidates(t, buf), nil
}

func (rs *recentSet) candidates(t uint64, buf []Position) []Position {
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
			buf = append(buf, Position{Batch: part[i].num(), Index: part[i].index()})
		}
	}
	return buf
}

// Each calls fn with the tag of every entry held, reading each run once.
func (ix *Index) Each(fn func(Tag)) error {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.eachLocked(fn)
}

func (ix *Index) eachLocked(fn func(Tag)) error {
	for _, r := range ix.runs {
		rr := r.reader()
		for {
			e, ok, err := rr.next()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			fn(Tag(e.tag))
		}
	}
	for _, set := range append(slices.Clip(ix.frozen), ix.recent) {
		for _, part := range set.parts {
			for _, e := range part {
				fn(Tag(e.tag))
			}
		}
	}
	return nil
}

// AttachFilter adds to f the tag of every entry held, reading each run
// once, and has Add give f every tag from then on, before the entry is
// searchable; it reports how many tags it added. The node calls it at
// start, before anything is added. A nil f (no filter) holds nothing.
func (ix *Index) AttachFilter(f *Filter) (held int, err error) {
	if f == nil {
		return 0, nil
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.filter = f
	err = ix.eachLocked(func(tag Tag) {
		f.Add(tag)
		held++
	})
	return held, err
}

// Flush writes what memory holds as a run and waits until every run is
// written and merged.
func (ix *Index) Flush() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.recent.hi > ix.recent.lo {
		ix.frozen = append(ix.frozen, ix.recent)
		ix.recent = &recentSet{lo: ix.recent.hi, hi: ix.recent.hi}
	}
	ix.startWriterLocked()
	for ix.running {
		ix.cond.Wait()
	}
	return ix.err
}

// stopWriterLocked ends the background writer (a merge under way is
// abandoned, its .tmp removed) and waits for it.
func (ix *Index) stopWriterLocked() {
	ix.closing = true
	ix.abort.Store(true)
	ix.cond.Broadcast()
	for ix.running {
		ix.cond.Wait()
	}
}

// Close stops the background writer and closes the runs. What memory
// held is rebuilt from the source at the next Open. Lookups after it fail.
func (ix *Index) Close() error {
	if ix == nil {
		return nil
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.stopWriterLocked()
	var errs []error
	for _, r := range ix.runs {
		errs = append(errs, r.f.Close())
	}
	ix.runs, ix.closed = nil, true
	return errors.Join(errs...)
}

// Reset empties the index, runs and memory, after its batches were wiped
// from the source; the next batch added is next. The attached filter
// keeps its bits: a stale bit is only a false positive.
func (ix *Index) Reset(next uint64) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.stopWriterLocked()
	var errs []error
	for _, r := range ix.runs {
		errs = append(errs, r.f.Close(), ix.fs.Remove(r.path))
	}
	ix.runs, ix.frozen, ix.recent = nil, nil, &recentSet{lo: next, hi: next}
	ix.closing, ix.err = false, nil
	ix.abort.Store(false)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Numbers below next hold no batch any more: an empty run says so, so
	// the next Open rebuilds nothing for them.
	if next > 0 {
		r, err := ix.writeRun(&recentSet{lo: 0, hi: next})
		if err != nil {
			return err
		}
		ix.runs = []*run{r}
	}
	return nil
}
