package app

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// Coordinated upgrades. Governance passes an UpgradePlan (name, height,
// app_version); at the plan's height the block runs by the rules of
// app_version. The app version lives in state (proof.KeyAppVersion, absent
// meaning baseVersion), so one binary replays the chain from genesis across
// every version it has a handler for, choosing each block's rules by the
// version in state. The block at the plan height runs the handler's
// migration first, then its transactions by the new rules, and moves
// ConsensusParams.Version.App, which CometBFT puts in every header from the
// next height on.

// baseVersion is the app version of a chain that never upgraded: the rules
// of protocol version 2 (a sequence moves at most MaxSequenceStep;
// transactions with unknown fields are refused).
const baseVersion uint64 = 2

// rules are the switches block execution reads that differ between app
// versions. The zero value is baseVersion's.
type rules struct {
	// proposalNeedsDescription refuses a Propose without a description.
	proposalNeedsDescription bool
}

// upgradeHandler is what a binary knows of one app version: the migration
// run once, at the start of the plan's block, and the rules from then on.
type upgradeHandler struct {
	migrate func(a *App, height int64) error
	rules   rules
}

// handlers holds the app versions above baseVersion this binary can run.
// Block execution only looks it up by version, never iterates it, so the
// map's order never reaches state. The release binary registers none yet; the upgradetest
// build registers version 3 (upgrade_testbuild.go).
var handlers = map[uint64]upgradeHandler{}

// Errors of upgrades.
var (
	// ErrUpgradeNeeded: the chain reached a plan for an app version this
	// binary has no handler for; the block must be run by a newer binary.
	ErrUpgradeNeeded = errors.New("upgrade needed")
	// ErrUnknownVersion: the state is at an app version this binary
	// cannot run.
	ErrUnknownVersion = errors.New("unknown app version")
)

// knows reports whether this binary can run app version v.
func knows(v uint64) bool {
	if v == baseVersion {
		return true
	}
	_, ok := handlers[v]
	return ok
}

func rulesOf(v uint64) rules {
	return handlers[v].rules
}

// readVersion reads the app version in st.
func readVersion(st stateReader) (uint64, error) {
	raw, err := st.Get([]byte(proof.KeyAppVersion))
	if err != nil {
		return 0, err
	}
	if raw == nil {
		return baseVersion, nil
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("corrupt app version in state: %d bytes", len(raw))
	}
	return binary.BigEndian.Uint64(raw), nil
}

// readPlan reads the pending upgrade plan in st; nil when there is none.
func readPlan(st stateReader) (*pb.UpgradePlan, error) {
	raw, err := st.Get([]byte(proof.KeyUpgradePlan))
	if err != nil || raw == nil {
		return nil, err
	}
	var p pb.UpgradePlan
	if err := proto.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("upgrade plan: %w", err)
	}
	return &p, nil
}

// loadVersion reads the committed app version and refuses one this binary
// cannot run: replaying it by older rules would fork the state.
func (a *App) loadVersion() error {
	v, err := readVersion(a.committed())
	if err != nil {
		return err
	}
	if !knows(v) {
		return fmt.Errorf("%w: the state is at app version %d; this binary runs %s", ErrUnknownVersion, v, knownVersions())
	}
	a.version = v
	return nil
}

func knownVersions() string {
	s := fmt.Sprint(baseVersion)
	// Ascending, for a stable message.
	for _, v := range slices.Sorted(maps.Keys(handlers)) {
		s += fmt.Sprintf(", %d", v)
	}
	return s
}

// rulesAt are the rules of the block at height, given the committed state:
// the plan's version's when height is the plan's.
func (a *App) rulesAt(height int64) rules {
	p, err := readPlan(a.committed())
	if err == nil && p != nil && p.Height == height && knows(p.AppVersion) {
		return rulesOf(p.AppVersion)
	}
	return rulesOf(a.version)
}

// AppVersion returns the app version of the last finalized block.
func (a *App) AppVersion() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.version
}

// UpgradePlan returns the committed pending plan (nil when none) and
// whether this binary has a handler for its version.
func (a *App) UpgradePlan() (*pb.UpgradePlan, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, err := readPlan(a.committed())
	if err != nil || p == nil {
		return nil, false, err
	}
	return p, knows(p.AppVersion), nil
}

