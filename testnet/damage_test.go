//go:build e2e && damage

package testnet

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// The damage torture: one home with real data (batches anchored,
// snapshots taken, hashes acknowledged and still queued), then trial after
// trial a copy of it has one file of one store flipped, cut short,
// deleted or zeroed over a random range, and credenced starts on it. Each
// trial must end in one of two ways: refused, with a message naming the
// damaged store; or started, with every acknowledged hash anchored (a
// receipt that verifies offline) or still waiting, and every answer it
// gives verifying or refusing as DataLoss. Run with `make damage` (200
// trials); CI runs a short one. A failing trial prints the seed that
// replays the run (-damage.seed) and its trial number.

var (
	damageTrials = flag.Int("damage.trials", 20, "trials to run")
	damageSeed   = flag.Uint64("damage.seed", 0, "seed of the trial plan; 0 picks one (printed, so a failing run can be replayed)")
	damageOnly   = flag.Int("damage.trial", -1, "run only this trial of the plan (with -damage.seed)")
)

// A damage store is a class of files under data/, the name an operator
// reads in a refusal (the store's directory or file, relative to the
// home), and how its files are told.
type damageStore struct {
	name  string
	names []string // what a refusal may name: the store's path under the home, or its name in words
	match func(rel string) bool
}

func under(dir string) func(string) bool {
	return func(rel string) bool { return strings.HasPrefix(rel, dir+"/") }
}

var damageStores = []damageStore{
	{"queue", []string{"data/queue"}, under("data/queue")},
	{"leaves", []string{"data/leaves", "leaves log"}, under("data/leaves")},
	{"index runs", []string{"data/index"}, under("data/index")},
	{"badger tables", []string{"data/credence"}, func(rel string) bool {
		return under("data/credence")(rel) && strings.HasSuffix(rel, ".sst")
	}},
	{"badger value logs", []string{"data/credence"}, func(rel string) bool {
		return under("data/credence")(rel) && strings.HasSuffix(rel, ".vlog")
	}},
	{"badger memtables", []string{"data/credence"}, func(rel string) bool {
		return under("data/credence")(rel) && strings.HasSuffix(rel, ".mem")
	}},
	{"badger manifest, key registry", []string{"data/credence"}, func(rel string) bool {
		return under("data/credence")(rel) && !strings.HasSuffix(rel, ".sst") && !strings.HasSuffix(rel, ".vlog") && !strings.HasSuffix(rel, ".mem")
	}},
	{"block store", []string{"data/blockstore"}, under("data/blockstore")},
	{"state store", []string{"data/state"}, under("data/state")},
	{"evidence store", []string{"data/evidence"}, under("data/evidence")},
	{"consensus wal", []string{"data/cs.wal"}, under("data/cs.wal")},
	{"validator state", []string{"priv_validator_state.json"}, func(rel string) bool { return rel == "data/priv_validator_state.json" }},
	{"snapshots", []string{"data/snapshots"}, under("data/snapshots")},
}

var damageKinds = []string{"flip", "truncate", "delete", "zero"}

// Outcomes. Only the first three pass.
const (
	outRefused = "refused-naming-store"
	outWhole   = "started-and-whole"
	// Started, and refuses some acknowledged hash's receipt as DataLoss:
	// not lost, not wrong, but a damage the start did not refuse.
	outDataLoss = "started-DataLoss"
	outPanic    = "FAIL panic"
	outLoss     = "FAIL silent loss"
	outWrong    = "FAIL wrong answer"
	outHang     = "FAIL hang"
	outUnnamed  = "FAIL refused, store not named"
	outError    = "FAIL unclear error"
)

// damageBase is the home the trials copy, as a clean stop left it and as
// a kill left it, and what it acknowledged.
type damageBase struct {
	net    *network
	homes  [2]string // stopped, killed
	issuer string
	acked  [][]byte
}

var baseNames = [2]string{"stopped", "killed"}

