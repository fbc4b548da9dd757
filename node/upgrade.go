package node

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/internal/vfs"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// Coordinated upgrades, the node's part (the plan and the version live in
// the app: app/upgrade.go). When the block before a plan's height is
// committed and this binary has no handler for the plan's version, the app
// tells the node from inside Commit (app.WithUpgradeHalt); the app also
// rejects every proposal of the plan's height, so this binary never votes
// for a block it cannot run, and the chain waits for the new binaries.
// The node then refuses Submit (Unavailable, retry later), waits until the
// index holds every block up to the halt, writes data/upgrade-info.json and
// reports the halt (UpgradeHalt); the daemon stops cleanly (the queue
// synced) and exits with ExitUpgradeNeeded.

// ExitUpgradeNeeded is credenced start's exit status when the node halted
// for an upgrade it cannot run: a supervisor starts the new release.
const ExitUpgradeNeeded = 3

// UpgradeInfoFile is the file, under the home's data directory, a halted
// node writes: the fields of the Cosmos SDK's upgrade-info.json, so that
// tooling that watches for it (cosmovisor) works unchanged.
const UpgradeInfoFile = "upgrade-info.json"

// ErrUpgradeTooEarly: a binary with the plan's handler started on a chain
// that has not reached the block before the plan's height.
var ErrUpgradeTooEarly = errors.New("this binary is for a pending upgrade the chain has not reached")

// errUpgradeHalt: Submit is refused while the node halts for an upgrade.
var errUpgradeHalt = errors.New("the node halts for an upgrade")

// upgradeInfoRetry is the wait a refused client is told to retry after:
// about what members take to start the new release.
const upgradeInfoRetry = time.Minute

// UpgradeInfo is data/upgrade-info.json.
type UpgradeInfo struct {
	Name   string    `json:"name"`
	Time   time.Time `json:"time"`
	Height int64     `json:"height"`
	// Info is JSON: {"app_version":N,"binary_sha256":"hex"}.
	Info string `json:"info"`
}

type upgradeState struct {
	mu     sync.Mutex
	home   string
	plan   *pb.UpgradePlan // set once a halt is decided
	seen   chan struct{}   // closed when a halt is decided
	halted chan struct{}   // closed once the halt is ready (UpgradeHalt)
	quit   chan struct{}   // closed by Stop
}

func (u *upgradeState) init(home string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.home = home
	u.seen, u.halted, u.quit = make(chan struct{}), make(chan struct{}), make(chan struct{})
}

// decide records the halt; called from inside the app's Commit.
func (u *upgradeState) decide(p *pb.UpgradePlan) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.plan != nil || u.seen == nil {
		return
	}
	u.plan = p
	close(u.seen)
}

func (u *upgradeState) current() *pb.UpgradePlan {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.plan
}

// stop ends the watch; called by Stop.
func (u *upgradeState) stop() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.quit != nil {
		select {
		case <-u.quit:
		default:
			close(u.quit)
		}
	}
}

// UpgradeHalt is closed once the node has halted for an upgrade it cannot
// run; the caller then stops the node and exits with ExitUpgradeNeeded.
// UpgradePlan tells which.
func (n *Node) UpgradeHalt() <-chan struct{} { return n.upg.halted }

// HaltedFor is the plan the node halted for, nil when none.
func (n *Node) HaltedFor() *pb.UpgradePlan { return n.upg.current() }

// upgradeRefusal is Submit's answer while the node halts for an upgrade:
// Unavailable, so clients keep the hashes and retry; nothing is queued.
func (n *Node) upgradeRefusal() error {
	p := n.upg.current()
	if p == nil {
		return nil
	}
	return status.Errorf(codes.Unavailable, "%v %q at height %d (app version %d); nothing of this request was queued; retry in about %s, once the members run the new release",
		errUpgradeHalt, p.Name, p.Height, p.AppVersion, upgradeInfoRetry)
}

