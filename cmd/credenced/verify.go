package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	gproto "google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/node"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
	"github.com/credence-ledger/credence/vc"
)

// errStatusInvalid marks a status check that failed on proven data (the
// ledger's status list does not back the credential's entry): an invalid
// credential, not a failure to check.
var errStatusInvalid = errors.New("the credential's status entry")

// maxStatusListBytes bounds a status list or export read from a node: the
// state machine keeps a signed list under 1 MiB + 8 KiB (docs/status.md);
// an export carries chunk proofs beside it.
const maxStatusListBytes = 16 << 20

func verifyCmd() *cobra.Command {
	var genesis, file, online, didDoc string
	var maxAge, timeout time.Duration
	var maxBytes int
	var minHeight int64
	c := markCheck(&cobra.Command{
		Use: "verify --genesis GENESIS.json [--online NODE] [--did-document DID.json] CREDENTIAL.json | [--file CREDENTIAL] RECEIPT.json",
		Short: "Verify a Verifiable Credential (anchor proof, issuer proofs; status with --online) or a receipt offline against the chain's genesis: " +
			"exit 0 valid, 1 invalid or revoked or suspended, 2 could not check",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// A check command: readTrust's errors, a missing --genesis
			// too, exit 2.
			g, trust, err := readTrust(genesis)
			if err != nil {
				return err
			}
			raw, err := readLimited(args[0], max(maxBytes, vc.DefaultMaxDocumentBytes))
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if isVC(raw) {
				if file != "" {
					return usageError(errors.New("--file is for receipts: a credential carries its own anchor"))
				}
				return verifyVC(ctx, raw, g, trust, online, didDoc, maxAge, minHeight)
			}
			if didDoc != "" {
				return usageError(errors.New("--did-document is for Verifiable Credentials, and " + args[0] + " is not one"))
			}
			if len(raw) > maxBytes {
				return fmt.Errorf("%s is larger than %d bytes (--max-receipt-bytes)", args[0], maxBytes)
			}
			return verifyReceipt(ctx, args[0], raw, trust, maxBytes, file, online, maxAge, minHeight)
		},
	})
	c.Flags().StringVar(&online, "online", "", "also check status now: for a receipt, with this node's gRPC address; for a credential, its credentialStatus lists from this node's HTTP API (http://HOST:PORT)")
	c.Flags().DurationVar(&maxAge, "max-age", 10*time.Minute, "with --online: refuse a status answer older than this")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "with --online: give up after this long")
	c.Flags().Int64Var(&minHeight, "min-height", 0, "with --online: wait for an answer of this height or later (the height a revoke or status-list set printed)")
	c.Flags().StringVar(&genesis, "genesis", "", "the chain's genesis.json (the trust root)")
	c.Flags().IntVar(&maxBytes, "max-receipt-bytes", proof.DefaultMaxReceiptBytes, "refuse receipt files larger than this")
	c.Flags().StringVar(&file, "file", "", "for a receipt: also check that this credential file's SHA-256 is the receipt's hash")
	c.Flags().StringVar(&didDoc, "did-document", "", "for a credential whose issuer is not a did:key (did:web): the issuer's DID document (JSON)")
	return c
}

func verifyReceipt(ctx context.Context, name string, raw []byte, trust *proof.TrustRoot, maxBytes int, file, online string, maxAge time.Duration, minHeight int64) error {
	lim := proof.Limits{MaxReceiptBytes: maxBytes}
	r, err := proof.UnmarshalReceiptJSON(raw, lim)
	if err != nil {
		// Not a receipt this verifier accepts (malformed, or an old
		// version): the file proves nothing.
		return &exitError{exitInvalid, fmt.Errorf("%s: %w", name, err)}
	}
	trust.Limits = lim
	v, err := proof.Verify(r, trust)
	if err != nil {
		return &exitError{exitInvalid, fmt.Errorf("INVALID receipt %s: %w", name, err)}
	}
	if file != "" {
		h, err := hashFile(file)
		if err != nil {
			return fmt.Errorf("--file: %w", err)
		}
		if string(h) != string(v.CredentialHash) {
			return &exitError{exitInvalid, fmt.Errorf("INVALID: %s hashes to %s, the receipt is for %s",
				file, proof.FormatBinary(h), proof.FormatBinary(v.CredentialHash))}
		}
	}
	fmt.Printf("VALID receipt\n  credential: %s\n  chain:      %s\n  issuer:     %s\n  key:        %s\n  batch:      %d (leaf %d of %d, root %s)\n  height:     %d\n  time:       %s\n",
		proof.FormatBinary(v.CredentialHash), v.ChainID, v.Issuer, proof.FormatBinary(v.SignerKey),
		v.BatchSeq, v.LeafIndex, v.LeafCount, proof.FormatBinary(v.BatchRoot), v.Height, v.Time.Format(time.RFC3339))
	if file != "" {
		fmt.Printf("  file:       %s matches\n", file)
	}
	if online == "" {
		return nil
	}
	s, err := onlineStatus(ctx, online, v.CredentialHash, trust, maxAge, minHeight)
	if err != nil {
		return fmt.Errorf("online status from %s: %w", online, err)
	}
	if err := s.Valid(); err != nil {
		fmt.Printf("NOT VALID now: %v\n", err)
		printStatus(s)
		return &exitError{exitInvalid, nil}
	}
	fmt.Printf("and, online, still valid and not revoked:\n")
	printStatus(s)
	return nil
}

