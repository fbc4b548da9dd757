package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/spf13/cobra"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/node"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// govFlags are shared by the commands that sign as a member.
type govFlags struct {
	addr, home, description string
	timeout                 time.Duration
}

func (g *govFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&g.addr, "node", "127.0.0.1:9090", "node gRPC address")
	c.Flags().StringVar(&g.home, "home", defaultHome(), "home holding the member's admin key (config/admin-<member>.key.json)")
	c.Flags().DurationVar(&g.timeout, "timeout", time.Minute, "give up after this long")
}

// send signs msg as the home's member and waits until a block includes it.
func (g *govFlags) send(cmd *cobra.Command, body *pb.TxBody) (*pb.BroadcastResponse, error) {
	member, key, err := node.MemberKey(g.home)
	if err != nil {
		return nil, fmt.Errorf("--home: %w", err)
	}
	return g.sendAs(cmd, member, key, body)
}

// sendAs signs body as signer with key and broadcasts it.
func (g *govFlags) sendAs(cmd *cobra.Command, signer string, key ed25519.PrivateKey, body *pb.TxBody) (*pb.BroadcastResponse, error) {
	cl, closeConn, err := dial(g.addr)
	if err != nil {
		return nil, err
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	info, err := cl.NodeInfo(ctx, &pb.NodeInfoRequest{})
	if err != nil {
		return nil, rpcError("node info", err)
	}
	body.ChainId, body.Signer = info.ChainId, signer
	kind, err := app.SequenceAccount(body)
	if err != nil {
		return nil, err
	}
	// The sequence comes from the account's state, one above its last. A
	// transaction of the same account that lands first (a batch the node
	// anchors for this issuer, say) takes it; then ask again.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		seq, err := cl.GetSequence(ctx, &pb.GetSequenceRequest{Kind: kind, Id: signer})
		if err != nil {
			return nil, rpcError("sequence", err)
		}
		body.Sequence = seq.NextSequence
		tx, err := app.SignTx(body, key)
		if err != nil {
			return nil, err
		}
		res, err := cl.Broadcast(ctx, &pb.BroadcastRequest{Tx: tx})
		if err != nil {
			return nil, rpcError("broadcast", err)
		}
		if res.Code == app.CodeReplay && attempt < attempts {
			continue
		}
		if res.Code != 0 {
			return nil, fmt.Errorf("refused (code %d): %s", res.Code, res.Log)
		}
		return res, nil
	}
}

