package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// backup and restore on a home with no node running say so and what to
// do, and leave no backup file that could be mistaken for a whole one.
func TestBackupQueueWithoutNode(t *testing.T) {
	t.Parallel()
	bin := buildCLI(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if res := run(t, bin, "init", "--home", home, "--chain-id", "cli-test"); res.code != 0 {
		t.Fatalf("init: %+v", res)
	}
	out := filepath.Join(dir, "queue.backup")
	res := run(t, bin, "backup", "queue", "--home", home, "--out", out)
	if res.code == 0 || !strings.Contains(res.stderr, "no node is running on "+home) {
		t.Fatalf("backup queue with no node running: %+v", res)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("a failed backup left files: %v", ents)
	}
	if res := run(t, bin, "backup", "queue", "--home", home); res.code != exitCouldNotDo || !strings.Contains(res.stderr, "--out") {
		t.Fatalf("backup queue without --out: %+v", res)
	}
	if err := os.WriteFile(out, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := run(t, bin, "restore", "queue", "--home", home, out); res.code == 0 || !strings.Contains(res.stderr, "no node is running") {
		t.Fatalf("restore queue with no node running: %+v", res)
	}
}