func TestDamage(t *testing.T) {
	seed := *damageSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("damage seed %d (replay with -damage.seed=%d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	base := buildDamageBase(t)

	type cell struct{ store, kind string }
	tally := map[cell]map[string]int{}
	var failures []string
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*damageTrials)*3*time.Minute+5*time.Minute)
	defer cancel()
	for trial := 0; trial < *damageTrials; trial++ {
		// Every trial draws from r whether it runs or not, so that
		// -damage.trial replays trial n of the same plan.
		plan := planDamage(t, r, base.homes)
		if *damageOnly >= 0 && trial != *damageOnly {
			continue
		}
		out, detail := runDamageTrial(ctx, t, base, trial, plan)
		c := cell{plan.store.name, plan.kind}
		if tally[c] == nil {
			tally[c] = map[string]int{}
		}
		tally[c][out]++
		t.Logf("trial %d: %s %s of %s (%s, home %s): %s (%s)", trial, plan.kind, plan.what, plan.rel, plan.store.name, baseNames[plan.base], out, firstLine(detail))
		if strings.HasPrefix(out, "FAIL") {
			msg := fmt.Sprintf("trial %d (replay: -damage.seed=%d -damage.trial=%d): %s %s of %s (home %s): %s: %s", trial, seed, trial, plan.kind, plan.what, plan.rel, baseNames[plan.base], out, detail)
			failures = append(failures, msg)
			t.Error(msg)
		}
	}

	// The table: one row per store and damage kind.
	cells := make([]cell, 0, len(tally))
	for c := range tally {
		cells = append(cells, c)
	}
	slices.SortFunc(cells, func(a, b cell) int {
		if a.store != b.store {
			return strings.Compare(a.store, b.store)
		}
		return strings.Compare(a.kind, b.kind)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "\n| store | damage | trials | %s | %s | %s | failures |\n|---|---|---|---|---|---|---|\n", outRefused, outWhole, outDataLoss)
	for _, c := range cells {
		m := tally[c]
		n := 0
		var fails []string
		for out, k := range m {
			n += k
			if strings.HasPrefix(out, "FAIL") {
				fails = append(fails, fmt.Sprintf("%s: %d", strings.TrimPrefix(out, "FAIL "), k))
			}
		}
		slices.Sort(fails)
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %s |\n", c.store, c.kind, n, m[outRefused], m[outWhole], m[outDataLoss], strings.Join(fails, ", "))
	}
	t.Logf("damage: seed %d, outcomes by store and damage kind:%s", seed, b.String())
	if len(failures) > 0 {
		t.Logf("failing trials:\n%s", strings.Join(failures, "\n"))
	}
}

