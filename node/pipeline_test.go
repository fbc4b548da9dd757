package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/internal/positions"
	"github.com/credence-ledger/credence/internal/queuelog"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/internal/vfs"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestPipeline runs the scenarios of testdata/pipeline: the durable queue,
// the batcher and the indexer on a real badger database, with the chain
// faked and the clock and the batcher's ticks driven by the scenario.
// Rewrite the expected output with -update after a deliberate change.
//
// Commands (hashes are named; a name stands for its SHA-256):
//
//	config [max-leaves=N] [rebroadcast=D]   change the batcher's settings
//	submit issuer=I hashes=(a,b)            one Submit, answered once synced
//	submit                                  several, one per input line
//	  I a,b                                 "issuer hash,hash", one group commit
//	fail-sync [n=N]                         the next N syncs fail
//	mempool-full [n=N]                      the next N broadcasts are refused
//	tick                                    one batcher tick: settle, then cut
//	settle                                  settle without cutting
//	advance by=D                            move the clock
//	commit [index=false]                    the chain commits its mempool as the
//	                                        next block; the node indexes it
//	                                        unless it is down or index=false
//	drop                                    the chain's mempool loses every tx
//	foreign issuer=I hashes=(a) [seq=N]     a batch signed by another node with
//	                                        the same issuer key enters the
//	                                        mempool ahead of the rest
//	crash                                   the node stops where it is: memory
//	                                        is lost, the database kept
//	restart                                 reopen the database: load, catch up
//	                                        the index, reconcile the queue
//	lookup hashes=(a) [issuer=I]            what GetReceipt would find
//	tags collide                            every hash gets the same index tag
//	                                        from now on (until the scenario ends)
//	rotate issuer=I                         the chain rotates I's key: the key the
//	                                        node holds no longer signs
//	rekey issuer=I                          (node down) the node is configured
//	                                        with I's key on chain
//	state                                   queue, batches in flight, waiting,
//	                                        why Submit is refused
//	damage-leaves hashes=(a)                a byte of each indexed hash changes
//	                                        in the leaves log
//
// After every command the harness checks what must hold between any two
// steps: the queue and the batches in flight on disk are those in memory,
// and every hash queued or in flight is waiting or already indexed.
//
// Each scenario runs twice: with the index's positions held in memory, and
// with each batch's positions written to a run file (and runs merged) as it
// is indexed; the answers are the same.
func TestPipeline(t *testing.T) {
	if *updateGolden {
		// datadriven rewrites its files under a flag of its own.
		if err := flag.Set("rewrite", "true"); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		recent int
	}{{"positions-in-memory", defaultMemoryConfig().IndexRecentHashes}, {"run-per-batch", 1}} {
		recent := c.recent
		t.Run(c.name, func(t *testing.T) {
			datadriven.Walk(t, "testdata/pipeline", func(t *testing.T, path string) {
				s := newScenario(t)
				s.indexRecent = recent
				defer s.close()
				datadriven.RunTest(t, path, s.run)
			})
		})
	}
}

var (
	errInjectedSync  = errors.New("injected sync failure")
	errInjectedIndex = errors.New("injected index failure")
)

// scenario is one node's pipeline over a fake chain that outlives it.
type scenario struct {
	t     *testing.T
	dir   string
	cfg   *config
	keys  map[string]ed25519.PrivateKey
	chain *fakeChain
	now   time.Time
	start time.Time
	names map[hash]string
	out   *strings.Builder // what the pipeline logs, and the chain's events

	// Nil while the node is down.
	db *badger.DB
	p  *pipeline
	ix *indexer

	syncs     int
	failSyncs int
	// segmentBytes, when set, is the queue log's segment size.
	segmentBytes int64
	// indexRecent is the index's bound on positions held in memory.
	indexRecent int
	// tag is the positions index's tag function; nil is the default.
	tag func(hash []byte) positions.Tag
	// group is the group commit under way, for the check that none of its
	// requests is answered before the sync.
	group []*submitReq
}

func newScenario(t *testing.T) *scenario {
	s := &scenario{
		t:   t,
		dir: filepath.Join(t.TempDir(), "credence"),
		cfg: &config{
			BatchInterval:    duration{time.Second},
			BatchMaxLeaves:   4,
			RebroadcastAfter: duration{15 * time.Second},
			QueueSegmentMB:   1,
			Memory:           defaultMemoryConfig(),
		},
		keys:  make(map[string]ed25519.PrivateKey),
		start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		names: make(map[hash]string),
		out:   &strings.Builder{},
	}
	s.indexRecent = s.cfg.Memory.IndexRecentHashes
	s.now = s.start
	for _, is := range []string{"uni-a", "uni-b"} {
		seed := sha256.Sum256([]byte(is))
		s.keys[is] = ed25519.NewKeyFromSeed(seed[:])
	}
	s.chain = &fakeChain{s: s, last: make(map[string]uint64), records: make(map[string]*app.CommittedBatch), blocks: make(map[int64][][]byte),
		valid: make(map[string]ed25519.PrivateKey)}
	for is, k := range s.keys {
		s.chain.valid[is] = k
	}
	if err := s.open(); err != nil {
		t.Fatal(err)
	}
	return s
}