// findProposal is the proposal member submitted in the block at height:
// the id voters need, which the broadcast answer does not carry.
func findProposal(ctx context.Context, addr, member string, height int64) (*pb.GetProposalResponse, error) {
	cl, closeConn, err := dial(addr)
	if err != nil {
		return nil, err
	}
	defer closeConn()
	res, err := cl.ListProposals(ctx, &pb.ListProposalsRequest{})
	if err != nil {
		return nil, rpcError("list proposals", err)
	}
	for _, p := range res.Proposals {
		if p.Proposal.Proposer == member && p.Proposal.SubmitHeight == height {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no proposal of %s at height %d among the newest; see credenced gov list", member, height)
}

func govCmd() *cobra.Command {
	c := &cobra.Command{Use: "gov", Short: "Consortium governance: proposals and votes by members"}
	c.AddCommand(proposeCmd(), voteCmd(), govListCmd(), govShowCmd())
	return c
}

func proposeCmd() *cobra.Command {
	var g govFlags
	c := &cobra.Command{Use: "propose", Short: "Propose an action to the members (your own vote is yes)"}
	c.PersistentFlags().StringVar(&g.description, "description", "", "why (at most 1000 bytes)")
	submit := func(cmd *cobra.Command, p *pb.Propose) error {
		p.Description = g.description
		member, key, err := node.MemberKey(g.home)
		if err != nil {
			return fmt.Errorf("--home: %w", err)
		}
		res, err := g.sendAs(cmd, member, key, &pb.TxBody{Msg: &pb.TxBody_Propose{Propose: p}})
		if err != nil {
			return err
		}
		got, err := findProposal(cmd.Context(), g.addr, member, res.Height)
		if err != nil {
			return fmt.Errorf("proposal submitted at height %d (tx %X), but: %w", res.Height, res.TxHash, err)
		}
		pr := got.Proposal
		fmt.Printf("proposal %d submitted at height %d: %s\n", pr.Id, res.Height, strings.TrimPrefix(pr.Status.String(), "PROPOSAL_STATUS_"))
		if pr.Status == pb.ProposalStatus_PROPOSAL_STATUS_OPEN {
			fmt.Printf("other members vote with: credenced gov vote %d yes|no (open until height %d)\n", pr.Id, pr.ExpiresHeight)
		}
		return nil
	}
	var id, name, adminKey, valKey, issuer string
	var power, ttl int64
	var maxHashes uint64
	add := &cobra.Command{Use: "add-member --id ID --admin-key K --validator-key K --power P", Short: "Admit a member and its validator",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ak, err := proof.ParseBinary(adminKey)
			if err != nil {
				return fmt.Errorf("--admin-key: %w", err)
			}
			vk, err := proof.ParseBinary(valKey)
			if err != nil {
				return fmt.Errorf("--validator-key: %w", err)
			}
			return submit(cmd, &pb.Propose{Action: &pb.Propose_AddMember{AddMember: &pb.AddMember{Id: id, Name: name, AdminKey: ak, ValidatorKey: vk, Power: power}}})
		}}
	add.Flags().StringVar(&id, "id", "", "member id")
	add.Flags().StringVar(&name, "name", "", "member name")
	add.Flags().StringVar(&adminKey, "admin-key", "", "the member's admin public key (from credenced keys on its node)")
	add.Flags().StringVar(&valKey, "validator-key", "", "the member's validator public key (from credenced keys on its node)")
	add.Flags().Int64Var(&power, "power", 10, "voting power")
	remove := &cobra.Command{Use: "remove-member --id ID", Short: "Remove a member and its validator", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return submit(cmd, &pb.Propose{Action: &pb.Propose_RemoveMember{RemoveMember: &pb.RemoveMember{Id: id}}})
		}}
	remove.Flags().StringVar(&id, "id", "", "member id")
	repower := &cobra.Command{Use: "change-power --id ID --power P", Short: "Change a member's voting power", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return submit(cmd, &pb.Propose{Action: &pb.Propose_ChangePower{ChangePower: &pb.ChangePower{Id: id, Power: power}}})
		}}
	repower.Flags().StringVar(&id, "id", "", "member id")
	repower.Flags().Int64Var(&power, "power", 0, "new voting power")
	issuerStatus := func(use, short string, st pb.IssuerStatus) *cobra.Command {
		c := &cobra.Command{Use: use + " --issuer ID", Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return submit(cmd, &pb.Propose{Action: &pb.Propose_SetIssuerStatus{SetIssuerStatus: &pb.SetIssuerStatus{Issuer: issuer, Status: st}}})
			}}
		c.Flags().StringVar(&issuer, "issuer", "", "issuer id")
		return c
	}
	params := &cobra.Command{Use: "params [--max-batch-hashes N] [--proposal-ttl-blocks N]", Short: "Change chain parameters", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return submit(cmd, &pb.Propose{Action: &pb.Propose_ChangeParams{ChangeParams: &pb.ChangeParams{MaxBatchHashes: maxHashes, ProposalTtlBlocks: ttl}}})
		}}
	params.Flags().Uint64Var(&maxHashes, "max-batch-hashes", 0, "largest batch")
	params.Flags().Int64Var(&ttl, "proposal-ttl-blocks", 0, "blocks a proposal stays open")
	var upName, upSHA string
	var upHeight int64
	var upVersion uint64
	upgrade := &cobra.Command{Use: "upgrade --name N --height H --app-version V [--binary-sha256 HEX]",
		Short: "Plan a coordinated upgrade: at height H the chain runs app version V; binaries without it halt before H",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sum, err := hex.DecodeString(upSHA)
			if err != nil || (len(sum) != 0 && len(sum) != 32) {
				return usageError(fmt.Errorf("--binary-sha256 %q: want the release binary's SHA-256 in hex (64 digits)", upSHA))
			}
			return submit(cmd, &pb.Propose{Action: &pb.Propose_Upgrade{Upgrade: &pb.UpgradePlan{Name: upName, Height: upHeight, AppVersion: upVersion, BinarySha256: sum}}})
		}}
	upgrade.Flags().StringVar(&upName, "name", "", "the release's name (a-z, 0-9, '-', '.', '_'); also in data/upgrade-info.json")
	upgrade.Flags().Int64Var(&upHeight, "height", 0, "the first block run by the new release; leave time for the vote and for members to install it")
	upgrade.Flags().Uint64Var(&upVersion, "app-version", 0, "the app version the new release runs from the height")
	upgrade.Flags().StringVar(&upSHA, "binary-sha256", "", "SHA-256 of the release binary, for members to check (informational)")
	cancelUp := &cobra.Command{Use: "cancel-upgrade --name N", Short: "Cancel the pending upgrade plan before its height", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return submit(cmd, &pb.Propose{Action: &pb.Propose_CancelUpgrade{CancelUpgrade: &pb.CancelUpgrade{Name: upName}}})
		}}
	cancelUp.Flags().StringVar(&upName, "name", "", "the pending plan's name")
	for _, sub := range []*cobra.Command{add, remove, repower, issuerStatus("suspend-issuer", "Suspend an issuer: its batches are refused", pb.IssuerStatus_ISSUER_STATUS_SUSPENDED),
		issuerStatus("reinstate-issuer", "Reinstate a suspended issuer", pb.IssuerStatus_ISSUER_STATUS_ACTIVE), params, upgrade, cancelUp} {
		g.register(sub)
		c.AddCommand(sub)
	}
	return c
}