// buildDamageBase anchors some thirty batches on one validator (a
// snapshot every 5 blocks, index runs written every 500 hashes) and stops
// it cleanly; then, with a batch interval of an hour, it takes one more
// request, which stays queued, and is stopped (the first home), started
// again and killed (the second).
func buildDamageBase(t *testing.T) *damageBase {
	t.Helper()
	setConfig := func(home, from, to string) {
		p := filepath.Join(home, "config", "app.toml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(b), from, to, 1)
		if s == string(b) {
			t.Fatalf("app.toml does not hold %q", from)
		}
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	net := newNetworkWith(t, 1, func(home string) {
		setConfig(home, "snapshot_interval = 1000", "snapshot_interval = 5")
		// Index runs on disk (data/index), not only positions in memory.
		setConfig(home, "index_recent_hashes = 1048576", "index_recent_hashes = 500")
	})
	nd := net.nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Some thirty batches of a hundred hashes or so, over as many blocks
	// (a snapshot every five).
	var acked [][]byte
	for range 30 {
		hs := randomHashes(100)
		if _, err := nd.client.Submit(nd.authed(ctx), &pb.SubmitRequest{Hashes: hs}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(hs); i += 32 {
			acked = append(acked, hs[i:i+32])
		}
		if _, err := nd.receipt(ctx, hs[:32]); err != nil {
			t.Fatal(err)
		}
	}
	issuer := "member-0-registrar"
	// Anchored before the stop, so that the queue holds only the request
	// below.
	net.checkAnchoredOnce(ctx, nd, issuer, acked)
	net.stop(nd, syscall.SIGTERM)

	b, err := os.ReadFile(filepath.Join(nd.home, "config", "app.toml"))
	if err != nil {
		t.Fatal(err)
	}
	interval := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "batch_interval") {
			interval = line
		}
	}
	if interval == "" {
		t.Fatal("app.toml has no batch_interval")
	}
	setConfig(nd.home, interval, `batch_interval = "1h"`)
	net.start(nd)
	net.waitHeight(ctx, nd, 1)
	queued := randomHashes(50)
	if _, err := nd.client.Submit(nd.authed(ctx), &pb.SubmitRequest{Hashes: queued}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(queued); i += 32 {
		acked = append(acked, queued[i:i+32])
	}
	// Stopped cleanly: the queue's mark vouches for the queued request.
	net.stop(nd, syscall.SIGTERM)
	stopped := filepath.Join(filepath.Dir(nd.home), "stopped")
	if out, err := exec.Command("cp", "-a", nd.home, stopped).CombinedOutput(); err != nil {
		t.Fatalf("copy home: %v\n%s", err, out)
	}
	// Killed once serving again: badger's memtable logs (.mem) are left
	// for the start to replay, as after a crash.
	net.start(nd)
	net.waitHeight(ctx, nd, 1)
	net.stop(nd, syscall.SIGKILL)
	for _, home := range []string{stopped, nd.home} {
		setConfig(home, `batch_interval = "1h"`, interval)
	}

	var files []string
	filepath.WalkDir(filepath.Join(nd.home, "data"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(nd.home, p)
			files = append(files, rel)
		}
		return nil
	})
	t.Logf("base home: %d hashes acknowledged (50 of them still queued), %d files under data/ as killed:\n%s", len(acked), len(files), strings.Join(files, "\n"))
	return &damageBase{net: net, homes: [2]string{stopped, nd.home}, issuer: issuer, acked: acked}
}

type damagePlan struct {
	base  int // which of damageBase.homes
	store damageStore
	kind  string
	rel   string // file, relative to the home
	what  string // the range damaged
	off   int64
	n     int64
	salt  uint64
}

// planDamage picks a home (stopped or killed), a store (each with files
// equally likely), a file of it, a kind of damage and a range.
func planDamage(t *testing.T, r *rand.Rand, homes [2]string) damagePlan {
	t.Helper()
	base := r.IntN(2)
	home := homes[base]
	byStore := make([][]string, len(damageStores))
	var sizes = map[string]int64{}
	filepath.WalkDir(filepath.Join(home, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(home, p)
		rel = filepath.ToSlash(rel)
		// Badger's LOCK holds no data: its lock is the flock of a
		// running process.
		if filepath.Base(rel) == "LOCK" {
			return nil
		}
		for i, s := range damageStores {
			if s.match(rel) {
				fi, err := d.Info()
				if err != nil {
					return nil
				}
				byStore[i] = append(byStore[i], rel)
				sizes[rel] = fi.Size()
				break
			}
		}
		return nil
	})
	var stores []int
	for i, fs := range byStore {
		if len(fs) > 0 {
			stores = append(stores, i)
		}
	}
	if len(stores) == 0 {
		t.Fatal("no store files in the base home")
	}
	si := stores[r.IntN(len(stores))]
	files := byStore[si]
	slices.Sort(files)
	p := damagePlan{base: base, store: damageStores[si], rel: files[r.IntN(len(files))], kind: damageKinds[r.IntN(len(damageKinds))], salt: r.Uint64()}
	size := sizes[p.rel]
	switch {
	case p.kind == "delete":
		p.what = "the whole file"
	case size == 0:
		p.kind, p.what = "delete", "the whole (empty) file"
	case p.kind == "truncate":
		p.off = r.Int64N(size)
		p.what = fmt.Sprintf("from %d of %d", p.off, size)
	default:
		p.off = r.Int64N(size)
		// Mostly a few bytes, sometimes a long stretch (up to 1 MiB).
		maxN := min(size-p.off, 64)
		if r.IntN(4) == 0 {
			maxN = min(size-p.off, 1<<20)
		}
		p.n = 1 + r.Int64N(maxN)
		p.what = fmt.Sprintf("%d bytes at %d of %d", p.n, p.off, size)
	}
	return p
}

func (p damagePlan) apply(home string) error {
	path := filepath.Join(home, p.rel)
	switch p.kind {
	case "delete":
		return os.Remove(path)
	case "truncate":
		return os.Truncate(path, p.off)
	}
	// In place: badger's value logs are sparse files of 2 GiB.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	b := make([]byte, p.n)
	if _, err := f.ReadAt(b, p.off); err != nil {
		f.Close()
		return err
	}
	r := rand.New(rand.NewPCG(p.salt, p.salt))
	for i := range b {
		if p.kind == "zero" {
			b[i] = 0
		} else {
			b[i] ^= byte(1 + r.IntN(255))
		}
	}
	if _, err := f.WriteAt(b, p.off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runDamageTrial copies the base home, damages it as p says, starts
// credenced on it, and classifies what it did.
func runDamageTrial(ctx context.Context, t *testing.T, base *damageBase, trial int, p damagePlan) (outcome, detail string) {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	if out, err := exec.Command("cp", "-a", base.homes[p.base], home).CombinedOutput(); err != nil {
		t.Fatalf("copy home: %v\n%s", err, out)
	}
	defer os.RemoveAll(home)
	if err := p.apply(home); err != nil {
		t.Fatalf("damage %s: %v", p.rel, err)
	}
	n := base.net
	nd := *n.nodes[0]
	nd.home = home
	nd.log = filepath.Join(filepath.Dir(home), "node.log")
	n.start(&nd)
	defer func() {
		if nd.running() {
			nd.cmd.Process.Kill()
			<-nd.exited
		}
	}()
	logText := func() string {
		b, _ := os.ReadFile(nd.log)
		return string(b)
	}

	// Refused (exited) or serving, within a generous bound.
	serving := false
	deadline := time.After(2 * time.Minute)
wait:
	for {
		select {
		case <-nd.exited:
			break wait
		case <-deadline:
			return outHang, "neither exited nor served within 2m:\n" + tail(logText(), 15)
		case <-ctx.Done():
			return outHang, "the run's deadline passed"
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := nd.status(ctx); err == nil {
			serving = true
			break
		}
	}
	if !serving {
		log := logText()
		if panicked(log) {
			return outPanic, panicOf(log)
		}
		refusal := refusalOf(log)
		for _, name := range p.store.names {
			if strings.Contains(refusal, name) {
				return outRefused, refusal
			}
		}
		// Another file's name in the damaged store names it too (a table
		// of data/credence named by its full path).
		if strings.Contains(refusal, filepath.Base(p.rel)) {
			return outRefused, refusal
		}
		return outUnnamed, refusal
	}

	out, detail := checkServed(ctx, base, &nd)
	// A check's reads may have crashed it.
	if !nd.running() || panicked(logText()) {
		return outPanic, panicOf(logText())
	}
	n.stop(&nd, syscall.SIGTERM)
	if panicked(logText()) {
		return outPanic, panicOf(logText())
	}
	return out, detail
}

// checkServed: every acknowledged hash has a receipt that verifies, or is
// still waiting, or is refused as DataLoss; a hash never submitted is not
// found; every batch the node answers makes its root.
func checkServed(ctx context.Context, base *damageBase, nd *node) (outcome, detail string) {
	trust := base.net.trust
	pending := slices.Clone(base.acked)
	batches := map[uint64][]byte{} // seq → root
	var anchored [][]byte
	dataLoss := 0
	deadline := time.Now().Add(time.Minute)
	for len(pending) > 0 {
		var still [][]byte
		for _, h := range pending {
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			res, err := nd.client.GetReceipt(c, &pb.GetReceiptRequest{Hash: h})
			cancel()
			switch status.Code(err) {
			case codes.OK:
				v, verr := proof.Verify(res.Receipt, trust)
				if verr != nil {
					return outWrong, fmt.Sprintf("receipt of %x does not verify: %v", h, verr)
				}
				if !bytes.Equal(v.CredentialHash, h) || v.Issuer != base.issuer {
					return outWrong, fmt.Sprintf("receipt asked for %x is of %x (issuer %s)", h, v.CredentialHash, v.Issuer)
				}
				batches[v.BatchSeq] = v.BatchRoot
				anchored = append(anchored, h)
			case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
				still = append(still, h)
			case codes.DataLoss:
				dataLoss++
			case codes.NotFound:
				return outLoss, fmt.Sprintf("acknowledged hash %x: %v", h, err)
			default:
				return outError, fmt.Sprintf("receipt of %x: %v", h, err)
			}
		}
		pending = still
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for range 20 {
		h := randomHashes(1)
		_, err := nd.client.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: h})
		switch status.Code(err) {
		case codes.NotFound, codes.DataLoss:
		case codes.OK:
			return outWrong, fmt.Sprintf("hash %x, never submitted, answered anchored", h)
		default:
			return outError, fmt.Sprintf("receipt of a hash never submitted: %v", err)
		}
	}
	for seq, root := range batches {
		res, err := nd.client.GetBatch(ctx, &pb.GetBatchRequest{Issuer: base.issuer, Seq: seq, IncludeHashes: true})
		switch status.Code(err) {
		case codes.DataLoss:
			continue
		case codes.OK:
		case codes.NotFound:
			return outLoss, fmt.Sprintf("batch %d, whose receipts were served, not found: %v", seq, err)
		default:
			return outError, fmt.Sprintf("batch %d: %v", seq, err)
		}
		got, rerr := proof.Root(res.Hashes)
		if rerr != nil || !bytes.Equal(got[:], root) || !bytes.Equal(res.Record.Root, root) {
			return outWrong, fmt.Sprintf("batch %d answered with hashes or a root that do not make its anchored root", seq)
		}
	}
	// A status is a receipt and the issuer's standing, proved at one
	// height: a few of them.
	for _, h := range anchored[:min(len(anchored), 10)] {
		res, err := nd.client.GetStatus(ctx, &pb.GetStatusRequest{Hash: h})
		switch status.Code(err) {
		case codes.DataLoss:
			continue
		case codes.OK:
		default:
			return outError, fmt.Sprintf("status of %x, whose receipt was served: %v", h, err)
		}
		if _, err := proof.VerifyStatus(res.Status, trust, 24*time.Hour, time.Now()); err != nil {
			return outWrong, fmt.Sprintf("status of %x does not verify: %v", h, err)
		}
	}
	detail = fmt.Sprintf("%d hashes still waiting, %d receipts refused as DataLoss", len(pending), dataLoss)
	if dataLoss > 0 {
		return outDataLoss, detail
	}
	return outWhole, detail
}

func panicked(log string) bool {
	return strings.Contains(log, "panic:") || strings.Contains(log, "goroutine ") && strings.Contains(log, "[running]")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// panicOf is the panic's message and the top of its stack.
func panicOf(log string) string {
	i := strings.Index(log, "panic:")
	if i < 0 {
		return tail(log, 15)
	}
	lines := strings.Split(log[i:], "\n")
	return strings.Join(lines[:min(len(lines), 16)], "\n")
}

// refusalOf is what credenced said as it refused: its "error:" line, or
// (CometBFT exits on its own for some files) the last lines.
func refusalOf(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "error:") {
			return lines[i]
		}
	}
	return tail(log, 3)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
