package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/node"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// trustFromFlag is the trust root of --genesis (readTrust).
func trustFromFlag(genesis string) (*proof.TrustRoot, error) {
	_, t, err := readTrust(genesis)
	return t, err
}

// readTrust reads --genesis, the genesis.json the verifier trusts, and its
// trust root.
func readTrust(genesis string) ([]byte, *proof.TrustRoot, error) {
	if genesis == "" {
		return nil, nil, errors.New("--genesis is required: the genesis.json the verifier trusts")
	}
	g, err := readLimited(genesis, 16<<20)
	if err != nil {
		return nil, nil, fmt.Errorf("--genesis: %w", err)
	}
	t, err := proof.TrustRootFromGenesis(g)
	if err != nil {
		return nil, nil, fmt.Errorf("--genesis %s: %w", genesis, err)
	}
	return g, t, nil
}

// onlineStatus fetches and verifies a hash's status from a node, of a
// state at minHeight or later.
func onlineStatus(ctx context.Context, addr string, hash []byte, trust *proof.TrustRoot, maxAge time.Duration, minHeight int64) (*proof.StatusResult, error) {
	cl, closeConn, err := dial(addr)
	if err != nil {
		return nil, err
	}
	defer closeConn()
	var st *proof.Status
	err = untilHeight(ctx, cl, minHeight, func() (int64, error) {
		res, err := cl.GetStatus(ctx, &pb.GetStatusRequest{Hash: hash})
		if err != nil {
			return 0, err
		}
		st = res.Status
		return st.Height, nil
	})
	if status.Code(err) == codes.NotFound {
		// No member knows the hash: the credential is not anchored, an
		// answer (exit 1), not a failure to ask.
		return nil, &exitError{exitInvalid, fmt.Errorf("INVALID: %w", rpcError("status", err))}
	}
	if err != nil {
		return nil, rpcError("status", err)
	}
	s, err := proof.VerifyStatus(st, trust, maxAge, time.Now())
	if err != nil {
		// A node's answer that does not verify (another chain, too old, a
		// bad proof) says nothing of the credential: ask another member.
		return nil, fmt.Errorf("COULD NOT CHECK: the node's answer does not verify: %w", err)
	}
	return s, nil
}