// open starts the node's pipeline on the database as Start does, up to
// the point where its loops would run (the scenario drives them).
func (s *scenario) open() error {
	db, err := store.OpenBadger(s.dir)
	if err != nil {
		return err
	}
	s.db = db
	log := slog.New(slog.NewTextHandler(scenarioLog{s.out}, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	// As Start does; the anchored filter small, as the scenarios hold few
	// hashes.
	idx, err := openIndex(db, indexOptions{RecentHashes: s.indexRecent, CheckedBatches: defaultLeavesCheckedBatches, FilterMB: 1, Tag: s.tag, Log: log})
	if err != nil {
		return err
	}
	s.p = newPipeline(db, s.chain, idx, s.cfg, pipelineOptions{
		QueueDir: s.queueDir(), ChainID: "credence-test", Keys: s.keys, Log: log,
		Now:  func() time.Time { return s.now },
		Sync: s.sync,
		// The queue log's syncs are the scenario's too: watched, and
		// failed when it says.
		QueueFS: vfs.NewFaulty(vfs.Default, func(op vfs.Op, _ string) error {
			if op == vfs.OpSync {
				return s.sync()
			}
			return nil
		}),
		QueueSegmentBytes: s.segmentBytes,
	})
	if s.ix, err = newIndexer(db, s.chain, newCommitQueue(), idx, s.p, nil, indexerOptions{Log: log}); err != nil {
		return errors.Join(err, idx.close())
	}
	if err := s.p.load(); err != nil {
		return err
	}
	if err := s.ix.catchUp(s.chain.height); err != nil {
		return err
	}
	return s.p.reconcile()
}

// scenarioLog prefixes the pipeline's log lines in the output.
type scenarioLog struct{ w io.Writer }

func (l scenarioLog) Write(b []byte) (int, error) {
	if _, err := io.WriteString(l.w, "log: "); err != nil {
		return 0, err
	}
	return l.w.Write(b)
}

// down stops the node as a crash does. Closing keeps what badger holds;
// every write the pipeline relies on surviving was synced before it moved
// on, which is what the scenarios test.
func (s *scenario) down(t *testing.T) {
	t.Helper()
	if err := s.p.queue.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// The index's background writer dies with the process.
	if err := s.ix.index.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	s.db, s.p, s.ix = nil, nil, nil
}

func (s *scenario) queueDir() string { return filepath.Join(filepath.Dir(s.dir), "queue") }

// sync is the pipeline's barrier and, before the file's own sync, the
// queue log's: a failure injected fails either.
func (s *scenario) sync() error {
	s.syncs++
	for _, r := range s.group {
		if len(r.done) > 0 {
			s.t.Errorf("a request of the group was answered before the sync")
		}
	}
	if s.failSyncs > 0 {
		s.failSyncs--
		return errInjectedSync
	}
	return s.db.Sync()
}

func (s *scenario) close() {
	if s.ix != nil {
		if err := s.ix.index.close(); err != nil {
			s.t.Error(err)
		}
	}
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			s.t.Error(err)
		}
	}
}

func (s *scenario) hashOf(name string) hash {
	h := hash(sha256.Sum256([]byte(name)))
	s.names[h] = name
	return h
}

func (s *scenario) name(h hash) string {
	if n, ok := s.names[h]; ok {
		return n
	}
	return fmt.Sprintf("%x", h[:4])
}

func (s *scenario) nameAll(hashes []byte) string {
	var out []string
	for _, h := range leaves(hashes) {
		out = append(out, s.name(h))
	}
	return strings.Join(out, " ")
}

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
		tx, err := app.NewAnchorBatch("credence-test", issuer, seq, hashes, s.keys[issuer])
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

// fakeChain stands for the app and consensus: batches broadcast go to its
// mempool, and commit makes the next block of them, with the app's
// sequence rule (an issuer's next batch is its last plus one).
type fakeChain struct {
	s       *scenario
	height  int64
	mempool []mempoolTx
	last    map[string]uint64
	records map[string]*app.CommittedBatch // issuer/seq → committed batch
	blocks  map[int64][][]byte
	// refuse is how many broadcasts the mempool refuses, as when full.
	refuse int
	// valid is the key each issuer signs with on chain (rotate).
	valid     map[string]ed25519.PrivateKey
	rotations int
	// failIndex fails the indexer's reads of blocks, as a failing index
	// write would (set from the test, read by the index writer).
	failIndex atomic.Bool
}

func (c *fakeChain) CanSign(issuer string, pub ed25519.PublicKey) error {
	if k, ok := c.valid[issuer]; !ok || !pub.Equal(k.Public()) {
		return fmt.Errorf("%w: key %x is not a valid key of issuer %q", app.ErrUnauthorized, pub[:4], issuer)
	}
	return nil
}

type mempoolTx struct {
	raw []byte
	a   anchorTx
}

func recordKey(issuer string, seq uint64) string { return fmt.Sprintf("%s/%d", issuer, seq) }

