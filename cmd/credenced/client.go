package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
	"github.com/credence-ledger/credence/vc"
)

// tlsCA, when set (--tls-ca), makes clients speak TLS to the node and
// trust that CA file; otherwise they speak plaintext, which a node allows
// on loopback only.
var tlsCA string

func dial(addr string) (pb.CredenceClient, func(), error) {
	creds := insecure.NewCredentials()
	if tlsCA != "" {
		c, err := credentials.NewClientTLSFromFile(tlsCA, "")
		if err != nil {
			return nil, nil, fmt.Errorf("--tls-ca: %w", err)
		}
		creds = c
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, nil, fmt.Errorf("--node %s: %w", addr, err)
	}
	return pb.NewCredenceClient(conn), func() { conn.Close() }, nil
}

// input is one thing to anchor: a file or a given hash.
type input struct {
	name string
	hash []byte
	// path is the credential file a receipt is attached to (--attach).
	path string
}

// attachTo, for anchor --attach, holds the genesis the anchor proof names
// and where the anchored credentials go.
type attachTo struct {
	genesis []byte
	inPlace bool
}

func anchorCmd() *cobra.Command {
	var addr, home, token, out, hashesFrom, genesis string
	var hashes []string
	var noWait, asVC, attach, inPlace bool
	var tokenFlags tokenSource
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "anchor [flags] FILE... | --vc [--attach] CREDENTIAL.json... | --hash H... | --hashes-from FILE",
		Short: "Anchor credentials: hash files (SHA-256, or a VC's credential hash with --vc) or take hashes, submit, and wait until anchored",
		RunE: func(cmd *cobra.Command, files []string) error {
			if (attach || inPlace) && !asVC {
				return usageError(errors.New("--attach and --in-place are for Verifiable Credentials: add --vc"))
			}
			if attach && noWait {
				return usageError(errors.New("--attach waits for the receipts: not with --no-wait"))
			}
			ins, err := collectInputs(files, hashes, hashesFrom, asVC)
			if err != nil {
				return err
			}
			var at *attachTo
			if attach {
				at = &attachTo{inPlace: inPlace}
				if at.genesis, err = genesisBytes(genesis, home); err != nil {
					return err
				}
			}
			if token, err = tokenFlags.resolve(home); err != nil {
				return err
			}
			if out != "" {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
			}
			cl, closeConn, err := dial(addr)
			if err != nil {
				return err
			}
			defer closeConn()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
			bar := newProgress(len(ins))
			res, err := submitAll(actx, cl, ins, bar)
			if err != nil {
				return err
			}
			if noWait {
				bar.done()
				printSubmitted(ins, res)
				return nil
			}
			return waitAll(ctx, cl, ins, out, at, bar)
		},
	}
	c.Flags().StringVar(&addr, "node", "127.0.0.1:9090", "node gRPC address")
	c.Flags().StringVar(&home, "home", defaultHome(), "node home holding the issuer API token")
	tokenFlags.register(c)
	c.Flags().StringVar(&out, "out", "", "write NAME.receipt.json for each input into this directory")
	c.Flags().StringArrayVar(&hashes, "hash", nil, "a SHA-256 credential hash (multibase or hex); repeatable")
	c.Flags().StringVar(&hashesFrom, "hashes-from", "", "file with one hash per line")
	c.Flags().BoolVar(&noWait, "no-wait", false, "return once the node has durably queued the hashes")
	c.Flags().BoolVar(&asVC, "vc", false, "the files are Verifiable Credentials (JSON): anchor each one's credential hash, SHA-256 of its JCS form without proof, which re-serialising or adding proofs does not change")
	c.Flags().BoolVar(&attach, "attach", false, "with --vc: once anchored, add the receipt to each credential's proof set, written to NAME.anchored.json")
	c.Flags().BoolVar(&inPlace, "in-place", false, "with --attach: replace each credential file instead")
	c.Flags().StringVar(&genesis, "genesis", "", "with --attach: the chain's genesis.json (default: the home's)")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	return c
}

