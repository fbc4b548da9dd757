package node

// The scenario's commands (listed on TestPipeline): run reads each and
// drives the node, its queue log and the fake chain; the helpers below it do
// the work of the longer ones.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/internal/positions"
	"github.com/credence-ledger/credence/internal/queuelog"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

func (s *scenario) hashesArg(d *datadriven.TestData) []byte {
	arg, ok := d.Arg("hashes")
	if !ok {
		d.Fatalf(s.t, "hashes= is required")
	}
	return s.hashList(arg.Vals)
}

func (s *scenario) hashList(names []string) []byte {
	var b []byte
	for _, n := range names {
		h := s.hashOf(strings.TrimSpace(n))
		b = append(b, h[:]...)
	}
	return b
}

func (s *scenario) up(d *datadriven.TestData) {
	if s.db == nil {
		d.Fatalf(s.t, "%s: the node is down; restart it first", d.Cmd)
	}
}

func (s *scenario) run(t *testing.T, d *datadriven.TestData) string {
	s.t = t
	s.out.Reset()
	showState := true
	switch d.Cmd {
	case "config":
		if d.HasArg("max-leaves") {
			d.ScanArgs(t, "max-leaves", &s.cfg.BatchMaxLeaves)
		}
		if d.HasArg("rebroadcast") {
			var v string
			d.ScanArgs(t, "rebroadcast", &v)
			dur, err := time.ParseDuration(v)
			if err != nil {
				d.Fatalf(t, "rebroadcast: %v", err)
			}
			s.cfg.RebroadcastAfter = duration{dur}
		}
		if d.HasArg("segment-bytes") {
			d.ScanArgs(t, "segment-bytes", &s.segmentBytes)
			if s.db != nil {
				// The log's segment size is fixed when it is opened, as
				// queue_segment_mb is read at start: the node restarts.
				s.down(t)
				if err := s.open(); err != nil {
					d.Fatalf(t, "restart: %v", err)
				}
			}
			fmt.Fprintf(s.out, "queue log segments of %d bytes\n", s.segmentBytes)
		}
		if d.HasArg("max-queued") {
			d.ScanArgs(t, "max-queued", &s.cfg.Memory.MaxQueuedHashes)
			fmt.Fprintf(s.out, "max_queued_hashes %d\n", s.cfg.Memory.MaxQueuedHashes)
		}
		fmt.Fprintf(s.out, "batch_max_leaves %d, rebroadcast_after %s\n", s.cfg.BatchMaxLeaves, s.cfg.RebroadcastAfter.Duration)
		showState = false
	case "submit":
		s.up(d)
		var group []*submitReq
		if d.HasArg("issuer") {
			var issuer string
			d.ScanArgs(t, "issuer", &issuer)
			group = append(group, &submitReq{issuer: issuer, hashes: s.hashesArg(d)})
		}
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			if line == "" {
				continue
			}
			issuer, list, ok := strings.Cut(line, " ")
			if !ok {
				d.Fatalf(t, "submit: want lines of \"issuer hash,hash\", got %q", line)
			}
			group = append(group, &submitReq{issuer: issuer, hashes: s.hashList(strings.Split(list, ","))})
		}
		s.submit(group)
	case "fail-sync":
		n := 1
		if d.HasArg("n") {
			d.ScanArgs(t, "n", &n)
		}
		s.failSyncs = n
		fmt.Fprintf(s.out, "the next %d syncs fail\n", n)
		showState = false
	case "mempool-full":
		n := 1
		if d.HasArg("n") {
			d.ScanArgs(t, "n", &n)
		}
		s.chain.refuse = n
		fmt.Fprintf(s.out, "the mempool refuses the next %d broadcasts\n", n)
		showState = false
	case "tick":
		s.up(d)
		s.p.tick()
	case "settle":
		s.up(d)
		for _, is := range s.p.issuers() {
			if err := s.p.settle(is); err != nil {
				fmt.Fprintf(s.out, "settle %s: %v\n", is, err)
			}
		}
	case "advance":
		var v string
		d.ScanArgs(t, "by", &v)
		dur, err := time.ParseDuration(v)
		if err != nil {
			d.Fatalf(t, "by: %v", err)
		}
		s.now = s.now.Add(dur)
		fmt.Fprintf(s.out, "clock +%s\n", s.now.Sub(s.start))
		showState = false
	case "commit":
		index := true
		if d.HasArg("index") {
			d.ScanArgs(t, "index", &index)
		}
		height, batches := s.chain.commit()
		switch {
		case s.db == nil:
			fmt.Fprintf(s.out, "node down: block %d not indexed\n", height)
		case !index:
			fmt.Fprintf(s.out, "block %d not indexed\n", height)
		default:
			// What the indexer's loop does with the block the commit queue hands it.
			if err := s.ix.indexBlock(height, batches); err != nil {
				fmt.Fprintf(s.out, "index: %v\n", err)
			}
		}
	case "drop":
		for _, m := range s.chain.mempool {
			fmt.Fprintf(s.out, "mempool lost %s/%d\n", m.a.signer, m.a.seq)
		}
		s.chain.mempool = nil
	case "foreign":
		var issuer string
		d.ScanArgs(t, "issuer", &issuer)
		seq := s.chain.last[issuer] + 1
		if d.HasArg("seq") {
			d.ScanArgs(t, "seq", &seq)
		}
		hashes := s.hashesArg(d)
		tx, _, err := app.NewAnchorBatch("credence-test", issuer, seq, hashes, s.keys[issuer])
		if err != nil {
			d.Fatalf(t, "foreign: %v", err)
		}
		a, err := decodeAnchor(tx)
		if err != nil {
			d.Fatalf(t, "foreign: %v", err)
		}
		s.chain.mempool = append([]mempoolTx{{raw: tx, a: a}}, s.chain.mempool...)
		fmt.Fprintf(s.out, "mempool: %s/%d from another node: %s\n", issuer, seq, s.nameAll(hashes))
	case "crash":
		s.up(d)
		s.down(t)
		fmt.Fprintln(s.out, "node down")
		showState = false
	case "restart":
		if s.db != nil {
			d.Fatalf(t, "restart: the node is up; crash it first")
		}
		if err := s.open(); err != nil {
			fmt.Fprintf(s.out, "restart: %v\n", err)
			// The node does not start: it stays down.
			if s.p != nil {
				s.p.queue.close()
			}
			if s.ix != nil {
				s.ix.index.close()
			}
			if err := s.db.Close(); err != nil {
				d.Fatalf(t, "close: %v", err)
			}
			s.db, s.p, s.ix = nil, nil, nil
		}
	case "lookup":
		s.up(d)
		issuer := ""
		if d.HasArg("issuer") {
			d.ScanArgs(t, "issuer", &issuer)
		}
		for _, h := range leaves(s.hashesArg(d)) {
			fmt.Fprintf(s.out, "%s: %s\n", s.name(h), s.lookup(h, issuer))
		}
		showState = false
	case "tags":
		if len(d.CmdArgs) != 1 || d.CmdArgs[0].Key != "collide" {
			d.Fatalf(t, "tags: want \"tags collide\"")
		}
		s.up(d)
		if s.ix.index.positions.Next() != 0 {
			d.Fatalf(t, "tags collide: the index is opened with its tag function; give it before anything is indexed")
		}
		// The tag function is the index's from its opening: open it again.
		s.tag = func([]byte) positions.Tag { return 0 }
		if err := s.p.queue.close(); err != nil {
			d.Fatalf(t, "close: %v", err)
		}
		s.close()
		s.db, s.p, s.ix = nil, nil, nil
		if err := s.open(); err != nil {
			d.Fatalf(t, "tags collide: %v", err)
		}
		fmt.Fprintln(s.out, "every hash has the same tag")
		showState = false
	case "rotate":
		var issuer string
		d.ScanArgs(t, "issuer", &issuer)
		s.chain.rotations++
		seed := sha256.Sum256([]byte(fmt.Sprintf("%s rotated %d", issuer, s.chain.rotations)))
		s.chain.valid[issuer] = ed25519.NewKeyFromSeed(seed[:])
		fmt.Fprintf(s.out, "chain: %s's key rotated; the node's key no longer signs\n", issuer)
		showState = false
	case "rekey":
		if s.db != nil {
			d.Fatalf(t, "rekey: the key file is read at start; crash the node first")
		}
		var issuer string
		d.ScanArgs(t, "issuer", &issuer)
		s.keys[issuer] = s.chain.valid[issuer]
		fmt.Fprintf(s.out, "app.toml: %s's key is the one on chain\n", issuer)
		showState = false
	case "state":
		s.up(d)
	case "segments":
		s.printSegments()
		showState = false
	case "tear":
		// A crash in the middle of the last append: part of a record that
		// queues hashes, whose sync never returned.
		if s.db != nil {
			d.Fatalf(t, "tear: crash the node first")
		}
		var issuer string
		var keep int
		d.ScanArgs(t, "issuer", &issuer)
		d.ScanArgs(t, "keep", &keep)
		var entries []queuelog.Entry
		for i, h := range leaves(s.hashesArg(d)) {
			entries = append(entries, queuelog.Entry{Issuer: issuer, Seq: 1000 + i, Hash: h})
		}
		rec := queuelog.EncodeRecord(entries)
		if keep < 0 {
			// The file grew, its data never reached the disk.
			rec, keep = make([]byte, len(rec)), len(rec)
		}
		s.appendLast(d, rec[:keep])
		fmt.Fprintf(s.out, "last segment: %d of %d bytes of a record for %s appended\n", keep, len(rec), s.nameAll(s.hashesArg(d)))
		showState = false
	case "corrupt":
		// A byte of a segment changes on disk.
		if s.db != nil {
			d.Fatalf(t, "corrupt: crash the node first")
		}
		var seg uint64
		var off int64
		d.ScanArgs(t, "segment", &seg)
		d.ScanArgs(t, "offset", &off)
		path := queuelog.New(s.queueDir(), queuelog.Options{}).Path(seg)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			d.Fatalf(t, "corrupt: %v", err)
		}
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			d.Fatalf(t, "corrupt: %v", err)
		}
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, off); err != nil {
			d.Fatalf(t, "corrupt: %v", err)
		}
		if err := f.Close(); err != nil {
			d.Fatalf(t, "corrupt: %v", err)
		}
		fmt.Fprintf(s.out, "segment %d: byte %d flipped\n", seg, off)
		showState = false
	case "damage-leaves":
		// A byte of an indexed hash changes where the leaves log holds it.
		// The batches already checked are forgotten, as after a restart
		// with their positions in run files: the next read checks them.
		s.up(d)
		for _, h := range leaves(s.hashesArg(d)) {
			s.flipLeaf(d, h)
			fmt.Fprintf(s.out, "leaves log: a byte of %s changed\n", s.name(h))
		}
		s.ix.index.checks.forget()
		showState = false
	default:
		d.Fatalf(t, "unknown command %q", d.Cmd)
	}
	if s.db != nil {
		s.checkInvariants()
		if showState {
			s.printState()
		}
	}
	// Paths in errors and logs are under a temporary directory.
	return strings.ReplaceAll(s.out.String(), filepath.Dir(s.dir), "<data>")
}

