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
// order: --token-file (or "-" for standard input), --token, $CREDENCE_TOKEN,
// the token file init left in --home. The environment is read when the
// command runs, never as a flag default: help output must not print a secret.
type tokenSource struct {
	file, flag string
}

func (t *tokenSource) register(c *cobra.Command) {
	c.Flags().StringVar(&t.file, "token-file", "", `file holding the issuer API token ("-" reads it from standard input)`)
	c.Flags().StringVar(&t.flag, "token", "", "issuer API token; other users can see it in ps, so prefer --token-file or $CREDENCE_TOKEN")
}

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
	case t.flag != "":
		return t.flag, nil
	case os.Getenv("CREDENCE_TOKEN") != "":
		return os.Getenv("CREDENCE_TOKEN"), nil
	}
	tok, err := node.ReadToken(home)
	if err != nil {
		return "", fmt.Errorf("no token: give --token-file, --token or $CREDENCE_TOKEN, or a --home holding one (%w)", err)
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