// untilHeight repeats a proven query until its state is at minHeight or
// later: what a node can prove trails its newest block by two, so the
// answer just after a write may predate it. A write prints its height for
// this (read your writes).
func untilHeight(ctx context.Context, cl pb.CredenceClient, minHeight int64, query func() (int64, error)) error {
	said := false
	for {
		h, err := query()
		if err == nil && h >= minHeight {
			return nil
		}
		switch status.Code(err) {
		case codes.OK, codes.Unavailable:
		case codes.NotFound:
			// Not found in a state before the write may be found after it.
			if minHeight == 0 || provenHeight(ctx, cl) >= minHeight {
				return err
			}
		default:
			return err
		}
		if !said && minHeight > 0 {
			fmt.Fprintf(os.Stderr, "waiting for the node to prove height %d…\n", minHeight)
			said = true
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return err
			}
			return status.Errorf(codes.DeadlineExceeded, "the node proves height %d, not yet --min-height %d", h, minHeight)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func printStatus(s *proof.StatusResult) {
	fmt.Printf("  issuer:     %s (%s)\n  anchored:   height %d, batch %d\n  as of:      height %d, %s\n",
		s.Issuer, map[bool]string{true: "active", false: "SUSPENDED"}[s.IssuerActive], s.Verified.Height, s.BatchSeq,
		s.Height, s.Time.Format(time.RFC3339))
	if s.KeyCompromisedFrom != 0 {
		fmt.Printf("  key:        marked compromised from height %d\n", s.KeyCompromisedFrom)
	}
	if s.Revoked {
		fmt.Printf("  revoked:    at height %d, reason %d\n", s.RevokedAt, s.RevocationReason)
	} else {
		fmt.Printf("  revoked:    no\n")
	}
}

func statusCmd() *cobra.Command {
	var addr, genesis, file string
	var maxAge, timeout time.Duration
	var minHeight int64
	var asVC bool
	c := markCheck(&cobra.Command{
		Use:   "status [--node ADDR] [--min-height H] --genesis GENESIS.json HASH | --file CREDENTIAL",
		Short: "Check a credential's status with any member's node: exit 0 valid and not revoked, 1 not (naming why), 2 could not check",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var hash []byte
			var err error
			switch {
			case file != "" && len(args) == 0 && asVC:
				hash, err = vcHash(file)
			case file != "" && len(args) == 0:
				hash, err = hashFile(file)
			case file == "" && len(args) == 1:
				hash, err = proof.ParseHash(args[0])
			default:
				return usageError(errors.New("give a HASH or --file, not both"))
			}
			if err != nil {
				return err
			}
			trust, err := trustFromFlag(genesis)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			s, err := onlineStatus(ctx, addr, hash, trust, maxAge, minHeight)
			if err != nil {
				return err
			}
			if err := s.Valid(); err != nil {
				fmt.Printf("NOT VALID: %v\n", err)
				printStatus(s)
				return &exitError{exitInvalid, nil}
			}
			fmt.Printf("VALID and not revoked\n")
			printStatus(s)
			return nil
		},
	})
	c.Flags().StringVar(&addr, "node", "127.0.0.1:9090", "any member node's gRPC address")
	c.Flags().StringVar(&genesis, "genesis", "", "the chain's genesis.json (the trust root)")
	c.Flags().StringVar(&file, "file", "", "the credential file (its SHA-256 is the hash)")
	c.Flags().BoolVar(&asVC, "vc", false, "--file is a Verifiable Credential: its hash is the credential hash (as anchor --vc)")
	c.Flags().DurationVar(&maxAge, "max-age", 10*time.Minute, "refuse an answer older than this")
	c.Flags().Int64Var(&minHeight, "min-height", 0, "wait for an answer of this height or later (the height a revoke printed)")
	c.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	return c
}

func revokeCmd() *cobra.Command {
	var g govFlags
	var reason uint32
	var file string
	var asSponsor, asVC bool
	c := &cobra.Command{
		Use:   "revoke [--reason R] HASH... | --file CREDENTIAL",
		Short: "Revoke credential hashes anchored by the home's issuer (or, with --as-sponsor, by an issuer the home's member sponsors)",
		RunE: func(cmd *cobra.Command, args []string) error {
			var hashes [][]byte
			for _, a := range args {
				h, err := proof.ParseHash(a)
				if err != nil {
					return fmt.Errorf("HASH: %w", err)
				}
				hashes = append(hashes, h)
			}
			if file != "" {
				hashOf := hashFile
				if asVC {
					hashOf = vcHash
				}
				h, err := hashOf(file)
				if err != nil {
					return fmt.Errorf("--file: %w", err)
				}
				hashes = append(hashes, h)
			}
			if len(hashes) == 0 {
				return errors.New("nothing to revoke: give hashes or --file")
			}
			cl, closeConn, err := dial(g.addr)
			if err != nil {
				return err
			}
			defer closeConn()
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			issuer, issuerKey, err := node.IssuerSigningKey(g.home)
			if asSponsor || err != nil {
				if !asSponsor {
					return fmt.Errorf("--home: %w (use --as-sponsor to sign as the sponsoring member)", err)
				}
				issuer = ""
			}
			rv := &pb.Revoke{Reason: reason}
			for _, h := range hashes {
				res, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: h, Issuer: issuer})
				if err != nil {
					return rpcError(fmt.Sprintf("receipt of %s", proof.FormatBinary(h)), err)
				}
				r := res.Receipt
				if rv.Issuer != "" && rv.Issuer != r.Batch.Issuer {
					return fmt.Errorf("%s was anchored by %s, not %s: revoke each issuer's hashes separately", proof.FormatBinary(h), r.Batch.Issuer, rv.Issuer)
				}
				rv.Issuer = r.Batch.Issuer
				rv.Hashes = append(rv.Hashes, &pb.RevokedHash{Hash: h, BatchSeq: r.Batch.Seq, LeafIndex: r.LeafIndex, AuditPath: r.AuditPath})
			}
			body := &pb.TxBody{AsSponsor: asSponsor, Msg: &pb.TxBody_Revoke{Revoke: rv}}
			var res *pb.BroadcastResponse
			if asSponsor {
				res, err = g.send(cmd, body)
			} else {
				res, err = g.sendAs(cmd, issuer, issuerKey, body)
			}
			if err != nil {
				return err
			}
			fmt.Printf("%d hash(es) of issuer %s revoked at height %d\n", len(rv.Hashes), rv.Issuer, res.Height)
			fmt.Printf("a status query sees it with --min-height %d: credenced status --node %s --min-height %d --genesis GENESIS.json %s\n",
				res.Height, g.addr, res.Height, proof.FormatBinary(rv.Hashes[0].Hash))
			return nil
		},
	}
	g.register(c)
	c.Flags().Uint32Var(&reason, "reason", 0, "reason code (application-defined; 0 unspecified)")
	c.Flags().StringVar(&file, "file", "", "revoke this credential file's hash")
	c.Flags().BoolVar(&asVC, "vc", false, "--file is a Verifiable Credential: revoke its credential hash (as anchor --vc)")
	c.Flags().BoolVar(&asSponsor, "as-sponsor", false, "sign as the home's member, the issuer's sponsor")
	return c
}

// provenHeight is the newest state the node can prove: two below its head
// (node/api.go, provenState).
func provenHeight(ctx context.Context, cl pb.CredenceClient) int64 {
	info, err := cl.NodeInfo(ctx, &pb.NodeInfoRequest{})
	if err != nil {
		return 0
	}
	return info.LatestHeight - 2
}
