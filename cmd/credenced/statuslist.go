package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	gproto "google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/node"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
	"github.com/credence-ledger/credence/vc"
)

func parseIndices(args []string) ([]uint64, error) {
	var out []uint64
	for _, a := range args {
		i, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("INDEX %q: not a whole number", a)
		}
		out = append(out, i)
	}
	if len(out) == 0 {
		return nil, errors.New("give at least one INDEX")
	}
	return out, nil
}

func statusListCmd() *cobra.Command {
	c := &cobra.Command{Use: "status-list", Aliases: []string{"registry"},
		Short: "Status lists (W3C Bitstring Status List): create, set, clear, export, status, entry",
		Long: "Status lists (W3C Bitstring Status List): an issuer's revocation and suspension bits, kept by the ledger.\n" +
			"registry is this command's old name and still works; the issuer registry is credenced issuer."}
	var g govFlags
	var id, purpose, issuer, genesis string
	var size uint64
	var asSponsor bool
	var maxAge time.Duration
	var minHeight int64
	var timeout time.Duration
	var baseURL, listURL string
	var noURL bool
	var ttlMs uint64

	create := &cobra.Command{Use: "create --id ID --purpose revocation|suspension [--size N] [--url URL | --no-url]", Short: "Create a status list of the home's issuer, signed by the issuer at every update", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := map[string]pb.RegistryPurpose{"revocation": pb.RegistryPurpose_REGISTRY_PURPOSE_REVOCATION, "suspension": pb.RegistryPurpose_REGISTRY_PURPOSE_SUSPENSION}[purpose]
			if p == 0 {
				return fmt.Errorf("--purpose: %q; say revocation or suspension", purpose)
			}
			is, key, err := node.IssuerSigningKey(g.home)
			if err != nil {
				return fmt.Errorf("--home: %w", err)
			}
			m := &pb.CreateRegistry{Id: id, Purpose: p, Size: size, TtlMs: ttlMs}
			if !noURL {
				if m.Url = listURL; m.Url == "" {
					base, err := node.HTTPBaseURL(g.home)
					if err != nil {
						return fmt.Errorf("--home: %w", err)
					}
					m.Url = base + node.StatusListPath(is, id)
				}
				if err := vc.CheckStatusListURL(m.Url); err != nil {
					return fmt.Errorf("--url: %w", err)
				}
				if u, _ := url.Parse(m.Url); u != nil {
					if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
						fmt.Fprintf(os.Stderr, "note: the list's URL %s is not reachable from elsewhere; verifiers need a public one (--url)\n", m.Url)
					}
				}
			}
			res, err := g.sendAs(cmd, is, key, &pb.TxBody{Msg: &pb.TxBody_CreateRegistry{CreateRegistry: m}})
			if err != nil {
				return err
			}
			fmt.Printf("status list %s/%s (%s, %d entries) created at height %d\n", is, id, purpose, size, res.Height)
			if m.Url != "" {
				fmt.Printf("its status list credential: %s\n", m.Url)
			}
			return nil
		}}
	create.Flags().StringVar(&id, "id", "", "status list id")
	create.Flags().StringVar(&purpose, "purpose", "revocation", "revocation (bits never cleared) or suspension")
	create.Flags().Uint64Var(&size, "size", 131072, "entries (at least 131,072, a multiple of 8)")
	create.Flags().StringVar(&listURL, "url", "", "URL the list is served at, its credential's id (default: the home's http_address + /v1/statuslists/ISSUER/ID)")
	create.Flags().BoolVar(&noURL, "no-url", false, "no URL: the list is served unsigned, as before signed lists")
	create.Flags().Uint64Var(&ttlMs, "ttl-ms", 0, "the list credential's ttl in milliseconds (0: 300000), its Cache-Control max-age")
	update := func(use, short string, set bool) *cobra.Command {
		u := &cobra.Command{Use: use + " --id ID INDEX...", Short: short, Args: cobra.ArbitraryArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				idx, err := parseIndices(args)
				if err != nil {
					return err
				}
				m := &pb.UpdateRegistry{Id: id}
				if set {
					m.Set = idx
				} else {
					m.Clear = idx
				}
				body := &pb.TxBody{AsSponsor: asSponsor, Msg: &pb.TxBody_UpdateRegistry{UpdateRegistry: m}}
				var res *pb.BroadcastResponse
				if asSponsor {
					if issuer == "" {
						return errors.New("--issuer is required with --as-sponsor")
					}
					m.Issuer = issuer
					res, err = g.send(cmd, body)
				} else {
					is, key, kerr := node.IssuerSigningKey(g.home)
					if kerr != nil {
						return fmt.Errorf("--home: %w", kerr)
					}
					m.Issuer = is
					res, err = g.sendSigned(cmd, is, key, body)
				}
				if err != nil {
					return err
				}
				fmt.Printf("status list %s/%s: %d entries %s at height %d\n", m.Issuer, id, len(idx), map[bool]string{true: "set", false: "cleared"}[set], res.Height)
				fmt.Printf("a status query sees it with --min-height %d: credenced status-list status --node %s --issuer %s --id %s --min-height %d --genesis GENESIS.json %d\n",
					res.Height, g.addr, m.Issuer, id, res.Height, idx[0])
				return nil
			}}
		u.Flags().StringVar(&id, "id", "", "status list id")
		u.Flags().StringVar(&issuer, "issuer", "", "with --as-sponsor: the issuer")
		u.Flags().BoolVar(&asSponsor, "as-sponsor", false, "sign as the home's member, the issuer's sponsor")
		return u
	}
	for _, sub := range []*cobra.Command{create, update("set", "Set entries (revoke or suspend)", true), update("clear", "Clear entries of a suspension list", false)} {
		g.register(sub)
		c.AddCommand(sub)
	}

	var addr string
	export := &cobra.Command{Use: "export --issuer I --id ID [--genesis G]", Short: "Export a status list's encodedList and height (verified against --genesis when given)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, closeConn, err := dial(addr)
			if err != nil {
				return err
			}
			defer closeConn()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := cl.ExportRegistry(ctx, &pb.ExportRegistryRequest{Issuer: issuer, Id: id})
			if err != nil {
				return rpcError("export", err)
			}
			ex := res.Export
			out := map[string]any{"issuer": issuer, "id": id, "encodedList": ex.EncodedList, "height": ex.Height}
			if genesis != "" {
				trust, err := trustFromFlag(genesis)
				if err != nil {
					return err
				}
				_, r, err := proof.VerifyRegistryExport(ex, trust, maxAge, time.Now())
				if err != nil {
					return fmt.Errorf("COULD NOT CHECK: the node's export does not verify: %w", err)
				}
				out["statusPurpose"], out["size"], out["time"], out["verified"] = r.Purpose, r.Size, r.Time.Format(time.RFC3339), true
			}
			b, _ := json.MarshalIndent(out, "", "  ")
			fmt.Println(string(b))
			return nil
		}}
	status := &cobra.Command{Use: "status --issuer I --id ID --genesis G INDEX", Short: "Check one entry: exit 0 when clear, 1 when set (revoked or suspended), 2 could not check", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			idx, err := parseIndices(args)
			if err != nil {
				return err
			}
			trust, err := trustFromFlag(genesis)
			if err != nil {
				return err
			}
			cl, closeConn, err := dial(addr)
			if err != nil {
				return err
			}
			defer closeConn()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var st *proof.RegistryStatus
			err = untilHeight(ctx, cl, minHeight, func() (int64, error) {
				res, err := cl.GetRegistryStatus(ctx, &pb.GetRegistryStatusRequest{Issuer: issuer, Id: id, Index: idx[0]})
				if err != nil {
					return 0, err
				}
				st = res.Status
				return st.Height, nil
			})
			if err != nil {
				return rpcError("status-list status", err)
			}
			r, err := proof.VerifyRegistryStatus(st, trust, maxAge, time.Now())
			if err != nil {
				return fmt.Errorf("COULD NOT CHECK: the node's answer does not verify: %w", err)
			}
			fmt.Printf("%s/%s entry %d: %s (%s list), as of height %d, %s\n", r.Issuer, r.ID, r.Index,
				map[bool]string{true: "SET", false: "clear"}[r.Set], r.Purpose, r.Height, r.Time.Format(time.RFC3339))
			if r.Set {
				// A set entry is an answer, printed above, not an error.
				return &exitError{exitInvalid, nil}
			}
			return nil
		}}
	status.Flags().Int64Var(&minHeight, "min-height", 0, "wait for an answer of this height or later (the height a set or clear printed)")
	for _, sub := range []*cobra.Command{export, status} {
		markCheck(sub)
		sub.Flags().StringVar(&addr, "node", "127.0.0.1:9090", "any member node's gRPC address")
		sub.Flags().StringVar(&issuer, "issuer", "", "issuer id")
		sub.Flags().StringVar(&id, "id", "", "status list id")
		sub.Flags().StringVar(&genesis, "genesis", "", "the chain's genesis.json (the trust root)")
		sub.Flags().DurationVar(&maxAge, "max-age", 10*time.Minute, "refuse an answer older than this")
		sub.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long (a node starting up is waited for)")
		c.AddCommand(sub)
	}

	var home string
	entry := &cobra.Command{Use: "entry --id ID [--issuer I] [--base-url URL] INDEX",
		Short: "Print the credentialStatus (BitstringStatusListEntry) a credential embeds for one entry", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			idx, err := parseIndices(args)
			if err != nil {
				return err
			}
			if issuer == "" {
				if issuer, _, err = node.IssuerSigningKey(home); err != nil {
					return fmt.Errorf("--issuer not given, and --home: %w", err)
				}
			}
			u, err := url.Parse(baseURL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fmt.Errorf("--base-url %q: want the http(s) URL of a member node's HTTP API", baseURL)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			e, err := statusEntry(ctx, addr, issuer, id, idx[0], baseURL)
			if err != nil {
				return err
			}
			b, _ := json.MarshalIndent(e, "", "  ")
			fmt.Println(string(b))
			return nil
		}}
	entry.Flags().StringVar(&addr, "node", "127.0.0.1:9090", "any member node's gRPC address")
	entry.Flags().StringVar(&issuer, "issuer", "", "issuer id (default: the --home node's issuer)")
	entry.Flags().StringVar(&home, "home", defaultHome(), "node home, for the issuer id")
	entry.Flags().StringVar(&id, "id", "", "status list id")
	entry.Flags().StringVar(&baseURL, "base-url", "http://127.0.0.1:1317", "for a list created without url: public URL of a member node's HTTP API, where verifiers fetch the list")
	c.AddCommand(entry)
	return c
}

