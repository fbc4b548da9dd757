package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	cfg "github.com/cometbft/cometbft/config"
	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/consensus"
	"github.com/credence-ledger/credence/proof"
)

// InitOptions describe a new single-validator home.
type InitOptions struct {
	ChainID string // default "credence-dev"
	Moniker string // default "member-1"
	// MemberID and IssuerID name the founding member and its issuer.
	// Defaults: the moniker, and "<member>-registrar".
	MemberID string
	IssuerID string
	Ports    consensus.Ports
	// GRPCAddress defaults to 127.0.0.1:9090.
	GRPCAddress string
	// HTTPAddress defaults to 127.0.0.1:1317.
	HTTPAddress string
	// NoHTTP writes no HTTP gateway (http_address = ""); HTTPAddress is
	// then not used.
	NoHTTP bool
	// Genesis, when set, is the genesis file of an existing chain to join:
	// the node starts as a full node with no issuer of its own (a member
	// joins as a validator, and registers issuers, by governance).
	Genesis string
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

// member is one founding member's node home in the making.
type member struct {
	home, moniker, memberID, issuerID, grpc string
	http                                    string
	noHTTP                                  bool
	plaintextAPI                            bool
	ccfg                                    *cfg.Config
	keys                                    *consensus.Keys
	issuerKey, adminKey                     ed25519.PrivateKey
}

// newMember writes a node's CometBFT files and keys (mode 0600).
func newMember(home, moniker, memberID, issuerID string, ports consensus.Ports, grpcAddr string) (*member, error) {
	if _, err := os.Stat(filepath.Join(home, "config", "genesis.json")); err == nil {
		return nil, fmt.Errorf("%s already holds a node; remove it or choose another --home", home)
	}
	m := &member{home: home, moniker: moniker, memberID: memberID, issuerID: issuerID, grpc: grpcAddr}
	m.ccfg = consensus.DefaultConfig(home, moniker, ports, app.MaxTxBytes)
	var err error
	if m.keys, err = consensus.WriteHome(m.ccfg); err != nil {
		return nil, err
	}
	if _, m.issuerKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	if _, m.adminKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	cfgDir := filepath.Join(home, "config")
	if err := writeKeyFile(filepath.Join(cfgDir, "issuer-"+issuerID+".key.json"), issuerID, m.issuerKey); err != nil {
		return nil, err
	}
	if err := writeKeyFile(filepath.Join(cfgDir, "admin-"+memberID+".key.json"), memberID, m.adminKey); err != nil {
		return nil, err
	}
	return m, nil
}

const foundingPower = 10

func (m *member) genesisMember() app.GenesisMember {
	return app.GenesisMember{
		ID: m.memberID, Name: m.moniker,
		AdminKey:     proof.FormatBinary(m.adminKey.Public().(ed25519.PublicKey)),
		ValidatorKey: proof.FormatBinary(m.keys.ValidatorPubKey),
		Power:        foundingPower,
	}
}

func (m *member) genesisIssuer() app.GenesisIssuer {
	return app.GenesisIssuer{
		ID: m.issuerID, Name: m.issuerID, Sponsor: m.memberID,
		Keys: []app.GenesisKey{{PublicKey: proof.FormatBinary(m.issuerKey.Public().(ed25519.PublicKey)), FromHeight: 1}},
	}
}

// finish writes the member's API token and app.toml, and returns the token.
func (m *member) finish() (string, error) {
	var tok [32]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return "", err
	}
	token := "cred_" + hex.EncodeToString(tok[:])
	sum := sha256.Sum256([]byte(token))
	if err := writeSecret(tokenFile(m.home, m.issuerID), []byte(token+"\n")); err != nil {
		return "", err
	}
	c := defaultConfig()
	if m.grpc != "" {
		c.GRPCAddress = m.grpc
	}
	if m.noHTTP {
		c.HTTPAddress = ""
	} else if m.http != "" {
		c.HTTPAddress = m.http
	}
	c.PlaintextAPIBeyondLoopback = m.plaintextAPI
	c.Issuers = []issuerConfig{{ID: m.issuerID, KeyFile: "issuer-" + m.issuerID + ".key.json", TokenSHA256: hex.EncodeToString(sum[:])}}
	return token, writeConfig(m.home, c)
}

