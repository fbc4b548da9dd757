package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/consensus"
	"github.com/credence-ledger/credence/proof"
)

// InitOptions describe a new single-validator home.
type InitOptions struct {
	ChainID string // default "credence-dev"
	Moniker string // default "member-1"
	// MemberID and IssuerID name the founding member and its issuer.
	// Defaults "member-1" and "member-1-registrar".
	MemberID string
	IssuerID string
	Ports    consensus.Ports
	// GRPCAddress defaults to 127.0.0.1:9090.
	GRPCAddress string
}

// InitResult is what init tells the operator once.
type InitResult struct {
	Home     string
	ChainID  string
	IssuerID string
	// Token is the issuer's API token; only its hash stays in app.toml.
	Token     string
	TokenFile string
}

// Init creates a home for a one-validator chain whose genesis holds one
// member and one issuer whose key the node holds. It refuses to touch an
// existing home.
func Init(home string, o InitOptions) (*InitResult, error) {
	if o.ChainID == "" {
		o.ChainID = "credence-dev"
	}
	if o.Moniker == "" {
		o.Moniker = "member-1"
	}
	if o.MemberID == "" {
		o.MemberID = o.Moniker
	}
	if o.IssuerID == "" {
		o.IssuerID = o.MemberID + "-registrar"
	}
	if _, err := os.Stat(filepath.Join(home, "config", "genesis.json")); err == nil {
		return nil, fmt.Errorf("%s already holds a node; remove it or choose another --home", home)
	}
	ccfg := consensus.DefaultConfig(home, o.Moniker, o.Ports)
	keys, err := consensus.WriteHome(ccfg)
	if err != nil {
		return nil, err
	}
	_, issuerKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	_, adminKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	cfgDir := filepath.Join(home, "config")
	if err := writeIssuerKey(filepath.Join(cfgDir, "issuer-"+o.IssuerID+".key.json"), o.IssuerID, issuerKey); err != nil {
		return nil, err
	}
	if err := writeIssuerKey(filepath.Join(cfgDir, "admin-"+o.MemberID+".key.json"), o.MemberID, adminKey); err != nil {
		return nil, err
	}
	appState, err := json.MarshalIndent(app.Genesis{
		Members: []app.GenesisMember{{
			ID: o.MemberID, Name: o.Moniker,
			AdminKey:     proof.FormatBinary(adminKey.Public().(ed25519.PublicKey)),
			ValidatorKey: proof.FormatBinary(keys.ValidatorPubKey),
			Power:        10,
		}},
		Issuers: []app.GenesisIssuer{{
			ID: o.IssuerID, Name: o.IssuerID, Sponsor: o.MemberID,
			Keys: []app.GenesisKey{{PublicKey: proof.FormatBinary(issuerKey.Public().(ed25519.PublicKey)), FromHeight: 1}},
		}},
		Params: app.GenesisParams{MaxBatchHashes: app.DefaultMaxBatchHashes},
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := consensus.WriteGenesis(ccfg.GenesisFile(), o.ChainID,
		[]consensus.Validator{{Name: o.Moniker, PubKey: keys.ValidatorPubKey, Power: 10}}, appState); err != nil {
		return nil, err
	}
	var tok [32]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	token := "cred_" + hex.EncodeToString(tok[:])
	sum := sha256.Sum256([]byte(token))
	if err := writeSecret(tokenFile(home, o.IssuerID), []byte(token+"\n")); err != nil {
		return nil, err
	}
	c := DefaultConfig()
	if o.GRPCAddress != "" {
		c.GRPCAddress = o.GRPCAddress
	}
	c.Issuers = []IssuerConfig{{ID: o.IssuerID, KeyFile: "issuer-" + o.IssuerID + ".key.json", TokenSHA256: hex.EncodeToString(sum[:])}}
	if err := writeConfig(home, c); err != nil {
		return nil, err
	}
	return &InitResult{Home: home, ChainID: o.ChainID, IssuerID: o.IssuerID, Token: token, TokenFile: tokenFile(home, o.IssuerID)}, nil
}
