package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/credence-ledger/credence/node"
	"github.com/credence-ledger/credence/proof"
	"github.com/credence-ledger/credence/vc"
)

func vcCmd() *cobra.Command {
	c := &cobra.Command{Use: "vc", Short: "W3C Verifiable Credentials: sign one (eddsa-rdfc-2022 under the issuer's did:key), attach its anchor receipt"}
	c.AddCommand(vcSignCmd(), vcAttachCmd())
	return c
}

func vcSignCmd() *cobra.Command {
	var home, keyFile, list, addr, baseURL string
	var out outFlags
	var index int64
	c := &cobra.Command{
		Use:   "sign [--key KEYFILE] [--status-list ID --status-index N] CREDENTIAL.json",
		Short: "Sign a credential with eddsa-rdfc-2022 under the issuer's did:key (the home's issuer key by default)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (list == "") != (index < 0) {
				return usageError(errors.New("--status-list and --status-index go together"))
			}
			doc, err := readCredential(args[0])
			if err != nil {
				return err
			}
			issuerID, key, err := signingKey(home, keyFile)
			if err != nil {
				return err
			}
			did, err := vc.DIDKey(key.Public().(ed25519.PublicKey))
			if err != nil {
				return err
			}
			if doc, err = setIssuer(doc, did); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if list != "" {
				if issuerID == "" {
					return usageError(errors.New("--status-list needs the issuer's id: sign with the home's issuer key (--home), not --key"))
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
				defer cancel()
				e, err := statusEntry(ctx, addr, issuerID, list, uint64(index), baseURL)
				if err != nil {
					return err
				}
				if doc, err = addMember(doc, "credentialStatus", e); err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
			}
			signed, err := vc.Sign(doc, vc.EddsaRDFC2022, key, vc.WithCreated(time.Now()))
			if err != nil {
				return fmt.Errorf("sign %s: %w", args[0], err)
			}
			path, err := out.write(args[0], ".signed.json", signed)
			if err != nil {
				return err
			}
			fmt.Printf("signed %s: issuer %s, eddsa-rdfc-2022, written to %s\n", args[0], did, path)
			return nil
		},
	}
	c.Flags().StringVar(&home, "home", defaultHome(), "node home holding the issuer key")
	c.Flags().StringVar(&keyFile, "key", "", "sign with this key file (a node key file's JSON) instead of the home's issuer key")
	c.Flags().StringVar(&list, "status-list", "", "add a credentialStatus entry of this status list of the home's issuer")
	// The flag's old name: scripts written for it keep working, and are told.
	c.Flags().StringVar(&list, "status-registry", "", "the old name of --status-list")
	c.Flags().MarkDeprecated("status-registry", "it is now --status-list")
	c.Flags().Int64Var(&index, "status-index", -1, "with --status-list: the entry's index")
	c.Flags().StringVar(&addr, "node", "127.0.0.1:9090", "with --status-list: node gRPC address")
	c.Flags().StringVar(&baseURL, "base-url", "http://127.0.0.1:1317", "with --status-list, for a list created without url: public URL of a member node's HTTP API")
	out.register(c, ".signed.json")
	return c
}

// outFlags say where a command writes the credential it makes: never over
// its input unless asked.
type outFlags struct {
	out     string
	inPlace bool
}

func (o *outFlags) register(c *cobra.Command, suffix string) {
	c.Flags().StringVar(&o.out, "out", "", "write the credential here (default: the input's name with "+suffix+"; - for standard output)")
	c.Flags().BoolVar(&o.inPlace, "in-place", false, "replace the input file")
}