// writeGenesis writes one genesis for all members, byte for byte the same
// in every home.
func writeGenesis(chainID string, members []*member) error {
	g := app.Genesis{Params: app.GenesisParams{MaxBatchHashes: app.DefaultMaxBatchHashes}}
	var vals []consensus.Validator
	for _, m := range members {
		g.Members = append(g.Members, m.genesisMember())
		g.Issuers = append(g.Issuers, m.genesisIssuer())
		vals = append(vals, consensus.Validator{Name: m.moniker, PubKey: m.keys.ValidatorPubKey, Power: foundingPower})
	}
	appState, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	first := members[0].ccfg.GenesisFile()
	if err := consensus.WriteGenesis(first, chainID, vals, appState); err != nil {
		return err
	}
	b, err := os.ReadFile(first)
	if err != nil {
		return err
	}
	for _, m := range members[1:] {
		if err := os.WriteFile(m.ccfg.GenesisFile(), b, 0o644); err != nil {
			return err
		}
	}
	return nil
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
	m, err := newMember(home, o.Moniker, o.MemberID, o.IssuerID, o.Ports, o.GRPCAddress)
	if err != nil {
		return nil, err
	}
	m.http, m.noHTTP = o.HTTPAddress, o.NoHTTP
	if o.Genesis != "" {
		return joinChain(m, o.Genesis)
	}
	if err := writeGenesis(o.ChainID, []*member{m}); err != nil {
		return nil, err
	}
	token, err := m.finish()
	if err != nil {
		return nil, err
	}
	return &InitResult{Home: home, ChainID: o.ChainID, IssuerID: o.IssuerID, Token: token, TokenFile: tokenFile(home, o.IssuerID)}, nil
}

func joinChain(m *member, genesis string) (*InitResult, error) {
	b, err := os.ReadFile(genesis)
	if err != nil {
		return nil, fmt.Errorf("--genesis: %w", err)
	}
	doc, err := cmttypes.GenesisDocFromJSON(b)
	if err != nil {
		return nil, fmt.Errorf("--genesis %s: %w", genesis, err)
	}
	if err := os.WriteFile(m.ccfg.GenesisFile(), b, 0o644); err != nil {
		return nil, err
	}
	// The issuer key made for this member stays in its home for a later
	// registration; the node anchors for no issuer until then.
	c := defaultConfig()
	if m.grpc != "" {
		c.GRPCAddress = m.grpc
	}
	if m.noHTTP {
		c.HTTPAddress = ""
	} else if m.http != "" {
		c.HTTPAddress = m.http
	}
	if err := writeConfig(m.home, c); err != nil {
		return nil, err
	}
	return &InitResult{Home: m.home, ChainID: doc.ChainID}, nil
}

// TestnetOptions describe a testnet of founding members, one validator each.
type TestnetOptions struct {
	Validators int    // at least 1
	Output     string // homes are Output/node0 … node{N-1}
	ChainID    string // default "credence-testnet"
	// StartingIP gives node i the address StartingIP+i (one host each, same
	// ports); HostnamePrefix gives node i the host HostnamePrefix+i (as in a
	// compose file). With neither, all nodes share 127.0.0.1 and node i's
	// ports are BasePort + 10·i + {0: P2P, 1: RPC, 2: gRPC, 3: Prometheus,
	// 5: HTTP}.
	StartingIP     string
	HostnamePrefix string
	BasePort       int // default 26656
}

// TestnetNode is one generated home.
type TestnetNode struct {
	Home, NodeID, IssuerID, Token string
	GRPC, RPC, P2P, HTTP          string
}

