package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/credence-ledger/credence/node"
)

// backupCmd and restoreCmd carry a node's acknowledged, unanchored hashes
// across the loss of its data/ (docs/operations.md, "Backup and disaster
// recovery").
func backupCmd() *cobra.Command {
	c := &cobra.Command{Use: "backup", Short: "Back up what only this node holds"}
	var home, out string
	queue := &cobra.Command{Use: "queue --home H --out FILE", Short: "Write every hash the running node acknowledged and has not anchored, with its issuer, to FILE", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageError(errors.New("--out: give the backup file (- for standard output)"))
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			if out == "-" {
				_, err := node.BackupQueue(ctx, home, os.Stdout)
				return err
			}
			n, err := writeFileAtomic(out, func(f *os.File) (int, error) { return node.BackupQueue(ctx, home, f) })
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "queue backup: %d hashes acknowledged and not anchored written to %s\n", n, out)
			return nil
		}}
	queue.Flags().StringVar(&home, "home", defaultHome(), "home of the running node")
	queue.Flags().StringVar(&out, "out", "", "backup file to write (replaced whole, only once complete; - for standard output)")
	c.AddCommand(queue)
	return c
}

func restoreCmd() *cobra.Command {
	c := &cobra.Command{Use: "restore", Short: "Give a node back what a backup holds"}
	var home string
	queue := &cobra.Command{Use: "queue --home H FILE", Short: "Queue again on the running node every hash of a queue backup not already anchored or waiting there", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			res, err := node.RestoreQueue(ctx, home, f)
			if err != nil {
				return err
			}
			fmt.Printf("queue restore: %d hashes in the backup: %d queued again, %d already waiting, %d already anchored\n", res.Hashes, res.Queued, res.Pending, res.Anchored)
			return nil
		}}
	queue.Flags().StringVar(&home, "home", defaultHome(), "home of the running node")
	c.AddCommand(queue)
	return c
}

// writeFileAtomic writes path through a temporary file in its directory,
// synced and renamed over it only once write succeeded: an earlier backup
// is never replaced by a partial one.
func writeFileAtomic(path string, write func(*os.File) (int, error)) (int, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	n, err := write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return n, nil
}
