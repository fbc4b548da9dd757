package node

// The scenario's view of the node's state: what the state command prints,
// and the invariants checked after every command.

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/positions"
)

func (s *scenario) printState() {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, is := range p.issuers() {
		if q := p.pending[is]; len(q) > 0 {
			var names []string
			for _, e := range q {
				names = append(names, s.name(e.hash))
			}
			fmt.Fprintf(s.out, "queued   %s: %s\n", is, strings.Join(names, " "))
		}
		seqs := make([]uint64, 0, len(p.inflight[is]))
		for seq := range p.inflight[is] {
			seqs = append(seqs, seq)
		}
		slices.Sort(seqs)
		for _, seq := range seqs {
			f := p.inflight[is][seq]
			sent := "not sent"
			if !f.sentAt.IsZero() {
				sent = "sent at +" + f.sentAt.Sub(s.start).String()
			}
			fmt.Fprintf(s.out, "inflight %s/%d: %s (%s)\n", is, seq, s.nameAll(f.hashes), sent)
		}
		if w := p.waiting[is]; len(w) > 0 {
			var names []string
			for h := range w {
				names = append(names, s.name(h))
			}
			sort.Strings(names)
			fmt.Fprintf(s.out, "waiting  %s: %s\n", is, strings.Join(names, " "))
		}
	}
	var mem []string
	for _, m := range s.chain.mempool {
		mem = append(mem, fmt.Sprintf("%s/%d", m.a.signer, m.a.seq))
	}
	fmt.Fprintf(s.out, "indexed %d, chain %d, mempool [%s]\n", s.ix.indexedHeight(), s.chain.height, strings.Join(mem, " "))
	for _, why := range p.live.problems() {
		fmt.Fprintf(s.out, "submit refused: %s\n", why)
	}
}

// checkInvariants fails the test when what holds between any two steps of
// the pipeline does not: the disk holds exactly the queue and the batches
// in flight that memory does (a restart would rebuild the same), every
// hash queued or in flight is waiting unless already indexed, and every
// hash waiting is queued or in flight.
func (s *scenario) checkInvariants() {
	t := s.t
	t.Helper()
	disk := newPipeline(s.db, s.chain, nil, s.cfg, pipelineOptions{QueueDir: s.queueDir(), ChainID: "credence-test", Keys: s.keys, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := disk.load(); err != nil {
		t.Fatalf("load: %v", err)
	}
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	// The log may still hold hashes cut into batches since indexed, in a
	// segment kept by others: the restart's reconcile drops them.
	indexed := func(h hash, is string) bool {
		var found bool
		if err := s.db.View(func(txn *badger.Txn) error {
			_, err := anchoredAt(txn, s.ix.index, h[:], is)
			found = err == nil
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return found
	}
	for is, q := range disk.pending {
		disk.pending[is] = slices.DeleteFunc(q, func(e queued) bool { return indexed(e.hash, is) })
	}
	// Submit trusts the filter's "no": it must hold every position written.
	if err := s.ix.index.positions.Each(func(tag positions.Tag) {
		if !s.ix.index.anchored.MayHold(tag) {
			t.Errorf("position under tag %016x is indexed but not in the anchored filter", tag)
		}
	}); err != nil {
		t.Fatal(err)
	}
	// Each segment's count of hashes queued is what the queue holds of it,
	// so a segment goes exactly when the last of them is cut.
	inSeg := make(map[uint64]int)
	for _, q := range p.pending {
		for _, e := range q {
			inSeg[e.seg]++
		}
	}
	counts := p.queue.log.Counts()
	for seg, n := range counts {
		if inSeg[seg] != n {
			t.Errorf("segment %d: counts %d hashes queued, the queue holds %d of it", seg, n, inSeg[seg])
		}
		if _, err := os.Stat(p.queue.log.Path(seg)); err != nil {
			t.Errorf("segment %d counted but not on disk: %v", seg, err)
		}
	}
	for seg, n := range inSeg {
		if _, ok := counts[seg]; !ok {
			t.Errorf("segment %d holds %d hashes queued but is not counted", seg, n)
		}
	}
	for _, is := range p.issuers() {
		mem := slices.Clone(p.pending[is])
		for i := range mem {
			mem[i].at = time.Time{} // the acknowledgement time is for metrics, not stored
		}
		sort.Slice(mem, func(i, j int) bool { return mem[i].qseq < mem[j].qseq })
		if got := disk.pending[is]; !slices.Equal(mem, got) {
			t.Errorf("%s: queue in memory %v, on disk %v", is, mem, got)
		}
		if len(p.inflight[is]) != len(disk.inflight[is]) {
			t.Errorf("%s: %d batches in flight in memory, %d on disk", is, len(p.inflight[is]), len(disk.inflight[is]))
		}
		for seq, f := range p.inflight[is] {
			if g := disk.inflight[is][seq]; g == nil || !bytes.Equal(g.tx, f.tx) {
				t.Errorf("%s/%d: batch in flight in memory is not the one on disk", is, seq)
			}
		}
		unaccounted := func(h hash) bool {
			if _, ok := p.waiting[is][h]; ok {
				return false
			}
			var indexed bool
			if err := s.db.View(func(txn *badger.Txn) error {
				_, err := anchoredAt(txn, s.ix.index, h[:], is)
				indexed = err == nil
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return !indexed
		}
		for _, e := range p.pending[is] {
			if unaccounted(e.hash) {
				t.Errorf("%s: queued hash %s is neither waiting nor indexed", is, s.name(e.hash))
			}
		}
		held := make(map[hash]bool)
		for _, e := range p.pending[is] {
			held[e.hash] = true
		}
		for seq, f := range p.inflight[is] {
			for _, h := range leaves(f.hashes) {
				held[h] = true
				if unaccounted(h) {
					t.Errorf("%s/%d: hash %s in flight is neither waiting nor indexed", is, seq, s.name(h))
				}
			}
		}
		for h := range p.waiting[is] {
			if !held[h] {
				t.Errorf("%s: hash %s is waiting but neither queued nor in flight: it would never be anchored", is, s.name(h))
			}
		}
	}
}
