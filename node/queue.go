package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/internal/positions"
	"github.com/credence-ledger/credence/internal/queuelog"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// The durable queue: Submit's hashes are answered only once they are on
// disk, and a restart finds them there (load, reconcile).

// maxSubmitHashes bounds one Submit request (3.2 MB of hashes).
const maxSubmitHashes = 100_000

// maxGroupRequests bounds the requests that share one write and sync, so
// one group's answer is not held back by an endless stream of others.
const maxGroupRequests = 4096

// errQueueFull refuses a request, before any of its hashes is
// acknowledged, that would take the hashes waiting here past
// max_queued_hashes: the waiting set and the queue are held in memory.
var errQueueFull = errors.New("queue full")

type submitReq struct {
	issuer string
	hashes []byte
	base   uint64 // index of the first hash in the caller's numbering
	done   chan submitResult
}

type submitResult struct {
	queued uint64
	known  []*pb.Known
	err    error
}

// submit queues hashes for issuer and returns once they are on disk.
func (p *pipeline) submit(ctx context.Context, issuer string, hashes []byte, base uint64) (submitResult, error) {
	r := &submitReq{issuer: issuer, hashes: hashes, base: base, done: make(chan submitResult, 1)}
	select {
	case p.reqs <- r:
	case <-p.stopc:
		return submitResult{}, errStopped
	case <-ctx.Done():
		return submitResult{}, ctx.Err()
	}
	// Once handed over, the request is written whatever the caller does, so
	// wait for it: the answer must say what is durable.
	res := <-r.done
	return res, res.err
}

// commitLoop is the group commit: every request waiting when a write starts
// shares its one sync.
func (p *pipeline) commitLoop() {
	defer p.wg.Done()
	for {
		var group []*submitReq
		select {
		case r := <-p.reqs:
			group = append(group, r)
		case <-p.stopc:
			p.drainRequests()
			return
		}
	collect:
		for len(group) < maxGroupRequests {
			select {
			case r := <-p.reqs:
				group = append(group, r)
			default:
				break collect
			}
		}
		p.commitGroup(group)
	}
}

// drainRequests answers the requests handed over before the stop.
func (p *pipeline) drainRequests() {
	for {
		select {
		case r := <-p.reqs:
			p.commitGroup([]*submitReq{r})
		default:
			return
		}
	}
}

// candidate is one hash of a request that was not waiting here.
type candidate struct {
	req    int
	issuer string
	idx    uint64
	hash   hash
	// copies are the later copies of the hash (same issuer) in the group,
	// answered pending for now: each gets the answer the lookup gives
	// this one.
	copies []hashCopy
}

type hashCopy struct {
	req   int
	known *pb.Known
}

