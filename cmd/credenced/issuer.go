package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/credence-ledger/credence/node"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
	"github.com/credence-ledger/credence/vc"
)

func issuerCmd() *cobra.Command {
	c := &cobra.Command{Use: "issuer", Short: "The issuer registry: register, rotate keys, mark keys compromised, show"}
	var g govFlags
	var id, name, issuer, key string
	var keys []string
	var fromHeight int64
	var asSponsor bool
	register := &cobra.Command{Use: "register --id ID --key K... [--name N]", Short: "Register an issuer sponsored by the home's member", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m := &pb.RegisterIssuer{Id: id, Name: name}
			for _, k := range keys {
				b, err := proof.ParseBinary(k)
				if err != nil {
					return fmt.Errorf("--key: %w", err)
				}
				m.Keys = append(m.Keys, b)
			}
			if len(m.Keys) == 0 {
				return errors.New("--key: at least one public key")
			}
			res, err := g.send(cmd, &pb.TxBody{Msg: &pb.TxBody_RegisterIssuer{RegisterIssuer: m}})
			if err != nil {
				return err
			}
			fmt.Printf("issuer %s registered at height %d\n", id, res.Height)
			return nil
		}}
	register.Flags().StringVar(&id, "id", "", "issuer id")
	register.Flags().StringVar(&name, "name", "", "display name")
	register.Flags().StringArrayVar(&keys, "key", nil, "ed25519 public key (multibase or hex); repeatable")
	rotate := &cobra.Command{Use: "rotate-key --issuer ID --new-key K [--as-sponsor]", Short: "Close the issuer's current key windows and open one for a new key", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nk, err := proof.ParseBinary(key)
			if err != nil {
				return fmt.Errorf("--new-key: %w", err)
			}
			body := &pb.TxBody{AsSponsor: asSponsor, Msg: &pb.TxBody_RotateKey{RotateKey: &pb.RotateKey{Issuer: issuer, NewKey: nk}}}
			var res *pb.BroadcastResponse
			if asSponsor {
				res, err = g.send(cmd, body)
			} else {
				id, k, kerr := node.IssuerSigningKey(g.home)
				if kerr != nil {
					return fmt.Errorf("--home: %w (or --as-sponsor)", kerr)
				}
				if id != issuer {
					return fmt.Errorf("the home's issuer is %q, not %q (or --as-sponsor)", id, issuer)
				}
				res, err = g.sendAs(cmd, id, k, body)
			}
			if err != nil {
				return err
			}
			fmt.Printf("issuer %s: new key from height %d\n", issuer, res.Height)
			return nil
		}}
	rotate.Flags().StringVar(&issuer, "issuer", "", "issuer id")
	rotate.Flags().StringVar(&key, "new-key", "", "the new ed25519 public key")
	rotate.Flags().BoolVar(&asSponsor, "as-sponsor", false, "sign as the home's member, the issuer's sponsor")
	compromise := &cobra.Command{Use: "compromise --issuer ID --key K --from-height H", Short: "Mark an issuer key compromised from a height (sponsor only)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := proof.ParseBinary(key)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			res, err := g.send(cmd, &pb.TxBody{Msg: &pb.TxBody_CompromiseKey{CompromiseKey: &pb.CompromiseKey{Issuer: issuer, Key: k, FromHeight: fromHeight}}})
			if err != nil {
				return err
			}
			fmt.Printf("issuer %s: key marked compromised from height %d (recorded at %d)\n", issuer, fromHeight, res.Height)
			return nil
		}}
	compromise.Flags().StringVar(&issuer, "issuer", "", "issuer id")
	compromise.Flags().StringVar(&key, "key", "", "the compromised public key")
	compromise.Flags().Int64Var(&fromHeight, "from-height", 0, "first height the key is known compromised")
	for _, sub := range []*cobra.Command{register, rotate, compromise} {
		g.register(sub)
		c.AddCommand(sub)
	}
	var addr string
	show := &cobra.Command{Use: "show ID", Short: "Show an issuer, its key history, and each key's did:key and verification method", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, closeConn, err := dial(addr)
			if err != nil {
				return err
			}
			defer closeConn()
			res, err := cl.GetIssuer(cmd.Context(), &pb.GetIssuerRequest{Id: args[0]})
			if err != nil {
				return rpcError("issuer", err)
			}
			is := res.Issuer
			fmt.Printf("issuer %s (%s), sponsor %s, %s, as of height %d\n", is.Id, is.Name, is.Sponsor, is.Status, res.Height)
			for _, k := range is.Keys {
				to := "open"
				if k.ToHeight != 0 {
					to = fmt.Sprint(k.ToHeight)
				}
				fmt.Printf("  key %s  valid [%d, %s)", proof.FormatBinary(k.PublicKey), k.FromHeight, to)
				if k.CompromisedFrom != 0 {
					fmt.Printf("  COMPROMISED from %d", k.CompromisedFrom)
				}
				fmt.Println()
				// Each key is its own did:key: the DID that issues, and
				// signs the status lists of, what the key signs.
				did, derr := vc.DIDKey(k.PublicKey)
				vm, verr := vc.DIDKeyVerificationMethod(k.PublicKey)
				if derr != nil || verr != nil {
					fmt.Printf("    (not an Ed25519 key: no did:key)\n")
					continue
				}
				fmt.Printf("    DID %s\n    verificationMethod %s (assertionMethod), heights [%d, %s)\n", did, vm, k.FromHeight, to)
			}
			return nil
		}}
	show.Flags().StringVar(&addr, "node", "127.0.0.1:9090", "node gRPC address")
	c.AddCommand(show)
	return c
}
