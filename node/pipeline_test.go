package node

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/dgraph-io/badger/v4"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/internal/positions"
	"github.com/credence-ledger/credence/internal/store"
	"github.com/credence-ledger/credence/internal/vfs"
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
