// Command credenced runs a Credence node and is its command-line client.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries the exit code a command wants; its message is printed once.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	root := &cobra.Command{
		Use:           "credenced",
		Short:         "Credence: a consortium ledger anchoring credential hashes, with receipts that verify offline",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&tlsCA, "tls-ca", "", "talk TLS to the node's API, trusting this CA certificate (PEM)")
	root.AddCommand(initCmd(), startCmd(), anchorCmd(), receiptCmd(), verifyCmd(), testnetCmd(), infoCmd(), govCmd(), keysCmd(), statusCmd(), revokeCmd(), issuerCmd(), registryCmd(), loadgenCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}
