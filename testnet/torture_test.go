//go:build e2e && torture

package testnet

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// The torture test: trial after trial, clients submit to a node, a random
// node is killed with SIGKILL at a random moment, and it restarts; after
// each trial every hash acknowledged in it has a verifying receipt and each
// hash the issuer ever had anchored appears exactly once. One trial in ten
// kills instead a node joining the 4-validator network by state sync, in
// the middle of its snapshot restore (restore_torture_test.go). Run with
// `make torture` (100 trials); CI runs a short one.

var (
	tortureTrials = flag.Int("torture.trials", 10, "trials to run")
	tortureSeed   = flag.Uint64("torture.seed", 0, "seed of the trial plan; 0 picks one (printed, so a failing run can be replayed)")
	restoreOnly   = flag.Bool("torture.restore-only", false, "run only the trials that kill a state-sync restore")
)

// tortureConfig makes snapshots and batches frequent, so that kills land
// inside them.
func tortureConfig(t *testing.T) func(home string) {
	return func(home string) {
		// Snapshots kept long enough for a joiner to fetch the one it picked.
		editAppToml(t, home, "snapshot_interval = 1000", "snapshot_interval = 5",
			"snapshot_keep_recent = 2", "snapshot_keep_recent = 20")
	}
}

type tortureTally struct {
	trials, fourNodeTrials, kills, submitterKills, acked int
	restore                                              restoreTally
}

func TestTorture(t *testing.T) {
	seed := *tortureSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("torture seed %d (replay with -torture.seed=%d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	var tally tortureTally
	t.Cleanup(func() {
		outcome := "no acknowledged hash lost or anchored twice"
		if t.Failed() {
			outcome = "stopped by the failure above"
		}
		t.Logf("torture: %d trials (%d on 4 validators, %d of them killing a state-sync restore), %d kills (%d of the submitting node), %d hashes acknowledged: %s",
			tally.trials, tally.fourNodeTrials, tally.restore.trials, tally.kills, tally.submitterKills, tally.acked, outcome)
		if tally.restore.trials > 0 {
			t.Logf("torture: restores killed %s", tally.restore)
		}
	})

	var single, four *network
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*tortureTrials)*2*time.Minute+5*time.Minute)
	defer cancel()

	for trial := 0; trial < *tortureTrials; trial++ {
		kind := r.IntN(10)
		if kind == 9 || *restoreOnly {
			if four == nil {
				four = newNetworkWith(t, 4, tortureConfig(t))
			}
			tally.fourNodeTrials++
			acked := restoreTrial(ctx, t, r, four, trial, &tally.restore)
			tally.trials++
			tally.kills++
			tally.acked += acked
			continue
		}
		var n *network
		if kind < 3 {
			if four == nil {
				four = newNetworkWith(t, 4, tortureConfig(t))
			}
			n = four
			tally.fourNodeTrials++
		} else {
			if single == nil {
				single = newNetworkWith(t, 1, tortureConfig(t))
			}
			n = single
		}
		submitter := n.nodes[r.IntN(len(n.nodes))]
		victim := n.nodes[r.IntN(len(n.nodes))]
		after := time.Duration(200+r.IntN(2300)) * time.Millisecond

		l := startLoad(ctx, submitter, 3)
		time.Sleep(after)
		n.stop(victim, syscall.SIGKILL)
		tally.kills++
		if victim == submitter {
			tally.submitterKills++
		}
		acked := l.finish()
		n.start(victim)
		n.waitHeight(ctx, victim, 1)
		issuer := fmt.Sprintf("member-%d-registrar", submitter.i)
		t.Logf("trial %d: %d validators, submit to node%d, SIGKILL node%d after %v, %d hashes acknowledged",
			trial, len(n.nodes), submitter.i, victim.i, after, len(acked))
		n.checkAnchoredOnce(ctx, submitter, issuer, acked)
		if victim != submitter && len(acked) > 0 {
			// The restarted node serves the same hashes too.
			n.checkAnchoredOnce(ctx, victim, issuer, acked[:min(len(acked), 200)])
		}
		tally.trials++
		tally.acked += len(acked)
	}
	if four != nil {
		h := four.height(ctx, four.nodes[0])
		four.checkNoFork(ctx, h)
	}
}
