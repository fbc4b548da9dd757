package main

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// statusListRoot runs args against a fresh root holding the commands that
// name status lists, as main builds them, and returns the command that
// ran, its output, its warnings and its error.
func statusListRoot(args ...string) (*cobra.Command, string, string, error) {
	root := &cobra.Command{Use: "credenced", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(statusListCmd(), vcCmd(), issuerCmd())
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	return cmd, out.String(), errOut.String(), err
}

// TestStatusListNames: the bit lists are "status lists" in the help, and
// their old names (the registry command, vc sign --status-registry) still
// work as they did, the flag saying it is deprecated. TestVCSecondFiveMinutes
// runs the old names against a node.
func TestStatusListNames(t *testing.T) {
	t.Parallel()
	_, rootHelp, _, err := statusListRoot("--help")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^  status-list +Status lists \(W3C Bitstring Status List\)`).MatchString(rootHelp) ||
		regexp.MustCompile(`(?m)^  registry\b`).MatchString(rootHelp) {
		t.Fatalf("credenced --help must list status-list, not registry:\n%s", rootHelp)
	}
	if !regexp.MustCompile(`(?m)^  issuer +The issuer registry`).MatchString(rootHelp) {
		t.Fatalf("credenced --help: the issuer registry keeps its word:\n%s", rootHelp)
	}

	_, help, _, err := statusListRoot("status-list", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Aliases:\n  status-list, registry", "registry is this command's old name",
		"\n  create ", "\n  set ", "\n  clear ", "\n  export ", "\n  status ", "\n  entry "} {
		if !strings.Contains(help, want) {
			t.Fatalf("status-list --help lacks %q:\n%s", want, help)
		}
	}
	if _, old, _, err := statusListRoot("registry", "--help"); err != nil || old != help {
		t.Fatalf("registry --help is not status-list's help: %v\n%s", err, old)
	}
	for _, sub := range []string{"create", "set", "clear", "export", "status", "entry"} {
		_, h, _, err := statusListRoot("status-list", sub, "--help")
		if err != nil || !strings.Contains(h, "status list id") || strings.Contains(h, "registry") {
			t.Fatalf("status-list %s --help: %v\n%s", sub, err, h)
		}
	}

	// The alias runs the status-list command itself: its own refusal of a
	// bad index and its own RPC name in errors.
	cmd, _, _, err := statusListRoot("registry", "status", "--issuer", "i", "--id", "r", "seven")
	if err == nil || !strings.Contains(err.Error(), "not a whole number") || cmd.CommandPath() != "credenced status-list status" {
		t.Fatalf("registry status ran %q: %v", cmd.CommandPath(), err)
	}

	_, signHelp, _, err := statusListRoot("vc", "sign", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(signHelp, "--status-list string") || !strings.Contains(signHelp, "with --status-list: the entry's index") ||
		strings.Contains(signHelp, "status-registry") {
		t.Fatalf("vc sign --help must offer --status-list and hide --status-registry:\n%s", signHelp)
	}

	// Either name of the flag sets the same list: without --status-index
	// both are refused alike; the old one also warns (on the command's
	// output, which is stderr in the binary: TestVCSecondFiveMinutes).
	example := filepath.Join("..", "..", "docs", "examples", "ob3-achievement-credential.json")
	for _, flag := range []string{"--status-list", "--status-registry"} {
		_, warn, _, err := statusListRoot("vc", "sign", flag, "r", example)
		if err == nil || err.Error() != "--status-list and --status-index go together" {
			t.Fatalf("vc sign %s without --status-index: %v", flag, err)
		}
		deprecated := strings.Contains(warn, "Flag --status-registry has been deprecated, it is now --status-list")
		if deprecated != (flag == "--status-registry") {
			t.Fatalf("vc sign %s: warnings %q", flag, warn)
		}
	}
	if _, _, _, err := statusListRoot("vc", "sign", "--status-registry", "r", "--status-index", "3", "--key", filepath.Join(t.TempDir(), "nokey.json"), example); err == nil ||
		!strings.Contains(err.Error(), "no such file") {
		t.Fatalf("vc sign --status-registry with --status-index goes on to the key: %v", err)
	}
}