// upgradeAt runs the plan of the block at height, if there is one: the
// migration, the new version and the plan's removal. It returns the
// consensus parameter change that moves the headers' app version, nil when
// no plan is due. Without a handler it fails: the block must not run by
// rules that are no longer the chain's (the node halts before this point;
// this is the last guard).
func (a *App) upgradeAt(height int64) (*cmtproto.ConsensusParams, error) {
	p, err := readPlan(a.tree)
	if err != nil || p == nil || p.Height != height {
		return nil, err
	}
	h, ok := handlers[p.AppVersion]
	if !ok {
		return nil, fmt.Errorf("%w: plan %q moves the chain to app version %d at height %d; run a binary that has it", ErrUpgradeNeeded, p.Name, p.AppVersion, height)
	}
	if h.migrate != nil {
		if err := h.migrate(a, height); err != nil {
			return nil, fmt.Errorf("upgrade %q migration: %w", p.Name, err)
		}
	}
	if _, err := a.tree.Set([]byte(proof.KeyAppVersion), binary.BigEndian.AppendUint64(nil, p.AppVersion)); err != nil {
		return nil, err
	}
	if _, _, err := a.tree.Remove([]byte(proof.KeyUpgradePlan)); err != nil {
		return nil, err
	}
	if _, err := a.tree.Set(proof.UpgradeDoneKey(p.Name), binary.BigEndian.AppendUint64(nil, uint64(height))); err != nil {
		return nil, err
	}
	a.version = p.AppVersion
	a.decoded.reset()
	a.log.Info("upgrade applied", "name", p.Name, "height", height, "app_version", p.AppVersion)
	return &cmtproto.ConsensusParams{Version: &cmtproto.VersionParams{App: p.AppVersion}}, nil
}

// validateUpgrade checks a plan's fields alone.
func validateUpgrade(u *pb.UpgradePlan) error {
	if err := ValidID(u.Name); err != nil {
		return fmt.Errorf("%w: upgrade.name: %v", ErrMalformed, err)
	}
	if u.Height <= 0 {
		return fmt.Errorf("%w: upgrade.height must be positive", ErrMalformed)
	}
	if u.AppVersion <= baseVersion {
		return fmt.Errorf("%w: upgrade.app_version must be above %d", ErrMalformed, baseVersion)
	}
	if n := len(u.BinarySha256); n != 0 && n != 32 {
		return fmt.Errorf("%w: upgrade.binary_sha256 is %d bytes; a SHA-256 is 32", ErrMalformed, n)
	}
	return nil
}

// checkUpgrade: a plan must lie ahead of height and raise the version.
// Applied when proposed and again when it passes.
func checkUpgrade(st stateReader, u *pb.UpgradePlan, height int64) error {
	if u.Height <= height {
		return fmt.Errorf("%w: upgrade height %d is not after height %d", ErrRejected, u.Height, height)
	}
	v, err := readVersion(st)
	if err != nil {
		return err
	}
	if u.AppVersion <= v {
		return fmt.Errorf("%w: upgrade to app version %d, the chain is at %d", ErrRejected, u.AppVersion, v)
	}
	done, err := st.Get(proof.UpgradeDoneKey(u.Name))
	if err != nil {
		return err
	}
	if done != nil {
		return fmt.Errorf("%w: an upgrade named %q was already applied", ErrRejected, u.Name)
	}
	return nil
}

// checkCancel: there must be a pending plan of that name.
func checkCancel(st stateReader, name string) error {
	p, err := readPlan(st)
	if err != nil {
		return err
	}
	if p == nil || p.Name != name {
		return fmt.Errorf("%w: no pending upgrade named %q", ErrRejected, name)
	}
	return nil
}

// unknownPlanAt is the committed plan due at height when this binary has no
// handler for it; nil otherwise.
func (a *App) unknownPlanAt(height int64) *pb.UpgradePlan {
	p, err := readPlan(a.committed())
	if err != nil || p == nil || p.Height != height || knows(p.AppVersion) {
		return nil
	}
	return p
}
