package node

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// damageHome is a home that anchored a few batches and was stopped cleanly,
// so that each badger database holds tables (a clean close flushes the
// memtables into level 0).
func damageHome(t *testing.T) *testHome {
	t.Helper()
	h := newTestHome(t)
	n := h.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := dialTest(t, n.GRPCAddr())
	for range 3 {
		hashes := randomHashes(t, 20)
		if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hashes}); err != nil {
			t.Fatal(err)
		}
		waitReceipt(ctx, t, cl, hashes[len(hashes)-32:])
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	return h
}

// tables are the SST files of the badger database in dir, largest first.
func tables(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) == 0 {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			fi, _ := e.Info()
			t.Logf("%s %d", e.Name(), fi.Size())
		}
		t.Fatalf("%s holds no table", dir)
	}
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	sort.Slice(m, func(i, j int) bool { return size(m[i]) > size(m[j]) })
	return m
}

// damageFile rewrites path with damage applied and restores it when the
// test ends.
func damageFile(t *testing.T, path string, damage func([]byte) []byte) {
	t.Helper()
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, damage(append([]byte(nil), orig...)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(path, orig, 0o600); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStartRefusesDamagedTables: a table of one of the node's badger
// databases cut short or with flipped bytes stops the node at start with
// an error naming that store, instead of a panic inside badger or
// CometBFT, or a start on a database that silently left the table out.
func TestStartRefusesDamagedTables(t *testing.T) {
	t.Parallel()
	h := damageHome(t)
	// Every block of a table: each read of it fails its checksum.
	flipAll := func(b []byte) []byte {
		for i := 0; i < len(b)-64; i += 512 {
			b[i] ^= 0x55
		}
		return b
	}
	// Every data block, the table's index left whole: the table opens,
	// and only what is read of it shows the damage.
	flipData := func(b []byte) []byte {
		end := len(b) - 4
		end -= int(binary.BigEndian.Uint32(b[end:])) // the checksum
		end -= 4
		end -= int(binary.BigEndian.Uint32(b[end : end+4])) // the index
		for i := 0; i < end; i += 256 {
			b[i] ^= 0x55
		}
		return b
	}
	for _, c := range []struct {
		name, store string
		damage      func([]byte) []byte
	}{
		{"node table truncated", filepath.Join("data", "credence"), func(b []byte) []byte { return b[:len(b)/2] }},
		{"node table flipped", filepath.Join("data", "credence"), flipAll},
		{"block store table truncated", filepath.Join("data", "blockstore"), func(b []byte) []byte { return b[:len(b)/2] }},
		{"block store table flipped", filepath.Join("data", "blockstore"), flipAll},
		{"block store blocks flipped", filepath.Join("data", "blockstore"), flipData},
		{"node blocks flipped", filepath.Join("data", "credence"), flipData},
		{"state table flipped", filepath.Join("data", "state"), flipAll},
	} {
		t.Run(c.name, func(t *testing.T) {
			damageFile(t, tables(t, filepath.Join(h.dir, c.store))[0], c.damage)
			n, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
			if err == nil {
				n.Stop()
				t.Fatal("started on a damaged table")
			}
			if !errors.Is(err, errStoreDamaged) || !strings.Contains(err.Error(), c.store) {
				t.Fatalf("error %q: want the damaged store named (%s)", err, c.store)
			}
		})
	}
	// A store that lost everything opens as a new, empty one; CometBFT
	// then panics on a state ahead of its block store.
	for _, c := range []struct{ name, store, want string }{
		{"block store lost", filepath.Join("data", "blockstore"), "do not agree"},
		{"block store manifest lost", filepath.Join("data", "blockstore", "MANIFEST"), "MANIFEST is missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(h.dir, c.store)
			aside := path + ".aside"
			if err := os.Rename(path, aside); err != nil {
				t.Fatal(err)
			}
			defer func() {
				os.RemoveAll(path)
				if err := os.Rename(aside, path); err != nil {
					t.Fatal(err)
				}
			}()
			n, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
			if err == nil {
				n.Stop()
				t.Fatal("started without its block store")
			}
			if !errors.Is(err, errStoreDamaged) || !strings.Contains(err.Error(), filepath.Join("data", "blockstore")) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q: want the block store named (%s)", err, c.want)
			}
		})
	}
	n, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
	if err != nil {
		t.Fatalf("the repaired home does not start: %v", err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
}
