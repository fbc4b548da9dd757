package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/node"
)

func defaultHome() string {
	if h := os.Getenv("CREDENCE_HOME"); h != "" {
		return h
	}
	d, err := os.UserHomeDir()
	if err != nil {
		return ".credence"
	}
	return filepath.Join(d, ".credence")
}

func initCmd() *cobra.Command {
	var home string
	var o node.InitOptions
	c := &cobra.Command{
		Use:   "init",
		Short: "Create a one-validator node home: keys (mode 0600), genesis, config and an issuer API token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// An empty --http-address asks for no gateway; unset, the default.
			o.NoHTTP = cmd.Flags().Changed("http-address") && o.HTTPAddress == ""
			res, err := node.Init(home, o)
			if err != nil {
				return err
			}
			fmt.Printf("Initialised %s for chain %q.\n", res.Home, res.ChainID)
			if res.Token == "" {
				fmt.Printf("The node joins an existing chain as a full node; set its peers (and state sync) in %s.\n",
					filepath.Join(res.Home, "config", "config.toml"))
				return nil
			}
			fmt.Printf("Issuer %q API token (shown once; stored in %s, mode 0600):\n  %s\n", res.IssuerID, res.TokenFile, res.Token)
			fmt.Printf("Genesis (the verifiers' trust root): %s\n", filepath.Join(res.Home, "config", "genesis.json"))
			return nil
		},
	}
	c.Flags().StringVar(&home, "home", defaultHome(), "node home directory")
	c.Flags().StringVar(&o.ChainID, "chain-id", "credence-dev", "chain id")
	c.Flags().StringVar(&o.Moniker, "moniker", "member-1", "node name, also the founding member's id")
	c.Flags().StringVar(&o.IssuerID, "issuer", "", "issuer id (default <moniker>-registrar)")
	c.Flags().StringVar(&o.Genesis, "genesis", "", "join the chain of this genesis file instead of starting a new one")
	c.Flags().StringVar(&o.GRPCAddress, "grpc-address", "127.0.0.1:9090", "gRPC API listen address")
	c.Flags().StringVar(&o.HTTPAddress, "http-address", "127.0.0.1:1317", "HTTP/JSON gateway listen address (empty: none)")
	c.Flags().StringVar(&o.Ports.RPC, "rpc-laddr", "tcp://127.0.0.1:26657", "CometBFT RPC listen address")
	c.Flags().StringVar(&o.Ports.P2P, "p2p-laddr", "tcp://0.0.0.0:26656", "CometBFT P2P listen address")
	c.Flags().StringVar(&o.Ports.Prometheus, "prometheus-laddr", "127.0.0.1:26660", "Prometheus metrics listen address")
	return c
}

func startCmd() *cobra.Command {
	var home, level string
	var console bool
	var ov node.Overrides
	c := &cobra.Command{
		Use:   "start",
		Short: "Run the node: consensus, app, batcher, index and gRPC API, until SIGINT or SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lv slog.Level
			if err := lv.UnmarshalText([]byte(level)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
			var logPath string
			var stopping atomic.Bool
			if console {
				logPath = filepath.Join(home, "credenced.log")
				f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
				if err != nil {
					return fmt.Errorf("--console log file: %w", err)
				}
				defer f.Close()
				// Everything goes to the file; only warnings and errors
				// interrupt the person at the terminal.
				log = slog.New(slog.NewMultiHandler(
					slog.NewTextHandler(f, &slog.HandlerOptions{Level: lv}),
					quietWhenStopping{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}), &stopping}))
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			n, err := node.Start(ctx, home, ov, log)
			if errors.Is(err, app.ErrUpgradeNeeded) {
				return &exitError{node.ExitUpgradeNeeded, err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "Credence node running (chain %s).\n  gRPC API:       %s\n  HTTP API:       %s\n  CometBFT RPC:   %s\n",
				n.ChainID(), n.GRPCAddr(), n.HTTPAddr(), strings.TrimPrefix(n.RPCAddr(), "tcp://"))
			if console {
				fmt.Fprintf(os.Stderr, "  Log:            %s\n", logPath)
			}
			fmt.Fprintf(os.Stderr, "  Stop with Ctrl-C.\n")
			if console {
				go statusLine(ctx, n, os.Stderr)
			}
			select {
			case <-ctx.Done():
			case <-n.UpgradeHalt():
			}
			stopping.Store(true)
			log.Info("stopping")
			if err := n.Stop(); err != nil {
				return fmt.Errorf("stop: %w", err)
			}
			log.Info("stopped cleanly")
			if p := n.HaltedFor(); p != nil {
				// A distinct status, so a supervisor starts the new release.
				return &exitError{node.ExitUpgradeNeeded, fmt.Errorf("halted for upgrade %q at height %d (app version %d): start the new release; see %s",
					p.Name, p.Height, p.AppVersion, filepath.Join(home, "data", node.UpgradeInfoFile))}
			}
			return nil
		},
	}
	c.Flags().StringVar(&home, "home", defaultHome(), "node home directory")
	c.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	c.Flags().BoolVar(&console, "console", false, "for a person at a terminal: a live status line; logs go to <home>/credenced.log (warnings also here)")
	c.Flags().StringVar(&ov.GRPCAddress, "grpc-address", "", "gRPC API listen address (default from app.toml)")
	c.Flags().StringVar(&ov.HTTPAddress, "http-address", "", "HTTP/JSON gateway listen address (default from app.toml)")
	c.Flags().StringVar(&ov.Ports.RPC, "rpc-laddr", "", "CometBFT RPC listen address (default from config.toml)")
	c.Flags().StringVar(&ov.Ports.P2P, "p2p-laddr", "", "CometBFT P2P listen address (default from config.toml)")
	c.Flags().StringVar(&ov.Ports.Prometheus, "prometheus-laddr", "", "Prometheus listen address (default from config.toml)")
	c.Flags().BoolVar(&ov.UnsafeSkipUpgradeCheck, "unsafe-skip-upgrade-check", false, "start a release built for a pending upgrade before the chain reached it (emergencies only)")
	return c
}

// statusLine keeps one line of the node's progress on a terminal, redrawn
// each second; on anything else, a line every ten seconds.
func statusLine(ctx context.Context, n *node.Node, out *os.File) {
	st, err := out.Stat()
	tty := err == nil && st.Mode()&os.ModeCharDevice != 0
	every := 10 * time.Second
	if tty {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(out)
			}
			return
		case <-t.C:
		}
		p := n.Progress()
		line := fmt.Sprintf("height %d | queued %d | anchored %d hashes in %d batches since start", p.Height, p.Queued, p.Anchored, p.Batches)
		if tty {
			fmt.Fprintf(out, "\r\x1b[K%s", line)
		} else {
			fmt.Fprintln(out, line)
		}
	}
}

// quietWhenStopping drops records once the node is stopping: CometBFT
// reports its listeners closing as errors, which they are not then.
type quietWhenStopping struct {
	slog.Handler
	stopping *atomic.Bool
}

func (q quietWhenStopping) Enabled(ctx context.Context, l slog.Level) bool {
	return !q.stopping.Load() && q.Handler.Enabled(ctx, l)
}

func (q quietWhenStopping) WithAttrs(as []slog.Attr) slog.Handler {
	return quietWhenStopping{q.Handler.WithAttrs(as), q.stopping}
}

func (q quietWhenStopping) WithGroup(name string) slog.Handler {
	return quietWhenStopping{q.Handler.WithGroup(name), q.stopping}
}