// commitGroup answers a group of requests with one append and one sync.
// Each phase below guarantees what its name says; together: a hash is
// answered "queued" only once it is synced, "pending" or "anchored" only
// when it is, and never queued twice.
func (p *pipeline) commitGroup(group []*submitReq) {
	results := make([]submitResult, len(group))
	claimed := p.claimUnseen(group, results)
	fresh, err := p.separateAnchored(claimed, results)
	if err != nil {
		p.refuse(group, err)
		return
	}
	at := p.assignQueuePositions(fresh)
	// A failed write or sync leaves nothing of the group in the log, so
	// nothing of it is queued: a retry queues it afresh.
	seg, err := p.writeQueue(fresh, at)
	if err != nil {
		p.releaseClaims(fresh)
		p.refuse(group, err)
		return
	}
	full := p.enqueue(fresh, at, seg, results)
	metricSubmitted.Add(float64(len(fresh)))
	for i, r := range group {
		r.done <- results[i]
	}
	if full {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

func (p *pipeline) refuse(group []*submitReq, err error) {
	p.log.Error("queue write failed; requests refused", "err", err)
	for _, r := range group {
		r.done <- submitResult{err: fmt.Errorf("queue write: %w", err)}
	}
}

// claimUnseen answers the hashes already waiting here as pending and claims
// every other one in the waiting set, so that a repeat, in this group or a
// later one, is seen as waiting. It returns the claimed hashes. A request
// that could take the waiting set past max_queued_hashes is refused whole,
// counting each of its hashes as new.
//
// A repeat of a hash claimed in this group is not known to be waiting yet:
// the lookup may find it anchored, or its request refused. So it is linked
// to its claim (candidate.copies), and answered as the claim is.
func (p *pipeline) claimUnseen(group []*submitReq, results []submitResult) []candidate {
	var claimed []candidate
	var repeats []repeat
	defer func() { linkCopies(claimed, repeats) }()
	p.mu.Lock()
	defer p.mu.Unlock()
	waiting, limit := p.waitingCount(), p.cfg.Memory.MaxQueuedHashes
	for i, r := range group {
		if n := len(r.hashes) / proof.HashSize; waiting+n > limit {
			results[i].err = fmt.Errorf("%w: %d hashes waiting, %d more would pass max_queued_hashes (%d)", errQueueFull, waiting, n, limit)
			continue
		}
		w := p.wait(r.issuer)
		for j, h := range leaves(r.hashes) {
			idx := r.base + j
			if _, ok := w[h]; ok {
				k := &pb.Known{Index: idx, State: pb.HashState_HASH_STATE_PENDING}
				results[i].known = append(results[i].known, k)
				repeats = append(repeats, repeat{issuer: r.issuer, hash: h, hashCopy: hashCopy{req: i, known: k}})
				continue
			}
			w[h] = struct{}{}
			waiting++
			claimed = append(claimed, candidate{req: i, issuer: r.issuer, idx: idx, hash: h})
		}
	}
	return claimed
}

// repeat is a hash found waiting by claimUnseen: waiting before the group,
// or claimed in it.
type repeat struct {
	issuer string
	hash   hash
	hashCopy
}

// linkCopies links each repeat of a hash claimed in the group to its
// claim. Repeats are rare (a retry), so the group's claims are indexed
// only when there are some.
func linkCopies(claimed []candidate, repeats []repeat) {
	if len(repeats) == 0 {
		return
	}
	type key struct {
		issuer string
		hash   hash
	}
	at := make(map[key]int, len(claimed))
	for i, c := range claimed {
		at[key{c.issuer, c.hash}] = i
	}
	for _, r := range repeats {
		if i, ok := at[key{r.issuer, r.hash}]; ok {
			claimed[i].copies = append(claimed[i].copies, r.hashCopy)
		}
	}
}

// separateAnchored answers the claimed hashes the index already holds as
// anchored, in every copy, releases their claims, and returns the others.
// It reads after the claim: the indexer records a hash's position (in the
// filter, then in the index) before it stops waiting, so no hash slips
// between the two checks. Only the hashes the filter may hold are looked
// up.
//
// A lookup that meets damaged leaves (errStoreDamaged) cannot tell whether
// that hash is anchored: the requests holding it are refused, and the rest
// of the group goes on, since the damage says nothing of their hashes. A
// hash claimed by a refused request is kept for the first request that
// holds a copy of it and is not refused. On any other error every claim is
// released.
func (p *pipeline) separateAnchored(claimed []candidate, results []submitResult) ([]candidate, error) {
	// Every tag first, then the filter: each check is a miss of main
	// memory, and with the tags' hashing out of the way the processor
	// overlaps the misses (BenchmarkFilterMayHold: 300 ns a hash
	// interleaved, 116 this way).
	tags := make([]positions.Tag, len(claimed))
	for i, c := range claimed {
		tags[i] = p.index.positions.Tag(c.hash[:])
	}
	var maybe []int // into claimed
	for i, tag := range tags {
		if p.index.anchored.MayHold(tag) {
			maybe = append(maybe, i)
		}
	}
	if len(maybe) == 0 {
		return claimed, nil
	}
	const (
		notAnchored = iota
		anchored
		damaged
	)
	state := make([]uint8, len(claimed))
	var damage map[int]error // by index into claimed; rare
	settled := 0             // anchored or damaged
	err := p.db.View(func(txn *badger.Txn) error {
		l := newLookup(txn, p.index)
		for _, i := range maybe {
			c := claimed[i]
			pos, err := l.findTagged(c.hash[:], tags[i], c.issuer)
			switch {
			case errors.Is(err, errNotFound):
			case errors.Is(err, errStoreDamaged):
				if damage == nil {
					damage = make(map[int]error)
				}
				damage[i] = err
				state[i] = damaged
				settled++
			case err != nil:
				return err
			default:
				answerAnchored(results, claimed[i], pos)
				state[i] = anchored
				settled++
			}
		}
		return nil
	})
	if err != nil {
		p.releaseClaims(claimed)
		return nil, err
	}
	// Refused first, so that no hash is kept for a request refused later;
	// in the order submitted, so that a request's answer names its first
	// hash that met the damage.
	for i := 0; len(damage) > 0 && i < len(claimed); i++ {
		if state[i] != damaged {
			continue
		}
		c := claimed[i]
		refuseRequest(results, c.req, c.idx, damage[i])
		for _, cp := range c.copies {
			refuseRequest(results, cp.req, cp.known.Index, damage[i])
		}
	}
	var released []candidate
	// In the order submitted: the queue keeps it.
	fresh := make([]candidate, 0, len(claimed)-settled)
	for i, c := range claimed {
		if state[i] != notAnchored || (results[c.req].err != nil && !handOver(&c, results)) {
			released = append(released, c)
			continue
		}
		fresh = append(fresh, c)
	}
	p.releaseClaims(released)
	return fresh, nil
}

// refuseRequest refuses request req of the group for the hash at idx.
func refuseRequest(results []submitResult, req int, idx uint64, err error) {
	if results[req].err == nil {
		results[req] = submitResult{err: fmt.Errorf("hash at index %d: %w", idx, err)}
	}
}

// answerAnchored answers every copy of c anchored at pos.
func answerAnchored(results []submitResult, c candidate, pos position) {
	results[c.req].known = append(results[c.req].known, &pb.Known{Index: c.idx, State: pb.HashState_HASH_STATE_ANCHORED,
		Issuer: pos.issuer, BatchSeq: pos.seq, LeafIndex: pos.index, Height: pos.height})
	for _, cp := range c.copies {
		cp.known.State = pb.HashState_HASH_STATE_ANCHORED
		cp.known.Issuer, cp.known.BatchSeq, cp.known.LeafIndex, cp.known.Height = pos.issuer, pos.seq, pos.index, pos.height
	}
}

// handOver gives the claim of c, whose request was refused, to the first
// copy in a request that was not: that copy is queued, not pending. It
// reports whether there was one.
func handOver(c *candidate, results []submitResult) bool {
	for j, cp := range c.copies {
		if results[cp.req].err != nil {
			continue
		}
		results[cp.req].known = slices.DeleteFunc(results[cp.req].known, func(k *pb.Known) bool { return k == cp.known })
		c.req, c.idx, c.copies = cp.req, cp.known.Index, c.copies[j+1:]
		return true
	}
	return false
}

// assignQueuePositions gives each fresh hash its issuer's next queue
// position. Only this and requeue assign positions, each under mu, so
// positions never collide.
func (p *pipeline) assignQueuePositions(fresh []candidate) []uint64 {
	at := make([]uint64, len(fresh))
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range fresh {
		at[i] = p.nextQ[c.issuer]
		p.nextQ[c.issuer]++
	}
	return at
}

// writeQueue appends the fresh hashes to the queue log as one record and
// syncs it; it returns the segment that holds them.
func (p *pipeline) writeQueue(fresh []candidate, at []uint64) (uint64, error) {
	if len(fresh) == 0 {
		return 0, nil
	}
	entries := make([]queuelog.Entry, len(fresh))
	for i, c := range fresh {
		entries[i] = queuelog.Entry{Issuer: c.issuer, Seq: at[i], Hash: c.hash}
	}
	return p.queue.add(entries)
}

// releaseClaims ends the claim of hashes that were not queued.
func (p *pipeline) releaseClaims(cs []candidate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.waiting[c.issuer], c.hash)
	}
}