// Testnet writes N node homes that share one genesis in which every
// validator is a founding member with its own issuer, with persistent peers
// wired.
func Testnet(o TestnetOptions) ([]TestnetNode, error) {
	if o.Validators < 1 {
		return nil, fmt.Errorf("--validators must be at least 1")
	}
	if o.ChainID == "" {
		o.ChainID = "credence-testnet"
	}
	if o.BasePort == 0 {
		o.BasePort = 26656
	}
	if o.StartingIP != "" && o.HostnamePrefix != "" {
		return nil, fmt.Errorf("--starting-ip and --hostname-prefix exclude each other")
	}
	var ip net.IP
	if o.StartingIP != "" {
		if ip = net.ParseIP(o.StartingIP).To4(); ip == nil {
			return nil, fmt.Errorf("--starting-ip %q is not an IPv4 address", o.StartingIP)
		}
	}
	type placement struct {
		host, listen               string
		p2p, rpc, grpc, prom, http int
	}
	place := func(i int) placement {
		switch {
		case ip != nil:
			h := net.IPv4(ip[0], ip[1], ip[2], ip[3]+byte(i)).String()
			return placement{h, "0.0.0.0", o.BasePort, o.BasePort + 1, o.BasePort + 3, o.BasePort + 4, o.BasePort + 5}
		case o.HostnamePrefix != "":
			return placement{o.HostnamePrefix + strconv.Itoa(i), "0.0.0.0", o.BasePort, o.BasePort + 1, o.BasePort + 3, o.BasePort + 4, o.BasePort + 5}
		default:
			b := o.BasePort + 10*i
			return placement{"127.0.0.1", "127.0.0.1", b, b + 1, b + 2, b + 3, b + 5}
		}
	}
	var members []*member
	var out []TestnetNode
	for i := 0; i < o.Validators; i++ {
		p := place(i)
		home := filepath.Join(o.Output, fmt.Sprintf("node%d", i))
		ports := consensus.Ports{
			P2P:        fmt.Sprintf("tcp://%s:%d", p.listen, p.p2p),
			RPC:        fmt.Sprintf("tcp://%s:%d", p.listen, p.rpc),
			Prometheus: fmt.Sprintf("%s:%d", p.listen, p.prom),
		}
		id := fmt.Sprintf("member-%d", i)
		grpcAddr := fmt.Sprintf("%s:%d", p.listen, p.grpc)
		m, err := newMember(home, fmt.Sprintf("node%d", i), id, id+"-registrar", ports, grpcAddr)
		if err != nil {
			return nil, err
		}
		m.http = fmt.Sprintf("%s:%d", p.listen, p.http)
		// One host per node: a private network of the administrator's.
		m.plaintextAPI = p.listen != "127.0.0.1"
		members = append(members, m)
		out = append(out, TestnetNode{
			Home: home, NodeID: m.keys.NodeID, IssuerID: m.issuerID,
			GRPC: fmt.Sprintf("%s:%d", p.host, p.grpc), RPC: fmt.Sprintf("%s:%d", p.host, p.rpc), P2P: fmt.Sprintf("%s:%d", p.host, p.p2p),
			HTTP: fmt.Sprintf("%s:%d", p.host, p.http),
		})
	}
	if err := writeGenesis(o.ChainID, members); err != nil {
		return nil, err
	}
	for i, m := range members {
		var peers []string
		for j, n := range out {
			if j != i {
				peers = append(peers, n.NodeID+"@"+n.P2P)
			}
		}
		m.ccfg.P2P.PersistentPeers = strings.Join(peers, ",")
		// Testnet peers share one host or a private network.
		m.ccfg.P2P.AddrBookStrict = false
		m.ccfg.P2P.AllowDuplicateIP = true
		cfg.WriteConfigFile(filepath.Join(m.home, "config", "config.toml"), m.ccfg)
		token, err := m.finish()
		if err != nil {
			return nil, err
		}
		out[i].Token = token
	}
	return out, nil
}