func collectInputs(files, hashes []string, hashesFrom string, asVC bool) ([]input, error) {
	var ins []input
	for _, f := range files {
		hashOf := hashFile
		if asVC {
			hashOf = vcHash
		}
		h, err := hashOf(f)
		if err != nil {
			return nil, err
		}
		ins = append(ins, input{name: filepath.Base(f), hash: h, path: f})
	}
	for _, s := range hashes {
		h, err := proof.ParseHash(s)
		if err != nil {
			return nil, fmt.Errorf("--hash: %w", err)
		}
		ins = append(ins, input{name: proof.FormatBinary(h), hash: h})
	}
	if hashesFrom != "" {
		f, err := os.Open(hashesFrom)
		if err != nil {
			return nil, fmt.Errorf("--hashes-from: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for line := 1; sc.Scan(); line++ {
			s := strings.TrimSpace(sc.Text())
			if s == "" || strings.HasPrefix(s, "#") {
				continue
			}
			h, err := proof.ParseHash(s)
			if err != nil {
				return nil, fmt.Errorf("--hashes-from %s line %d: %w", hashesFrom, line, err)
			}
			ins = append(ins, input{name: proof.FormatBinary(h), hash: h})
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--hashes-from: %w", err)
		}
	}
	if len(ins) == 0 {
		return nil, errors.New("nothing to anchor: give files, --hash or --hashes-from")
	}
	return ins, nil
}

// vcHash is a Verifiable Credential file's credential hash.
func vcHash(path string) ([]byte, error) {
	doc, err := readCredential(path)
	if err != nil {
		return nil, err
	}
	if !isVC(doc) {
		return nil, fmt.Errorf("%s: not a Verifiable Credential (no @context, or no type VerifiableCredential); anchor it without --vc to anchor its bytes", path)
	}
	h, err := vc.CredentialHash(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h[:], nil
}

func hashFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h.Sum(nil), nil
}

func submitAll(ctx context.Context, cl pb.CredenceClient, ins []input, bar *progress) (*pb.SubmitResponse, error) {
	const chunk = 10_000
	out := &pb.SubmitResponse{}
	for i := 0; i < len(ins); i += chunk {
		end := min(i+chunk, len(ins))
		buf := make([]byte, 0, (end-i)*proof.HashSize)
		for _, in := range ins[i:end] {
			buf = append(buf, in.hash...)
		}
		res, err := submitRetrying(ctx, cl, buf)
		if err != nil {
			if i > 0 {
				return nil, fmt.Errorf("%w (the first %d hashes are queued)", err, i)
			}
			return nil, err
		}
		out.Queued += res.Queued
		for _, k := range res.Known {
			k.Index += uint64(i)
			out.Known = append(out.Known, k)
		}
		out.KnownNotListed += res.KnownNotListed
	}
	return out, nil
}

// submitRetrying submits one request, again while the node refuses it for
// load (its queue full, or a rate limit): nothing of a refused request is
// queued, so the retry is the whole request.
func submitRetrying(ctx context.Context, cl pb.CredenceClient, hashes []byte) (*pb.SubmitResponse, error) {
	delay := 200 * time.Millisecond
	for {
		res, err := cl.Submit(ctx, &pb.SubmitRequest{Hashes: hashes})
		if err == nil {
			return res, nil
		}
		if status.Code(err) != codes.ResourceExhausted {
			return nil, rpcError("submit", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("submit: the node stayed busy (%s): %w", status.Convert(err).Message(), ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// printSubmitted says, per input, what the node did with it: newly queued,
// already waiting, or already anchored (and where).
func printSubmitted(ins []input, res *pb.SubmitResponse) {
	known := make(map[uint64]*pb.Known, len(res.Known))
	for _, k := range res.Known {
		known[k.Index] = k
	}
	for i, in := range ins {
		state := "queued"
		if k := known[uint64(i)]; k != nil {
			switch k.State {
			case pb.HashState_HASH_STATE_PENDING:
				state = "already queued"
			case pb.HashState_HASH_STATE_ANCHORED:
				state = fmt.Sprintf("already anchored\tissuer=%s  batch=%d  height=%d", k.Issuer, k.BatchSeq, k.Height)
			}
		} else if res.KnownNotListed > 0 {
			state = "queued, or already known"
		}
		fmt.Printf("%s\t%s\t%s\n", in.name, proof.FormatBinary(in.hash), state)
	}
	if res.KnownNotListed > 0 {
		fmt.Fprintf(os.Stderr, "note: the node knew %d more hashes than it lists in one answer; `credenced receipt HASH` tells where each one is\n", res.KnownNotListed)
	}
}

func rpcError(what string, err error) error {
	if s, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s (%s)", what, s.Message(), s.Code())
	}
	return fmt.Errorf("%s: %w", what, err)
}

// fetchReceipt waits for a hash's receipt: the node waits up to wait per
// call (wait_ms) while the hash is on its way, and it is asked again,
// after a pause, if its wait ran out or it had no room to wait.
func fetchReceipt(ctx context.Context, cl pb.CredenceClient, hash []byte, wait time.Duration) (*proof.Receipt, error) {
	delay := 100 * time.Millisecond
	for {
		res, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hash, WaitMs: waitMs(wait)})
		if err == nil {
			return res.Receipt, nil
		}
		if c := status.Code(err); c != codes.Unavailable && c != codes.ResourceExhausted {
			return nil, rpcError("receipt", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("receipt of %s: not anchored in time (%w)", proof.FormatBinary(hash), ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func waitAll(ctx context.Context, cl pb.CredenceClient, ins []input, out string, at *attachTo, bar *progress) error {
	lines := make([]string, len(ins))
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				lines[i], errs[i] = waitOne(ctx, cl, ins[i], out, at)
				bar.add(1)
			}
		}()
	}
	for i := range ins {
		next <- i
	}
	close(next)
	wg.Wait()
	bar.done()
	var failed int
	for i, l := range lines {
		if errs[i] != nil {
			failed++
			fmt.Fprintf(os.Stderr, "%s: %v\n", ins[i].name, errs[i])
			continue
		}
		fmt.Println(l)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d inputs not anchored", failed, len(ins))
	}
	return nil
}

func waitOne(ctx context.Context, cl pb.CredenceClient, in input, out string, at *attachTo) (string, error) {
	r, err := fetchReceipt(ctx, cl, in.hash, fetchReceiptWait)
	if err != nil {
		return "", err
	}
	attached := ""
	if at != nil {
		// Read again: the credential must still be what was anchored.
		doc, err := readCredential(in.path)
		if err != nil {
			return "", err
		}
		anchored, err := vc.AttachReceipt(doc, r, at.genesis)
		if err != nil {
			return "", fmt.Errorf("attach: %w", err)
		}
		o := outFlags{inPlace: at.inPlace}
		if attached, err = o.write(in.path, ".anchored.json", anchored); err != nil {
			return "", err
		}
		attached = "\tanchored=" + attached
	}
	if out != "" {
		b, err := proof.MarshalReceiptJSON(r)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(out, in.name+".receipt.json"), append(b, '\n'), 0o644); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s\t%s\tissuer=%s\tbatch=%d\theight=%d%s", in.name, proof.FormatBinary(in.hash), r.Batch.Issuer, r.Batch.Seq, r.Batch.Height, attached), nil
}

// fetchReceiptWait is how long anchor asks the node to wait per call; the
// node holds a call no longer than its receipt_wait_max.
const fetchReceiptWait = 30 * time.Second

func receiptCmd() *cobra.Command {
	var addr, issuer string
	var timeout, wait time.Duration
	c := &cobra.Command{
		Use:   "receipt [--node ADDR] HASH",
		Short: "Print the receipt (JSON) of an anchored credential hash",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := proof.ParseHash(args[0])
			if err != nil {
				return fmt.Errorf("HASH: %w", err)
			}
			if wait < 0 {
				return errors.New("--wait must not be negative")
			}
			cl, closeConn, err := dial(addr)
			if err != nil {
				return err
			}
			defer closeConn()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: h, Issuer: issuer, WaitMs: waitMs(wait)})
			if err != nil {
				return rpcError("receipt", err)
			}
			b, err := proof.MarshalReceiptJSON(res.Receipt)
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(append(b, '\n'))
			return err
		},
	}
	c.Flags().StringVar(&addr, "node", "127.0.0.1:9090", "node gRPC address")
	c.Flags().StringVar(&issuer, "issuer", "", "issuer whose anchoring to prove (default: the first)")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	c.Flags().DurationVar(&wait, "wait", 0, "for a hash queued or in a batch not yet final at this node, wait up to this long for its receipt (the node waits at most its receipt_wait_max)")
	return c
}

// readLimited reads a file of at most limit bytes, refusing a larger one
// before reading it.
func readLimited(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// progress draws a bar on a terminal for large jobs, and nothing otherwise.
type progress struct {
	mu    sync.Mutex
	total int
	n     int
	on    bool
}

func newProgress(total int) *progress {
	st, err := os.Stderr.Stat()
	return &progress{total: total, on: total >= 1000 && err == nil && st.Mode()&os.ModeCharDevice != 0}
}

func (p *progress) add(k int) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += k
	if p.n%100 == 0 || p.n == p.total {
		const width = 40
		fill := width * p.n / p.total
		fmt.Fprintf(os.Stderr, "\r[%s%s] %d/%d anchored", strings.Repeat("#", fill), strings.Repeat(".", width-fill), p.n, p.total)
	}
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(os.Stderr)
	}
}