// enqueue hands the written hashes to the batcher and counts them as queued
// in their answers. It reports whether an issuer's queue reached a full
// batch, so the batcher need not wait for its tick.
func (p *pipeline) enqueue(fresh []candidate, at []uint64, seg uint64, results []submitResult) (full bool) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range fresh {
		p.pending[c.issuer] = append(p.pending[c.issuer], queued{qseq: at[i], hash: c.hash, seg: seg, at: now})
		if len(p.pending[c.issuer]) >= p.cfg.BatchMaxLeaves {
			full = true
		}
		results[c.req].queued++
	}
	return full
}

// load reads the batches in flight and the queue left by the last run. A
// hash the log holds that is also in flight was cut (or requeued) just
// before a crash: the batch is what holds it.
func (p *pipeline) load() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.queue.migrate(p.sync); err != nil {
		return err
	}
	found, err := p.queue.scan(func(issuer string, seq uint64, tx []byte) error {
		a, err := decodeAnchor(tx)
		if err != nil {
			return fmt.Errorf("batch %s/%d in flight: %w", issuer, seq, err)
		}
		// Not sent in this run: the first settle sends it.
		f, err := newInflight(tx, a.hashes, time.Time{})
		if err != nil {
			return fmt.Errorf("batch %s/%d in flight: %w", issuer, seq, err)
		}
		p.flight(issuer)[seq] = f
		w := p.wait(issuer)
		for _, h := range leaves(a.hashes) {
			w[h] = struct{}{}
		}
		return nil
	}, func(issuer string, q queued) (bool, error) {
		p.nextQ[issuer] = max(p.nextQ[issuer], q.qseq+1)
		w := p.wait(issuer)
		if _, ok := w[q.hash]; ok {
			return false, nil
		}
		p.pending[issuer] = append(p.pending[issuer], q)
		w[q.hash] = struct{}{}
		return true, nil
	})
	if err != nil {
		return err
	}
	if torn := found.Torn; torn != nil {
		p.log.Warn("queue log ended in a record cut short by a crash, never acknowledged; removed it",
			"file", torn.File, "offset", torn.Offset, "bytes", torn.Bytes)
	}
	for _, f := range found.Lost {
		p.log.Warn("queue log segment given up by the operator (.lost): its hashes are not queued; their issuers submit them again", "file", f)
	}
	return nil
}