func (c *fakeChain) LastSequence(issuer string) (uint64, error) { return c.last[issuer], nil }

func (c *fakeChain) Batch(issuer string, seq uint64) (*proof.BatchRecord, []byte, error) {
	b, ok := c.records[recordKey(issuer, seq)]
	if !ok {
		return nil, nil, fmt.Errorf("batch %s/%d: %w", issuer, seq, app.ErrNotFound)
	}
	return b.Record, b.RecordBytes, nil
}

func (c *fakeChain) ProveBatch(issuer string, seq uint64) (*app.CommittedBatch, error) {
	b, ok := c.records[recordKey(issuer, seq)]
	if !ok {
		return nil, fmt.Errorf("batch %s/%d: %w", issuer, seq, app.ErrNotFound)
	}
	return &app.CommittedBatch{Record: b.Record, RecordBytes: b.RecordBytes, Proof: b.Proof}, nil
}

func (c *fakeChain) BlockTxs(height int64) ([][]byte, error) {
	txs, ok := c.blocks[height]
	if !ok {
		return nil, fmt.Errorf("block %d is not in the block store", height)
	}
	return txs, nil
}

func (c *fakeChain) ValidatorsChangeAfter(height int64) (bool, error) {
	if c.failIndex.Load() {
		return false, fmt.Errorf("block %d: %w", height, errInjectedIndex)
	}
	if height < 1 || height > c.height {
		return false, fmt.Errorf("block %d is not in the block store", height)
	}
	return false, nil
}

// SignedHeader stands for header height signed by block height+1.
func (c *fakeChain) SignedHeader(height int64) (*headerEntry, error) {
	if height < 1 || height >= c.height {
		return nil, fmt.Errorf("header %d is not signed yet (chain at %d)", height, c.height)
	}
	return &headerEntry{signedHeader: []byte(fmt.Sprintf("header %d", height))}, nil
}

// Broadcast takes the transaction into the mempool unless it is there
// already, which CometBFT answers with an error.
func (c *fakeChain) Broadcast(_ context.Context, tx []byte) (uint32, string, error) {
	a, err := decodeAnchor(tx)
	if err != nil {
		return 0, "", err
	}
	if c.refuse > 0 {
		c.refuse--
		fmt.Fprintf(c.s.out, "broadcast %s/%d: mempool is full\n", a.signer, a.seq)
		return 0, "", errors.New("mempool is full")
	}
	if err := c.CanSign(a.signer, a.pubKey); err != nil {
		fmt.Fprintf(c.s.out, "broadcast %s/%d: CheckTx code %d: %v\n", a.signer, a.seq, app.CodeUnauthorized, err)
		return app.CodeUnauthorized, err.Error(), nil
	}
	for _, m := range c.mempool {
		if bytes.Equal(m.raw, tx) {
			fmt.Fprintf(c.s.out, "broadcast %s/%d: already in the mempool\n", a.signer, a.seq)
			return 0, "", errors.New("tx already exists in cache")
		}
	}
	c.mempool = append(c.mempool, mempoolTx{raw: tx, a: a})
	fmt.Fprintf(c.s.out, "broadcast %s/%d: %s\n", a.signer, a.seq, c.s.nameAll(a.hashes))
	return 0, "", nil
}

// commit makes the next block of the mempool and returns what the app's
// commit hook would hand the indexer.
func (c *fakeChain) commit() (int64, []app.CommittedBatch) {
	c.height++
	var txs [][]byte
	var batches []app.CommittedBatch
	for _, m := range c.mempool {
		txs = append(txs, m.raw)
		a := m.a
		if want := c.last[a.signer] + 1; a.seq != want {
			fmt.Fprintf(c.s.out, "block %d: %s/%d rejected: sequence %d, want %d\n", c.height, a.signer, a.seq, a.seq, want)
			continue
		}
		if err := c.CanSign(a.signer, a.pubKey); err != nil {
			fmt.Fprintf(c.s.out, "block %d: %s/%d rejected: %v\n", c.height, a.signer, a.seq, err)
			continue
		}
		root, err := proof.Root(a.hashes)
		if err != nil {
			c.s.t.Fatal(err)
		}
		rec := &proof.BatchRecord{Issuer: a.signer, Seq: a.seq, Root: root[:], LeafCount: uint64(len(a.hashes) / proof.HashSize), Height: c.height}
		raw, err := proto.Marshal(rec)
		if err != nil {
			c.s.t.Fatal(err)
		}
		b := app.CommittedBatch{Record: rec, RecordBytes: raw, Proof: []byte("proof"), Hashes: a.hashes}
		c.records[recordKey(a.signer, a.seq)] = &b
		c.last[a.signer] = a.seq
		batches = append(batches, b)
		fmt.Fprintf(c.s.out, "block %d: %s/%d anchored: %s\n", c.height, a.signer, a.seq, c.s.nameAll(a.hashes))
	}
	if len(txs) == 0 {
		fmt.Fprintf(c.s.out, "block %d: empty\n", c.height)
	}
	c.blocks[c.height] = txs
	c.mempool = nil
	return c.height, batches
}