// signedUpdateAttempts bounds how often an issuer's update is signed again
// because the list changed between reading and applying it.
const signedUpdateAttempts = 10

// sendSigned sends the issuer's update body. For a list with a url it first
// signs the list the update produces (node.SignedStatusListUpdate over the
// newest export); when another update lands first the chain refuses it
// (app.ErrListMoved) and it is rebuilt from a newer export and signed again.
func (g *govFlags) sendSigned(cmd *cobra.Command, issuer string, key ed25519.PrivateKey, body *pb.TxBody) (*pb.BroadcastResponse, error) {
	m := body.GetUpdateRegistry()
	cl, closeConn, err := dial(g.addr)
	if err != nil {
		return nil, err
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		ex, err := committedExport(ctx, cl, issuer, m.Id)
		if err != nil {
			return nil, rpcError("export", err)
		}
		var rec pb.Registry
		if err := gproto.Unmarshal(ex.RegistryRecord, &rec); err != nil {
			return nil, fmt.Errorf("status list record: %w", err)
		}
		if rec.Url == "" {
			return g.sendAs(cmd, issuer, key, body)
		}
		signed, err := node.SignedStatusListUpdate(ex, m.Set, m.Clear, key, time.Now())
		if err != nil {
			return nil, err
		}
		body.Msg = &pb.TxBody_UpdateRegistry{UpdateRegistry: signed}
		out, err := g.sendAs(cmd, issuer, key, body)
		if err == nil || attempt == signedUpdateAttempts || !strings.Contains(err.Error(), app.ErrListMoved.Error()) {
			return out, err
		}
	}
}

