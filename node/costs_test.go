package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/credence-ledger/credence/proto/credence/v1"

	"github.com/credence-ledger/credence/app"
)

// Costs that must not grow per request (finding 7): these tests count the
// work done, not the time it took.

// TestStatusListRenderedOncePerHeight: readers of one status list at one
// height share one render (the export, its verification, the JSON), alone
// or sixteen at once; the memory kept stays within status_list_cache_mb.
func TestStatusListRenderedOncePerHeight(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	issuer, key, err := IssuerSigningKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	created := broadcastTx(ctx, t, cl, &pb.TxBody{ChainId: n.chainID, Signer: issuer,
		Msg: &pb.TxBody_CreateRegistry{CreateRegistry: &pb.CreateRegistry{
			Id: "costs", Purpose: pb.RegistryPurpose_REGISTRY_PURPOSE_REVOCATION, Size: app.MinStatusListSize}}}, key)
	url := "http://" + n.HTTPAddr() + StatusListPath(issuer, "costs")
	// get answers the list's height.
	get := func() (int64, error) {
		res, err := http.Get(url)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			return 0, err
		}
		if res.StatusCode != 200 {
			return 0, fmt.Errorf("%d: %s", res.StatusCode, b)
		}
		var doc struct {
			Height int64 `json:"credenceHeight"`
		}
		return doc.Height, json.Unmarshal(b, &doc)
	}
	// One reader after another, from the first answer on, until some
	// height is read at least three times, so that the check means something.
	before := n.statusLists.renders.Load()
	heights := map[int64]int{}
	for most := 0; most < 3; {
		at, err := get()
		if err == nil && at >= created {
			heights[at]++
			most = max(most, heights[at])
		} else if len(heights) > 0 {
			t.Fatalf("a read after the list was served: height %d, %v", at, err)
		}
		if ctx.Err() != nil {
			t.Fatalf("the list was not served (%v)", err)
		}
		if len(heights) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got := n.statusLists.renders.Load() - before; got != int64(len(heights)) {
		t.Errorf("one reader at a time: %d renders for %d heights (%v)", got, len(heights), heights)
	}

	// Sixteen at once: each render's document reaches at least the reader
	// that asked for it, so there are no more renders than heights answered.
	before = n.statusLists.renders.Load()
	var mu sync.Mutex
	heights = map[int64]int{}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at, err := get()
			mu.Lock()
			defer mu.Unlock()
			if err != nil || at == 0 {
				t.Errorf("a concurrent reader: height %d, %v", at, err)
			}
			heights[at]++
		}()
	}
	wg.Wait()
	if got := n.statusLists.renders.Load() - before; got > int64(len(heights)) {
		t.Errorf("16 readers at once: %d renders for %d heights (%v)", got, len(heights), heights)
	}
}

// TestStatusListCacheBound: the cache holds at most its bytes, the least
// recently read going first, and keeps nothing larger than the whole.
func TestStatusListCacheBound(t *testing.T) {
	t.Parallel()
	c := newStatusListCache(1000)
	doc := func(n int) func() ([]byte, int64, error) {
		return func() ([]byte, int64, error) { return make([]byte, 300), int64(n), nil }
	}
	for h := int64(1); h <= 3; h++ {
		if _, err := c.get(context.Background(), statusListKey{"i", "l", h}, doc(int(h))); err != nil {
			t.Fatal(err)
		}
	}
	// Read 1 again, so that 2 is the least recently read.
	c.get(context.Background(), statusListKey{"i", "l", 1}, doc(1))
	c.get(context.Background(), statusListKey{"i", "l", 4}, doc(4))
	if c.size > c.max {
		t.Errorf("%d bytes kept, bound %d", c.size, c.max)
	}
	for h, want := range map[int64]bool{1: true, 2: false, 3: true, 4: true} {
		if _, ok := c.entries[statusListKey{"i", "l", h}]; ok != want {
			t.Errorf("height %d kept: %v, want %v", h, ok, want)
		}
	}
	c.get(context.Background(), statusListKey{"i", "l", 5}, func() ([]byte, int64, error) { return make([]byte, 2000), 5, nil })
	if _, ok := c.entries[statusListKey{"i", "l", 5}]; ok || c.size > c.max {
		t.Errorf("a document over the bound was kept (%d bytes)", c.size)
	}
}

// TestListProposalsReadsOnlyLimit: listing the newest proposals reads as
// many as asked for, however many the chain holds.
func TestListProposalsReadsOnlyLimit(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	proposal, memberKey := h.issuerProposal(t, n.chainID)
	const proposals = 12
	for range proposals {
		broadcastTx(ctx, t, cl, proposal, memberKey) // a new sequence each time
	}
	s := &api{n: n}
	for _, c := range []struct {
		limit uint32
		want  []uint64
	}{
		{1, []uint64{proposals}},
		{3, []uint64{proposals, proposals - 1, proposals - 2}},
		{proposals + 5, nil},
	} {
		before := s.proposalReads.Load()
		res, err := s.ListProposals(ctx, &pb.ListProposalsRequest{Limit: c.limit})
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, p := range res.Proposals {
			got = append(got, p.Proposal.Id)
		}
		if c.want == nil {
			for id := uint64(proposals); id >= 1; id-- {
				c.want = append(c.want, id)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("limit %d: ids %v, want %v (newest first)", c.limit, got, c.want)
		}
		if reads := s.proposalReads.Load() - before; reads > int64(len(c.want)) {
			t.Errorf("limit %d: %d proposals read for %d listed", c.limit, reads, len(c.want))
		}
	}
}

// TestCostConfigBounds: the settings of this file's limits refuse values
// that would turn them off or make no sense, naming the setting.
func TestCostConfigBounds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		setting, want string
	}{
		{`status_list_cache_mb = -1`, "status_list_cache_mb must be >= 0"},
		{`broadcast_timeout = "0s"`, "broadcast_timeout must be positive"},
		{`max_broadcast_waits = 0`, "max_broadcast_waits must be at least 1"},
	} {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "config"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(appConfigPath(dir), []byte(c.setting+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadConfig(dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error saying %q", c.setting, err, c.want)
		}
	}
	d := defaultConfig()
	if d.StatusListCacheMB != 64 || d.BroadcastTimeout.Duration != 30*time.Second || d.MaxBroadcastWaits != 1024 {
		t.Errorf("defaults: status_list_cache_mb %d, broadcast_timeout %s, max_broadcast_waits %d; docs/operations.md says 64, 30s, 1024",
			d.StatusListCacheMB, d.BroadcastTimeout, d.MaxBroadcastWaits)
	}
}
