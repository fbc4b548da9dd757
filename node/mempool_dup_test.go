package node

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/credence-ledger/credence/consensus"
	"github.com/credence-ledger/credence/internal/testport"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
	"google.golang.org/grpc/metadata"
)

// TestFourValidatorsDropRelayedCopies runs a 4-validator chain in one
// process and anchors full-size batches through one member: every
// validator's receipts verify against the genesis, and the validators that
// did not submit received each batch again from the other relays, which
// their mempool reactors dropped as duplicates (consensus/mempool.go)
// rather than format them.
func TestFourValidatorsDropRelayedCopies(t *testing.T) {
	const validators, batches, perBatch = 4, 3, 9000
	dir := t.TempDir()
	homes, err := Testnet(TestnetOptions{Validators: validators, Output: dir, ChainID: "credence-dups", BasePort: testport.Range(t, 10*validators)})
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(filepath.Join(homes[0].Home, "config", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	trust, err := proof.TrustRootFromGenesis(g)
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]*Node, validators)
	var wg sync.WaitGroup
	errs := make([]error, validators)
	for i, h := range homes {
		c, err := loadConfig(h.Home)
		if err != nil {
			t.Fatal(err)
		}
		c.BatchInterval = duration{100 * time.Millisecond}
		c.Memory.GoMemoryLimitMB = noProcessMemoryLimit
		if err := os.Remove(appConfigPath(h.Home)); err != nil {
			t.Fatal(err)
		}
		if err := writeConfig(h.Home, c); err != nil {
			t.Fatal(err)
		}
		// Started together: each waits for its peers before its first block.
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = Start(context.Background(), h.Home, Overrides{}, testLogger(t))
		}()
	}
	wg.Wait()
	for i, n := range nodes {
		if errs[i] != nil {
			t.Fatalf("start node%d: %v", i, errs[i])
		}
		t.Cleanup(func() { n.Stop() })
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sub := dialTest(t, nodes[0].GRPCAddr())
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+homes[0].Token)
	var probes [][]byte
	for range batches {
		hs := randomHashes(t, perBatch)
		if _, err := sub.Submit(authed, &pb.SubmitRequest{Hashes: hs}); err != nil {
			t.Fatal(err)
		}
		probes = append(probes, hs[:32])
		// One batch at a time: each is its own anchor transaction.
		waitReceipt(ctx, t, sub, hs[:32])
	}
	for i, n := range nodes {
		cl := dialTest(t, n.GRPCAddr())
		for _, p := range probes {
			if _, err := proof.Verify(waitReceipt(ctx, t, cl, p), trust); err != nil {
				t.Errorf("node%d: receipt of %x: %v", i, p[:4], err)
			}
		}
	}
	// The submitter's count is left open (it is usually 0): a validator
	// does not relay a transaction back to the peer it first had it from,
	// which for most is the submitter.
	t.Logf("node0 (the submitter) dropped %d relayed copies", consensus.MempoolDuplicates(nodes[0].cmt))
	for i, n := range nodes[1:] {
		d := consensus.MempoolDuplicates(n.cmt)
		t.Logf("node%d dropped %d relayed copies of %d batches", i+1, d, batches)
		if d == 0 {
			t.Errorf("node%d dropped no relayed copy", i+1)
		}
	}
}
