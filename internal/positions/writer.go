package positions

// The background writer: it writes each frozen set as a run, then merges
// adjacent runs while the older holds at most twice the newer's entries, and
// stops the index's writes at its first failure (doc.go, Memory and merges).

import (
	"errors"
	"fmt"
	"slices"
)

// mergeNeededLocked is the first of two adjacent runs to merge, or -1.
func (ix *Index) mergeNeededLocked() int {
	for i := 0; i+1 < len(ix.runs); i++ {
		if ix.runs[i].count <= 2*ix.runs[i+1].count {
			return i
		}
	}
	return -1
}

func (ix *Index) startMergesLocked() {
	if ix.mergeNeededLocked() >= 0 {
		ix.startWriterLocked()
	}
}

func (ix *Index) startWriterLocked() {
	if ix.running || ix.closing || ix.err != nil {
		ix.cond.Broadcast()
		return
	}
	ix.running = true
	go ix.writer()
}

// writer writes the frozen sets as runs, then merges runs, until there is
// nothing to do.
func (ix *Index) writer() {
	ix.mu.Lock()
	defer func() {
		ix.running = false
		ix.cond.Broadcast()
		ix.mu.Unlock()
	}()
	for !ix.closing {
		if len(ix.frozen) > 0 {
			set := ix.frozen[0]
			ix.mu.Unlock()
			r, err := ix.writeRun(set)
			ix.mu.Lock()
			if err != nil {
				ix.failLocked(err)
				return
			}
			ix.runs = append(ix.runs, r)
			ix.frozen = ix.frozen[1:]
			ix.cond.Broadcast()
			continue
		}
		i := ix.mergeNeededLocked()
		if i < 0 {
			return
		}
		a, b := ix.runs[i], ix.runs[i+1]
		ix.mu.Unlock()
		m, err := ix.mergeRuns(a, b)
		ix.mu.Lock()
		if errors.Is(err, errMergeAborted) {
			return
		}
		if err != nil {
			ix.failLocked(err)
			return
		}
		ix.runs = slices.Replace(ix.runs, i, i+2, m)
		// No reader holds a or b now: readers use runs under the read lock.
		ix.mu.Unlock()
		err = errors.Join(a.f.Close(), b.f.Close(), ix.fs.Remove(a.path), ix.fs.Remove(b.path), ix.fs.SyncDir(ix.dir))
		ix.mu.Lock()
		if err != nil {
			ix.failLocked(err)
			return
		}
	}
}

func (ix *Index) failLocked(err error) {
	ix.err = fmt.Errorf("index run: %w", err)
	ix.log.Error("writing the index's runs failed; index writes stop until restart", "err", err)
	ix.cond.Broadcast()
}

var errMergeAborted = errors.New("merge aborted")

// writeRun writes a set's entries, merging its sorted parts, as a run.
func (ix *Index) writeRun(set *recentSet) (*run, error) {
	w, err := newRunWriter(ix.fs, ix.dir, set.lo, set.hi)
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
	return w.finish(ix.dir, set.lo, set.hi)
}

// mergeRuns writes runs a and b (adjacent: a.hi == b.lo) as one, reading
// both as streams.
func (ix *Index) mergeRuns(a, b *run) (*run, error) {
	if a.hi != b.lo {
		return nil, fmt.Errorf("runs [%d, %d) and [%d, %d) are not adjacent", a.lo, a.hi, b.lo, b.hi)
	}
	w, err := newRunWriter(ix.fs, ix.dir, a.lo, b.hi)
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
		if n%(1<<16) == 0 && ix.abort.Load() {
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
	return w.finish(ix.dir, a.lo, b.hi)
}
