package main

import (
	"os"
	"testing"
)

// TestMain removes the CLI binary the tests share (built once per run).
func TestMain(m *testing.M) {
	code := m.Run()
	if cli.dir != "" {
		os.RemoveAll(cli.dir)
	}
	os.Exit(code)
}