// verifyVC prints one verdict line, then what it rests on.
func verifyVC(ctx context.Context, doc, genesis []byte, trust *proof.TrustRoot, online, didDoc string, maxAge time.Duration, minHeight int64) error {
	couldNot := func(err error) error {
		fmt.Printf("COULD NOT CHECK (%v)\n", err)
		return &exitError{exitCouldNotDo, nil}
	}
	var opts []vc.CredentialOption
	if didDoc != "" {
		b, err := readLimited(didDoc, vc.DefaultMaxDocumentBytes)
		if err != nil {
			return couldNot(fmt.Errorf("--did-document: %w", err))
		}
		opts = append(opts, vc.WithDIDDocument(b))
	}
	res, err := vc.VerifyCredential(doc, genesis, opts...)
	if err != nil {
		return couldNot(err)
	}
	if res.Verdict != vc.Valid {
		fmt.Printf("INVALID (step: %s): %v\n", res.Step, res.Err)
		printCredential(res, nil)
		return &exitError{exitInvalid, nil}
	}
	var status []string
	verdict := vc.Valid
	if online != "" {
		// The ledger's own word on the anchored hash first: revoked by
		// hash (credenced revoke), the issuer suspended, its key
		// compromised.
		// statusFailed ends the verdict on a status check that did not
		// give an answer: proven data contradicting the credential, or no
		// check that could be made.
		statusFailed := func(err error) error {
			if errors.Is(err, errStatusInvalid) {
				fmt.Printf("INVALID (step: %s): %v\n", vc.StepStatus, err)
				printCredential(res, status)
				return &exitError{exitInvalid, nil}
			}
			err = couldNot(fmt.Errorf("status from %s: %w", online, err))
			printCredential(res, status)
			return err
		}
		st, err := checkHashOnline(ctx, online, res, trust, maxAge, minHeight)
		if err != nil {
			return statusFailed(err)
		}
		line := fmt.Sprintf("hash not revoked, issuer %s active, as of height %d, %s (%s old)", st.Issuer, st.Height,
			st.Time.UTC().Format(time.RFC3339), time.Since(st.Time).Round(time.Second))
		if st.Revoked {
			line = fmt.Sprintf("hash REVOKED at height %d (reason %d), as of height %d", st.RevokedAt, st.RevocationReason, st.Height)
			verdict = vc.Revoked
		}
		status = append(status, line)
		if len(res.Status) == 0 {
			status = append(status, "no credentialStatus entry")
		}
		for _, e := range res.Status {
			set, line, err := checkEntryOnline(ctx, online, e, res, trust, maxAge, minHeight)
			if err != nil {
				return statusFailed(err)
			}
			status = append(status, line)
			switch {
			case set && e.StatusPurpose == "revocation":
				verdict = vc.Revoked
			case set && e.StatusPurpose == "suspension" && verdict == vc.Valid:
				verdict = vc.Suspended
			}
		}
	}
	fmt.Println(verdict)
	printCredential(res, status)
	if verdict != vc.Valid {
		return &exitError{exitInvalid, nil}
	}
	return nil
}

