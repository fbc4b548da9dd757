package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/credence-ledger/credence/node"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

func testnetCmd() *cobra.Command {
	var o node.TestnetOptions
	c := &cobra.Command{
		Use:   "testnet --validators N [--output DIR]",
		Short: "Write N validator homes sharing one genesis, each validator a founding member with its own issuer",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nodes, err := node.Testnet(o)
			if err != nil {
				return err
			}
			fmt.Printf("Wrote %d homes for chain %q under %s:\n", len(nodes), o.ChainID, o.Output)
			for _, n := range nodes {
				fmt.Printf("  %s  issuer %s  gRPC %s  RPC %s  P2P %s\n", n.Home, n.IssuerID, n.GRPC, n.RPC, n.P2P)
			}
			fmt.Println("Each home's API token is in config/api-token-<issuer> (mode 0600).")
			return nil
		},
	}
	c.Flags().IntVar(&o.Validators, "validators", 4, "number of validators")
	c.Flags().StringVar(&o.Output, "output", "./testnet-homes", "directory for the homes node0 … nodeN-1")
	c.Flags().StringVar(&o.ChainID, "chain-id", "credence-testnet", "chain id")
	c.Flags().StringVar(&o.StartingIP, "starting-ip", "", "give node i the address STARTING-IP + i (one host per node)")
	c.Flags().StringVar(&o.HostnamePrefix, "hostname-prefix", "", "give node i the host name PREFIX + i (one host per node)")
	c.Flags().IntVar(&o.BasePort, "base-port", 26656, "first port; on one host node i uses BASE+10i + 0 P2P, 1 RPC, 2 gRPC, 3 Prometheus, 5 HTTP")
	return c
}

func infoCmd() *cobra.Command {
	var addr string
	var asJSON bool
	c := &cobra.Command{
		Use:   "info [--node ADDR]",
		Short: "Describe a node: chain, height, app hash, indexed height, queue",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, closeConn, err := dial(addr)
			if err != nil {
				return err
			}
			defer closeConn()
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			info, err := cl.NodeInfo(ctx, &pb.NodeInfoRequest{})
			if err != nil {
				return rpcError("info", err)
			}
			if asJSON {
				fmt.Printf(`{"chain_id":%q,"moniker":%q,"height":%d,"app_hash":%q,"indexed_height":%d,"queued_hashes":%d}`+"\n",
					info.ChainId, info.Moniker, info.LatestHeight, proof.FormatBinary(info.LatestAppHash), info.IndexedHeight, info.QueuedHashes)
				return nil
			}
			fmt.Printf("chain %s  node %s  height %d  app hash %X  indexed %d  queued %d  issuers %v\n",
				info.ChainId, info.Moniker, info.LatestHeight, info.LatestAppHash, info.IndexedHeight, info.QueuedHashes, info.Issuers)
			return nil
		},
	}
	c.Flags().StringVar(&addr, "node", "127.0.0.1:9090", "node gRPC address")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