func voteCmd() *cobra.Command {
	var g govFlags
	c := &cobra.Command{Use: "vote ID yes|no", Short: "Vote on a proposal as the home's member", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("ID: %q is not a proposal id", args[0])
			}
			var yes bool
			switch args[1] {
			case "yes":
				yes = true
			case "no":
			default:
				return fmt.Errorf("vote: %q; say yes or no", args[1])
			}
			res, err := g.send(cmd, &pb.TxBody{Msg: &pb.TxBody_Vote{Vote: &pb.Vote{ProposalId: id, Yes: yes}}})
			if err != nil {
				return err
			}
			// The node answers once the vote's block is committed, so the
			// proposal read now includes it.
			cl, closeConn, err := dial(g.addr)
			if err != nil {
				return err
			}
			defer closeConn()
			p, err := cl.GetProposal(cmd.Context(), &pb.GetProposalRequest{Id: id})
			if err != nil {
				return rpcError("proposal", err)
			}
			fmt.Printf("vote recorded at height %d; proposal %d is %s (yes %v, no %v)\n", res.Height, id,
				strings.TrimPrefix(p.Proposal.Status.String(), "PROPOSAL_STATUS_"), p.Proposal.Yes, p.Proposal.No)
			return nil
		}}
	g.register(c)
	return c
}

