// Command credenced runs a Credence node and is its command-line client.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes of every verify and status command, for scripts: the answer
// (valid or clear, invalid or revoked or set) apart from a check that could
// not be made (a node unreachable, a file unreadable, bad flags).
const (
	exitValid      = 0
	exitInvalid    = 1
	exitCouldNotDo = 2
)

// checkCommand marks a command (Annotations) whose errors, unless they say
// otherwise, mean "could not check" (exit 2) rather than exit 1.
const checkCommand = "credence.check"

// exitError carries the exit code a command wants; its message, if any, is
// printed once. A nil err is an answer already printed (a set entry).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError is a command line cobra or a command refused: exit 2.
func usageError(err error) error { return &exitError{exitCouldNotDo, err} }

// markUsageErrors makes argument-count errors of c and its children usage
// errors.
func markUsageErrors(c *cobra.Command) {
	if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return usageError(err)
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markUsageErrors(sub)
	}
}

// exitCode is the process's exit code for err returned by cmd.
func exitCode(cmd *cobra.Command, err error) int {
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case cmd == nil || strings.HasPrefix(err.Error(), "unknown command"):
		return exitCouldNotDo
	case cmd.Annotations[checkCommand] != "":
		return exitCouldNotDo
	}
	return 1
}

// markCheck marks c a verify or status command (checkCommand).
func markCheck(c *cobra.Command) *cobra.Command {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[checkCommand] = "yes"
	return c
}

func main() {
	root := &cobra.Command{
		Use:           "credenced",
		Short:         "Credence: a consortium ledger anchoring credential hashes, with receipts that verify offline",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&tlsCA, "tls-ca", "", "talk TLS to the node's API, trusting this CA certificate (PEM)")
	root.AddCommand(initCmd(), startCmd(), anchorCmd(), receiptCmd(), verifyCmd(), vcCmd(), testnetCmd(), infoCmd(), govCmd(), keysCmd(), statusCmd(), revokeCmd(), issuerCmd(), statusListCmd(), loadgenCmd(), backupCmd(), restoreCmd(), upgradeCmd())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	markUsageErrors(root)
	if cmd, err := root.ExecuteC(); err != nil {
		var ee *exitError
		if !errors.As(err, &ee) || ee.err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(exitCode(cmd, err))
	}
}