func (o *outFlags) write(in, suffix string, doc []byte) (string, error) {
	path := o.out
	switch {
	case o.inPlace && o.out != "":
		return "", usageError(errors.New("--out or --in-place, not both"))
	case o.inPlace:
		path = in
	case path == "-":
		_, err := os.Stdout.Write(append(doc, '\n'))
		return "standard output", err
	case path == "":
		path = strings.TrimSuffix(in, ".json") + suffix
	}
	if err := os.WriteFile(path, append(doc, '\n'), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// readCredential reads a credential file, refusing one larger than the vc
// package reads.
func readCredential(path string) ([]byte, error) {
	b, err := readLimited(path, vc.DefaultMaxDocumentBytes)
	if err != nil {
		return nil, err
	}
	if !isJSONObject(b) {
		return nil, fmt.Errorf("%s: not a JSON object", path)
	}
	return b, nil
}

func isJSONObject(b []byte) bool {
	return json.Valid(b) && firstNonSpace(b) == '{'
}

func firstNonSpace(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// isVC tells a Verifiable Credential (a JSON object with @context and a
// type naming VerifiableCredential) from other files.
func isVC(b []byte) bool {
	var d struct {
		Context json.RawMessage `json:"@context"`
		Type    json.RawMessage `json:"type"`
	}
	if !isJSONObject(b) || json.Unmarshal(b, &d) != nil || len(d.Context) == 0 {
		return false
	}
	var one string
	var many []string
	if json.Unmarshal(d.Type, &one) == nil {
		return one == "VerifiableCredential"
	}
	if json.Unmarshal(d.Type, &many) == nil {
		for _, t := range many {
			if t == "VerifiableCredential" {
				return true
			}
		}
	}
	return false
}

// signingKey is the key vc sign uses: a key file's, or the home's issuer's
// (then with the issuer's id, for its status lists).
func signingKey(home, keyFile string) (string, ed25519.PrivateKey, error) {
	if keyFile == "" {
		id, k, err := node.IssuerSigningKey(home)
		if err != nil {
			return "", nil, fmt.Errorf("--home: %w (or --key)", err)
		}
		return id, k, nil
	}
	b, err := readLimited(keyFile, 64<<10)
	if err != nil {
		return "", nil, fmt.Errorf("--key: %w", err)
	}
	var f struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return "", nil, fmt.Errorf("--key %s: %w", keyFile, err)
	}
	seed, err := proof.ParseBinary(f.PrivateKey)
	if err != nil || len(seed) != ed25519.SeedSize {
		return "", nil, fmt.Errorf("--key %s: private_key is not a 32-byte ed25519 seed", keyFile)
	}
	return "", ed25519.NewKeyFromSeed(seed), nil
}

// credentialIssuer is the issuer's id: the issuer member, a string or an
// object with an id.
func credentialIssuer(doc []byte) (string, bool, error) {
	var d map[string]json.RawMessage
	if err := json.Unmarshal(doc, &d); err != nil {
		return "", false, err
	}
	raw, ok := d["issuer"]
	if !ok {
		return "", false, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true, nil
	}
	var o struct {
		ID *string `json:"id"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return "", true, errors.New("issuer is neither a DID nor an object with an id")
	}
	if o.ID == nil {
		return "", true, errNoIssuerID
	}
	return *o.ID, true, nil
}

var errNoIssuerID = errors.New("the issuer object has no id")

func issuerMember(doc []byte) []byte {
	var d map[string]json.RawMessage
	json.Unmarshal(doc, &d)
	return d["issuer"]
}

// setMember replaces a top-level member of a JSON object, keeping the
// members' order; the object comes back compact.
func setMember(doc []byte, name string, value any) ([]byte, error) {
	v, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.WriteByte('{')
	for i := 0; dec.More(); i++ {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if k == name {
			raw = v
		}
		if i > 0 {
			out.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		out.Write(kb)
		out.WriteByte(':')
		if err := json.Compact(&out, raw); err != nil {
			return nil, err
		}
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}

// setIssuer makes did the credential's issuer when it has none (or an
// issuer profile without id, as an Open Badges template has), and refuses a
// credential another issuer issues.
func setIssuer(doc []byte, did string) ([]byte, error) {
	is, ok, err := credentialIssuer(doc)
	var profile map[string]json.RawMessage
	switch {
	case errors.Is(err, errNoIssuerID) && json.Unmarshal(issuerMember(doc), &profile) == nil:
		profile["id"], _ = json.Marshal(did)
		return setMember(doc, "issuer", profile)
	case err != nil:
		return nil, err
	case !ok:
		return addMember(doc, "issuer", did)
	case is != did:
		return nil, fmt.Errorf("its issuer is %s, but the signing key is %s: give the key of that issuer (--key), or remove the issuer member to issue it as %s", is, did, did)
	}
	return doc, nil
}

// addMember adds a top-level member to a JSON object, keeping the bytes
// (and so the member order) of what is there; it refuses one present.
func addMember(doc []byte, name string, value any) ([]byte, error) {
	var d map[string]json.RawMessage
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	if _, ok := d[name]; ok {
		return nil, fmt.Errorf("it already has a %s", name)
	}
	v, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	n, _ := json.Marshal(name)
	body := bytes.TrimRight(doc, " \t\r\n")
	body = bytes.TrimRight(body[:len(body)-1], " \t\r\n") // without its closing brace
	out := append([]byte{}, body...)
	if len(d) > 0 {
		out = append(out, ',')
	}
	out = append(out, n...)
	out = append(out, ':')
	out = append(out, v...)
	return append(out, '}'), nil
}

func vcAttachCmd() *cobra.Command {
	var receiptFile, genesis, home string
	var out outFlags
	c := &cobra.Command{
		Use:   "attach --receipt RECEIPT.json [--genesis GENESIS.json] CREDENTIAL.json",
		Short: "Add the credential's anchor receipt to its proof set (a " + vc.AnchorCryptosuite + " DataIntegrityProof)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if receiptFile == "" {
				return usageError(errors.New("--receipt is required: the credential's receipt (credenced anchor --out, or credenced receipt HASH)"))
			}
			doc, err := readCredential(args[0])
			if err != nil {
				return err
			}
			raw, err := readLimited(receiptFile, proof.DefaultMaxReceiptBytes)
			if err != nil {
				return fmt.Errorf("--receipt: %w", err)
			}
			r, err := proof.UnmarshalReceiptJSON(raw, proof.Limits{})
			if err != nil {
				return fmt.Errorf("--receipt %s: %w", receiptFile, err)
			}
			g, err := genesisBytes(genesis, home)
			if err != nil {
				return err
			}
			anchored, err := vc.AttachReceipt(doc, r, g)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			path, err := out.write(args[0], ".anchored.json", anchored)
			if err != nil {
				return err
			}
			fmt.Printf("%s: anchor proof (%s, height %d, issuer %s) written to %s\n", args[0], vc.AnchorCryptosuite, r.Batch.Height, r.Batch.Issuer, path)
			return nil
		},
	}
	c.Flags().StringVar(&receiptFile, "receipt", "", "the credential's receipt (JSON)")
	c.Flags().StringVar(&genesis, "genesis", "", "the chain's genesis.json (default: the home's)")
	c.Flags().StringVar(&home, "home", defaultHome(), "node home, for its genesis.json")
	out.register(c, ".anchored.json")
	return c
}

// genesisBytes reads the genesis file given, or the home's: the anchor
// proof names its chain by the file's hash, so it is the file as
// distributed.
func genesisBytes(genesis, home string) ([]byte, error) {
	flag := "--genesis"
	if genesis == "" {
		genesis, flag = filepath.Join(home, "config", "genesis.json"), "--home"
	}
	b, err := readLimited(genesis, 16<<20)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return b, nil
}