// checkUpgradeAtStart runs before consensus starts. A binary without the
// handler of a plan due at the next block halts again at once (a restart
// of the old release after its halt); one with the handler refuses a chain
// that has not reached the block before the plan (the release was
// installed too early), unless skip.
func (n *Node) checkUpgradeAtStart(skip bool) error {
	p, known, err := n.app.UpgradePlan()
	if err != nil || p == nil {
		return err
	}
	h := n.app.Height()
	switch {
	case !known && h >= p.Height-1:
		if err := writeUpgradeInfo(n.upg.home, p); err != nil {
			return err
		}
		return fmt.Errorf("%w: plan %q moves the chain to app version %d at height %d, and this binary has no handler for it; start the new release (%s written)",
			app.ErrUpgradeNeeded, p.Name, p.AppVersion, p.Height, filepath.Join("data", UpgradeInfoFile))
	case known && h < p.Height-1 && !skip:
		return fmt.Errorf("%w: plan %q is at height %d and the chain is at %d; run the current release until it halts at height %d, or start with --unsafe-skip-upgrade-check",
			ErrUpgradeTooEarly, p.Name, p.Height, h, p.Height-1)
	}
	return nil
}

// watchUpgrade waits for a halt decided by the app, then readies it.
func (n *Node) watchUpgrade() {
	u := &n.upg
	select {
	case <-u.seen:
	case <-u.quit:
		return
	}
	p := u.current()
	n.pipe.live.setHalting()
	n.log.Warn("upgrade needed: halting before its height; Submit is refused", "upgrade", p.Name, "height", p.Height, "app_version", p.AppVersion)
	// The index must hold every block this binary finalized, so the new
	// release starts with nothing to catch up that this one wrote.
	for n.idx.indexedHeight() < p.Height-1 {
		select {
		case <-u.quit:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := n.db.Sync(); err != nil {
		n.log.Error("syncing the index before the upgrade halt", "err", err)
	}
	if err := writeUpgradeInfo(u.home, p); err != nil {
		n.log.Error("writing upgrade info", "err", err)
	}
	n.log.Warn("halted for upgrade; start the new release", "upgrade", p.Name, "height", p.Height,
		"info", filepath.Join(u.home, "data", UpgradeInfoFile))
	close(u.halted)
}

// writeUpgradeInfo writes data/upgrade-info.json durably (temp file,
// sync, rename).
func writeUpgradeInfo(home string, p *pb.UpgradePlan) error {
	info, err := json.Marshal(struct {
		AppVersion   uint64 `json:"app_version"`
		BinarySHA256 string `json:"binary_sha256,omitempty"`
	}{p.AppVersion, hex.EncodeToString(p.BinarySha256)})
	if err != nil {
		return err
	}
	bz, err := json.MarshalIndent(UpgradeInfo{Name: p.Name, Height: p.Height, Info: string(info)}, "", "  ")
	if err != nil {
		return err
	}
	if err := vfs.WriteFileSynced(vfs.Default, filepath.Join(home, "data", UpgradeInfoFile), append(bz, '\n'), 0o644); err != nil {
		return fmt.Errorf("upgrade info: %w", err)
	}
	return nil
}

// ReadUpgradeInfo reads a home's data/upgrade-info.json; os.ErrNotExist
// when the node never halted for an upgrade.
func ReadUpgradeInfo(home string) (*UpgradeInfo, error) {
	bz, err := os.ReadFile(filepath.Join(home, "data", UpgradeInfoFile))
	if err != nil {
		return nil, err
	}
	var u UpgradeInfo
	if err := json.Unmarshal(bz, &u); err != nil {
		return nil, fmt.Errorf("%s: %w", UpgradeInfoFile, err)
	}
	return &u, nil
}

// upgradeProblems is NodeInfo's line for a halt: what the operator does.
func (n *Node) upgradeProblems() []string {
	p := n.upg.current()
	if p == nil {
		return nil
	}
	return []string{fmt.Sprintf("%v %q at height %d (app version %d): start the release that has it (data/%s)", errUpgradeHalt, p.Name, p.Height, p.AppVersion, UpgradeInfoFile)}
}
