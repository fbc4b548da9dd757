package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/credence-ledger/credence/node"
)

// tokenSource is where a command finds the issuer's API token, in this
// order: --token-file (or "-" for standard input), $CREDENCE_TOKEN, the
// token file init left in --home. The environment is read when the command
// runs, never as a flag default: help output must not print a secret.
type tokenSource struct {
	file string
	// argv is a token given as --token VALUE, kept only to refuse it: argv
	// is world-readable (ps, /proc/PID/cmdline).
	argv string
}

func (t *tokenSource) register(c *cobra.Command) {
	c.Flags().StringVar(&t.file, "token-file", "", `file holding the issuer API token ("-" reads it from standard input)`)
	c.Flags().StringVar(&t.argv, "token", "", "refused: use --token-file or $CREDENCE_TOKEN")
	c.Flags().MarkHidden("token")
	// Refused before the command does anything else, so that the one who
	// typed it learns at once, and the error never repeats the value.
	c.PreRunE = func(*cobra.Command, []string) error {
		if c.Flags().Changed("token") {
			return errTokenInArgv
		}
		return nil
	}
}

var errTokenInArgv = errors.New("--token is refused: a token on the command line is visible to every user of this host (ps); " +
	`give --token-file FILE (or --token-file - to read standard input) or set $CREDENCE_TOKEN`)

// maxTokenFile bounds what is read as a token: tokens are 69 bytes.
const maxTokenFile = 4096

func (t *tokenSource) resolve(home string) (string, error) {
	switch {
	case t.file == "-":
		return readToken(os.Stdin, "standard input")
	case t.file != "":
		f, err := os.Open(t.file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		defer f.Close()
		return readToken(f, t.file)
	case t.argv != "":
		return "", errTokenInArgv
	case os.Getenv("CREDENCE_TOKEN") != "":
		return os.Getenv("CREDENCE_TOKEN"), nil
	}
	tok, err := node.ReadToken(home)
	if err != nil {
		return "", fmt.Errorf("no token: give --token-file or $CREDENCE_TOKEN, or a --home holding one (%w)", err)
	}
	return tok, nil
}

func readToken(r io.Reader, name string) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxTokenFile)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("token from %s: %w", name, err)
	}
	tok := strings.TrimSpace(line)
	if tok == "" {
		return "", fmt.Errorf("token from %s: empty", name)
	}
	return tok, nil
}