// describeAction renders a proposed action for people, keys in multibase.
func describeAction(p *pb.Propose) string {
	switch a := p.Action.(type) {
	case *pb.Propose_AddMember:
		m := a.AddMember
		return fmt.Sprintf("add member %s (%q) power %d, admin key %s, validator key %s",
			m.Id, m.Name, m.Power, proof.FormatBinary(m.AdminKey), proof.FormatBinary(m.ValidatorKey))
	case *pb.Propose_RemoveMember:
		return "remove member " + a.RemoveMember.Id
	case *pb.Propose_ChangePower:
		return fmt.Sprintf("change power of %s to %d", a.ChangePower.Id, a.ChangePower.Power)
	case *pb.Propose_SetIssuerStatus:
		return fmt.Sprintf("set issuer %s %s", a.SetIssuerStatus.Issuer, strings.TrimPrefix(a.SetIssuerStatus.Status.String(), "ISSUER_STATUS_"))
	case *pb.Propose_ChangeParams:
		return fmt.Sprintf("change params: max_batch_hashes %d, proposal_ttl_blocks %d (0: unchanged)",
			a.ChangeParams.MaxBatchHashes, a.ChangeParams.ProposalTtlBlocks)
	case *pb.Propose_Upgrade:
		return describePlan(a.Upgrade)
	case *pb.Propose_CancelUpgrade:
		return "cancel upgrade " + a.CancelUpgrade.Name
	}
	return "unknown action"
}

func printProposal(p *pb.GetProposalResponse) {
	pr := p.Proposal
	fmt.Printf("#%d %s by %s: %s\n  yes %v  no %v  submitted %d  expires %d",
		pr.Id, strings.TrimPrefix(pr.Status.String(), "PROPOSAL_STATUS_"), pr.Proposer, describeAction(p.Propose),
		pr.Yes, pr.No, pr.SubmitHeight, pr.ExpiresHeight)
	if pr.DecidedHeight != 0 {
		fmt.Printf("  decided %d", pr.DecidedHeight)
	}
	if pr.Outcome != "" {
		fmt.Printf("  (%s)", pr.Outcome)
	}
	if p.Propose.Description != "" {
		fmt.Printf("\n  %q", p.Propose.Description)
	}
	fmt.Println()
}

func govListCmd() *cobra.Command {
	var addr string
	c := &cobra.Command{Use: "list", Short: "List recent proposals, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, closeConn, err := dial(addr)
			if err != nil {
				return err
			}
			defer closeConn()
			res, err := cl.ListProposals(cmd.Context(), &pb.ListProposalsRequest{})
			if err != nil {
				return rpcError("list", err)
			}
			for _, p := range res.Proposals {
				printProposal(p)
			}
			return nil
		}}
	c.Flags().StringVar(&addr, "node", "127.0.0.1:9090", "node gRPC address")
	return c
}

func govShowCmd() *cobra.Command {
	var addr string
	c := &cobra.Command{Use: "show ID", Short: "Show a proposal and its outcome", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("ID: %q is not a proposal id", args[0])
			}
			cl, closeConn, err := dial(addr)
			if err != nil {
				return err
			}
			defer closeConn()
			res, err := cl.GetProposal(cmd.Context(), &pb.GetProposalRequest{Id: id})
			if err != nil {
				return rpcError("proposal", err)
			}
			printProposal(res)
			return nil
		}}
	c.Flags().StringVar(&addr, "node", "127.0.0.1:9090", "node gRPC address")
	return c
}

func keysCmd() *cobra.Command {
	var home string
	c := &cobra.Command{Use: "keys", Short: "Print the public keys a member gives the consortium to join: admin key, validator key, node id",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			member, admin, err := node.MemberKey(home)
			if err != nil {
				return err
			}
			cfgDir := filepath.Join(home, "config")
			if _, err := os.Stat(filepath.Join(cfgDir, "priv_validator_key.json")); err != nil {
				return err
			}
			pv := privval.LoadFilePVEmptyState(filepath.Join(cfgDir, "priv_validator_key.json"), "")
			pub, err := pv.GetPubKey()
			if err != nil {
				return err
			}
			nk, err := p2p.LoadNodeKey(filepath.Join(cfgDir, "node_key.json"))
			if err != nil {
				return err
			}
			fmt.Printf("member:        %s\nadmin key:     %s\nvalidator key: %s\nnode id:       %s\n", member,
				proof.FormatBinary(admin.Public().(ed25519.PublicKey)), proof.FormatBinary(pub.Bytes()), nk.ID())
			return nil
		}}
	c.Flags().StringVar(&home, "home", defaultHome(), "node home")
	return c
}