func printCredential(res *vc.CredentialResult, status []string) {
	if res.Issuer != "" {
		fmt.Printf("  issuer:     %s\n", res.Issuer)
	}
	fmt.Printf("  credential: %s (SHA-256 of its JCS form without proof)\n", proof.FormatBinary(res.Hash[:]))
	for _, a := range res.Anchors {
		fmt.Printf("  anchored:   at height %d, %s, by issuer %s (chain %s)\n", a.Height, a.Time.UTC().Format(time.RFC3339), a.Issuer, a.ChainID)
	}
	for _, p := range res.Proofs {
		state := "verified"
		switch {
		case errors.Is(p.Err, vc.ErrUnsupported):
			state = "skipped (suite not known here)"
		case p.Err != nil:
			state = "FAILED: " + p.Err.Error()
		case res.Verdict != vc.Valid:
			// Verification stops at the first failed step: a proof
			// without an error may not have been checked.
			continue
		}
		fmt.Printf("  proof %d:    %s, %s\n", p.Index, p.Cryptosuite, state)
	}
	for _, s := range status {
		fmt.Printf("  status:     %s\n", s)
	}
}

// checkEntryOnline answers one credentialStatus entry from a node. The list
// is fetched at the statusListCredential URL's path on NODE, not at the
// URL's host: every member serves the same list at the same path
// (docs/status.md), and what decides is the ledger's proof of the status
// list at its height (?format=export), checked against the genesis; the
// issuer's signed list must agree with it. So the verifier trusts neither
// the host named in the credential nor the node it asks.
func checkEntryOnline(ctx context.Context, nodeURL string, e vc.StatusEntry, res *vc.CredentialResult, trust *proof.TrustRoot, maxAge time.Duration, minHeight int64) (bool, string, error) {
	base, err := httpBase(nodeURL)
	if err != nil {
		return false, "", err
	}
	u, err := url.Parse(e.StatusListCredential)
	if err != nil || u.Path == "" {
		return false, "", fmt.Errorf("%w: statusListCredential %q is not a URL with a path", errStatusInvalid, e.StatusListCredential)
	}
	listURL := base + u.EscapedPath()
	list, hdr, err := getAtHeight(ctx, listURL, minHeight, func(_ []byte, hdr http.Header) (int64, error) {
		h, err := strconv.ParseInt(hdr.Get("Credence-Height"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: no Credence-Height header: not a Credence node's status list", listURL)
		}
		return h, nil
	})
	if err != nil {
		return false, "", err
	}
	exJSON, _, err := httpGet(ctx, listURL+"?format=export&height="+hdr.Get("Credence-Height"))
	if err != nil {
		return false, "", err
	}
	var ex proof.RegistryExport
	if err := protojson.Unmarshal(exJSON, &ex); err != nil {
		return false, "", fmt.Errorf("%s?format=export: %w", listURL, err)
	}
	bits, rr, err := proof.VerifyRegistryExport(&ex, trust, maxAge, time.Now())
	if err != nil {
		return false, "", fmt.Errorf("the ledger proof of %s does not verify: %w", listURL, err)
	}
	var rec pb.Registry
	if err := gproto.Unmarshal(ex.RegistryRecord, &rec); err != nil {
		return false, "", fmt.Errorf("status list record: %w", err)
	}
	// From here on the data is proven: a mismatch is the credential's.
	switch {
	case rec.Url == "" && u.Path != node.StatusListPath(rr.Issuer, rr.ID):
		// A status list created without url is served at its path by any
		// member: the path is what names it.
		return false, "", fmt.Errorf("%w: %s is not the path of status list %s/%s", errStatusInvalid, e.StatusListCredential, rr.Issuer, rr.ID)
	case rec.Url != "" && rec.Url != e.StatusListCredential:
		return false, "", fmt.Errorf("%w: the ledger's status list %s/%s at that path is the list %q, not %q", errStatusInvalid, rr.Issuer, rr.ID, rec.Url, e.StatusListCredential)
	case len(res.Anchors) > 0 && rr.Issuer != res.Anchors[0].Issuer:
		return false, "", fmt.Errorf("%w: the list is issuer %s's, the credential was anchored by %s", errStatusInvalid, rr.Issuer, res.Anchors[0].Issuer)
	case rr.Purpose != e.StatusPurpose:
		return false, "", fmt.Errorf("%w: statusPurpose %q, the list's is %q", errStatusInvalid, e.StatusPurpose, rr.Purpose)
	case e.StatusListIndex >= rr.Size:
		return false, "", fmt.Errorf("%w: statusListIndex %d, the list has %d entries", errStatusInvalid, e.StatusListIndex, rr.Size)
	}
	set := proof.BitSet(bits, e.StatusListIndex)
	signed := "signed by the issuer, checked"
	if rec.Url != "" && hdr.Get("Credence-List-Signed") == "true" {
		listSet, err := vc.CheckStatus(e, list, res.Issuer, time.Now())
		if err != nil {
			return false, "", fmt.Errorf("the list %s: %w", listURL, err)
		}
		if listSet != set {
			return false, "", fmt.Errorf("the list %s and its ledger proof disagree on entry %d", listURL, e.StatusListIndex)
		}
	} else {
		// A list no update of the issuer's signed (just created, or last
		// set by its sponsor): the ledger's proof alone decides.
		signed = "not signed by the issuer (no update of the issuer's yet, or a sponsor's); the ledger's proof decides"
	}
	word := map[bool]string{true: "SET", false: "clear"}[set]
	age := time.Since(rr.Time).Round(time.Second)
	return set, fmt.Sprintf("%s entry %d of %s: %s, proven at height %d, %s (%s old); list %s",
		rr.Purpose, e.StatusListIndex, e.StatusListCredential, word, rr.Height, rr.Time.UTC().Format(time.RFC3339), age, signed), nil
}

// checkHashOnline asks a node's HTTP API for the status of the credential's
// hash (GET /v1/status/{hash}, the proofs of credenced status) and checks
// it against the genesis: the hash revoked, or the issuer suspended or its
// key compromised at the anchoring.
func checkHashOnline(ctx context.Context, nodeURL string, res *vc.CredentialResult, trust *proof.TrustRoot, maxAge time.Duration, minHeight int64) (*proof.StatusResult, error) {
	base, err := httpBase(nodeURL)
	if err != nil {
		return nil, err
	}
	u := base + "/v1/status/" + proof.FormatBinary(res.Hash[:])
	var st pb.GetStatusResponse
	_, _, err = getAtHeight(ctx, u, minHeight, func(b []byte, _ http.Header) (int64, error) {
		if err := protojson.Unmarshal(b, &st); err != nil {
			return 0, fmt.Errorf("%s: %w", u, err)
		}
		if st.Status == nil {
			return -1, nil // no answer yet: asked again
		}
		return st.Status.Height, nil
	})
	if err != nil {
		return nil, err
	}
	s, err := proof.VerifyStatus(st.Status, trust, maxAge, time.Now())
	if err != nil {
		return nil, fmt.Errorf("the node's status answer does not verify: %w", err)
	}
	if string(s.Verified.CredentialHash) != string(res.Hash[:]) {
		return nil, fmt.Errorf("the node answered for another hash, %s", proof.FormatBinary(s.Verified.CredentialHash))
	}
	if err := s.Valid(); err != nil && !s.Revoked {
		return nil, fmt.Errorf("%w: %v", errStatusInvalid, err)
	}
	return s, nil
}

// getAtHeight GETs u until height, of the answer, is minHeight or later:
// what a node proves trails its newest block by two, so an answer just
// after a write may predate it (--min-height, as untilHeight over gRPC).
func getAtHeight(ctx context.Context, u string, minHeight int64, height func([]byte, http.Header) (int64, error)) ([]byte, http.Header, error) {
	for {
		b, hdr, err := httpGet(ctx, u)
		if err != nil {
			return nil, nil, err
		}
		h, err := height(b, hdr)
		if err != nil {
			return nil, nil, err
		}
		if h >= minHeight {
			return b, hdr, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%s: the node proves height %d, not yet --min-height %d", u, h, minHeight)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// httpBase is a node's HTTP API base URL: given as http(s)://HOST:PORT, or
// HOST:PORT (plain http).
func httpBase(node string) (string, error) {
	if !strings.Contains(node, "://") {
		node = "http://" + node
	}
	u, err := url.Parse(node)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--online %q: want a node's HTTP API, http(s)://HOST:PORT", node)
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}

func httpGet(ctx context.Context, u string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxStatusListBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", u, err)
	}
	if len(b) > maxStatusListBytes {
		return nil, nil, fmt.Errorf("%s: answer larger than %d bytes", u, maxStatusListBytes)
	}
	if res.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s: %s: %s", u, res.Status, strings.TrimSpace(string(b[:min(len(b), 300)])))
	}
	return b, res.Header, nil
}
