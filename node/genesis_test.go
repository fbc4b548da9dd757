package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartRefusesMisspelledGenesisKey: a genesis validator key spelled in
// another case ("Pub_Key") is refused by the strict genesis reading before
// CometBFT sees the file (whose validation dereferenced the missing key).
func TestStartRefusesMisspelledGenesisKey(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	p := filepath.Join(h.dir, "config", "genesis.json")
	g, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(g), `"pub_key"`) {
		t.Fatal("genesis has no pub_key")
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(g), `"pub_key"`, `"Pub_Key"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	var n *Node
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Start panicked: %v", p)
			}
		}()
		n, err = Start(context.Background(), h.dir, h.ov, testLogger(t))
	}()
	if err == nil {
		n.Stop()
		t.Fatal("node started on a genesis with a misspelled validator key")
	}
	if !strings.Contains(err.Error(), "Pub_Key") {
		t.Errorf("error %q does not name the key", err)
	}
}
