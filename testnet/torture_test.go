//go:build e2e && torture

package testnet

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The torture test: trial after trial, clients submit to a node, a random
// node is killed with SIGKILL at a random moment, and it restarts; after
// each trial every hash acknowledged in it has a verifying receipt and each
// hash the issuer ever had anchored appears exactly once. Run with
// `make torture` (100 trials); CI runs a short one.

var (
	tortureTrials = flag.Int("torture.trials", 10, "trials to run")
	tortureSeed   = flag.Uint64("torture.seed", 0, "seed of the trial plan; 0 picks one (printed, so a failing run can be replayed)")
)

// tortureConfig makes snapshots and batches frequent, so that kills land
// inside them.
func tortureConfig(t *testing.T) func(home string) {
	return func(home string) {
		p := filepath.Join(home, "config", "app.toml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(b), "snapshot_interval = 1000", "snapshot_interval = 5", 1)
		if s == string(b) {
			t.Fatal("app.toml did not hold the expected defaults")
		}
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

type tortureTally struct {
	trials, fourNodeTrials, kills, submitterKills, acked int
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
		t.Logf("torture: %d trials (%d on 4 validators), %d kills (%d of the submitting node), %d hashes acknowledged: %s",
			tally.trials, tally.fourNodeTrials, tally.kills, tally.submitterKills, tally.acked, outcome)
	})

	single := newNetworkWith(t, 1, tortureConfig(t))
	var four *network
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*tortureTrials)*2*time.Minute+5*time.Minute)
	defer cancel()

	for trial := 0; trial < *tortureTrials; trial++ {
		n := single
		if r.IntN(10) < 3 {
			if four == nil {
				four = newNetworkWith(t, 4, tortureConfig(t))
			}
			n = four
			tally.fourNodeTrials++
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
