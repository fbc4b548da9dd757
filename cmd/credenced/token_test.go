package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestTokenNeverInHelp(t *testing.T) {
	// Serial: it sets CREDENCE_TOKEN, which is the whole process's.
	const secret = "cred_0123456789abcdef"
	t.Setenv("CREDENCE_TOKEN", secret)
	for name, cmd := range map[string]func() string{
		"anchor":  func() string { return helpOf(anchorCmd()) },
		"loadgen": func() string { return helpOf(loadgenCmd()) },
	} {
		help := cmd()
		if !strings.Contains(help, "--token-file") {
			t.Fatalf("%s --help does not list its flags:\n%s", name, help)
		}
		if strings.Contains(help, secret) {
			t.Errorf("%s --help prints the token from the environment:\n%s", name, help)
		}
	}
}

func TestTokenSources(t *testing.T) {
	// Serial: it sets CREDENCE_TOKEN, which is the whole process's.
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("cred_fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CREDENCE_TOKEN", "cred_fromenv")
	for _, c := range []struct {
		src  tokenSource
		want string
	}{
		{tokenSource{file: file}, "cred_fromfile"},
		{tokenSource{}, "cred_fromenv"},
	} {
		got, err := c.src.resolve(filepath.Join(dir, "no-home"))
		if err != nil || got != c.want {
			t.Errorf("%+v: got %q, %v; want %q", c.src, got, err, c.want)
		}
	}
	t.Setenv("CREDENCE_TOKEN", "")
	if _, err := (&tokenSource{}).resolve(filepath.Join(dir, "no-home")); err == nil || !strings.Contains(err.Error(), "--token-file") {
		t.Errorf("no token anywhere: %v", err)
	}
	if _, err := readToken(strings.NewReader("\n"), "standard input"); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("an empty token: %v", err)
	}
	if got, err := readToken(strings.NewReader("cred_stdin\nignored"), "standard input"); err != nil || got != "cred_stdin" {
		t.Errorf("stdin: %q, %v", got, err)
	}
}

// TestTokenNotInArgv: a token given as --token VALUE is in argv, which
// every user of the host reads in ps; the command refuses it, before any
// other work, naming the ways that keep it out of argv (finding 11).
func TestTokenNotInArgv(t *testing.T) {
	// Serial: it sets CREDENCE_TOKEN, which is the whole process's.
	const secret = "cred_0123456789abcdef"
	t.Setenv("CREDENCE_TOKEN", "")
	for name, c := range map[string]*cobra.Command{"anchor": anchorCmd(), "loadgen": loadgenCmd()} {
		var out bytes.Buffer
		c.SetOut(&out)
		c.SetErr(&out)
		args := []string{"--node", "127.0.0.1:1", "--home", t.TempDir(), "--token", secret}
		if name == "anchor" {
			args = append(args, "--hash", strings.Repeat("ab", 32))
		}
		c.SetArgs(args)
		err := c.Execute()
		if err == nil || !strings.Contains(err.Error(), "--token-file") || !strings.Contains(err.Error(), "CREDENCE_TOKEN") {
			t.Errorf("%s --token VALUE: %v, want a refusal naming --token-file and $CREDENCE_TOKEN", name, err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the refusal repeats the token: %v", name, err)
		}
		if strings.Contains(helpOf(map[string]func() *cobra.Command{"anchor": anchorCmd, "loadgen": loadgenCmd}[name]()), "--token ") {
			t.Errorf("%s --help still offers --token", name)
		}
	}
}

func helpOf(c *cobra.Command) string {
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetArgs([]string{"--help"})
	if err := c.Execute(); err != nil {
		return err.Error()
	}
	return out.String()
}