// printSegments lists the queue log's segments and their sizes.
func (s *scenario) printSegments() {
	l := queuelog.New(s.queueDir(), queuelog.Options{})
	segs, err := l.Segments()
	if err != nil {
		s.t.Fatal(err)
	}
	if len(segs) == 0 {
		fmt.Fprintln(s.out, "no queue log segment")
	}
	for _, seg := range segs {
		st, err := os.Stat(l.Path(seg))
		if err != nil {
			s.t.Fatal(err)
		}
		fmt.Fprintf(s.out, "segment %d: %d bytes\n", seg, st.Size())
	}
}

// flipLeaf changes a byte of h in the leaves log, where a batch holds it.
func (s *scenario) flipLeaf(d *datadriven.TestData, h hash) {
	dir := filepath.Join(filepath.Dir(s.dir), "leaves")
	names, err := os.ReadDir(dir)
	if err != nil {
		d.Fatalf(s.t, "damage-leaves: %v", err)
	}
	for _, e := range names {
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			d.Fatalf(s.t, "damage-leaves: %v", err)
		}
		if i := bytes.Index(b, h[:]); i >= 0 {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				d.Fatalf(s.t, "damage-leaves: %v", err)
			}
			if _, err := f.WriteAt([]byte{b[i+5] ^ 0x40}, int64(i+5)); err != nil {
				d.Fatalf(s.t, "damage-leaves: %v", err)
			}
			if err := f.Close(); err != nil {
				d.Fatalf(s.t, "damage-leaves: %v", err)
			}
			return
		}
	}
	d.Fatalf(s.t, "damage-leaves: %s is not in the leaves log", s.name(h))
}