// reconcile drops from the queue any hash the index already holds: one cut
// and anchored whose log segment was kept by hashes still queued, a batch
// cut that was lost in a crash after its transaction went out, or one cut
// by another node that holds the same issuer's key. Then the segments
// left with nothing queued go.
func (p *pipeline) reconcile() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var anchored []queueEntry
	if err := p.db.View(func(txn *badger.Txn) error {
		l := newLookup(txn, p.index)
		for issuer, q := range p.pending {
			for _, e := range q {
				tag := p.index.positions.Tag(e.hash[:])
				if !p.index.anchored.MayHold(tag) {
					continue
				}
				_, err := l.findTagged(e.hash[:], tag, issuer)
				if errors.Is(err, errNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				anchored = append(anchored, queueEntry{issuer: issuer, queued: e})
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if len(anchored) > 0 {
		p.dropQueued(anchored)
	}
	// Segments left with nothing queued (their hashes in flight, or
	// anchored) go, once the batches in flight read above and a mark
	// without those segments are durable.
	if err := p.queue.mark(); err != nil {
		return err
	}
	if err := p.sync(); err != nil {
		return err
	}
	return p.queue.collect()
}

// dropQueued takes hashes the index holds out of the queue; the caller
// holds mu.
func (p *pipeline) dropQueued(anchored []queueEntry) {
	p.queue.drop(anchored)
	dropped := make(map[string]map[uint64]bool)
	for _, e := range anchored {
		if dropped[e.issuer] == nil {
			dropped[e.issuer] = make(map[uint64]bool)
		}
		dropped[e.issuer][e.qseq] = true
		delete(p.waiting[e.issuer], e.hash)
	}
	for issuer, d := range dropped {
		p.pending[issuer] = slices.DeleteFunc(p.pending[issuer], func(e queued) bool { return d[e.qseq] })
	}
	p.log.Warn("queue held hashes already anchored; dropped them", "count", len(anchored))
}
