package app

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// DefaultMaxBatchHashes is the genesis default of params.max_batch_hashes:
// 100,000 hashes is one second of the throughput target in one transaction
// of 3.2 MB, under MaxTxBytes.
const DefaultMaxBatchHashes = 100_000

// MaxBatchHashesLimit is the largest max_batch_hashes a chain may set, in
// its genesis or by vote: a full batch must fit in one transaction of at
// most MaxTxBytes together with its envelope (a few hundred bytes; 4 KiB
// are kept for it).
const MaxBatchHashesLimit = (MaxTxBytes - 4<<10) / 32

var deterministic = proto.MarshalOptions{Deterministic: true}

// Genesis is the app_state of the genesis file. Binary values are multibase
// (or hex) strings, as everywhere a person reads or writes them.
type Genesis struct {
	Members []GenesisMember `json:"members"`
	Issuers []GenesisIssuer `json:"issuers"`
	Params  GenesisParams   `json:"params"`
}

type GenesisMember struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	AdminKey     string `json:"admin_key"`
	ValidatorKey string `json:"validator_key"`
	Power        int64  `json:"power"`
}

type GenesisIssuer struct {
	ID      string       `json:"id"`
	Name    string       `json:"name"`
	Sponsor string       `json:"sponsor"`
	Keys    []GenesisKey `json:"keys"`
}

type GenesisKey struct {
	PublicKey  string `json:"public_key"`
	FromHeight int64  `json:"from_height"`
	ToHeight   int64  `json:"to_height,omitempty"`
}

type GenesisParams struct {
	MaxBatchHashes    uint64 `json:"max_batch_hashes"`
	ProposalTTLBlocks int64  `json:"proposal_ttl_blocks,omitempty"`
}

// DefaultProposalTTLBlocks is how long a proposal stays open unless genesis
// says otherwise: at one block a second, a quarter of an hour under load,
// hours on a quiet chain.
const DefaultProposalTTLBlocks = 1000

// genesisState is Genesis decoded and checked, in the order it is written.
type genesisState struct {
	members []*pb.Member
	issuers []*pb.Issuer
	params  *pb.Params
}

func parseGenesis(raw []byte) (*genesisState, error) {
	var g Genesis
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("app_state: %w", err)
	}
	if len(g.Members) == 0 {
		return nil, fmt.Errorf("app_state.members: at least one founding member is required")
	}
	st := &genesisState{params: &pb.Params{MaxBatchHashes: g.Params.MaxBatchHashes, ProposalTtlBlocks: g.Params.ProposalTTLBlocks}}
	if st.params.MaxBatchHashes == 0 {
		st.params.MaxBatchHashes = DefaultMaxBatchHashes
	}
	if st.params.MaxBatchHashes > MaxBatchHashesLimit {
		return nil, fmt.Errorf("app_state.params.max_batch_hashes: %d does not fit in a transaction; at most %d", st.params.MaxBatchHashes, MaxBatchHashesLimit)
	}
	if st.params.ProposalTtlBlocks < 0 || st.params.ProposalTtlBlocks > maxProposalTTL {
		return nil, fmt.Errorf("app_state.params.proposal_ttl_blocks: must be 0 (default %d) to %d", DefaultProposalTTLBlocks, maxProposalTTL)
	}
	if st.params.ProposalTtlBlocks == 0 {
		st.params.ProposalTtlBlocks = DefaultProposalTTLBlocks
	}
	seen := make(map[string]bool)
	for i, m := range g.Members {
		field := fmt.Sprintf("app_state.members[%d]", i)
		if err := ValidID(m.ID); err != nil {
			return nil, fmt.Errorf("%s.id: %v", field, err)
		}
		if seen["m"+m.ID] {
			return nil, fmt.Errorf("%s.id: duplicate member %q", field, m.ID)
		}
		seen["m"+m.ID] = true
		admin, err := parseKey(m.AdminKey)
		if err != nil {
			return nil, fmt.Errorf("%s.admin_key: %v", field, err)
		}
		val, err := parseKey(m.ValidatorKey)
		if err != nil {
			return nil, fmt.Errorf("%s.validator_key: %v", field, err)
		}
		if m.Power <= 0 || m.Power > maxPower {
			return nil, fmt.Errorf("%s.power: must be 1 to %d", field, maxPower)
		}
		st.members = append(st.members, &pb.Member{Id: m.ID, Name: m.Name, AdminKey: admin, ValidatorKey: val, Power: m.Power})
	}
	for i, is := range g.Issuers {
		field := fmt.Sprintf("app_state.issuers[%d]", i)
		if err := ValidID(is.ID); err != nil {
			return nil, fmt.Errorf("%s.id: %v", field, err)
		}
		if seen["i"+is.ID] {
			return nil, fmt.Errorf("%s.id: duplicate issuer %q", field, is.ID)
		}
		seen["i"+is.ID] = true
		if !seen["m"+is.Sponsor] {
			return nil, fmt.Errorf("%s.sponsor: %q is not a member", field, is.Sponsor)
		}
		if len(is.Keys) == 0 {
			return nil, fmt.Errorf("%s.keys: at least one key is required", field)
		}
		rec := &pb.Issuer{Id: is.ID, Name: is.Name, Sponsor: is.Sponsor, Status: pb.IssuerStatus_ISSUER_STATUS_ACTIVE}
		for j, k := range is.Keys {
			pk, err := parseKey(k.PublicKey)
			if err != nil {
				return nil, fmt.Errorf("%s.keys[%d].public_key: %v", field, j, err)
			}
			if k.FromHeight < 0 || k.ToHeight < 0 || (k.ToHeight != 0 && k.ToHeight <= k.FromHeight) {
				return nil, fmt.Errorf("%s.keys[%d]: window [%d, %d) is empty or negative", field, j, k.FromHeight, k.ToHeight)
			}
			rec.Keys = append(rec.Keys, &pb.IssuerKey{PublicKey: pk, FromHeight: k.FromHeight, ToHeight: k.ToHeight})
		}
		st.issuers = append(st.issuers, rec)
	}
	return st, nil
}

func parseKey(s string) ([]byte, error) {
	b, err := proof.ParseBinary(s)
	if err != nil {
		return nil, err
	}
	if err := checkPublicKey(b); err != nil {
		return nil, err
	}
	return b, nil
}