// appendLast appends b to the last segment of the queue log.
func (s *scenario) appendLast(d *datadriven.TestData, b []byte) {
	l := queuelog.New(s.queueDir(), queuelog.Options{})
	segs, err := l.Segments()
	if err != nil || len(segs) == 0 {
		d.Fatalf(s.t, "no segment to append to (%v)", err)
	}
	f, err := os.OpenFile(l.Path(segs[len(segs)-1]), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		d.Fatalf(s.t, "%v", err)
	}
	if _, err := f.Write(b); err != nil {
		d.Fatalf(s.t, "%v", err)
	}
	if err := f.Close(); err != nil {
		d.Fatalf(s.t, "%v", err)
	}
}

// submit runs one group commit, as commitLoop would with these requests
// waiting, and prints each answer; a request api.Submit refuses before it
// hands it over (liveness.go) is answered so and left out.
func (s *scenario) submit(reqs []*submitReq) {
	var group []*submitReq
	for _, r := range reqs {
		if err := s.p.live.refuse(r.issuer); err != nil {
			fmt.Fprintf(s.out, "%s: refused: %v\n", r.issuer, err)
			continue
		}
		group = append(group, r)
	}
	if len(group) == 0 {
		return
	}
	var base uint64
	for _, r := range group {
		r.done = make(chan submitResult, 1)
		r.base = base
		base += uint64(len(r.hashes) / proof.HashSize)
	}
	s.group = group
	before := s.syncs
	s.p.commitGroup(group)
	s.group = nil
	// Known entries are numbered across the group (base above).
	var all []hash
	for _, r := range group {
		for _, h := range leaves(r.hashes) {
			all = append(all, h)
		}
	}
	for _, r := range group {
		res := <-r.done
		if res.err != nil {
			fmt.Fprintf(s.out, "%s: refused: %v\n", r.issuer, res.err)
			continue
		}
		if res.queued > 0 && s.syncs == before {
			s.t.Errorf("%s: %d hashes acknowledged as queued without a sync", r.issuer, res.queued)
		}
		var known []string
		for _, k := range res.known {
			h := s.name(all[k.Index])
			switch k.State {
			case pb.HashState_HASH_STATE_PENDING:
				known = append(known, h+" pending")
			case pb.HashState_HASH_STATE_ANCHORED:
				known = append(known, fmt.Sprintf("%s anchored %s/%d leaf %d height %d", h, k.Issuer, k.BatchSeq, k.LeafIndex, k.Height))
			default:
				known = append(known, fmt.Sprintf("%s %v", h, k.State))
			}
		}
		line := fmt.Sprintf("%s: queued %d", r.issuer, res.queued)
		if len(known) > 0 {
			line += "; " + strings.Join(known, ", ")
		}
		fmt.Fprintln(s.out, line)
	}
	select {
	case <-s.p.wake:
		fmt.Fprintln(s.out, "batcher woken: a queue holds a full batch")
	default:
	}
}

// lookup is the decision GetReceipt makes for a hash.
func (s *scenario) lookup(h hash, issuer string) string {
	var pos position
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		pos, err = anchoredAt(txn, s.ix.index, h[:], issuer)
		return err
	})
	switch {
	case err == nil:
		return fmt.Sprintf("anchored %s/%d leaf %d height %d", pos.issuer, pos.seq, pos.index, pos.height)
	case !errors.Is(err, errNotFound):
		return fmt.Sprintf("error: %v", err)
	case s.p.isWaiting(h[:], issuer):
		return "waiting (queued or in a batch not yet final)"
	default:
		return "not anchored"
	}
}