// committedExport is the status list's export once it is as new as the
// committed state (the provable state lags it by two blocks): an update
// signed over an older one would be refused as moved. A list just created
// is not exported yet; it is waited for too, for a bounded time.
func committedExport(ctx context.Context, cl pb.CredenceClient, issuer, id string) (*proof.RegistryExport, error) {
	seq, err := cl.GetSequence(ctx, &pb.GetSequenceRequest{Kind: pb.AccountKind_ACCOUNT_KIND_ISSUER, Id: issuer})
	if err != nil {
		return nil, err
	}
	const polls = 50
	for i := 0; ; i++ {
		res, err := cl.ExportRegistry(ctx, &pb.ExportRegistryRequest{Issuer: issuer, Id: id})
		switch {
		case err == nil && res.Export.Height >= seq.Height:
			return res.Export, nil
		case err != nil && status.Code(err) != codes.NotFound && status.Code(err) != codes.Unavailable:
			return nil, err
		case i == polls && err != nil:
			return nil, err
		case i == polls:
			return res.Export, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// statusEntry is the credentialStatus (BitstringStatusListEntry) of one
// entry of an issuer's status list, as the node knows the list.
func statusEntry(ctx context.Context, addr, issuer, id string, idx uint64, baseURL string) (map[string]string, error) {
	cl, closeConn, err := dial(addr)
	if err != nil {
		return nil, err
	}
	defer closeConn()
	// The entry must exist, and the list's record says its purpose. A list
	// just created is committed before it is provable (two blocks on): it
	// is waited for, a bounded time, as committedExport does.
	const polls = 50
	var res *pb.GetRegistryStatusResponse
	for i := 0; ; i++ {
		res, err = cl.GetRegistryStatus(ctx, &pb.GetRegistryStatusRequest{Issuer: issuer, Id: id, Index: idx})
		if c := status.Code(err); err == nil || i == polls || c != codes.NotFound && c != codes.Unavailable {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, rpcError("status list", err)
	}
	var rec pb.Registry
	if err := gproto.Unmarshal(res.Status.RegistryRecord, &rec); err != nil {
		return nil, fmt.Errorf("status list record: %w", err)
	}
	// A list with a url is its credential's id; older lists are served by
	// any member at the same path.
	list := rec.Url
	if list == "" {
		list = strings.TrimSuffix(baseURL, "/") + node.StatusListPath(issuer, id)
	}
	return map[string]string{
		"id":                   fmt.Sprintf("%s#%d", list, idx),
		"type":                 "BitstringStatusListEntry",
		"statusPurpose":        proof.PurposeName(int32(rec.Purpose)),
		"statusListIndex":      strconv.FormatUint(idx, 10),
		"statusListCredential": list,
	}, nil
}
