package main

import (
	"encoding/hex"
	"fmt"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// describePlan renders an upgrade plan for people.
func describePlan(u *pb.UpgradePlan) string {
	s := fmt.Sprintf("upgrade %s at height %d to app version %d", u.Name, u.Height, u.AppVersion)
	if len(u.BinarySha256) > 0 {
		s += ", binary sha256 " + hex.EncodeToString(u.BinarySha256)
	}
	return s
}

func upgradeCmd() *cobra.Command {
	c := &cobra.Command{Use: "upgrade", Short: "Coordinated upgrades decided on the ledger (propose with credenced gov propose upgrade)"}
	var rpc string
	st := &cobra.Command{Use: "status", Short: "Show the chain's app version and the pending upgrade plan, with the blocks remaining",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := rpchttp.New(rpc, "/websocket")
			if err != nil {
				return fmt.Errorf("--rpc: %w", err)
			}
			ctx := cmd.Context()
			info, err := cl.ABCIInfo(ctx)
			if err != nil {
				return fmt.Errorf("node %s: %w", rpc, err)
			}
			height := info.Response.LastBlockHeight
			fmt.Printf("height %d, app version %d\n", height, info.Response.AppVersion)
			q, err := cl.ABCIQuery(ctx, "/key", []byte(proof.KeyUpgradePlan))
			if err != nil {
				return fmt.Errorf("node %s: %w", rpc, err)
			}
			if q.Response.Code != 0 {
				return fmt.Errorf("query upgrade plan: %s", q.Response.Log)
			}
			if len(q.Response.Value) == 0 {
				fmt.Println("no pending upgrade")
				return nil
			}
			var p pb.UpgradePlan
			if err := proto.Unmarshal(q.Response.Value, &p); err != nil {
				return fmt.Errorf("upgrade plan in state: %w", err)
			}
			// The node halts once it commits the block before the plan's.
			fmt.Printf("pending: %s\n%d blocks remain until the halt at height %d (the new release runs %d on)\n",
				describePlan(&p), max(0, p.Height-1-q.Response.Height), p.Height-1, p.Height)
			return nil
		}}
	st.Flags().StringVar(&rpc, "node", "tcp://127.0.0.1:26657", "the node's CometBFT RPC address")
	c.AddCommand(st)
	return c
}
